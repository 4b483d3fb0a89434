/**
 * Users in PostgreSQL, through a `pg` connection pool. The tables are described in
 * conf/ftpdlib-schema.sql: `users` (name, password_hash, home, perm, msg_login, msg_quit,
 * enabled, and the nullable limits max_sessions, read_limit, write_limit, quota_bytes,
 * quota_files: NULL or 0 for no limit) and `perm_overrides` (user_name, directory, perm,
 * recursive). One parameterised query per database read fetches a user's row with its overrides.
 *
 * Passwords are `$scrypt$` hashes as password.ts writes them (hashPassword), or bcrypt
 * (`$2y$`/`$2a$`/`$2b$`, cost 4 to 17). Anything else in password_hash is logged and the user
 * cannot log in.
 *
 * Caching, and where the getters get their answers:
 * - Only a successful login puts a row in the cache. A missing user, a disabled one, a wrong
 *   password or a database error is never cached.
 * - A login within `cacheTtl` seconds of the row being read reuses it, and the password is
 *   still checked against it; after that, the row is read again.
 * - getHomeDir, hasPerm, getPerms, getLimits and the messages never query the database. They
 *   answer from the row read for that user's latest successful login, however old, so an open
 *   session keeps working through a database outage. A change in the tables reaches a user's sessions when
 *   that user next logs in after the TTL (and then reaches all of that user's open sessions).
 * - The cache holds at most `cacheMax` rows, least recently used dropped first. A dropped
 *   user's open sessions get no permissions (fail closed) until that user logs in again.
 *
 * When the database cannot be reached, or does not answer within `connectTimeout` /
 * `queryTimeout` seconds, validateAuthentication rejects with AuthorizerUnavailableError (the
 * server replies 421 and keeps running). Nothing needs resetting afterwards: the pool drops
 * broken connections and the next login opens a new one.
 */
import { randomBytes } from 'node:crypto';
import { Pool, type PoolConfig } from 'pg';
import { ConfigError } from '../config/errors';
import { bcryptCost, dummyBcrypt, looksLikeBcrypt, verifyBcrypt } from './bcrypt';
import { AuthenticationFailedError, AuthorizerUnavailableError } from './errors';
import { authLogger, type AuthLogger } from './log';
import { DEFAULT_SCRYPT, formatPasswordHash, parsePasswordHash, verifyPassword, type ScryptParams } from './password';
import { makeProfile, profileHasPerm, profileOverridesBelow, type UserProfile } from './profile';
import type { Authorizer, ClientInfo, PermLetter, UserLimits } from './types';
import { DEFAULT_MSG_LOGIN, DEFAULT_MSG_QUIT } from './virtual';

export interface PostgresAuthorizerOptions {
  /** Use this pool instead of making one (it is not ended by close()); the options below are then ignored except the table names, the cache and the logger. */
  pool?: Pool;
  /** libpq-style URL, postgres://user:pass@host:port/db. */
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: PoolConfig['ssl'];
  /** Connections at most. Default 10. */
  max?: number;
  /** Seconds to wait for a connection (or a free one from the pool). Default 2. */
  connectTimeout?: number;
  /** Seconds a query may take, enforced by the client and by the server. Default 2. */
  queryTimeout?: number;
  /** Seconds a row read for a successful login is reused by later logins. Default 5; 0 reads every time. */
  cacheTtl?: number;
  /** Users whose rows are kept at most. Default 10000. */
  cacheMax?: number;
  /** Table names, optionally schema-qualified. Default users, perm_overrides. */
  tables?: { users?: string; overrides?: string };
  /** A bunyan-like logger. Default: quiet. */
  logger?: AuthLogger;
  /** Current time in milliseconds, for tests. Default Date.now. */
  clock?: () => number;
}

type Secret =
  | { scheme: 'scrypt'; hash: string; params: ScryptParams }
  | { scheme: 'bcrypt'; hash: string; cost: number };

interface CachedUser {
  readonly profile: UserProfile;
  readonly secret: Secret;
  /** When the row was read (clock ms). */
  readonly readAt: number;
}

/** What the query returns: one row per override, or one with null override columns. */
interface JoinedRow {
  password_hash: string | null;
  home: string | null;
  perm: string | null;
  msg_login: string | null;
  msg_quit: string | null;
  enabled: boolean | null;
  /** integer columns come as numbers, bigint ones as strings (pg's default for int8). */
  max_sessions: number | string | null;
  read_limit: number | string | null;
  write_limit: number | string | null;
  quota_bytes: number | string | null;
  quota_files: number | string | null;
  o_directory: string | null;
  o_perm: string | null;
  o_recursive: boolean | null;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;
const MAX_NAME = 255;

function seconds(value: unknown, fallback: number, key: string, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(key, `a number of seconds from ${min} to ${max}`);
  }
  return value;
}

function tableName(value: unknown, fallback: string, key: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !IDENT.test(value)) throw new ConfigError(key, 'a table name, optionally schema-qualified (letters, digits, _)');
  return value;
}

function parseSecret(stored: unknown): Secret | { reason: string } {
  if (typeof stored !== 'string') return { reason: 'password_hash is empty' };
  if (looksLikeBcrypt(stored)) {
    const c = bcryptCost(stored);
    return c.ok ? { scheme: 'bcrypt', hash: stored, cost: c.cost } : { reason: c.reason };
  }
  const p = parsePasswordHash(stored);
  if (p.ok) return { scheme: 'scrypt', hash: stored, params: p.value.params };
  return { reason: `password_hash is neither a $scrypt$ nor a bcrypt hash (${p.reason})` };
}

/** A limit column as checkLimits takes it: NULL left out, an int8 string made a number (an unsafe one fails the check). */
function limitColumn(v: number | string | null): unknown {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'string' && /^-?[0-9]+$/.test(v) ? Number(v) : v;
}

function verifySecret(secret: Secret, plain: string, client: string | undefined): Promise<boolean> {
  return secret.scheme === 'bcrypt' ? verifyBcrypt(plain, secret.hash, client) : verifyPassword(plain, secret.hash, client);
}

export class PostgresAuthorizer implements Authorizer {
  readonly pool: Pool;
  private readonly ownPool: boolean;
  private readonly query: string;
  private readonly ttlMs: number;
  private readonly cacheMax: number;
  private readonly log: AuthLogger;
  private readonly now: () => number;
  /** Insertion order is recency: a hit moves the user to the end, the front is dropped first. */
  private readonly cache = new Map<string, CachedUser>();
  /** The last usable hash read: what an unknown user's dummy check imitates. */
  private lastSecret: Secret | undefined;
  private readonly dummies = new Map<string, Secret>();
  private ending: Promise<void> | undefined;

  constructor(options: PostgresAuthorizerOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new ConfigError('authorizer', 'an options object');
    this.log = authLogger(options.logger);
    const connectTimeout = seconds(options.connectTimeout, 2, 'connectTimeout', 0.001, 600);
    const queryTimeout = seconds(options.queryTimeout, 2, 'queryTimeout', 0.001, 600);
    this.ttlMs = seconds(options.cacheTtl, 5, 'cacheTtl', 0, 86400) * 1000;
    const cacheMax = options.cacheMax ?? 10000;
    if (!Number.isInteger(cacheMax) || cacheMax < 1) throw new ConfigError('cacheMax', 'an integer of at least 1');
    this.cacheMax = cacheMax;
    if (options.clock !== undefined && typeof options.clock !== 'function') throw new ConfigError('clock', 'a function returning milliseconds');
    this.now = options.clock ?? Date.now;
    const users = tableName(options.tables?.users, 'users', 'tables.users');
    const overrides = tableName(options.tables?.overrides, 'perm_overrides', 'tables.overrides');
    this.query =
      'SELECT u.password_hash, u.home, u.perm, u.msg_login, u.msg_quit, u.enabled, ' +
      'u.max_sessions, u.read_limit, u.write_limit, u.quota_bytes, u.quota_files, ' +
      'o.directory AS o_directory, o.perm AS o_perm, o.recursive AS o_recursive ' +
      `FROM ${users} u LEFT JOIN ${overrides} o ON o.user_name = u.name ` +
      'WHERE u.name = $1 ORDER BY o.directory';

    if (options.pool !== undefined) {
      // Duck-typed: a Pool from another copy of pg would fail instanceof.
      if (typeof (options.pool as { query?: unknown } | null)?.query !== 'function') throw new ConfigError('pool', 'a pg Pool');
      this.pool = options.pool;
      this.ownPool = false;
    } else {
      const max = options.max ?? 10;
      if (!Number.isInteger(max) || max < 1) throw new ConfigError('max', 'an integer of at least 1');
      this.pool = new Pool({
        connectionString: options.connectionString,
        host: options.host,
        port: options.port,
        user: options.user,
        password: options.password,
        database: options.database,
        ssl: options.ssl,
        max,
        connectionTimeoutMillis: Math.ceil(connectTimeout * 1000),
        query_timeout: Math.ceil(queryTimeout * 1000),
        statement_timeout: Math.ceil(queryTimeout * 1000),
        application_name: 'ftpdlib',
      });
      this.ownPool = true;
      // An idle connection whose server went away reports here; without a listener it would
      // crash the process. The pool has already dropped it.
      this.pool.on('error', (err) => this.log.warn({ err }, 'idle PostgreSQL connection lost'));
    }
  }

  /** End the pool (when this authorizer made it). Safe to call twice. */
  close(): Promise<void> {
    if (!this.ownPool) return Promise.resolve();
    this.ending ??= this.pool.end();
    return this.ending;
  }

  /** Forget cached rows: one user's, or everyone's. Open sessions of those users lose their permissions until they log in again. */
  invalidate(user?: string): void {
    if (user === undefined) this.cache.clear();
    else this.cache.delete(user);
  }

  async validateAuthentication(user: string, password: string, client?: ClientInfo): Promise<void> {
    const plain = typeof password === 'string' ? password : '';
    const from = client?.address;
    // Names the schema cannot hold are refused without a query (a NUL would make pg fail: 421).
    // eslint-disable-next-line no-control-regex
    if (typeof user !== 'string' || user === '' || user.length > MAX_NAME || /[\x00-\x1f\x7f]/.test(user)) {
      await this.dummyCheck(plain, from);
      throw new AuthenticationFailedError();
    }
    const now = this.now();
    const cached = this.cache.get(user);
    let found: CachedUser | undefined;
    if (cached !== undefined && this.ttlMs > 0 && now - cached.readAt < this.ttlMs) {
      found = cached;
    } else {
      found = await this.read(user, now);
    }
    if (found === undefined) {
      await this.dummyCheck(plain, from);
      throw new AuthenticationFailedError();
    }
    let ok: boolean;
    try {
      ok = await verifySecret(found.secret, plain, from);
    } catch (err) {
      this.log.error({ err, user }, 'password check failed');
      throw new AuthorizerUnavailableError('Password check failed.');
    }
    if (!ok) throw new AuthenticationFailedError();
    this.remember(user, found);
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

  /** The limits of the user's cached row (only the non-zero ones); none for a user not in the cache. */
  getLimits(user: string): UserLimits {
    return { ...this.profileOf(user)?.limits };
  }

  /**
   * After a config reload (SIGHUP), take over the rows `prev` had read, so that open sessions keep
   * their letters, home and limits until their next login reads the row again (a new authorizer's
   * cache is empty, and a session's checks are answered from the cache).
   */
  inheritLogins(prev: unknown): void {
    if (!(prev instanceof PostgresAuthorizer) || prev === this) return;
    for (const [user, entry] of prev.cache) if (!this.cache.has(user)) this.remember(user, entry);
  }

  private profileOf(user: string): UserProfile | undefined {
    const c = this.cache.get(user);
    if (c === undefined) return undefined;
    // Keep users with open sessions away from the front of the eviction order.
    this.cache.delete(user);
    this.cache.set(user, c);
    return c.profile;
  }

  private remember(user: string, entry: CachedUser): void {
    this.cache.delete(user);
    this.cache.set(user, entry);
    while (this.cache.size > this.cacheMax) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
      this.log.debug({ user: oldest }, 'user row dropped from the cache');
    }
  }

  /**
   * Read a user's row. Undefined when there is no usable row (missing, disabled, bad hash or
   * bad fields: the last two are logged). A database failure rejects with AuthorizerUnavailableError.
   */
  private async read(user: string, now: number): Promise<CachedUser | undefined> {
    let rows: JoinedRow[];
    try {
      rows = (await this.pool.query<JoinedRow>({ text: this.query, values: [user] })).rows;
    } catch (err) {
      this.log.error({ err, user }, 'PostgreSQL query failed');
      throw new AuthorizerUnavailableError('User database unavailable.');
    }
    if (rows.length === 0) return undefined;
    const r = rows[0];
    if (r.enabled !== true) return undefined;
    const secret = parseSecret(r.password_hash);
    if ('reason' in secret) {
      this.log.warn({ user, reason: secret.reason }, 'unusable password hash; this user cannot log in');
      return undefined;
    }
    this.lastSecret = secret;
    let profile: UserProfile;
    try {
      profile = makeProfile(
        {
          home: r.home,
          perm: r.perm ?? '',
          msgLogin: r.msg_login,
          msgQuit: r.msg_quit,
          limits: {
            maxSessions: limitColumn(r.max_sessions),
            readLimit: limitColumn(r.read_limit),
            writeLimit: limitColumn(r.write_limit),
            quotaBytes: limitColumn(r.quota_bytes),
            quotaFiles: limitColumn(r.quota_files),
          },
          overrides: rows
            .filter((o) => o.o_directory !== null)
            .map((o) => ({ path: o.o_directory, perm: o.o_perm, recursive: o.o_recursive ?? false })),
        },
        `users.${user}`,
      );
    } catch (err) {
      this.log.error({ err, user }, 'bad user row; this user cannot log in');
      return undefined;
    }
    return { profile, secret, readAt: now };
  }

  /** The work a real check would do, against a hash of the last seen scheme and cost. */
  private async dummyCheck(plain: string, client: string | undefined): Promise<void> {
    const model: Secret = this.lastSecret ?? { scheme: 'scrypt', hash: '', params: DEFAULT_SCRYPT };
    const id = model.scheme === 'bcrypt' ? `bcrypt:${model.cost}` : `scrypt:${model.params.ln},${model.params.r},${model.params.p}`;
    let dummy = this.dummies.get(id);
    if (dummy === undefined) {
      dummy =
        model.scheme === 'bcrypt'
          ? { scheme: 'bcrypt', hash: dummyBcrypt(model.cost), cost: model.cost }
          : { scheme: 'scrypt', hash: formatPasswordHash({ params: model.params, salt: randomBytes(16), key: randomBytes(32) }), params: model.params };
      this.dummies.set(id, dummy);
    }
    try {
      await verifySecret(dummy, plain, client);
    } catch {
      // A refusal either way.
    }
  }
}
