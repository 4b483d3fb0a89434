/**
 * PostgresAuthorizer against a real PostgreSQL (test/helpers/postgres.ts starts one in a temp
 * folder and loads conf/ftpdlib-schema.sql). Without the server binaries, every test here fails
 * with a message naming the package to install.
 *
 * The tests that stop the database or count queries are serial, and AVA runs a file's serial
 * tests before its concurrent ones, so the shared login suite never sees the outage.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import bcrypt from 'bcryptjs';
import { PostgresAuthorizer, hashPassword, type PostgresAuthorizerOptions } from '../../src/auth';
import { buildFromConfig, loadConfigFile } from '../../src/config/file';
import { LineClient } from '../helpers/line-client';
import { startPostgres, loadSchema, type PgServer } from '../helpers/postgres';
import { startServer } from '../helpers/server';
import { LIMITED_MAX_SESSIONS, READER_MSG, READER_PERM, UPLOADS_OVERRIDE, WRITER_PERM, registerLoginSuite } from './login-suite';

const FAST = { ln: 4, r: 8, p: 1 };
const CLIENT = { address: '127.0.0.1', port: 40000 };

let pg: PgServer | undefined;
let startError: Error | undefined;

test.before(async () => {
  try {
    pg = await startPostgres();
    await loadSchema(pg);
  } catch (err) {
    startError = err as Error;
  }
});

test.after.always(async () => {
  await pg?.destroy();
});

/** The running server, or a failure that says why there is none. */
function db(): PgServer {
  if (pg === undefined) throw new Error(`PostgreSQL test server not available: ${startError?.message ?? 'unknown reason'}`);
  return pg;
}

function authorizer(t: ExecutionContext, opts: PostgresAuthorizerOptions = {}): PostgresAuthorizer {
  const a = new PostgresAuthorizer({ connectionString: db().connectionString, max: 4, ...opts });
  t.teardown(() => a.close());
  return a;
}

let seq = 0;
/** A user name no other test uses. */
const unique = (base: string): string => `${base}_${++seq}`;

async function addUser(
  name: string,
  passwordHash: string,
  home: string,
  extra: { perm?: string; msgLogin?: string; enabled?: boolean } = {},
): Promise<void> {
  await db().query('INSERT INTO users (name, password_hash, home, perm, msg_login, enabled) VALUES ($1, $2, $3, $4, $5, $6)', [
    name,
    passwordHash,
    home,
    extra.perm ?? 'elr',
    extra.msgLogin ?? null,
    extra.enabled ?? true,
  ]);
}

async function accepts(a: PostgresAuthorizer, user: string, pw: string): Promise<boolean> {
  try {
    await a.validateAuthentication(user, pw, CLIENT);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code !== 'FTPD_ERR_AUTH') throw err;
    return false;
  }
}

/** Count the queries the authorizer sends. */
function countQueries(a: PostgresAuthorizer): { count: number } {
  const counter = { count: 0 };
  const original = a.pool.query.bind(a.pool) as (...args: unknown[]) => unknown;
  (a.pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    counter.count++;
    return original(...args);
  };
  return counter;
}

function tempHome(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-pg-home-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test.serial('the cache: a row changed in the database is seen after the TTL; the password is always checked', async (t) => {
  let now = 1_000_000;
  const a = authorizer(t, { cacheTtl: 5, clock: () => now });
  const queries = countQueries(a);
  const name = unique('cached');
  await addUser(name, await hashPassword('pw1', FAST), '/srv/one');

  t.true(await accepts(a, name, 'pw1'));
  t.is(queries.count, 1);
  t.is(a.getPerms(name), 'elr');
  await db().query("UPDATE users SET perm = 'elradfmwMT', home = '/srv/two', password_hash = $2 WHERE name = $1", [
    name,
    await hashPassword('pw2', FAST),
  ]);

  now += 4_000;
  t.false(await accepts(a, name, 'wrong'), 'a wrong password against the cached row');
  t.true(await accepts(a, name, 'pw1'), 'within the TTL the cached row answers');
  t.false(await accepts(a, name, 'pw2'));
  t.is(a.getPerms(name), 'elr');
  t.is(queries.count, 1, 'no query within the TTL');
  // The getters never query.
  t.false(a.hasPerm(name, 'w', '/x'));
  t.is(a.getHomeDir(name), '/srv/one');
  t.is(queries.count, 1);

  now += 1_001;
  t.false(await accepts(a, name, 'pw1'), 'after the TTL the row is read again');
  t.true(await accepts(a, name, 'pw2'));
  t.is(a.getPerms(name), 'elradfmwMT');
  t.is(a.getHomeDir(name), '/srv/two');
  t.true(a.hasPerm(name, 'w', '/x'));
});

test.serial('a config reload (SIGHUP) keeps the letters, home and limits of users logged in before it', async (t) => {
  const name = unique('reload');
  const home = tempHome(t);
  await addUser(name, await hashPassword('pw', FAST), home, { perm: 'elrw' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-pg-conf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'f.yaml');
  fs.writeFileSync(file, `authorizer:\n  type: postgres\n  connectionString: "${db().connectionString}"\n`);
  const quiet = { info() {}, warn() {}, error() {}, debug() {}, child: () => quiet } as never;
  const built = buildFromConfig(loadConfigFile(file), { logger: quiet });
  t.teardown(() => built.close());
  const auth = built.options.authorizer;
  await auth.validateAuthentication(name, 'pw', CLIENT);
  t.true(await auth.hasPerm(name, 'w', '/'));
  await built.reloadUsers(loadConfigFile(file));
  // The session's checks after the reload: answered by the new authorizer, from the rows the old one read.
  t.true(await auth.hasPerm(name, 'w', '/'), 'the logged-in user keeps its letters');
  t.is(await auth.getPerms(name), 'elrw');
  t.is(await auth.getHomeDir(name), home);
  t.false(await auth.hasPerm(unique('never'), 'r', '/'), 'nobody else gains any');
});

test.serial('failures are never cached: a user added after a failed login can log in at once', async (t) => {
  const now = 5_000_000;
  const a = authorizer(t, { clock: () => now });
  const queries = countQueries(a);
  const name = unique('late');
  t.false(await accepts(a, name, 'pw'));
  await addUser(name, await hashPassword('pw', FAST), '/srv/late', { enabled: false });
  t.false(await accepts(a, name, 'pw'), 'disabled');
  await db().query('UPDATE users SET enabled = true WHERE name = $1', [name]);
  t.true(await accepts(a, name, 'pw'));
  t.is(queries.count, 3);
});

test.serial('names the schema cannot hold are refused without a query; close() twice is fine', async (t) => {
  const a = new PostgresAuthorizer({ connectionString: db().connectionString });
  const queries = countQueries(a);
  t.false(await accepts(a, 'nul\0byte', 'pw'));
  t.false(await accepts(a, 'x'.repeat(256), 'pw'));
  t.false(await accepts(a, '', 'pw'));
  t.is(queries.count, 0);
  await a.close();
  await a.close();
});

test.serial('database stopped: logins get 421 and the server keeps running; open sessions keep working; started again: logins work', async (t) => {
  const server = db();
  let now = 9_000_000;
  const a = authorizer(t, { clock: () => now, connectTimeout: 1, queryTimeout: 1 });
  const s = await startServer(t, { authorizer: a });
  const home = tempHome(t);
  const writer = unique('w');
  const reader = unique('r');
  await addUser(writer, bcrypt.hashSync('wpw', 4), home, { perm: WRITER_PERM });
  await addUser(reader, await hashPassword('rpw', FAST), home);

  const open = await LineClient.open(s.port);
  await open.login(writer, 'wpw');

  await server.stop();
  try {
    const c = await LineClient.open(s.port);
    t.is((await c.cmd(`USER ${reader}`)).code, 331);
    t.is((await c.cmd('PASS rpw')).code, 421);
    await c.whenClosed();

    // Still accepting, and the logged-in session's permission checks need no database.
    t.is((await open.cmd('MKD made-while-down')).code, 257);
    t.true(fs.existsSync(path.join(home, 'made-while-down')));
    t.is((await open.cmd(`USER ${writer}`)).code, 503, 'already logged in');

    now += 60_000; // past the TTL: the writer's row must be read again too
    const again = await LineClient.open(s.port);
    t.is((await again.cmd(`USER ${writer}`)).code, 331);
    t.is((await again.cmd('PASS wpw')).code, 421);
    await again.whenClosed();
  } finally {
    await server.start();
  }

  const back = await LineClient.open(s.port);
  await back.login(reader, 'rpw');
  t.is((await back.cmd('PWD')).code, 257);
  back.close();
  open.close();
});

test.serial('a database that accepts connections but never answers times out as unavailable', async (t) => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const sock of sockets) sock.destroy();
    silent.close();
  });
  const { port } = silent.address() as net.AddressInfo;
  const a = new PostgresAuthorizer({ host: '127.0.0.1', port, user: 'x', database: 'x', connectTimeout: 0.2, queryTimeout: 0.2 });
  t.teardown(() => a.close());
  const started = Date.now();
  const err = (await t.throwsAsync(a.validateAuthentication('anyone', 'pw', CLIENT))) as { code?: string };
  t.is(err.code, 'FTPD_ERR_AUTH_UNAVAILABLE');
  t.true(Date.now() - started < 10_000, 'gave up instead of hanging');
});

test.serial('the schema refuses plain-text passwords, unknown letters and relative paths', async (t) => {
  const name = unique('bad');
  await t.throwsAsync(db().query("INSERT INTO users (name, password_hash, home) VALUES ($1, 'hunter2', '/h')", [name]));
  await t.throwsAsync(db().query("INSERT INTO users (name, password_hash, home, perm) VALUES ($1, $2, '/h', 'rwx')", [name, bcrypt.hashSync('x', 4)]));
  await t.throwsAsync(db().query("INSERT INTO users (name, password_hash, home) VALUES ($1, $2, 'h')", [name, bcrypt.hashSync('x', 4)]));
  await addUser(name, bcrypt.hashSync('x', 4), '/h');
  await t.throwsAsync(db().query("INSERT INTO perm_overrides (user_name, directory, perm) VALUES ($1, 'uploads', 'elr')", [name]));
  await t.throwsAsync(db().query("INSERT INTO perm_overrides (user_name, directory, perm) VALUES ('nobody-at-all', '/x', 'elr')"));
  await db().query("INSERT INTO perm_overrides (user_name, directory, perm) VALUES ($1, '/x', 'elr')", [name]);
  await db().query('DELETE FROM users WHERE name = $1', [name]);
  t.deepEqual(await db().query('SELECT * FROM perm_overrides WHERE user_name = $1', [name]), [], 'overrides go with their user');
});

test.serial('limits come from the row read at login (bigint columns too); getLimits never queries; the schema refuses negatives', async (t) => {
  let now = 20_000_000;
  const a = authorizer(t, { cacheTtl: 5, clock: () => now });
  const queries = countQueries(a);
  const name = unique('limits');
  await addUser(name, await hashPassword('pw', FAST), '/srv/limits');
  await db().query('UPDATE users SET max_sessions = 3, write_limit = 0, quota_bytes = $2, quota_files = 100 WHERE name = $1', [
    name,
    String(2 ** 40),
  ]);
  t.deepEqual(a.getLimits(name), {}, 'nothing known before a login');
  t.true(await accepts(a, name, 'pw'));
  t.is(queries.count, 1);
  // NULL and 0 are no limit; an int8 comes back from pg as a string and is made a number.
  t.deepEqual(a.getLimits(name), { maxSessions: 3, quotaBytes: 2 ** 40, quotaFiles: 100 });
  await db().query('UPDATE users SET max_sessions = NULL, read_limit = 65536 WHERE name = $1', [name]);
  t.deepEqual(a.getLimits(name), { maxSessions: 3, quotaBytes: 2 ** 40, quotaFiles: 100 }, 'the cached row answers');
  t.is(queries.count, 1, 'getLimits does not query');
  now += 6_000;
  t.true(await accepts(a, name, 'pw'));
  t.deepEqual(a.getLimits(name), { readLimit: 65536, quotaBytes: 2 ** 40, quotaFiles: 100 });
  t.is(queries.count, 2);

  for (const column of ['max_sessions', 'read_limit', 'write_limit', 'quota_bytes', 'quota_files']) {
    await t.throwsAsync(db().query(`UPDATE users SET ${column} = -1 WHERE name = $1`, [name]), undefined, column);
  }
});

test.serial('the schema file upgrades a users table made before the limit columns, and may be loaded twice', async (t) => {
  const sql = fs.readFileSync(path.join(__dirname, '..', '..', 'conf', 'ftpdlib-schema.sql'), 'utf8');
  await db().query(
    'CREATE SCHEMA before_limits; CREATE TABLE before_limits.users (name text PRIMARY KEY, password_hash text NOT NULL, ' +
      "home text NOT NULL, perm text NOT NULL DEFAULT 'elr', msg_login text, msg_quit text, enabled boolean NOT NULL DEFAULT true, " +
      'created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())',
  );
  await db().query(`INSERT INTO before_limits.users (name, password_hash, home) VALUES ('old', $1, '/srv/old')`, [await hashPassword('pw', FAST)]);
  for (let i = 0; i < 2; i++) await db().query(`SET search_path TO before_limits; ${sql}`);
  await db().query("UPDATE before_limits.users SET quota_files = 9 WHERE name = 'old'");
  await t.throwsAsync(db().query("UPDATE before_limits.users SET quota_files = -9 WHERE name = 'old'"), undefined, 'the CHECK came too');
  const a = authorizer(t, { tables: { users: 'before_limits.users', overrides: 'before_limits.perm_overrides' } });
  t.true(await accepts(a, 'old', 'pw'));
  t.deepEqual(a.getLimits('old'), { quotaFiles: 9 });
  await loadSchema(db());
});

registerLoginSuite(test, 'postgres', async (_t, homes) => {
  const reader = unique('reader');
  const writer = unique('writer');
  const limited = unique('limited');
  await addUser(reader, await hashPassword('reader-pw', FAST), homes.reader, { perm: READER_PERM, msgLogin: READER_MSG });
  await db().query('INSERT INTO perm_overrides (user_name, directory, perm, recursive) VALUES ($1, $2, $3, $4)', [
    reader,
    UPLOADS_OVERRIDE.path,
    UPLOADS_OVERRIDE.perm,
    UPLOADS_OVERRIDE.recursive,
  ]);
  // bcrypt is accepted alongside $scrypt$.
  await addUser(writer, bcrypt.hashSync('writer-pw', 4).replace(/^\$2b\$/, '$2y$'), homes.writer, { perm: WRITER_PERM });
  // The other limit columns stay NULL: no limit.
  await addUser(limited, await hashPassword('limited-pw', FAST), homes.limited);
  await db().query('UPDATE users SET max_sessions = $2 WHERE name = $1', [limited, LIMITED_MAX_SESSIONS]);
  return {
    authorizer: authorizer(_t),
    reader: { name: reader, password: 'reader-pw' },
    writer: { name: writer, password: 'writer-pw' },
    limited: { name: limited, password: 'limited-pw' },
  };
});
