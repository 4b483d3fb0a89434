// Shared helpers of the command suites (not a test file: ava runs *.test.ts only).
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { MemoryFileSystem, type FileSystem } from '../../src';
import type { ExecutionContext } from 'ava';
import { LineClient, readAll, type Reply } from '../helpers/line-client';
import { withReads } from '../helpers/data-client';
import { PASS, USER, startServer, type StartOptions, type TestServer } from '../helpers/server';

export interface Logged {
  s: TestServer;
  c: LineClient;
}

/** A server and a raw client logged in as the demo user. The client is closed at teardown. */
export async function loggedIn(t: ExecutionContext, opts: StartOptions = {}): Promise<Logged> {
  const s = await startServer(t, opts);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(USER, PASS);
  return { s, c };
}

/** Open a raw client and log in as `user`. Closed at teardown. */
export async function loginAs(t: ExecutionContext, s: TestServer, user: string, pass: string): Promise<LineClient> {
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(user, pass);
  return c;
}

export interface DataResult {
  /** The first reply to the command (1xx when a transfer started, else the refusal). */
  first: Reply;
  /** The reply that ended the transfer (null when none started). */
  final: Reply | null;
  /** Bytes the server sent over the data connection. */
  data: Buffer;
}

/**
 * EPSV, connect, send `line` (RETR, LIST, NLST, MLSD...) and collect what the
 * server sends on the data connection and its replies.
 */
export async function fetch(c: LineClient, line: string): Promise<DataResult> {
  const sock = await c.epsvConnect();
  const dataP = readAll(sock).catch(() => Buffer.alloc(0));
  const first = await c.cmd(line);
  if (first.code >= 200) {
    sock.destroy();
    return { first, final: null, data: Buffer.alloc(0) };
  }
  const data = await dataP;
  const final = await c.read();
  if (!final) throw new Error(`connection closed during ${line}`);
  return { first, final, data };
}

/** EPSV, connect, send `line` (STOR, APPE, STOU) and upload `body`. */
export async function upload(c: LineClient, line: string, body: Buffer | string): Promise<DataResult> {
  const sock = await c.epsvConnect();
  sock.on('error', () => {});
  const first = await c.cmd(line);
  if (first.code >= 200) {
    sock.destroy();
    return { first, final: null, data: Buffer.alloc(0) };
  }
  sock.end(body);
  const final = await c.read();
  if (!final) throw new Error(`connection closed during ${line}`);
  return { first, final, data: Buffer.alloc(0) };
}

/** The lines of a listing sent over a data connection. */
export function lines(data: Buffer): string[] {
  const s = data.toString('utf8');
  if (s === '') return [];
  if (!s.endsWith('\r\n')) throw new Error(`listing does not end with CRLF: ${JSON.stringify(s.slice(-20))}`);
  return s.slice(0, -2).split('\r\n');
}

/** Parse one MLSD line into facts and name. */
export function parseMlsx(line: string): { facts: Record<string, string>; name: string } {
  const sp = line.indexOf(' ');
  const facts: Record<string, string> = {};
  for (const f of line.slice(0, sp).split(';')) {
    if (!f) continue;
    const eq = f.indexOf('=');
    facts[f.slice(0, eq).toLowerCase()] = f.slice(eq + 1);
  }
  return { facts, name: line.slice(sp + 1) };
}

/** A TCP listener for active mode (PORT/EPRT): resolves with the first connection's bytes. */
export async function activeListener(
  t: ExecutionContext,
  host = '127.0.0.1',
): Promise<{ port: number; received: Promise<Buffer>; server: net.Server }> {
  const server = net.createServer();
  let resolveData!: (b: Buffer) => void;
  const received = new Promise<Buffer>((r) => (resolveData = r));
  server.on('connection', (sock) => {
    server.close();
    readAll(sock)
      .then(resolveData)
      .catch(() => resolveData(Buffer.alloc(0)));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, received, server };
}

/** Send NOOP and expect 200: the session is still usable. */
export async function assertAlive(t: ExecutionContext, c: LineClient, why = ''): Promise<void> {
  const r = await c.cmd('NOOP');
  t.is(r.code, 200, `session still answers NOOP ${why}`);
}

/** A fresh connection still gets its greeting and can log in. */
export async function assertAcceptsNew(t: ExecutionContext, s: TestServer): Promise<void> {
  const c = await LineClient.open(s.port);
  try {
    await c.login(USER, PASS);
    t.is((await c.cmd('NOOP')).code, 200);
  } finally {
    c.close();
  }
}

/** Read replies until one has `code` (other replies are returned too). */
export async function readUntil(c: LineClient, code: number, max = 10000): Promise<Reply[]> {
  const seen: Reply[] = [];
  for (let i = 0; i < max; i++) {
    const r = await c.read();
    if (!r) throw new Error(`connection closed while waiting for ${code}; saw ${seen.map((x) => x.code).join(',')}`);
    seen.push(r);
    if (r.code === code) return seen;
  }
  throw new Error(`no ${code} reply among ${max}`);
}

export interface Trickling {
  fs: FileSystem;
  mem: MemoryFileSystem;
  /** Chunks read so far, all files together. */
  chunks: () => number;
}

/**
 * A MemoryFileSystem holding `files` whose reads trickle (16 KiB every 20 ms), so that a copy or
 * a transfer is still running while a test acts; `chunks()` counts what was read.
 */
export function trickling(files: Record<string, Buffer>): Trickling {
  const mem = new MemoryFileSystem({ files });
  let chunksRead = 0;
  const slow = withReads(mem, (h) =>
    Readable.from(
      (async function* () {
        for await (const chunk of h.createReadStream()) {
          for (let i = 0; i < chunk.length; i += 16 * 1024) {
            await new Promise((r) => setTimeout(r, 20));
            chunksRead++;
            yield chunk.subarray(i, i + 16 * 1024);
          }
        }
      })(),
    ),
  );
  return { fs: slow, mem, chunks: () => chunksRead };
}
