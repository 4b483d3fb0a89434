/**
 * Virtual users held in memory: pyftpdlib's DummyAuthorizer, with hashed passwords, logins that
 * take the same time whether the user exists or not, and checked options.
 *
 * Differences from pyftpdlib worth knowing:
 * - Passwords are scrypt hashes. A plain-text password given to addUser is hashed when added
 *   (the first login waits for it), unless the authorizer was built with
 *   allowPlaintextPasswords, in which case only its SHA-256 digest is kept and logins compare
 *   digests in constant time.
 * - A password that looks like some other crypt-style hash ("$2b$...", "$6$...") is refused
 *   with a ConfigError rather than taken as the literal password.
 * - Override directories are FTP paths inside the user's root ("/uploads"), not real paths;
 *   see perms.ts for how they match and how that differs.
 * - Unknown users get neutral answers from the getters (no letters, default messages) instead
 *   of a KeyError; getHomeDir alone refuses, with AuthenticationFailedError.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { ConfigError } from '../config/errors';
import { AuthenticationFailedError, AuthorizerUnavailableError } from './errors';
import {
  SCRYPT_PREFIX,
  checkScryptParams,
  formatPasswordHash,
  parsePasswordHash,
  verifyPassword,
  hashPassword,
  type ScryptParams,
} from './password';
import { effectivePerms, isPermLetter, overridesBelow, validateOverrideDir, validatePerm, type PermOverride } from './perms';
import { checkLimits } from './limits';
import type { Authorizer, ClientInfo, PermLetter, UserLimits } from './types';

export const DEFAULT_PERM = 'elr';
export const DEFAULT_MSG_LOGIN = 'Login successful.';
export const DEFAULT_MSG_QUIT = 'Goodbye.';
export const ANONYMOUS = 'anonymous';

export interface VirtualAuthorizerOptions {
  /** Keep plain-text passwords given to addUser as they are (compared in constant time). Default false: hash them. */
  allowPlaintextPasswords?: boolean;
  /** scrypt cost for plain-text passwords hashed by addUser. Default { ln: 14, r: 8, p: 1 }. */
  scrypt?: Partial<ScryptParams>;
}

export interface UserOptions {
  /** Permission letters over `elradfmwMT`. Default 'elr'. */
  perm?: string;
  msgLogin?: string;
  msgQuit?: string;
  /** Sessions, bandwidth and disk quota for this user; each a non-negative integer, 0 or absent for none. */
  limits?: UserLimits;
}

type Secret =
  | { kind: 'anonymous' }
  | { kind: 'plain'; digest: Buffer }
  | { kind: 'scrypt'; hash: Promise<string> };

interface UserRecord {
  readonly name: string;
  readonly homedir: string;
  readonly perm: string;
  readonly msgLogin: string;
  readonly msgQuit: string;
  readonly secret: Secret;
  readonly limits: Readonly<UserLimits>;
  /** One per directory; a later overridePerm on the same directory replaces the earlier one. */
  overrides: PermOverride[];
}

/** Matches the start of crypt-style hashes of other schemes: $2b$, $6$, $argon2id$, $pbkdf2-sha256$... */
const OTHER_HASH = /^\$[a-z0-9-]{1,32}\$/;

// crypto.hash (Node 20.12+) hashes in one call, without a Hash object per login.
const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'buffer') => Buffer }).hash;
function sha256(s: string): Buffer {
  return oneShot ? oneShot('sha256', s, 'buffer') : createHash('sha256').update(s, 'utf8').digest();
}

function isAbsoluteHome(p: unknown): p is string {
  return typeof p === 'string' && p.length > 0 && !p.includes('\0') && path.isAbsolute(p);
}

function optionalString(value: unknown, fallback: string, key: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') throw new ConfigError(key, 'a string');
  return value;
}

/** Entry points that let fromConfig name config keys by index; module-private, so not public API. */
const addUserAt = Symbol('addUserAt');
const overridePermAt = Symbol('overridePermAt');

/** Key names for errors: `users.<name>.<field>` from addUser, `users[<i>].<field>` from fromConfig. */
function userKey(name: unknown): string {
  return typeof name === 'string' && name !== '' ? `users.${name}` : 'users';
}

export class VirtualAuthorizer implements Authorizer {
  private readonly users = new Map<string, UserRecord>();
  private readonly allowPlaintext: boolean;
  private readonly scryptParams: ScryptParams;
  /** Cost of the most recently added scrypt user: what an unknown user's dummy check costs. */
  private dummyParams: ScryptParams | undefined;
  private readonly dummyHashes = new Map<string, string>();
  private readonly dummyDigest = randomBytes(32);

  constructor(options: VirtualAuthorizerOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new ConfigError('authorizer', 'an options object');
    const allow = options.allowPlaintextPasswords ?? false;
    if (typeof allow !== 'boolean') throw new ConfigError('allowPlaintextPasswords', 'a boolean');
    this.allowPlaintext = allow;
    this.scryptParams = checkScryptParams(options.scrypt, 'scrypt');
  }

  /**
   * Add a user. `password` is a `$scrypt$...` hash (kept as is) or plain text (hashed here, or
   * kept when plain text is allowed). Synchronous: hashing runs in the background and the
   * first login waits for it.
   */
  addUser(name: string, password: string, homedir: string, options: UserOptions = {}): void {
    this[addUserAt](userKey(name), name, password, homedir, options, false);
  }

  /** Add the 'anonymous' user, who logs in with any password (or none). Default perm 'elr'. */
  addAnonymous(homedir: string, options: UserOptions = {}): void {
    // Write letters for anonymous are allowed; they are only granted when asked for explicitly.
    this[addUserAt](userKey(ANONYMOUS), ANONYMOUS, '', homedir, options, true);
  }

  /** Remove a user; returns whether there was one. */
  removeUser(name: string): boolean {
    return this.users.delete(name);
  }

  hasUser(name: string): boolean {
    return this.users.has(name);
  }

  /**
   * Give `name` the letters `perm` on `directory` (an FTP path inside the user's root), and with
   * `recursive` on everything below it. A second call on the same directory replaces the first.
   */
  overridePerm(name: string, directory: string, perm: string, recursive = false): void {
    this[overridePermAt](userKey(name), name, directory, perm, recursive);
  }

  async validateAuthentication(user: string, password: string, client?: ClientInfo): Promise<void> {
    const rec = typeof user === 'string' ? this.users.get(user) : undefined;
    if (rec === undefined) {
      await this.dummyCheck(password, client?.address);
      throw new AuthenticationFailedError(user === ANONYMOUS ? 'Anonymous access not allowed.' : undefined);
    }
    const { secret } = rec;
    if (secret.kind === 'anonymous') return;
    if (typeof password !== 'string') password = '';
    if (secret.kind === 'plain') {
      if (timingSafeEqual(sha256(password), secret.digest)) return;
      throw new AuthenticationFailedError();
    }
    let ok: boolean;
    try {
      ok = await verifyPassword(password, await secret.hash, client?.address);
    } catch {
      // Hashing or verifying failed inside scrypt (memory, thread pool): not the client's fault.
      throw new AuthorizerUnavailableError('Password check failed.');
    }
    if (!ok) throw new AuthenticationFailedError();
  }

  getHomeDir(user: string): string {
    const rec = this.users.get(user);
    if (rec === undefined) throw new AuthenticationFailedError('Unknown user.');
    return rec.homedir;
  }

  /** Whether `user` holds `letter` on `path` (overrides applied); without a path, the base letters decide. */
  hasPerm(user: string, letter: PermLetter, path?: string): boolean {
    const rec = this.users.get(user);
    if (rec === undefined || !isPermLetter(letter)) return false;
    return effectivePerms(rec.perm, rec.overrides, path).includes(letter);
  }

  /** Whether an override is set on a folder strictly inside `path` (the server then refuses to rename `path`). */
  overridesBelow(user: string, path: string): boolean {
    const rec = this.users.get(user);
    return rec !== undefined && overridesBelow(rec.overrides, path);
  }

  getPerms(user: string): string {
    return this.users.get(user)?.perm ?? '';
  }

  getMsgLogin(user: string): string {
    return this.users.get(user)?.msgLogin ?? DEFAULT_MSG_LOGIN;
  }

  getMsgQuit(user: string): string {
    return this.users.get(user)?.msgQuit ?? DEFAULT_MSG_QUIT;
  }

  /** The user's limits (only the non-zero ones); none for an unknown user. */
  getLimits(user: string): UserLimits {
    return { ...this.users.get(user)?.limits };
  }

  /** addUser with the key prefix errors should name. */
  [addUserAt](
    key: string,
    name: unknown,
    password: unknown,
    homedir: unknown,
    options: UserOptions,
    anonymous: boolean,
  ): void {
    if (typeof name !== 'string' || name === '') throw new ConfigError(`${key}.name`, 'a non-empty user name');
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(name)) throw new ConfigError(`${key}.name`, 'a user name without control characters');
    if (this.users.has(name)) throw new ConfigError(`${key}.name`, `a user name not already added (duplicate "${name}")`);
    if (!isAbsoluteHome(homedir)) throw new ConfigError(`${key}.home`, 'an absolute path');
    if (typeof options !== 'object' || options === null) throw new ConfigError(key, 'an options object');
    const perm = validatePerm(options.perm ?? DEFAULT_PERM, `${key}.perm`);
    const msgLogin = optionalString(options.msgLogin, DEFAULT_MSG_LOGIN, `${key}.msgLogin`);
    const msgQuit = optionalString(options.msgQuit, DEFAULT_MSG_QUIT, `${key}.msgQuit`);
    const limits = checkLimits(options.limits, `${key}.limits`);
    const secret = anonymous ? ({ kind: 'anonymous' } as const) : this.makeSecret(password, `${key}.password`);
    this.users.set(name, { name, homedir, perm, msgLogin, msgQuit, secret, limits, overrides: [] });
  }

  /** overridePerm with the key prefix errors should name. */
  [overridePermAt](key: string, name: string, directory: unknown, perm: unknown, recursive: unknown): void {
    const rec = this.users.get(name);
    if (rec === undefined) throw new ConfigError(`${key}.name`, `a user added before its overrides ("${name}" is unknown)`);
    const dir = validateOverrideDir(directory, `${key}.path`);
    const letters = validatePerm(perm, `${key}.perm`);
    if (typeof recursive !== 'boolean') throw new ConfigError(`${key}.recursive`, 'a boolean');
    const override: PermOverride = Object.freeze({ directory: dir, perm: letters, recursive });
    rec.overrides = rec.overrides.filter((o) => o.directory !== dir).concat(override);
  }

  private makeSecret(password: unknown, key: string): Secret {
    if (typeof password !== 'string') throw new ConfigError(key, 'a string (plain text or a $scrypt$ hash)');
    if (password.startsWith(SCRYPT_PREFIX)) {
      const parsed = parsePasswordHash(password);
      if (!parsed.ok) throw new ConfigError(key, `a valid $scrypt$ hash: ${parsed.reason}`);
      this.dummyParams = parsed.value.params;
      return { kind: 'scrypt', hash: Promise.resolve(password) };
    }
    if (OTHER_HASH.test(password)) {
      throw new ConfigError(key, 'plain text or a $scrypt$ hash (this looks like a hash of another scheme)');
    }
    if (this.allowPlaintext) return { kind: 'plain', digest: sha256(password) };
    const hash = hashPassword(password, this.scryptParams);
    // A failure surfaces at login (as AuthorizerUnavailableError); don't let it go unhandled meanwhile.
    hash.catch(() => undefined);
    this.dummyParams = this.scryptParams;
    return { kind: 'scrypt', hash };
  }

  /** Do the work a known user's check would do, so an unknown name takes as long to refuse. */
  private async dummyCheck(password: unknown, client: string | undefined): Promise<void> {
    const plain = typeof password === 'string' ? password : '';
    const params = this.dummyParams ?? (this.allowPlaintext ? undefined : this.scryptParams);
    if (params === undefined) {
      timingSafeEqual(sha256(plain), this.dummyDigest);
      return;
    }
    const id = `${params.ln},${params.r},${params.p}`;
    let stored = this.dummyHashes.get(id);
    if (stored === undefined) {
      // Random salt and key: verifying costs exactly one scrypt and can never succeed.
      stored = formatPasswordHash({ params, salt: randomBytes(16), key: randomBytes(32) });
      this.dummyHashes.set(id, stored);
    }
    try {
      await verifyPassword(plain, stored, client);
    } catch {
      // The answer is a refusal either way.
    }
  }
}

/** One user as the config file gives it. */
export interface UserConfig {
  name: string;
  /** Plain text or a $scrypt$ hash. Omitted or empty for 'anonymous' means any password. */
  password?: string;
  home: string;
  perm?: string;
  msgLogin?: string;
  msgQuit?: string;
  overrides?: Array<{ path: string; perm: string; recursive?: boolean }>;
  limits?: UserLimits;
}

/**
 * Build a VirtualAuthorizer from the config's user list. Errors name the entry by index
 * (`users[2].perm`). A user named 'anonymous' without a password (or with an empty one) is
 * added as pyftpdlib's anonymous user, who may give any password.
 */
export function fromConfig(users: readonly UserConfig[], opts: VirtualAuthorizerOptions = {}): VirtualAuthorizer {
  if (!Array.isArray(users)) throw new ConfigError('users', 'an array of users');
  const auth = new VirtualAuthorizer(opts);
  users.forEach((u: unknown, i) => {
    const key = `users[${i}]`;
    if (typeof u !== 'object' || u === null) throw new ConfigError(key, 'an object { name, password, home, ... }');
    const c = u as Partial<UserConfig>;
    const options: UserOptions = { perm: c.perm, msgLogin: c.msgLogin, msgQuit: c.msgQuit, limits: c.limits };
    const anonymous = c.name === ANONYMOUS && (c.password === undefined || c.password === '');
    auth[addUserAt](key, c.name, c.password, c.home, options, anonymous);
    const overrides: unknown = c.overrides ?? [];
    if (!Array.isArray(overrides)) throw new ConfigError(`${key}.overrides`, 'an array of { path, perm, recursive }');
    overrides.forEach((o: unknown, j) => {
      const okey = `${key}.overrides[${j}]`;
      if (typeof o !== 'object' || o === null) throw new ConfigError(okey, 'an object { path, perm, recursive }');
      const ov = o as { path?: unknown; perm?: unknown; recursive?: unknown };
      auth[overridePermAt](okey, c.name as string, ov.path, ov.perm, ov.recursive ?? false);
    });
  });
  return auth;
}
