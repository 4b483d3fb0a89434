/**
 * Failed-login lockout around any Authorizer.
 *
 * Failures are counted per client address and per user name, each over a fixed window that
 * starts at the first failure (`window` seconds; a failure after it starts a new count).
 *
 * - Delay. Every attempt waits before the password is checked, by
 *   min(delayMax, delayBase · 2^(n−1)) seconds, where n is the larger of the two counts (no
 *   wait when both are 0). Waiting before the check, for successes too, means a client learns
 *   nothing by hanging up early, and a user who mistyped once waits only delayBase.
 * - Ban. When a count reaches `maxFailures`, that key (address or user name) is banned for
 *   `banSeconds`. An attempt on a banned key waits the same delay and is refused with
 *   AuthenticationFailedError without the password being checked, and is not counted.
 * - Reset. A successful login clears both of its keys (its address and its user name).
 * - AuthorizerUnavailableError and other errors are passed on and not counted.
 *
 * Banning by user name lets anyone lock a known user out for banSeconds by failing on purpose;
 * that is the price of stopping a password spray spread over many addresses. Use
 * `keys: 'address'` to count addresses only.
 *
 * The counts live in a LockoutStore. The default keeps them in memory with a bound on the
 * number of keys (least recently touched dropped first), so a client cycling through user names
 * cannot grow it without limit; its own address key is touched on every attempt and stays. A
 * store shared by a cluster (Redis, a database) can replace it through the same small interface.
 */
import { isIPv6 } from 'node:net';
import { ConfigError } from '../config/errors';
import { AuthenticationFailedError } from './errors';
import { authLogger, type AuthLogger } from './log';
import type { Authorizer, ClientInfo, PermLetter, UserLimits } from './types';

/** What a store holds for one key. Times are in milliseconds on the lockout's clock. */
export interface LockoutRecord {
  /** Failures in the current window. */
  failures: number;
  /** When the current window started (the first failure in it). */
  windowStart: number;
  /** Banned until this time; 0 when not banned. */
  bannedUntil: number;
}

/**
 * Where failure counts live. Keys are opaque strings ("addr:192.0.2.7", "user:alice"). Each
 * method may be async so that a shared store fits; the in-memory one answers at once.
 */
export interface LockoutStore {
  /** The record of `key`, or undefined when it has none (or it has expired). */
  get(key: string, now: number): LockoutRecord | undefined | Promise<LockoutRecord | undefined>;
  /** Count one failure at `now` (a window older than windowMs starts over) and return the updated record. */
  addFailure(key: string, now: number, windowMs: number): LockoutRecord | Promise<LockoutRecord>;
  /** Ban `key` until `until`. */
  ban(key: string, until: number): void | Promise<void>;
  /** Forget `key`. */
  reset(key: string): void | Promise<void>;
}

export interface LockoutOptions {
  /** Failures within the window that ban the key. Default 5. */
  maxFailures?: number;
  /** Seconds over which failures are counted. Default 600. */
  window?: number;
  /** Seconds a ban lasts. Default 900. */
  banSeconds?: number;
  /** Seconds of the first delay (after one failure); each further failure doubles it. Default 0.5. */
  delayBase?: number;
  /** Longest delay, in seconds. Default 10. */
  delayMax?: number;
  /** Which keys to count: both (default), or the client address only. */
  keys?: 'address+user' | 'address';
  /**
   * An IPv6 client is counted by its network of this many leading bits, 1 to 128. Default 64:
   * one host or home gets a whole /64, and keyed by /128 it could take a fresh address for every
   * guess and never be banned. An IPv4-mapped address (::ffff:192.0.2.1) counts as its IPv4.
   */
  ipv6Prefix?: number;
  /** Keys the default in-memory store keeps at most. Default 10000. Ignored with `store`. */
  maxEntries?: number;
  /** Replace the in-memory store. */
  store?: LockoutStore;
  /** A bunyan-like logger. Default: quiet. */
  logger?: AuthLogger;
  /** Current time in milliseconds. Default Date.now. */
  clock?: () => number;
  /** How to wait `ms` milliseconds. Default a timer; tests pass a recorder. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * In-memory counts with a bound on the number of keys. When full, the least recently touched
 * key goes first, but a key whose ban still runs is kept over keys without one: a banned key is
 * never touched again (banned attempts are not counted), so by recency alone a spray of failures
 * from fresh addresses and names would push the ban out.
 */
export class MemoryLockoutStore implements LockoutStore {
  /** Insertion order is recency: each touch moves the key to the end; the front is dropped first. */
  private readonly records = new Map<string, LockoutRecord>();
  /** The latest time a caller gave; what "the ban still runs" is judged by when evicting. */
  private now = -Infinity;

  constructor(
    private readonly maxEntries = 10000,
    /** Longest a record is useful after its last change: the larger of the window and a ban. */
    private readonly keepMs = Infinity,
  ) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new ConfigError('maxEntries', 'an integer of at least 1');
  }

  get size(): number {
    return this.records.size;
  }

  get(key: string, now: number): LockoutRecord | undefined {
    this.now = Math.max(this.now, now);
    const r = this.records.get(key);
    if (r === undefined) return undefined;
    if (this.expired(r, now)) {
      this.records.delete(key);
      return undefined;
    }
    return { ...r };
  }

  addFailure(key: string, now: number, windowMs: number): LockoutRecord {
    this.now = Math.max(this.now, now);
    const old = this.records.get(key);
    let r: LockoutRecord;
    if (old === undefined || now - old.windowStart >= windowMs) {
      r = { failures: 1, windowStart: now, bannedUntil: old && old.bannedUntil > now ? old.bannedUntil : 0 };
    } else {
      r = { ...old, failures: old.failures + 1 };
    }
    this.put(key, r);
    return { ...r };
  }

  ban(key: string, until: number): void {
    const r = this.records.get(key) ?? { failures: 0, windowStart: until, bannedUntil: 0 };
    this.put(key, { ...r, bannedUntil: Math.max(r.bannedUntil, until) });
  }

  reset(key: string): void {
    this.records.delete(key);
  }

  private expired(r: LockoutRecord, now: number): boolean {
    return r.bannedUntil <= now && now - r.windowStart >= this.keepMs;
  }

  private put(key: string, r: LockoutRecord): void {
    this.records.delete(key);
    this.records.set(key, r);
    // The least recently touched key without a running ban goes first (never the key just
    // put); only when every other key is banned does the oldest ban go. One pass, no re-insert.
    while (this.records.size > this.maxEntries) {
      let victim: string | undefined;
      let first: string | undefined;
      for (const [k, v] of this.records) {
        if (k === key) continue;
        first ??= k;
        if (v.bannedUntil <= this.now) {
          victim = k;
          break;
        }
      }
      const gone = victim ?? first;
      if (gone === undefined) break;
      this.records.delete(gone);
    }
  }
}

function num(value: unknown, fallback: number, key: string, min: number, integer = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new ConfigError(key, `${integer ? 'an integer' : 'a number'} of at least ${min}`);
  }
  return value;
}

/**
 * The 16 bytes of an IPv6 address, or null when `a` is not one (a zone, "%eth0", is dropped).
 * Handles "::" anywhere and a trailing dotted IPv4 ("::ffff:192.0.2.1", "64:ff9b::192.0.2.1").
 */
export function ipv6Bytes(a: string): Uint8Array | null {
  const text = a.split('%')[0];
  if (!isIPv6(text)) return null;
  let head = text;
  const tail: number[] = [];
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(head);
  if (v4) {
    head = head.slice(0, v4.index) + '0:0';
    tail.push(...v4.slice(1, 5).map(Number));
  }
  const [left, right] = head.split('::');
  const groups = (x: string | undefined): number[] => (x ? x.split(':').map((g) => parseInt(g, 16)) : []);
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const all = right === undefined ? l : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tail.length) out.set(tail, 12);
  return out;
}

/**
 * The address part of a lockout key: an IPv4 address as it is; an IPv6 one as its network of
 * `prefix` bits ("2001:db8:1:2::/64"); an IPv4-mapped IPv6 address as its IPv4.
 */
export function addressKey(address: string | undefined, prefix: number): string {
  if (!address) return 'unknown';
  const b = ipv6Bytes(address);
  if (!b) return address;
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  // NAT64's well-known prefix (RFC 6052) carries a whole IPv4 internet: each its own client.
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && b.subarray(4, 12).every((x) => x === 0)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  for (let bit = prefix; bit < 128; bit++) b[bit >> 3] &= ~(0x80 >> (bit & 7));
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  // The shortest form is not needed, only one form per network: 8 groups, always.
  return `${groups.join(':')}/${prefix}`;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class LockoutAuthorizer implements Authorizer {
  readonly store: LockoutStore;
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly banMs: number;
  private readonly delayBaseMs: number;
  private readonly delayMaxMs: number;
  private readonly byUser: boolean;
  private readonly ipv6Prefix: number;
  private readonly log: AuthLogger;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Present when the wrapped authorizer has it. */
  readonly hasUser?: (user: string) => boolean | Promise<boolean>;
  readonly overridesBelow?: (user: string, path: string) => boolean | Promise<boolean>;

  constructor(
    readonly inner: Authorizer,
    options: LockoutOptions = {},
  ) {
    if (typeof inner !== 'object' || inner === null || typeof inner.validateAuthentication !== 'function') {
      throw new ConfigError('authorizer', 'an Authorizer to wrap');
    }
    if (typeof options !== 'object' || options === null) throw new ConfigError('lockout', 'an options object');
    this.maxFailures = num(options.maxFailures, 5, 'lockout.maxFailures', 1, true);
    this.windowMs = num(options.window, 600, 'lockout.window', 0.001) * 1000;
    this.banMs = num(options.banSeconds, 900, 'lockout.banSeconds', 0) * 1000;
    this.delayBaseMs = num(options.delayBase, 0.5, 'lockout.delayBase', 0) * 1000;
    this.delayMaxMs = num(options.delayMax, 10, 'lockout.delayMax', 0) * 1000;
    const keys = options.keys ?? 'address+user';
    if (keys !== 'address+user' && keys !== 'address') throw new ConfigError('lockout.keys', '"address+user" or "address"');
    this.byUser = keys === 'address+user';
    this.ipv6Prefix = num(options.ipv6Prefix, 64, 'lockout.ipv6Prefix', 1, true);
    if (this.ipv6Prefix > 128) throw new ConfigError('lockout.ipv6Prefix', 'an integer from 1 to 128');
    if (options.clock !== undefined && typeof options.clock !== 'function') throw new ConfigError('lockout.clock', 'a function');
    if (options.sleep !== undefined && typeof options.sleep !== 'function') throw new ConfigError('lockout.sleep', 'a function');
    this.now = options.clock ?? Date.now;
    this.sleep = options.sleep ?? defaultSleep;
    this.log = authLogger(options.logger);
    if (typeof inner.hasUser === 'function') this.hasUser = (user) => inner.hasUser!(user);
    if (typeof inner.overridesBelow === 'function') this.overridesBelow = (user, path) => inner.overridesBelow!(user, path);
    this.store = options.store ?? new MemoryLockoutStore(options.maxEntries ?? 10000, Math.max(this.windowMs, this.banMs));
  }

  /** The wait before an attempt that follows `failures` failures, in milliseconds. */
  delayFor(failures: number): number {
    if (failures <= 0) return 0;
    // 2^(n-1) overflows to Infinity for huge n, which min() caps like any other.
    return Math.min(this.delayMaxMs, this.delayBaseMs * 2 ** (failures - 1));
  }

  /**
   * Attempts of this process whose outcome is not known yet, per key. Each counts as a failure
   * to come: without it, attempts sent at once all read the same counts before any failure was
   * recorded, and each got its password checked, with no delay and no ban (an audit had 30
   * parallel guesses checked within 60 ms against maxFailures 3).
   */
  private readonly inFlight = new Map<string, number>();
  /** Counts every failure recorded by this process, so that a login knows whether one came meanwhile. */
  private failureEpoch = 0;
  /** Resolvers of attempts waiting for an attempt in flight on one of their keys to end. */
  private readonly settleWaiters = new Map<string, Array<() => void>>();

  async validateAuthentication(user: string, password: string, client: ClientInfo): Promise<void> {
    const keys = this.keysOf(user, client);
    let now: number;
    let records: Array<LockoutRecord | undefined>;
    let failures: number;
    let banned: string | undefined;
    let pending: number;
    for (;;) {
      now = this.now();
      records = await Promise.all(keys.map((k) => this.store.get(k, now)));
      failures = 0;
      banned = undefined;
      records.forEach((r, i) => {
        if (r === undefined) return;
        if (now - r.windowStart < this.windowMs) failures = Math.max(failures, r.failures);
        if (r.bannedUntil > now && banned === undefined) banned = keys[i];
      });
      pending = Math.max(0, ...keys.map((k) => this.inFlight.get(k) ?? 0));
      // Attempts in flight could bring the key to its ban: wait for one to end, then read again.
      if (banned === undefined && pending > 0 && failures + pending >= this.maxFailures) {
        await this.whenOneSettles(keys);
        continue;
      }
      break;
    }
    const epoch = this.failureEpoch;
    // From here to the end this attempt is in flight (counted synchronously after the read).
    for (const k of keys) this.inFlight.set(k, (this.inFlight.get(k) ?? 0) + 1);
    try {
      // Attempts in flight wait as if they had failed before this one, as sequential ones would.
      const ahead = failures + pending;
      const wait = banned !== undefined ? this.delayFor(Math.max(ahead, this.maxFailures)) : this.delayFor(ahead);
      if (wait > 0) await this.sleep(wait);
      if (banned !== undefined) {
        this.log.info({ user, remote: client?.address, key: banned }, 'login refused: temporarily banned after failed logins');
        throw new AuthenticationFailedError('Too many failed logins; try again later.');
      }
      try {
        await this.inner.validateAuthentication(user, password, client);
      } catch (err) {
        if (err instanceof AuthenticationFailedError) await this.recordFailure(keys, user, client);
        throw err;
      }
      // Reset only what there is to reset (a store call per login costs, an IPC one in the daemon):
      // counts read at the start, or failures recorded since by attempts beside this one.
      if (records.some((r) => r !== undefined) || this.failureEpoch !== epoch) await Promise.all(keys.map((k) => this.store.reset(k)));
    } finally {
      for (const k of keys) {
        const n = (this.inFlight.get(k) ?? 1) - 1;
        if (n <= 0) this.inFlight.delete(k);
        else this.inFlight.set(k, n);
        const waiters = this.settleWaiters.get(k);
        if (waiters) {
          this.settleWaiters.delete(k);
          for (const w of waiters) w();
        }
      }
    }
  }

  /** Resolves when an attempt in flight on any of `keys` ends (waiting only on keys that have one, which will). */
  private whenOneSettles(keys: string[]): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const once = (): void => {
        if (done) return;
        done = true;
        resolve();
      };
      for (const k of keys) {
        if (!this.inFlight.has(k)) continue;
        const list = this.settleWaiters.get(k);
        if (list) list.push(once);
        else this.settleWaiters.set(k, [once]);
      }
    });
  }

  getHomeDir(user: string): string | Promise<string> {
    return this.inner.getHomeDir(user);
  }

  hasPerm(user: string, perm: PermLetter, path: string): boolean | Promise<boolean> {
    return this.inner.hasPerm(user, perm, path);
  }

  getPerms(user: string): string | Promise<string> {
    return this.inner.getPerms(user);
  }

  getMsgLogin(user: string): string | Promise<string> {
    return this.inner.getMsgLogin(user);
  }

  getMsgQuit(user: string): string | Promise<string> {
    return this.inner.getMsgQuit(user);
  }

  /** The wrapped authorizer's limits (none when it has no getLimits). */
  getLimits(user: string): UserLimits | Promise<UserLimits> {
    return this.inner.getLimits?.(user) ?? {};
  }

  private keysOf(user: string, client: ClientInfo): string[] {
    const keys = [`addr:${addressKey(client?.address, this.ipv6Prefix)}`];
    if (this.byUser) keys.push(`user:${typeof user === 'string' ? user : ''}`);
    return keys;
  }

  private async recordFailure(keys: string[], user: string, client: ClientInfo): Promise<void> {
    this.failureEpoch++;
    const now = this.now();
    const updated = await Promise.all(keys.map((k) => this.store.addFailure(k, now, this.windowMs)));
    for (let i = 0; i < keys.length; i++) {
      const r = updated[i];
      if (r.failures >= this.maxFailures && r.bannedUntil <= now && this.banMs > 0) {
        await this.store.ban(keys[i], now + this.banMs);
        this.log.warn(
          { key: keys[i], user, remote: client?.address, failures: r.failures, banSeconds: this.banMs / 1000 },
          'too many failed logins: banned',
        );
      } else {
        this.log.debug({ key: keys[i], user, remote: client?.address, failures: r.failures }, 'failed login counted');
      }
    }
  }
}

/** Wrap `authorizer` with failed-login delays and temporary bans; see LockoutAuthorizer. */
export function withLockout(authorizer: Authorizer, options: LockoutOptions = {}): LockoutAuthorizer {
  return new LockoutAuthorizer(authorizer, options);
}
