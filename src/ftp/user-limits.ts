/**
 * The server's per-user bookkeeping for UserLimits: logged-in sessions (maxSessions), running
 * transfers (a user's bandwidth is shared among them), and disk usage (quotaBytes, quotaFiles).
 *
 * Usage is the total size and count of regular files under the user's home, measured by walking
 * the session's FileSystem (symlinks are not followed), kept per user with every upload's and
 * DELE's change applied as it happens, and measured again when older than USAGE_MAX_AGE_MS
 * (never while one of the user's uploads runs: the walk would see half-written files). Changes
 * made behind the server's back (another program, another server) are seen at the next walk.
 * An entry is dropped when the user has no session, transfer or upload left.
 */
import { USER_LIMIT_KEYS, type UserLimits } from '../auth/types';
import type { FileSystem } from '../fs/types';
import { ftpJoin } from '../fs/paths';

/** How long a measured usage is trusted before the next upload measures it again. */
export const USAGE_MAX_AGE_MS = 60_000;

/** Bytes and regular files under a user's home. Live: uploads and DELE change it in place. */
export interface DiskUsage {
  bytes: number;
  files: number;
}

interface UserEntry {
  readonly name: string;
  sessions: number;
  running: { send: number; receive: number };
  /** Listeners of the running transfers that follow their share of a limit (RunningTransfer.onShare), made on first use. */
  sharing: { send: Set<(sharedBy: number) => void> | null; receive: Set<(sharedBy: number) => void> | null };
  /** With a ShareCounter: the user's share-following transfers over every process, as last told (0: not told). */
  sharedTotal: { send: number; receive: number };
  /** Uploads between UploadQuota's start and its finish: no walk while there are any. */
  uploads: number;
  /** The FTP paths those uploads write, with how many write each. */
  uploading: Map<string, number>;
  /** Null until the first walk has finished. */
  usage: DiskUsage | null;
  measuredAt: number;
  walking: Promise<DiskUsage> | null;
}

/** A transfer counted against its user until `end()`. */
export interface RunningTransfer {
  /**
   * How many of the user's transfers in this direction run now, this one included: in this
   * process, or over every process when a ShareCounter tells a larger total.
   */
  readonly sharedBy: number;
  /**
   * Call `listener` with the new sharedBy each time it changes (another of the user's transfers
   * in this direction starts or ends, here or, with a ShareCounter, in another process), until
   * this one ends, so that its share of the user's limit can follow.
   */
  onShare(listener: (sharedBy: number) => void): void;
  end(): void;
}

/** Walk `fs` from its root: the size and number of regular files (lstat: links are neither followed nor counted). */
export async function measureUsage(fs: FileSystem): Promise<DiskUsage> {
  const usage: DiskUsage = { bytes: 0, files: 0 };
  const dirs = ['/'];
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    let entries;
    try {
      entries = await fs.readdir(dir);
    } catch (err) {
      // The home itself must be readable; a folder below it that is not holds nothing we can count.
      if (dir === '/') throw err;
      continue;
    }
    for (const e of entries) {
      if (e.stat.kind === 'file') {
        usage.bytes += e.stat.size;
        usage.files += 1;
      } else if (e.stat.kind === 'dir') {
        dirs.push(ftpJoin(dir, e.name));
      }
    }
  }
  return usage;
}

/**
 * Where logged-in sessions are counted against maxSessions when more than this process serves the
 * users (the daemon's workers ask their primary). Without one, the tracker counts them itself.
 */
export interface SessionCounter {
  /** Count a session of `user` unless it has `max` already (0: no limit). Resolves to its release, or null when refused. */
  acquire(user: string, max: number): Promise<(() => void) | null>;
  /**
   * Count a session of a user with no limit (maxSessions 0): nothing can be refused, so nothing
   * is waited for. Returns its release. Without it, `acquire(user, 0)` is used.
   */
  count?(user: string): () => void;
}

/**
 * Where a user's transfers that follow a share of their rate limit are counted when more than
 * this process serves the user (the daemon's workers tell their primary, which tells every
 * worker the total: UserLimitsTracker.sharedTotal). Without one, each process divides alone.
 */
export interface ShareCounter {
  /** One more (+1) or one fewer (-1) transfer of `user` in `direction` following its share, in this process. */
  change(user: string, direction: 'send' | 'receive', delta: 1 | -1): void;
}

/** A logged-in session counted against its user (maxSessions) until `release()`; a second release does nothing. */
export interface LoginSlot {
  release(): void;
}

/**
 * The slot of a session counted in this process: an object of two fields, where a closure over
 * the entry took a function and its context (about 100 bytes more per logged-in session).
 */
class LocalLoginSlot implements LoginSlot {
  constructor(
    private readonly tracker: UserLimitsTracker,
    private entry: UserEntry | null,
  ) {}

  release(): void {
    const e = this.entry;
    if (!e) return;
    this.entry = null;
    this.tracker.loggedOut(e);
  }
}

/**
 * A transfer counted for its user (beginTransfer): a small object of its own, where an object
 * literal with a getter and two closures over three variables cost about 0.6 KiB per download
 * (V8 keeps such a literal as a dictionary).
 */
class LocalRunningTransfer implements RunningTransfer {
  private ended = false;
  private listener: ((sharedBy: number) => void) | null = null;
  /** The counter that heard of this transfer, so that its end goes to the same one. */
  private counted: ShareCounter | null = null;

  constructor(
    private readonly tracker: UserLimitsTracker,
    private readonly e: UserEntry,
    private readonly direction: 'send' | 'receive',
  ) {}

  get sharedBy(): number {
    return Math.max(this.e.running[this.direction], this.e.sharedTotal[this.direction]);
  }

  onShare(l: (sharedBy: number) => void): void {
    if (this.ended) return;
    const { e, direction } = this;
    if (this.listener) e.sharing[direction]?.delete(this.listener);
    this.listener = l;
    (e.sharing[direction] ??= new Set()).add(l);
    const counter = this.tracker.sharing;
    if (!this.counted && counter) {
      this.counted = counter;
      counter.change(e.name, direction, 1);
    }
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    const { e, direction } = this;
    if (this.listener) e.sharing[direction]?.delete(this.listener);
    this.counted?.change(e.name, direction, -1);
    this.tracker.transferEnded(e, direction);
  }
}

export class UserLimitsTracker {
  private readonly users = new Map<string, UserEntry>();
  private counter: SessionCounter | null = null;
  private shareCounter: ShareCounter | null = null;

  constructor(
    private readonly measure: (fs: FileSystem) => Promise<DiskUsage> = measureUsage,
    private readonly maxAgeMs = USAGE_MAX_AGE_MS,
  ) {}

  /** Logged-in sessions of `user` now. */
  sessions(user: string): number {
    return this.users.get(user)?.sessions ?? 0;
  }

  /**
   * Count a login of `user` unless it already has `max` sessions (0: no limit). Synchronous, so
   * two logins racing cannot both take the last slot. Returns its slot, or null when refused.
   */
  login(user: string, max: number): LoginSlot | null {
    const e = this.entry(user);
    if (max > 0 && e.sessions >= max) {
      this.dropIfIdle(e);
      return null;
    }
    e.sessions += 1;
    return new LocalLoginSlot(this, e);
  }

  /** A LocalLoginSlot's release: the session no longer counts. */
  loggedOut(e: UserEntry): void {
    e.sessions -= 1;
    this.dropIfIdle(e);
  }

  /**
   * Count share-following transfers with `counter` (shared with other processes) from now on;
   * null: in this process alone again (the totals heard so far are forgotten, since none will
   * come to correct them: a worker whose primary is gone).
   */
  useShareCounter(counter: ShareCounter | null): void {
    this.shareCounter = counter;
    if (counter) return;
    for (const e of this.users.values()) {
      for (const direction of ['send', 'receive'] as const) {
        if (e.sharedTotal[direction] === 0) continue;
        e.sharedTotal[direction] = 0;
        this.reshare(e, direction);
      }
    }
  }

  /**
   * The ShareCounter's news: `total` transfers of `user` in `direction` follow a share over every
   * process. This process's transfers of the user divide the limit by that (or by their own
   * number, if larger: the news may lag a transfer just started here).
   */
  sharedTotal(user: string, direction: 'send' | 'receive', total: number): void {
    const e = this.users.get(user);
    if (!e || e.sharedTotal[direction] === total) return;
    e.sharedTotal[direction] = total;
    this.reshare(e, direction);
  }

  /** Count sessions with `counter` (shared with other processes) from now on; null: in this process again. */
  useSessionCounter(counter: SessionCounter | null): void {
    this.counter = counter;
  }

  /**
   * A login of `user` as `login()` counts it, or, with a SessionCounter, as that counter decides
   * (the session is counted here too, for the entry's life). Synchronous without a counter.
   */
  acquireLogin(user: string, max: number): LoginSlot | null | Promise<LoginSlot | null> {
    const counter = this.counter;
    if (!counter) return this.login(user, max);
    // The daemon's workers ask their primary only when the answer could be no.
    if (max === 0 && counter.count) return this.sharedSlot(user, counter.count(user));
    return counter.acquire(user, max).then((shared) => (shared ? this.sharedSlot(user, shared) : null));
  }

  /** A login counted by the shared counter (`shared` releases it there) and here, for the entry's life. */
  private sharedSlot(user: string, shared: () => void): LoginSlot {
    const local = this.login(user, 0)!;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        local.release();
        shared();
      },
    };
  }

  /** Count a transfer of `user` in `direction` until `end()`; the user's other transfers that follow their share hear of it. */
  beginTransfer(user: string, direction: 'send' | 'receive'): RunningTransfer {
    const e = this.entry(user);
    e.running[direction] += 1;
    this.reshare(e, direction);
    return new LocalRunningTransfer(this, e, direction);
  }

  /** The ShareCounter in use now (LocalRunningTransfer counts its transfer there once it follows its share). */
  get sharing(): ShareCounter | null {
    return this.shareCounter;
  }

  /** A transfer begun by beginTransfer has ended (LocalRunningTransfer.end). */
  transferEnded(e: UserEntry, direction: 'send' | 'receive'): void {
    e.running[direction] -= 1;
    this.reshare(e, direction);
    this.dropIfIdle(e);
  }

  /** Tell the user's transfers in `direction` that follow their share how many now share. */
  private reshare(e: UserEntry, direction: 'send' | 'receive'): void {
    const listeners = e.sharing[direction];
    if (!listeners || listeners.size === 0) return;
    const n = Math.max(e.running[direction], e.sharedTotal[direction]);
    for (const l of listeners) l(n);
  }

  /**
   * The user's disk usage: the cached one while fresh (or while an upload runs), else a new
   * walk of `fs`. Concurrent callers share one walk. The object returned is live.
   */
  usage(user: string, fs: FileSystem): Promise<DiskUsage> {
    const e = this.entry(user);
    if (e.walking) return e.walking;
    if (e.usage && (e.uploads > 0 || Date.now() - e.measuredAt < this.maxAgeMs)) return Promise.resolve(e.usage);
    const walk = this.measure(fs).then((u) => {
      // One object for the entry's whole life: uploads hold it and update it in place.
      e.usage ??= { bytes: 0, files: 0 };
      e.usage.bytes = u.bytes;
      e.usage.files = u.files;
      e.measuredAt = Date.now();
      return e.usage;
    });
    e.walking = walk;
    const done = (): void => {
      e.walking = null;
      this.dropIfIdle(e);
    };
    walk.then(done, done);
    return walk;
  }

  /** Apply a change the server made (DELE, RNTO over a file) to a measured usage; a no-op before the first walk. */
  adjust(user: string, bytes: number, files: number): void {
    const u = this.users.get(user)?.usage;
    if (!u) return;
    u.bytes = Math.max(0, u.bytes + bytes);
    u.files = Math.max(0, u.files + files);
  }

  /** Count an upload of `user` (no walk replaces the usage meanwhile) until the release is called. */
  beginUpload(user: string, path?: string): () => void {
    const e = this.entry(user);
    e.uploads += 1;
    if (path !== undefined) e.uploading.set(path, (e.uploading.get(path) ?? 0) + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      e.uploads -= 1;
      if (path !== undefined) {
        const n = (e.uploading.get(path) ?? 1) - 1;
        if (n > 0) e.uploading.set(path, n);
        else e.uploading.delete(path);
      }
      this.dropIfIdle(e);
    };
  }

  /**
   * Whether one of `user`'s counted uploads writes `path`, or a file below it. The end of an
   * upload corrects the usage from the size at its path, so a DELE, a rename or a copy over that
   * path meanwhile made the usage wrong (counted twice, or not at all): they wait (450).
   */
  uploadingAt(user: string, path: string): boolean {
    const e = this.users.get(user);
    if (!e || e.uploading.size === 0) return false;
    const below = path === '/' ? '/' : `${path}/`;
    for (const p of e.uploading.keys()) if (p === path || p.startsWith(below)) return true;
    return false;
  }

  /** Users with an entry now (for tests and diagnostics). */
  get size(): number {
    return this.users.size;
  }

  private entry(user: string): UserEntry {
    let e = this.users.get(user);
    if (!e) {
      e = { name: user, sessions: 0, running: { send: 0, receive: 0 }, sharing: { send: null, receive: null }, sharedTotal: { send: 0, receive: 0 }, uploads: 0, uploading: new Map(), usage: null, measuredAt: 0, walking: null };
      this.users.set(user, e);
    }
    return e;
  }

  private dropIfIdle(e: UserEntry): void {
    if (e.sessions > 0 || e.running.send > 0 || e.running.receive > 0 || e.uploads > 0 || e.walking) return;
    if (this.users.get(e.name) === e) this.users.delete(e.name);
  }
}

/** The limits of a user without any: one object shared by their sessions. */
const NO_LIMITS: Readonly<UserLimits> = Object.freeze({});

/**
 * An authorizer's answer made safe to use: only the known keys, each a positive whole number
 * (anything else, a negative or a NaN say, means no limit).
 */
export function normalizeLimits(raw: unknown): Readonly<UserLimits> {
  if (typeof raw !== 'object' || raw === null) return NO_LIMITS;
  const out: UserLimits = {};
  let any = false;
  for (const k of USER_LIMIT_KEYS) {
    const v = (raw as Record<string, unknown>)[k];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 1) {
      out[k] = Math.floor(v);
      any = true;
    }
  }
  return any ? Object.freeze(out) : NO_LIMITS;
}
