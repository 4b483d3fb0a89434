import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { MemoryFileSystem, type FileHandle, type FileSystem } from '../../src';
import { LineClient, connectData, type Reply } from './line-client';
import { waitForNoSessions } from './server';

/** How the data connection is made: the server listens (passive) or connects to us (active). */
export type DataMode = 'passive' | 'active';

/**
 * A data connection being prepared over a LineClient. `socket()` resolves to
 * the connected data socket once the server's side is there (passive: at once;
 * active: when the server connects after its 150).
 */
export interface DataPlan {
  socket(): Promise<net.Socket>;
  close(): void;
}

export interface PrepareOptions {
  /** Use PASV / PORT instead of EPSV / EPRT. */
  legacy?: boolean;
  /** Where to connect (passive) or listen (active). Default: the control connection's addresses. */
  host?: string;
}

/** Parse a 227 reply's h1,h2,h3,h4,p1,p2. */
export function parsePasv(r: Reply): { host: string; port: number } {
  const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(r.text);
  if (r.code !== 227 || !m) throw new Error(`PASV: ${r.code} ${r.text}`);
  return { host: `${m[1]}.${m[2]}.${m[3]}.${m[4]}`, port: Number(m[5]) * 256 + Number(m[6]) };
}

/** Parse a 229 reply's (|||port|). */
export function parseEpsv(r: Reply): number {
  const m = /\(\|\|\|(\d+)\|\)/.exec(r.text);
  if (r.code !== 229 || !m) throw new Error(`EPSV: ${r.code} ${r.text}`);
  return Number(m[1]);
}

/** Listen on host:0 and resolve with the listener once it is bound. */
export function listenEphemeral(host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host, port: 0 }, () => {
      srv.off('error', reject);
      resolve(srv);
    });
  });
}

function bare(addr: string | undefined): string {
  if (!addr) return '127.0.0.1';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** Send EPSV/PASV or EPRT/PORT and make the data connection ready. */
export async function prepareData(c: LineClient, mode: DataMode, opts: PrepareOptions = {}): Promise<DataPlan> {
  if (mode === 'passive') {
    let host = opts.host ?? bare(c.socket.remoteAddress);
    let port: number;
    if (opts.legacy) {
      const p = parsePasv(await c.cmd('PASV'));
      port = p.port;
      host = opts.host ?? p.host;
    } else {
      port = parseEpsv(await c.cmd('EPSV'));
    }
    const sock = await connectData(port, host);
    return {
      socket: () => Promise.resolve(sock),
      close: () => sock.destroy(),
    };
  }
  const host = opts.host ?? bare(c.socket.localAddress);
  const srv = await listenEphemeral(host);
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((resolve) => {
    srv.once('connection', (s) => {
      s.pause();
      srv.close();
      resolve(s);
    });
  });
  let r: Reply;
  if (opts.legacy) {
    r = await c.cmd(`PORT ${host.split('.').join(',')},${port >> 8},${port & 255}`);
  } else {
    r = await c.cmd(`EPRT |${net.isIPv6(host) ? 2 : 1}|${host}|${port}|`);
  }
  if (r.code !== 200) {
    srv.close();
    throw new Error(`${opts.legacy ? 'PORT' : 'EPRT'}: ${r.code} ${r.text}`);
  }
  let got: net.Socket | null = null;
  void accepted.then((s) => (got = s));
  return {
    socket: () => accepted,
    close: () => {
      srv.close();
      got?.destroy();
    },
  };
}

export interface Digest {
  bytes: number;
  sha256: string;
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

export function fileDigest(file: string): Promise<Digest> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    fs.createReadStream(file, { highWaterMark: 1 << 20 })
      .on('data', (c: string | Buffer) => {
        bytes += c.length;
        h.update(c);
      })
      .once('error', reject)
      .once('end', () => resolve({ bytes, sha256: h.digest('hex') }));
  });
}

/** Read a socket to its end, hashing as it goes (for large transfers); `keep` also keeps the bytes. */
export function digestSocket(s: net.Socket, keep = false): Promise<Digest & { data?: Buffer }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    const chunks: Buffer[] = [];
    let bytes = 0;
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      h.update(c);
      if (keep) chunks.push(c);
    });
    s.once('end', () => resolve({ bytes, sha256: h.digest('hex'), data: keep ? Buffer.concat(chunks) : undefined }));
    s.once('error', reject);
    s.resume();
  });
}

const cache = new Map<number, Buffer>();
/** Random bytes of a given size, made once per size per process. */
export function randomContent(size: number): Buffer {
  let b = cache.get(size);
  if (!b) {
    b = size === 0 ? Buffer.alloc(0) : randomBytes(size);
    cache.set(size, b);
  }
  return b;
}

export interface RetrOutcome {
  /** The preliminary reply (150/125), or the refusal. */
  first: Reply;
  /** The final reply, when there was a preliminary one. */
  final: Reply | null;
  data: Buffer;
  digest: Digest;
}

/** RETR (or LIST, NLST...) over a fresh data connection; `keep` keeps the bytes in `data`. */
export async function retr(
  c: LineClient,
  mode: DataMode,
  line: string,
  opts: PrepareOptions & { keep?: boolean; timeoutMs?: number } = {},
): Promise<RetrOutcome> {
  const plan = await prepareData(c, mode, opts);
  c.send(`${line}\r\n`);
  const first = await c.read(opts.timeoutMs ?? 30000);
  if (!first) throw new Error(`connection closed after ${line}`);
  if (first.code !== 150 && first.code !== 125) {
    plan.close();
    return { first, final: null, data: Buffer.alloc(0), digest: { bytes: 0, sha256: sha256(Buffer.alloc(0)) } };
  }
  const sock = await plan.socket();
  const d = await digestSocket(sock, opts.keep ?? true);
  sock.destroy();
  const final = await c.read(opts.timeoutMs ?? 30000);
  return { first, final, data: d.data ?? Buffer.alloc(0), digest: { bytes: d.bytes, sha256: d.sha256 } };
}

export interface StorOutcome {
  first: Reply;
  final: Reply | null;
}

/**
 * STOR/APPE/STOU over a fresh data connection: send `chunks` (written one
 * by one, each flushed before the next, so chunk boundaries reach the server
 * as separate segments), end with a FIN, and read the final reply.
 */
export async function stor(
  c: LineClient,
  mode: DataMode,
  line: string,
  body: Buffer | Buffer[],
  opts: PrepareOptions & { timeoutMs?: number } = {},
): Promise<StorOutcome> {
  const plan = await prepareData(c, mode, opts);
  c.send(`${line}\r\n`);
  const first = await c.read(opts.timeoutMs ?? 30000);
  if (!first) throw new Error(`connection closed after ${line}`);
  if (first.code !== 150 && first.code !== 125) {
    plan.close();
    return { first, final: null };
  }
  const sock = await plan.socket();
  sock.on('error', () => {});
  const chunks = Array.isArray(body) ? body : [body];
  for (const chunk of chunks) {
    if (chunks.length > 1) sock.setNoDelay(true);
    await new Promise<void>((resolve, reject) => sock.write(chunk, (err) => (err ? reject(err) : resolve())));
  }
  sock.end();
  const final = await c.read(opts.timeoutMs ?? 30000);
  sock.destroy();
  return { first, final };
}

/** A logged-in LineClient (TYPE I unless told otherwise). */
export async function loggedIn(port: number, user: string, pass: string, host = '127.0.0.1', type: 'I' | 'A' = 'I'): Promise<LineClient> {
  const c = await LineClient.open(port, host);
  await c.login(user, pass);
  const r = await c.cmd(`TYPE ${type}`);
  if (r.code !== 200) throw new Error(`TYPE ${type}: ${r.code} ${r.text}`);
  return c;
}

/** Resolve with the arguments of the next `name` event of an emitter. */
export function nextEvent<T extends unknown[]>(
  emitter: { once(name: string, fn: (...args: T) => void): unknown; off(name: string, fn: (...args: T) => void): unknown },
  name: string,
  timeoutMs = 30000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (...args: T): void => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.off(name, fn);
      reject(new Error(`no ${name} event within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.once(name, fn);
  });
}

/**
 * For suites that drive subprocess clients: before the server's own teardown
 * closes it, wait until the clients' sessions are gone. (server.close() can
 * resolve while a just-quit session is still counted; that bug has its own
 * test in test/transfer/vanishing.test.ts, and is kept out of interop results.)
 */
export function settleSessionsOnTeardown(t: { teardown(fn: () => Promise<void>): void }, server: { sessionCount: number } & Parameters<typeof waitForNoSessions>[0]): void {
  t.teardown(() => waitForNoSessions(server));
}

/** A sparse file far larger than any socket buffer: a RETR of it is still running when the test acts. */
export function sparse(root: string, name: string, size = 2 * 1024 ** 3): void {
  const fd = fs.openSync(path.join(root, name), 'w');
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
}

/** Resolves once the socket has bytes to read (without consuming the stream). */
export function firstBytes(s: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('readable', () => resolve());
    s.once('error', reject);
  });
}

/**
 * Prepare a data connection (`mode`), send `line` (RETR, STOR...), check the preliminary
 * 150/125, and return the data socket (its errors are the test's to observe through the replies).
 */
export async function startTransfer(
  t: { true: (v: boolean, message?: string) => void },
  c: LineClient,
  mode: DataMode,
  line: string,
): Promise<net.Socket> {
  const plan = await prepareData(c, mode);
  c.send(`${line}\r\n`);
  const pre = await c.read();
  t.true(pre?.code === 150 || pre?.code === 125, `${pre?.code} ${pre?.text}`);
  const data = await plan.socket();
  data.on('error', () => {});
  return data;
}

/** A transfer whose client holds still: its control connection, its data socket, and its direction. */
export interface HeldTransfer {
  c: { read(timeoutMs?: number): Promise<Reply | null> };
  data: net.Socket;
  up: boolean;
}

/**
 * Let held transfers move, all at once: each upload sends `content` and ends (over TLS, with a
 * close_notify), each download is read to the end and must be `content`. The final reply code of
 * each transfer (0 when none came).
 */
export function finishHeldTransfers(jobs: HeldTransfer[], content: Buffer): Promise<number[]> {
  const digest = sha256(content);
  return Promise.all(
    jobs.map(async ({ c, data, up }, i) => {
      if (up) {
        data.end(content);
        await new Promise((r) => data.once('close', r));
      } else {
        const got = await digestSocket(data);
        if (got.bytes !== content.length || got.sha256 !== digest) throw new Error(`download ${i}: ${got.bytes} bytes, ${got.sha256}`);
        data.destroy();
      }
      const final = await c.read(60_000);
      return final?.code ?? 0;
    }),
  );
}

/**
 * `mem` with the read streams of its files made by `read` (given the file's handle and the
 * offset it was opened at), and any other methods replaced by `more`: a disk that fails, trickles,
 * or hands a file over at once, for the tests.
 */
export function withReads(mem: MemoryFileSystem, read: (h: FileHandle, offset: number) => Readable, more: PropertyDescriptorMap = {}): FileSystem {
  return Object.create(mem, {
    openRead: {
      value: async (p: string, offset: number) => {
        const h = await mem.openRead(p, offset);
        return {
          offset: h.offset,
          size: h.size,
          close: () => h.close(),
          createWriteStream: () => h.createWriteStream(),
          createReadStream: () => read(h, offset),
        };
      },
    },
    ...more,
  }) as FileSystem;
}

/**
 * A filesystem with one file, `held.bin`, whose read stream hands the whole file over as one
 * chunk: the server's stream path has read it all while most of it still waits in the data
 * socket's buffer. `handedOver` settles when the server has taken the last byte from the file.
 */
export function oneChunkFile(size: number): { fileSystem: () => FileSystem; handedOver: Promise<void>; body: Buffer } {
  const body = randomContent(size);
  const mem = new MemoryFileSystem({ files: { '/held.bin': body } });
  let handed!: () => void;
  const handedOver = new Promise<void>((resolve) => (handed = resolve));
  const fileSystem = (): FileSystem =>
    withReads(mem, (_h, offset) => {
      const r = Readable.from([body.subarray(offset)], { objectMode: false });
      r.once('end', handed);
      return r;
    });
  return { fileSystem, handedOver, body };
}
