/**
 * System users: pyftpdlib's UnixAuthorizer. Users log in with their system name and
 * password, land in their passwd home, and act on the disk as themselves.
 *
 * Use it with its filesystem, or sessions act as the server's own user (root):
 *
 *   const auth = new UnixAuthorizer({ anonymousUser: 'nobody' });
 *   const server = new FtpServer({ ...auth.serverOptions(), host, port });
 *   // the same as { authorizer: auth, fileSystem: (user, home) => auth.fileSystemFor(user, home) }
 *
 * Passwords. The passwd entry, the shadow entry and the user's groups come from the
 * system (getpwnam_r, getspnam_r, getgrouplist: NSS, so LDAP or sssd count when
 * nsswitch.conf says so). The password is hashed with the system's crypt(3)
 * (libxcrypt: yescrypt, sha512-crypt, bcrypt... whatever it knows) on a libuv pool
 * thread and compared with the stored hash in constant time. Refused, with the same
 * 530 and after the same amount of work:
 * - unknown users; users in rejectedUsers (default root) or not in allowedUsers;
 *   system accounts (uid below minUid, default 1000) unless named in allowedUsers;
 * - users whose shell is not in /etc/shells (requireValidShell, default true);
 * - locked accounts (hash starting with "!" or "*", or empty: no password is no login);
 * - expired accounts (shadow expire date reached), passwords that must be changed
 *   (last change 0) or have expired (max days passed), and inactive accounts.
 * All of these are checked against a dummy hash of the scheme and cost most used in
 * /etc/shadow (read once, here), so a refusal takes as long as a wrong password.
 *
 * Acting as the user: fileSystemFor(user, home) gives an AsUserFileSystem (see
 * src/fs/as-user.ts), which makes each filesystem call on a pool thread switched to
 * the user's fsuid, fsgid and groups. The kernel then decides what the user may read
 * and write, and what they create is theirs. The permission letters (globalPerm) are
 * checked on top, as with every authorizer.
 *
 * Anonymous: with anonymousUser, "anonymous" logs in with any password, in that
 * system user's home, acting as that user, read-only ('elr' of globalPerm). That
 * account needs no password, shell or uid check (it is usually nobody or ftp), but
 * it may not be root.
 *
 * The server must run as root (euid 0), or the constructor throws ConfigError: the
 * shadow file is root's, and acting as other users needs CAP_SETUID/CAP_SETGID.
 *
 * Limits (sessions, bandwidth, disk quota): `limits` for every user, `userLimits` for some
 * by name (replacing `limits` as a whole); anonymous takes userLimits.anonymous, else limits.
 *
 * Differences from pyftpdlib: expiry and locking are checked (pyftpdlib's crypt
 * comparison alone let an empty hash in); the comparison is constant-time; file
 * access is per thread instead of seteuid around each call (which in Node would
 * change the whole process, every session at once); no per-user override_user.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { ConfigError } from '../config/errors';
import { AsUserFileSystem } from '../fs/as-user';
import type { FileSystem, FileSystemFactory } from '../fs/types';
import { unixAddon, unixAddonReason, errnoName, type SystemUser, type UnixAddon } from '../native/unix';
import { AuthenticationFailedError, AuthorizerUnavailableError } from './errors';
import { authLogger, type AuthLogger } from './log';
import { checkLimits, NO_LIMITS } from './limits';
import { inCheckSlot } from './hash-slots';
import { isPermLetter, validatePerm } from './perms';
import { READ_PERMS, type Authorizer, type ClientInfo, type PermLetter, type UserLimits } from './types';
import { ANONYMOUS, DEFAULT_MSG_LOGIN, DEFAULT_MSG_QUIT } from './virtual';

export const UNIX_DEFAULT_PERM = 'elradfmwMT';
export const DEFAULT_MIN_UID = 1000;
const DAY_MS = 86_400_000;
const SHADOW_FILE = '/etc/shadow';
const SHELLS_FILE = '/etc/shells';

export interface UnixAuthorizerOptions {
  /** Only these users may log in (they may be system accounts). Not with rejectedUsers. */
  allowedUsers?: string[];
  /** These users may not log in. Default ['root']. Not with allowedUsers. */
  rejectedUsers?: string[];
  /** Users with a uid below this are refused unless in allowedUsers. Default 1000. */
  minUid?: number;
  /** Refuse users whose shell is not listed in /etc/shells. Default true. */
  requireValidShell?: boolean;
  /** Map "anonymous" (any password) to this system user, read-only. Default: no anonymous. */
  anonymousUser?: string;
  /** Letters every user gets. Default 'elradfmwMT' (anonymous: its read letters only). */
  globalPerm?: string;
  msgLogin?: string;
  msgQuit?: string;
  /** Sessions, bandwidth and disk quota of every user; each a non-negative integer, 0 or absent for none. */
  limits?: UserLimits;
  /** Limits of these users (system names, or "anonymous"), instead of `limits`. */
  userLimits?: { [name: string]: UserLimits };
  /** A bunyan-like logger for refusals (never passwords). Default: quiet. */
  logger?: AuthLogger;
}

/** What a logged-in (or mapped anonymous) user acts as. */
interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  readonly home: string;
}

/** A name getpwnam could be asked about. */
function plausibleName(name: unknown): name is string {
  // eslint-disable-next-line no-control-regex
  return typeof name === 'string' && name.length > 0 && name.length <= 256 && !/[\x00-\x1f\x7f:/]/.test(name);
}

function nameList(value: unknown, key: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every(plausibleName)) throw new ConfigError(key, 'an array of user names');
  return [...new Set(value as string[])];
}

function optionalString(value: unknown, fallback: string, key: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') throw new ConfigError(key, 'a string');
  return value;
}

/** The hash to check a password against, or undefined when the account takes no password. */
function storedHash(u: SystemUser): string | undefined {
  const h = u.shadow ? u.shadow.hash : u.passwdField;
  if (h === '' || h === 'x' || h.startsWith('!') || h.startsWith('*')) return undefined;
  return h;
}

/**
 * Why the shadow dates refuse a login today, or undefined. The rules are pam_unix's
 * (what login and sshd apply on Debian), all ending in a refusal since FTP cannot
 * change a password: an expire date reached (0 included, as `chage -E 0` means),
 * a last change of 0 (must change), a password expired past its inactive days, or
 * expired at all (past max days). An empty last-change field turns aging off.
 */
export function shadowRefusal(s: SystemUser['shadow'], now = Date.now()): string | undefined {
  if (!s) return undefined;
  const today = Math.floor(now / DAY_MS);
  if (s.expire !== -1 && today >= s.expire) return 'account expired';
  if (s.lastChange === 0) return 'password must be changed';
  if (s.lastChange < 0 || s.max === -1) return undefined;
  if (s.inactive !== -1 && s.max < 99999 && s.lastChange + s.max + s.inactive < today) return 'account inactive';
  if (s.lastChange + s.max < today) return 'password expired';
  return undefined;
}

/**
 * The hash-setting part shared by hashes of one scheme and cost: everything before the
 * salt ("$y$j9T$", "$6$", "$6$rounds=10000$"), or the first two characters otherwise.
 */
function settingKey(hash: string): string {
  const last = hash.lastIndexOf('$');
  const salt = last > 0 ? hash.lastIndexOf('$', last - 1) : -1;
  return salt > 0 ? hash.slice(0, salt + 1) : hash.slice(0, 2);
}

/** A usable hash of the scheme and cost most used in a shadow file's text, if any. */
export function mostCommonHash(shadowText: string): string | undefined {
  const byKey = new Map<string, { n: number; hash: string }>();
  for (const line of shadowText.split('\n')) {
    const hash = line.split(':')[1];
    if (hash === undefined || hash === '' || hash.startsWith('!') || hash.startsWith('*') || !hash.startsWith('$')) continue;
    const key = settingKey(hash);
    const e = byKey.get(key);
    if (e) e.n++;
    else byKey.set(key, { n: 1, hash });
  }
  let best: { n: number; hash: string } | undefined;
  for (const e of byKey.values()) if (!best || e.n > best.n) best = e;
  return best?.hash;
}

export class UnixAuthorizer implements Authorizer {
  private readonly addon: UnixAddon;
  private readonly allowed?: ReadonlySet<string>;
  private readonly rejected: ReadonlySet<string>;
  private readonly minUid: number;
  private readonly requireValidShell: boolean;
  private readonly anonymousUser?: string;
  private readonly perm: string;
  private readonly anonymousPerm: string;
  private readonly msgLogin: string;
  private readonly msgQuit: string;
  private readonly limits: Readonly<UserLimits>;
  private readonly userLimits = new Map<string, Readonly<UserLimits>>();
  private readonly log: AuthLogger;
  /** Who each user logged in as, refreshed at every login; bounded by the system's users. */
  private readonly accounts = new Map<string, Account>();
  /** A hash nobody knows the password of, costing what a real user's check costs. */
  private readonly dummyHash: Promise<string | undefined>;

  constructor(options: UnixAuthorizerOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new ConfigError('authorizer', 'an options object');
    const addon = unixAddon();
    if (!addon) throw new ConfigError('authorizer', `the ftpdlib_unix addon for system users (${unixAddonReason()})`);
    const euid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
    if (euid !== 0) {
      throw new ConfigError(
        'authorizer',
        `the server running as root for UnixAuthorizer (it reads /etc/shadow and acts as each user); effective uid is ${euid}`,
      );
    }
    this.addon = addon;
    this.log = authLogger(options.logger);
    const allowed = nameList(options.allowedUsers, 'allowedUsers');
    const rejected = nameList(options.rejectedUsers, 'rejectedUsers');
    if (allowed && rejected) throw new ConfigError('allowedUsers', 'allowedUsers or rejectedUsers, not both');
    const minUid = options.minUid ?? DEFAULT_MIN_UID;
    if (!Number.isInteger(minUid) || minUid < 0) throw new ConfigError('minUid', 'a non-negative integer');
    const requireValidShell = options.requireValidShell ?? true;
    if (typeof requireValidShell !== 'boolean') throw new ConfigError('requireValidShell', 'a boolean');
    this.minUid = minUid;
    this.requireValidShell = requireValidShell;
    this.perm = validatePerm(options.globalPerm ?? UNIX_DEFAULT_PERM, 'globalPerm');
    this.anonymousPerm = [...this.perm].filter((c) => READ_PERMS.includes(c)).join('');
    this.msgLogin = optionalString(options.msgLogin, DEFAULT_MSG_LOGIN, 'msgLogin');
    this.msgQuit = optionalString(options.msgQuit, DEFAULT_MSG_QUIT, 'msgQuit');
    this.limits = checkLimits(options.limits, 'limits');
    const userLimits: unknown = options.userLimits ?? {};
    if (typeof userLimits !== 'object' || userLimits === null || Array.isArray(userLimits)) {
      throw new ConfigError('userLimits', 'an object { [user name]: limits }');
    }
    for (const [name, l] of Object.entries(userLimits as Record<string, unknown>)) {
      if (!plausibleName(name)) throw new ConfigError(`userLimits.${name}`, 'limits under a system user name');
      this.userLimits.set(name, checkLimits(l, `userLimits.${name}`));
    }

    // As pyftpdlib: every named user must exist, and allowed users need a valid shell.
    const shells = requireValidShell && allowed ? readShellsSync() : undefined;
    for (const [key, list] of [['allowedUsers', allowed], ['rejectedUsers', rejected]] as const) {
      for (const name of list ?? []) {
        const u = this.lookupSync(name, key);
        if (key === 'allowedUsers' && shells && !shells.has(u.shell)) {
          throw new ConfigError(key, `users with a shell listed in ${SHELLS_FILE} ("${name}" has "${u.shell}")`);
        }
      }
    }
    this.allowed = allowed ? new Set(allowed) : undefined;
    this.rejected = new Set(rejected ?? ['root']);
    if (options.anonymousUser !== undefined) {
      if (!plausibleName(options.anonymousUser)) throw new ConfigError('anonymousUser', 'a system user name');
      const u = this.lookupSync(options.anonymousUser, 'anonymousUser');
      if (u.uid === 0) throw new ConfigError('anonymousUser', 'a user other than root');
      this.anonymousUser = options.anonymousUser;
    }
    this.dummyHash = this.makeDummyHash();
    // Awaited at the first refusal; a failure then only means a cheaper refusal.
    this.dummyHash.catch(() => undefined);
  }

  /** The options to give FtpServer: this authorizer and its per-user filesystem. */
  serverOptions(): { authorizer: UnixAuthorizer; fileSystem: FileSystemFactory } {
    return { authorizer: this, fileSystem: (user, home) => this.fileSystemFor(user, home) };
  }

  async validateAuthentication(user: string, password: string, client?: ClientInfo): Promise<void> {
    const plain = typeof password === 'string' ? password : '';
    if (user === ANONYMOUS) {
      if (this.anonymousUser === undefined) {
        await this.dummyCheck(plain, client?.address);
        throw new AuthenticationFailedError('Anonymous access not allowed.');
      }
      const u = await this.lookup(this.anonymousUser);
      if (!u) {
        this.log.error({ user, anonymousUser: this.anonymousUser }, 'anonymous user no longer exists');
        throw new AuthenticationFailedError('Anonymous access not allowed.');
      }
      this.remember(ANONYMOUS, u);
      return;
    }
    const u = plausibleName(user) ? await this.lookup(user) : null;
    const why = u === null ? 'unknown user' : await this.refusal(u);
    const hash = u !== null && why === undefined ? storedHash(u) : undefined;
    if (hash === undefined || plain.includes('\0')) {
      await this.dummyCheck(plain, client?.address);
      this.log.info({ user, reason: why ?? (hash === undefined ? 'account locked or without password' : 'bad password') }, 'system login refused');
      throw new AuthenticationFailedError();
    }
    let ok: boolean;
    try {
      ok = await inCheckSlot(client?.address, () => this.addon.verify(plain, hash));
    } catch (err) {
      this.log.error({ err, user }, 'crypt failed');
      throw new AuthorizerUnavailableError('Password check failed.');
    }
    if (!ok) {
      this.log.info({ user, reason: 'bad password' }, 'system login refused');
      throw new AuthenticationFailedError();
    }
    this.remember(user, u!);
  }

  async getHomeDir(user: string): Promise<string> {
    return (await this.account(user)).home;
  }

  /**
   * After a config reload (SIGHUP), take over the logins `prev` knows, so that open sessions keep
   * their letters (now this config's). A user this config would refuse by name (allowedUsers,
   * rejectedUsers, minUid; anonymous without anonymousUser) is not taken: that user's sessions lose
   * every letter at once, as a user removed from a virtual config does.
   */
  inheritLogins(prev: unknown): void {
    if (!(prev instanceof UnixAuthorizer) || prev === this) return;
    for (const [name, account] of prev.accounts) {
      if (this.accounts.has(name)) continue;
      if (name === ANONYMOUS) {
        if (this.anonymousUser !== undefined) this.accounts.set(name, account);
        continue;
      }
      const refused = this.allowed ? !this.allowed.has(name) : this.rejected.has(name) || account.uid < this.minUid;
      if (!refused) this.accounts.set(name, account);
    }
  }

  hasPerm(user: string, letter: PermLetter, _path?: string): boolean {
    return isPermLetter(letter) && this.getPerms(user).includes(letter);
  }

  /** globalPerm for users who logged in; its read letters for anonymous; none for others. */
  getPerms(user: string): string {
    if (!this.accounts.has(user)) return '';
    return user === ANONYMOUS ? this.anonymousPerm : this.perm;
  }

  getMsgLogin(_user: string): string {
    return this.msgLogin;
  }

  getMsgQuit(_user: string): string {
    return this.msgQuit;
  }

  /** userLimits' entry for the user, else `limits` (only the non-zero ones); none for a user who has not logged in. */
  getLimits(user: string): UserLimits {
    if (!this.accounts.has(user)) return { ...NO_LIMITS };
    return { ...(this.userLimits.get(user) ?? this.limits) };
  }

  async hasUser(user: string): Promise<boolean> {
    if (user === ANONYMOUS) return this.anonymousUser !== undefined;
    const u = plausibleName(user) ? await this.lookup(user) : null;
    return u !== null && (await this.refusal(u)) === undefined;
  }

  /**
   * The filesystem of a session of `user` (who has logged in): `home` jailed, every
   * call made with the user's uid, gid and groups (for anonymous, the mapped user's).
   */
  async fileSystemFor(user: string, home: string): Promise<FileSystem> {
    const a = await this.account(user);
    return new AsUserFileSystem(home, { uid: a.uid, gid: a.gid, groups: a.groups });
  }

  private remember(user: string, u: SystemUser): void {
    this.accounts.set(user, Object.freeze({ name: u.name, uid: u.uid, gid: u.gid, groups: Object.freeze([...u.groups]), home: u.home }));
  }

  /** The account of a user who logged in (looked up again if need be). */
  private async account(user: string): Promise<Account> {
    const known = this.accounts.get(user);
    if (known) return known;
    const name = user === ANONYMOUS ? this.anonymousUser : user;
    const u = name !== undefined && plausibleName(name) ? await this.lookup(name) : null;
    if (!u || (user !== ANONYMOUS && (await this.refusal(u)) !== undefined)) throw new AuthenticationFailedError('Unknown user.');
    this.remember(user, u);
    return this.accounts.get(user)!;
  }

  /** Why `u` may not log in whatever the password, or undefined. */
  private async refusal(u: SystemUser): Promise<string | undefined> {
    if (this.allowed) {
      if (!this.allowed.has(u.name)) return 'not in allowedUsers';
    } else {
      if (this.rejected.has(u.name)) return 'in rejectedUsers';
      if (u.uid < this.minUid) return `system account (uid ${u.uid} < ${this.minUid})`;
    }
    if (this.requireValidShell && !(await readShells()).has(u.shell)) return `shell ${u.shell} not in ${SHELLS_FILE}`;
    return shadowRefusal(u.shadow);
  }

  private async lookup(name: string): Promise<SystemUser | null> {
    const r = await this.addon.lookup(name);
    if (typeof r === 'number') {
      this.log.error({ user: name, code: errnoName(r) }, 'user lookup failed');
      throw new AuthorizerUnavailableError('User database unavailable.');
    }
    return r;
  }

  private lookupSync(name: string, key: string): SystemUser {
    const r = this.addon.lookupSync(name);
    if (typeof r === 'number') throw new ConfigError(key, `users the system can look up ("${name}": ${errnoName(r)})`);
    if (r === null) throw new ConfigError(key, `existing system users ("${name}" is unknown)`);
    return r;
  }

  private async makeDummyHash(): Promise<string | undefined> {
    let model: string | undefined;
    try {
      model = mostCommonHash(fs.readFileSync(SHADOW_FILE, 'utf8'));
    } catch {
      // No local shadow file (users from NSS only): the library's default scheme.
    }
    const setting = model ?? this.addon.gensaltSync(null, 0) ?? undefined;
    if (setting === undefined) return undefined;
    const out = await this.addon.crypt(randomBytes(24).toString('base64'), setting);
    return typeof out === 'string' ? out : undefined;
  }

  /** The work of one password check that cannot succeed. */
  private async dummyCheck(plain: string, client: string | undefined): Promise<void> {
    const hash = await this.dummyHash.catch(() => undefined);
    if (hash === undefined) return;
    await inCheckSlot(client, () => this.addon.verify(plain, hash)).catch(() => false);
  }
}

function parseShells(text: string): Set<string> {
  const out = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line !== '' && !line.startsWith('#')) out.add(line);
  }
  return out;
}

/** /etc/shells, read at each login (a missing file lists nothing, so everyone is refused). */
async function readShells(): Promise<Set<string>> {
  try {
    return parseShells(await fs.promises.readFile(SHELLS_FILE, 'utf8'));
  } catch {
    return new Set();
  }
}

function readShellsSync(): Set<string> {
  try {
    return parseShells(fs.readFileSync(SHELLS_FILE, 'utf8'));
  } catch {
    return new Set();
  }
}
