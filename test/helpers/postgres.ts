/**
 * A throwaway PostgreSQL server for tests: initdb in a temp folder, listening on 127.0.0.1 at a
 * free port (and a Unix socket in the same folder), trust authentication, fsync off.
 *
 * Needs the Debian package `postgresql` (server binaries in /usr/lib/postgresql/<ver>/bin).
 * When they are missing, startPostgres throws with a message that says so: the tests fail, they
 * are not skipped. initdb refuses to run as root, so as root every server command runs as the
 * `postgres` OS user (created by the package) through runuser, in a folder that user owns.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';

const run = promisify(execFile);

export interface PgServer {
  host: string;
  port: number;
  user: string;
  database: string;
  /** For pg's Pool/Client. */
  connectionString: string;
  /** The folder holding the cluster, its socket and its log. */
  dir: string;
  /** pg_ctl stop -m fast, waiting until it is down. */
  stop(): Promise<void>;
  /** Start it again on the same port (after stop). */
  start(): Promise<void>;
  /** Run SQL as the superuser on a fresh connection. */
  query(sql: string, values?: unknown[]): Promise<Array<Record<string, unknown>>>;
  /** Stop (if running) and remove the folder. */
  destroy(): Promise<void>;
}

/** The newest /usr/lib/postgresql/<ver>/bin holding initdb and pg_ctl. */
export function findPgBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base)
    ? fs
        .readdirSync(base)
        .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')) && fs.existsSync(path.join(base, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      'PostgreSQL server binaries not found (no /usr/lib/postgresql/<version>/bin/initdb). ' +
        'These tests need a real PostgreSQL: install the Debian package "postgresql" (apt-get install -y postgresql).',
    );
  }
  return path.join(base, versions[0], 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The uid/gid to run the server as: ourselves, or `postgres` when we are root. */
function serverAccount(): { uid: number; gid: number; asOther: boolean } {
  if (process.getuid?.() !== 0) return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, asOther: false };
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (line === undefined) {
    throw new Error('running as root, and there is no "postgres" OS user to run initdb as (the Debian package "postgresql" creates it)');
  }
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid), asOther: true };
}

export async function startPostgres(): Promise<PgServer> {
  const bin = findPgBin();
  const account = serverAccount();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  if (account.asOther) fs.chownSync(dir, account.uid, account.gid);
  const port = await freePort();

  const pgCmd = async (tool: string, args: string[]): Promise<void> => {
    const file = account.asOther ? 'runuser' : path.join(bin, tool);
    const argv = account.asOther ? ['-u', 'postgres', '--', path.join(bin, tool), ...args] : args;
    try {
      await run(file, argv, { cwd: dir, timeout: 60_000 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      let log = '';
      try {
        log = fs.readFileSync(logFile, 'utf8').slice(-2000);
      } catch {
        // No log yet.
      }
      throw new Error(`${tool} ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}\n${log}`);
    }
  };

  const serverOpts = `-k ${dir} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  let running = false;
  const start = async (): Promise<void> => {
    await pgCmd('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '60', '-o', serverOpts, 'start']);
    running = true;
  };
  const stop = async (): Promise<void> => {
    if (!running) return;
    await pgCmd('pg_ctl', ['-D', data, '-w', '-t', '60', '-m', 'fast', 'stop']);
    running = false;
  };
  try {
    await pgCmd('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    await start();
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const connectionString = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const query = async (sql: string, values?: unknown[]): Promise<Array<Record<string, unknown>>> => {
    const c = new Client({ connectionString });
    await c.connect();
    try {
      return (await c.query(sql, values)).rows as Array<Record<string, unknown>>;
    } finally {
      await c.end();
    }
  };
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    connectionString,
    dir,
    stop,
    start,
    query,
    async destroy() {
      try {
        await stop();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Load conf/ftpdlib-schema.sql into the server. */
export async function loadSchema(pg: PgServer): Promise<void> {
  const sql = fs.readFileSync(path.join(__dirname, '..', '..', 'conf', 'ftpdlib-schema.sql'), 'utf8');
  await pg.query(sql);
}
