/**
 * Users from an Apache htpasswd file: one `user:hash` per line, blank lines and `#` comments
 * ignored, anything after a second colon ignored (as mod_authn_file does).
 *
 * Hash schemes:
 * - bcrypt (`$2y$`, `$2a$`, `$2b$`; htpasswd -B), cost 4 to 17, checked by libcrypt on a pool
 *   thread, or by bcryptjs's async API where the system-user addon is not built (./bcrypt.ts);
 * - apr1 (`$apr1$`; htpasswd -m, Apache's default), Apache's MD5-crypt variant, computed on a pool
 *   thread by the same addon (src/native/md5crypt.c), or here (apr1Crypt) without it;
 * - SHA-1 (`{SHA}` and base64; htpasswd -s), unsalted, accepted for old files only.
 * Plain-text and crypt(3) DES entries (htpasswd -p, -d) are refused: the entry is logged when the
 * file is read and the user is treated as having no password at all (no login). Entries of
 * schemes this module does not know ($1$, $5$, $6$...) are treated the same way.
 *
 * The file gives passwords only. Home, letters, overrides, messages and limits come from the
 * `users` option, or for users not listed there from `defaultHome`, `defaultPerm` and
 * `defaultLimits`. So a change to the file affects the next login; a session already open keeps
 * its permissions.
 *
 * Reloading: the file and its directory are watched (editors and `htpasswd` replace the file
 * by renaming a new one over it, which a watch on the old file alone would miss). Changes are
 * debounced, then the file is read and parsed whole; a file that cannot be read or has a
 * malformed line keeps the previous table in force, and the failure is logged. `reload()` does
 * the same on demand (for a SIGHUP handler, say). Events: 'reload' ({ users }) after a new table
 * is in force, 'reloadFailed' (err) when the old one was kept.
 *
 * Timing: an unknown user, a refused entry and a user without a home are checked against a
 * dummy hash of the scheme and cost most common in the file, so the refusal takes as long as a
 * wrong password would; a user of a cheaper hash is checked against the dummy too.
 */
import { EventEmitter } from 'node:events';
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../config/errors';
import { unixAddon } from '../native/unix';
import { bcryptCost, dummyBcrypt, looksLikeBcrypt, verifyBcrypt } from './bcrypt';
import { AuthenticationFailedError, AuthorizerUnavailableError } from './errors';
import { inCheckSlot } from './hash-slots';
import { authLogger, type AuthLogger } from './log';
import { checkLimits } from './limits';
import { validatePerm } from './perms';
import { checkHome, makeProfile, profileHasPerm, profileOverridesBelow, type OverrideConfig, type UserProfile } from './profile';
import type { Authorizer, ClientInfo, PermLetter, UserLimits } from './types';
import { DEFAULT_MSG_LOGIN, DEFAULT_MSG_QUIT, DEFAULT_PERM } from './virtual';

/** Settings for one user of the file. */
export interface HtpasswdUserOptions {
  /** Absolute path: the root of the user's filesystem. */
  home: string;
  /** Letters over `elradfmwMT`. Default: the authorizer's defaultPerm. */
  perm?: string;
  overrides?: OverrideConfig[];
  msgLogin?: string;
  msgQuit?: string;
  /** Sessions, bandwidth and disk quota; each a non-negative integer, 0 or absent for none. Replaces defaultLimits as a whole. */
  limits?: UserLimits;
}

export interface HtpasswdAuthorizerOptions {
  /** Path of the htpasswd file. Read once here (a missing or malformed file is a ConfigError). */
  file: string;
  /** Per-user settings. A user in the file but not here needs defaultHome to log in. */
  users?: { [name: string]: HtpasswdUserOptions };
  /** Home of a user in the file without an entry in `users` (an absolute path). */
  defaultHome?: (user: string) => string;
  /** Letters of users without their own `perm`. Default 'elr'. */
  defaultPerm?: string;
  /** Limits of users without their own `limits` (listed in `users` or not). Default none. */
  defaultLimits?: UserLimits;
  /** Watch the file and reload it when it changes. Default true. */
  watch?: boolean;
  /** Seconds to wait after the last change before reloading. Default 0.1. */
  reloadDelay?: number;
  /** A bunyan-like logger. Default: quiet. */
  logger?: AuthLogger;
}

/** One line of the file, as it will be checked. */
export type HtpasswdEntry =
  | { readonly scheme: 'bcrypt'; readonly hash: string; readonly cost: number }
  | { readonly scheme: 'apr1'; readonly salt: string; readonly hash: string }
  | { readonly scheme: 'sha1'; readonly digest: Buffer }
  | { readonly scheme: 'refused'; readonly reason: string };

/** A line that makes the whole file unusable. `line` counts from 1. */
export class HtpasswdFormatError extends Error {
  readonly code = 'FTPD_ERR_HTPASSWD';
  constructor(
    readonly line: number,
    reason: string,
  ) {
    super(`line ${line}: ${reason}`);
    this.name = 'HtpasswdFormatError';
  }
}

// ---- apr1 (Apache's MD5-crypt) ----------------------------------------------

const APR1_MAGIC = '$apr1$';
const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `n` characters of crypt's base64 for the low bits of `v`, least significant first. */
function to64(v: number, n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) {
    out += ITOA64[v & 0x3f];
    v >>>= 6;
  }
  return out;
}

/**
 * The apr1 hash of `password` with `salt` (at most 8 characters are used, as crypt does; a `$`
 * ends it): `$apr1$<salt>$<22 characters>`. The password is taken as UTF-8 bytes.
 */
export function apr1Crypt(password: string, salt: string): string {
  const saltText = salt.split('$')[0].slice(0, 8);
  const pw = Buffer.from(password, 'utf8');
  const sb = Buffer.from(saltText, 'utf8');
  const alternate = createHash('md5').update(pw).update(sb).update(pw).digest();
  const ctx = createHash('md5').update(pw).update(APR1_MAGIC).update(sb);
  for (let left = pw.length; left > 0; left -= 16) ctx.update(alternate.subarray(0, Math.min(16, left)));
  // The bits of the length pick a NUL byte or the password's first byte, lowest bit first.
  for (let bits = pw.length; bits > 0; bits >>>= 1) ctx.update(bits & 1 ? Buffer.alloc(1) : pw.subarray(0, 1));
  let sum = ctx.digest();
  // A thousand rounds to slow guessing down (a little: this is 1990s hardware's idea of slow).
  for (let i = 0; i < 1000; i++) {
    const round = createHash('md5');
    round.update(i & 1 ? pw : sum);
    if (i % 3 !== 0) round.update(sb);
    if (i % 7 !== 0) round.update(pw);
    round.update(i & 1 ? sum : pw);
    sum = round.digest();
  }
  const b = sum;
  const encoded =
    to64((b[0] << 16) | (b[6] << 8) | b[12], 4) +
    to64((b[1] << 16) | (b[7] << 8) | b[13], 4) +
    to64((b[2] << 16) | (b[8] << 8) | b[14], 4) +
    to64((b[3] << 16) | (b[9] << 8) | b[15], 4) +
    to64((b[4] << 16) | (b[10] << 8) | b[5], 4) +
    to64(b[11], 2);
  return `${APR1_MAGIC}${saltText}$${encoded}`;
}

// ---- parsing -------------------------------------------------------------------

// The salt: anything but `$` and NUL, at most 8 bytes (Apache cuts it there; here it must fit,
// so that the C and JS computations take the same bytes).
const APR1 = /^\$apr1\$([^$\0]{1,8})\$([./0-9A-Za-z]{22})$/;
const SHA1 = /^\{SHA\}([A-Za-z0-9+/]{27}=)$/;
const DES = /^[./0-9A-Za-z]{13}$/;

/** Classify one stored hash. */
export function parseHtpasswdHash(hash: string): HtpasswdEntry {
  if (looksLikeBcrypt(hash)) {
    const c = bcryptCost(hash);
    return c.ok ? { scheme: 'bcrypt', hash, cost: c.cost } : { scheme: 'refused', reason: c.reason };
  }
  if (hash.startsWith(APR1_MAGIC)) {
    const m = APR1.exec(hash);
    return m && Buffer.byteLength(m[1]) <= 8
      ? { scheme: 'apr1', salt: m[1], hash }
      : { scheme: 'refused', reason: 'not a well-formed $apr1$ hash' };
  }
  if (hash.startsWith('{SHA}')) {
    const m = SHA1.exec(hash);
    return m
      ? { scheme: 'sha1', digest: Buffer.from(m[1], 'base64') }
      : { scheme: 'refused', reason: 'not a well-formed {SHA} hash (base64 of 20 bytes)' };
  }
  if (/^\$[a-z0-9-]{1,32}\$/.test(hash)) {
    return { scheme: 'refused', reason: `hash scheme ${hash.slice(0, hash.indexOf('$', 1) + 1)} is not supported` };
  }
  if (DES.test(hash)) return { scheme: 'refused', reason: 'crypt(3) DES entries are refused (weak, 8-character passwords)' };
  return { scheme: 'refused', reason: 'plain-text passwords are refused' };
}

/**
 * Parse a whole file. A line without a colon, an empty or control-character user name, or a
 * user named twice throws HtpasswdFormatError (the caller keeps its previous table).
 */
export function parseHtpasswd(text: string): Map<string, HtpasswdEntry> {
  const table = new Map<string, HtpasswdEntry>();
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon === -1) throw new HtpasswdFormatError(i + 1, 'expected user:hash');
    const user = line.slice(0, colon);
    if (user === '') throw new HtpasswdFormatError(i + 1, 'empty user name');
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(user)) throw new HtpasswdFormatError(i + 1, 'control character in the user name');
    if (table.has(user)) throw new HtpasswdFormatError(i + 1, `user "${user}" appears twice`);
    const rest = line.slice(colon + 1);
    const end = rest.indexOf(':');
    table.set(user, parseHtpasswdHash(end === -1 ? rest : rest.slice(0, end)));
  });
  return table;
}

// ---- checking ------------------------------------------------------------------

function sha1(plain: string): Buffer {
  return createHash('sha1').update(plain, 'utf8').digest();
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  // Lengths differ only for a malformed stored value, which parsing already excludes.
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * apr1 of `plain`: on a pool thread (in a check slot) when the system-user addon is built, where
 * it costs the event loop nothing (0.31 ms there); else apr1Crypt, 1,000 MD5 rounds on the loop
 * (1.8 ms warm). `FTPDLIB_NATIVE_APR1=0` keeps it here.
 */
async function apr1Of(plain: string, salt: string, client: string | undefined): Promise<string> {
  const apr1 = apr1Native();
  if (apr1) {
    const h = await inCheckSlot(client, () => apr1(plain, salt));
    if (typeof h === 'string') {
      apr1Checks.native++;
      return h;
    }
  }
  apr1Checks.js++;
  return apr1Crypt(plain, salt);
}

/** The addon's apr1, unless it is not built (or is older) or FTPDLIB_NATIVE_APR1=0. */
function apr1Native(): ((password: string, salt: string) => Promise<string | number>) | null {
  if (process.env.FTPDLIB_NATIVE_APR1 === '0') return null;
  return unixAddon()?.apr1 ?? null;
}

/** How many apr1 checks each path has made in this process (tests see which one ran). */
export const apr1Checks = { native: 0, js: 0 };

async function verifyEntry(entry: HtpasswdEntry, plain: string, client: string | undefined): Promise<boolean> {
  switch (entry.scheme) {
    case 'bcrypt':
      return verifyBcrypt(plain, entry.hash, client);
    case 'apr1':
      return sameString(await apr1Of(plain, entry.salt, client), entry.hash);
    case 'sha1':
      return timingSafeEqual(sha1(plain), entry.digest);
    case 'refused':
      return false;
  }
}

function randomText(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ITOA64[randomInt(ITOA64.length)];
  return s;
}

/**
 * About how much work checking a password against `e` is, on bcrypt's scale (log2 of its rounds):
 * SHA-1 nothing; apr1's 1,000 MD5 rounds in C (0.31 ms) about a bcrypt of cost 2.1 to 2.3, and
 * through node:crypto (1.8 ms) of cost 4.6 to 4.8, whichever runs bcrypt (cost 4: libcrypt 1.02
 * ms, bcryptjs 1.16; warm, on the 2-vCPU machine of the twenty-eighth session). Only the order
 * matters.
 */
function workOf(e: HtpasswdEntry): number {
  if (e.scheme === 'bcrypt') return e.cost;
  if (e.scheme !== 'apr1') return 0;
  return apr1Native() ? 2.2 : 4.7;
}

/** An entry of the same scheme and cost as the file's most common one, that nothing matches. */
function dummyFor(table: ReadonlyMap<string, HtpasswdEntry>): HtpasswdEntry {
  const counts = new Map<string, number>();
  let best: string | undefined;
  for (const e of table.values()) {
    if (e.scheme === 'refused') continue;
    const id = e.scheme === 'bcrypt' ? `bcrypt:${e.cost}` : e.scheme;
    const n = (counts.get(id) ?? 0) + 1;
    counts.set(id, n);
    if (best === undefined || n > (counts.get(best) ?? 0)) best = id;
  }
  if (best?.startsWith('bcrypt:')) {
    const cost = Number(best.slice('bcrypt:'.length));
    return { scheme: 'bcrypt', hash: dummyBcrypt(cost), cost };
  }
  if (best === 'apr1') {
    const salt = randomText(8);
    return { scheme: 'apr1', salt, hash: `${APR1_MAGIC}${salt}$${randomText(22)}` };
  }
  return { scheme: 'sha1', digest: randomBytes(20) };
}

function checkNumber(value: unknown, fallback: number, key: string, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(key, `a number from ${min} to ${max}`);
  }
  return value;
}

export class HtpasswdAuthorizer extends EventEmitter implements Authorizer {
  readonly file: string;
  private table: ReadonlyMap<string, HtpasswdEntry>;
  private dummy: HtpasswdEntry;
  private readonly configured = new Map<string, UserProfile>();
  /** Profiles made from defaultHome/defaultPerm, kept once made so open sessions keep them. */
  private readonly derived = new Map<string, UserProfile>();
  private readonly defaultHome: ((user: string) => string) | undefined;
  private readonly defaultPerm: string;
  private readonly defaultLimits: Readonly<UserLimits>;
  private readonly log: AuthLogger;
  private readonly reloadDelayMs: number;
  private chain: Promise<unknown> = Promise.resolve();
  private dirWatcher: fs.FSWatcher | undefined;
  private fileWatcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watching = false;

  constructor(options: HtpasswdAuthorizerOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new ConfigError('authorizer', 'an options object { file, ... }');
    if (typeof options.file !== 'string' || options.file === '') throw new ConfigError('file', 'the path of an htpasswd file');
    this.file = path.resolve(options.file);
    this.log = authLogger(options.logger);
    this.defaultPerm = validatePerm(options.defaultPerm ?? DEFAULT_PERM, 'defaultPerm');
    this.defaultLimits = checkLimits(options.defaultLimits, 'defaultLimits');
    if (options.defaultHome !== undefined && typeof options.defaultHome !== 'function') {
      throw new ConfigError('defaultHome', 'a function (user) => absolute path');
    }
    this.defaultHome = options.defaultHome;
    const users: unknown = options.users ?? {};
    if (typeof users !== 'object' || users === null || Array.isArray(users)) {
      throw new ConfigError('users', 'an object { [name]: { home, perm, overrides, msgLogin, msgQuit, limits } }');
    }
    for (const [name, u] of Object.entries(users as Record<string, unknown>)) {
      const key = `users.${name}`;
      if (typeof u !== 'object' || u === null) throw new ConfigError(key, 'an object { home, perm, ... }');
      this.configured.set(name, makeProfile(u as HtpasswdUserOptions, key, this.defaultPerm, this.defaultLimits));
    }
    this.reloadDelayMs = checkNumber(options.reloadDelay, 0.1, 'reloadDelay', 0, 60) * 1000;
    const watch = options.watch ?? true;
    if (typeof watch !== 'boolean') throw new ConfigError('watch', 'a boolean');

    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      throw new ConfigError('file', `a readable htpasswd file (${(err as Error).message})`);
    }
    try {
      this.table = parseHtpasswd(text);
    } catch (err) {
      throw new ConfigError('file', `a well-formed htpasswd file (${this.file} ${(err as Error).message})`);
    }
    this.dummy = dummyFor(this.table);
    this.logRefused();
    if (watch) this.watch();
  }

  /** Number of users in the table in force. */
  get size(): number {
    return this.table.size;
  }

  /**
   * Read the file again. Resolves true when the new table is in force, false when the file
   * could not be read or parsed (the previous table stays; the error is logged and emitted as
   * 'reloadFailed'). Calls are queued, so the last one always reads the latest file.
   */
  reload(): Promise<boolean> {
    const next = this.chain.then(() => this.load());
    this.chain = next;
    return next;
  }

  /** Stop watching the file. The table in force stays usable. */
  close(): void {
    this.watching = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirWatcher?.close();
    this.fileWatcher?.close();
    this.dirWatcher = this.fileWatcher = undefined;
  }

  hasUser(user: string): boolean {
    return this.table.has(user);
  }

  async validateAuthentication(user: string, password: string, client?: ClientInfo): Promise<void> {
    const plain = typeof password === 'string' ? password : '';
    const entry = typeof user === 'string' ? this.table.get(user) : undefined;
    let usable = entry !== undefined && entry.scheme !== 'refused';
    if (usable && this.profileOf(user) === undefined) {
      this.log.warn({ user }, 'htpasswd user has no home (not in users, and no defaultHome): login refused');
      usable = false;
    }
    let ok: boolean;
    try {
      ok = await verifyEntry(usable ? entry! : this.dummy, plain, client?.address);
      // A user whose hash is cheaper than the file's most common one (the dummy's) answered
      // sooner than an unknown name: 8 ms against 72 for an apr1 user among bcrypt ones. Such a
      // check also makes the dummy's, so that none is quicker. A costlier user is not padded:
      // that would only make every check of it dearer, and hide nothing.
      if (usable && workOf(entry!) < workOf(this.dummy)) await verifyEntry(this.dummy, plain, client?.address);
    } catch (err) {
      this.log.error({ err, user }, 'password check failed');
      throw new AuthorizerUnavailableError('Password check failed.');
    }
    if (!usable || !ok) throw new AuthenticationFailedError();
  }

  getHomeDir(user: string): string {
    const p = this.profileOf(user);
    if (p === undefined) throw new AuthenticationFailedError('Unknown user.');
    return p.home;
  }

  hasPerm(user: string, letter: PermLetter, ftpPath?: string): boolean {
    return profileHasPerm(this.profileOf(user), letter, ftpPath);
  }

  overridesBelow(user: string, ftpPath: string): boolean {
    return profileOverridesBelow(this.profileOf(user), ftpPath);
  }

  getPerms(user: string): string {
    return this.profileOf(user)?.perm ?? '';
  }

  getMsgLogin(user: string): string {
    return this.profileOf(user)?.msgLogin ?? DEFAULT_MSG_LOGIN;
  }

  getMsgQuit(user: string): string {
    return this.profileOf(user)?.msgQuit ?? DEFAULT_MSG_QUIT;
  }

  /** The user's limits (only the non-zero ones): their own, else defaultLimits; none for a user without a profile. */
  getLimits(user: string): UserLimits {
    return { ...this.profileOf(user)?.limits };
  }

  /** A configured user's profile, or one made from the defaults for a user in the file. */
  private profileOf(user: string): UserProfile | undefined {
    const p = this.configured.get(user) ?? this.derived.get(user);
    if (p !== undefined || this.defaultHome === undefined || !this.table.has(user)) return p;
    let made: UserProfile;
    try {
      made = makeProfile(
        { home: checkHome(this.defaultHome(user), 'defaultHome(user)'), perm: this.defaultPerm },
        'defaultHome',
        DEFAULT_PERM,
        this.defaultLimits,
      );
    } catch (err) {
      this.log.error({ err, user }, 'defaultHome failed for this user');
      return undefined;
    }
    this.derived.set(user, made);
    return made;
  }

  private async load(): Promise<boolean> {
    let table: Map<string, HtpasswdEntry>;
    try {
      table = parseHtpasswd(await fs.promises.readFile(this.file, 'utf8'));
    } catch (err) {
      this.log.error({ err, file: this.file }, 'htpasswd reload failed; keeping the previous users');
      if (this.watching) this.watchFile();
      this.emit('reloadFailed', err);
      return false;
    }
    this.table = table;
    this.dummy = dummyFor(table);
    this.logRefused();
    this.log.info({ file: this.file, users: table.size }, 'htpasswd reloaded');
    // A rename over the file leaves the old watch on a dead inode: watch the new one.
    if (this.watching) this.watchFile();
    this.emit('reload', { users: table.size });
    return true;
  }

  private logRefused(): void {
    for (const [user, e] of this.table) {
      if (e.scheme === 'refused') this.log.warn({ user, file: this.file, reason: e.reason }, 'htpasswd entry refused; this user cannot log in');
    }
  }

  private watch(): void {
    this.watching = true;
    const base = path.basename(this.file);
    try {
      this.dirWatcher = fs.watch(path.dirname(this.file), { persistent: false }, (_event, name) => {
        if (name === null || name === base) this.schedule();
      });
      this.dirWatcher.on('error', (err) => this.log.warn({ err, file: this.file }, 'watching the htpasswd directory failed'));
    } catch (err) {
      this.log.warn({ err, file: this.file }, 'cannot watch the htpasswd directory; changes need reload()');
    }
    this.watchFile();
  }

  private watchFile(): void {
    this.fileWatcher?.close();
    this.fileWatcher = undefined;
    try {
      const w = fs.watch(this.file, { persistent: false }, () => this.schedule());
      w.on('error', () => {
        // The file went away (renamed over, deleted): the directory watch sees what comes next.
        w.close();
      });
      this.fileWatcher = w;
    } catch {
      // Missing for the moment (deleted, about to be recreated): the directory watch covers it.
    }
  }

  private schedule(): void {
    if (!this.watching) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reload();
    }, this.reloadDelayMs);
    this.timer.unref();
  }
}
