import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import bunyan from 'bunyan';
import { Client } from 'basic-ftp';
import { Writable } from 'node:stream';
import { FtpServer, VirtualAuthorizer, type FtpServerOptions } from '../../src';
import { engineStats } from '../../src/native';

export const USER = 'demo';
export const PASS = 'demo-password';

export interface TestServer {
  server: FtpServer;
  port: number;
  host: string;
  /** The demo user's home on disk (a fresh temp folder). */
  root: string;
  auth: VirtualAuthorizer;
  /** ftp://demo:...@127.0.0.1:port */
  url: string;
  /** Records the server logged (level debug and up), for assertions on the transfer log. */
  records: Array<Record<string, unknown>>;
}

export interface StartOptions extends Partial<FtpServerOptions> {
  /** Letters for the demo user. Default: all. */
  perm?: string;
  /** Skip creating the demo user. */
  noUser?: boolean;
}

/** Low scrypt cost: the tests exercise logins, not hashing strength. */
const FAST_SCRYPT = { ln: 4, r: 8, p: 1 };

/**
 * A server on 127.0.0.1, port 0, with a temp root and a demo user. t.teardown
 * closes it, checks that no session was left behind, and removes the root.
 */
export async function startServer(t: ExecutionContext, opts: StartOptions = {}): Promise<TestServer> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-test-'));
  const { perm, noUser, ...serverOpts } = opts;
  const auth = (serverOpts.authorizer as VirtualAuthorizer | undefined) ?? new VirtualAuthorizer({ scrypt: FAST_SCRYPT });
  if (!noUser && !serverOpts.authorizer) auth.addUser(USER, PASS, root, { perm: perm ?? 'elradfmwMT' });
  const records: Array<Record<string, unknown>> = [];
  const logger = bunyan.createLogger({
    name: 'test',
    streams: [{ level: 'debug', type: 'raw', stream: { write: (r: object) => records.push(r as Record<string, unknown>) } as never }],
  });
  const server = new FtpServer({
    host: '127.0.0.1',
    port: 0,
    authFailedTimeout: 0.05,
    logger,
    ...serverOpts,
    authorizer: auth,
  });
  const addr = await server.listen();
  t.teardown(async () => {
    await server.close();
    if (server.sessionCount !== 0) throw new Error(`${server.sessionCount} sessions left open after close()`);
    fs.rmSync(root, { recursive: true, force: true });
  });
  return {
    server,
    port: addr.port,
    host: '127.0.0.1',
    root,
    auth,
    url: `ftp://${USER}:${PASS}@127.0.0.1:${addr.port}`,
    records,
  };
}

/** Resolve when the server has no open session (after clients quit). */
export function waitForNoSessions(server: FtpServer, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (server.sessionCount === 0) return resolve();
    const timer = setTimeout(() => {
      server.off('disconnect', check);
      reject(new Error(`${server.sessionCount} sessions still open`));
    }, timeoutMs);
    const check = (): void => {
      if (server.sessionCount === 0) {
        clearTimeout(timer);
        server.off('disconnect', check);
        resolve();
      }
    };
    server.on('disconnect', check);
  });
}

/** Count this process's open file descriptors. */
/** Poll `check` every 25 ms until it holds; throws `timed out: what` after `timeoutMs`. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Descriptors this process holds, less those the native engine's I/O threads keep for their life
 * (epoll, eventfd, a receive pipe). A thread starts with the first job it takes (the solo thread
 * with a transfer running alone, an ioNice thread with one that overlaps another), so which of
 * them exist depends on the tests that ran before and on timing: a leak check must not count them.
 */
export function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length - engineStats().heldFds;
}

/** Log in as the demo user with basic-ftp, download `name` (binary), QUIT; the bytes received. */
export async function downloadCount(port: number, name: string, user = USER, password = PASS): Promise<number> {
  const c = new Client(10000);
  let bytes = 0;
  try {
    await c.access({ host: '127.0.0.1', port, user, password });
    await c.downloadTo(
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          bytes += chunk.length;
          cb();
        },
      }),
      name,
    );
  } finally {
    c.close();
  }
  return bytes;
}

/** `fn` over `items`, at most `width` at a time (a burst of hundreds of connects would overflow the listen backlog). */
export async function inBatches<T, R>(items: T[], width: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}
