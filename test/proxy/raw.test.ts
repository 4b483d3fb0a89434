// The PROXY protocol on the wire, with hand-made headers: what follows the header is kept, bad,
// late and untrusted headers drop the connection (and only it), LOCAL keeps the proxy's address,
// and proxyProtocolData reads headers on passive data connections.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import type { SessionInfo } from '../../src';
import { V2_SIGNATURE } from '../../src/ftp/proxy-protocol';
import { LineClient, readAll } from '../helpers/line-client';
import { PASS, USER, startServer, type StartOptions, type TestServer } from '../helpers/server';
import { tlsOption } from '../helpers/tls';

function v2Inet4(src: string, sport: number, dst: string, dport: number, cmd = 1): Buffer {
  const h = Buffer.alloc(28);
  V2_SIGNATURE.copy(h, 0);
  h[12] = 0x20 | cmd;
  h[13] = 0x11;
  h.writeUInt16BE(12, 14);
  Buffer.from(src.split('.').map(Number)).copy(h, 16);
  Buffer.from(dst.split('.').map(Number)).copy(h, 20);
  h.writeUInt16BE(sport, 24);
  h.writeUInt16BE(dport, 26);
  return h;
}

async function server(t: ExecutionContext, opts: StartOptions = {}): Promise<{ s: TestServer; connects: SessionInfo[] }> {
  const s = await startServer(t, { proxyProtocol: 'auto', trustedProxies: ['127.0.0.1'], proxyProtocolTimeout: 0.3, ...opts });
  const connects: SessionInfo[] = [];
  s.server.on('connect', (i) => connects.push(i));
  return { s, connects };
}

/** A raw connection from 127.0.0.1: everything it receives, and when it is closed. */
function raw(t: ExecutionContext, port: number): Promise<{ socket: net.Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' }, () => resolve({ socket, received: () => got, closed }));
    t.teardown(() => socket.destroy());
    let got = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (got += d));
    socket.on('error', () => {});
    socket.once('error', reject);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
  });
}

/** A LineClient over a connection that first sends `header` (and what follows it, in the same write). */
async function proxied(t: ExecutionContext, port: number, first: Buffer): Promise<LineClient> {
  const c = await LineClient.connect(port, '127.0.0.1', '127.0.0.1');
  t.teardown(() => c.close());
  c.send(first);
  return c;
}

async function stillServes(t: ExecutionContext, s: TestServer): Promise<void> {
  const c = await proxied(t, s.port, Buffer.from('PROXY TCP4 127.0.0.4 127.0.0.1 4000 21\r\n'));
  t.is((await c.read())?.code, 220);
  await c.login(USER, PASS);
}

test('v1: the greeting comes after the header; a command in the same packet is not lost', async (t) => {
  const { s, connects } = await server(t);
  const c = await proxied(t, s.port, Buffer.from('PROXY TCP4 127.0.0.2 127.0.0.1 50123 21\r\nUSER demo\r\n'));
  t.is((await c.read())?.code, 220);
  t.is((await c.read())?.code, 331);
  t.is((await c.cmd(`PASS ${PASS}`)).code, 230);
  t.deepEqual(
    connects.map((i) => [i.remoteAddress, i.remotePort]),
    [['127.0.0.2', 50123]],
  );
  const stat = await c.cmd('STAT');
  t.true(stat.lines.some((l) => l.includes('Connected from: 127.0.0.2:50123')), stat.lines.join('\n'));
});

test('v2 sent a byte at a time, then commands: parsed incrementally, nothing lost', async (t) => {
  const { s, connects } = await server(t);
  const c = await LineClient.connect(s.port, '127.0.0.1', '127.0.0.1');
  t.teardown(() => c.close());
  c.socket.setNoDelay(true);
  const h = v2Inet4('127.0.0.5', 1234, '127.0.0.1', 21);
  for (const byte of h) await new Promise<void>((r) => c.socket.write(Buffer.from([byte]), () => r()));
  t.is((await c.read())?.code, 220);
  await c.login(USER, PASS);
  t.is(connects[0].remoteAddress, '127.0.0.5');
});

test('v2 LOCAL (a health check): a session with the proxy\'s own address', async (t) => {
  const { s, connects } = await server(t);
  const c = await proxied(t, s.port, v2Inet4('0.0.0.0', 0, '0.0.0.0', 0, 0));
  t.is((await c.read())?.code, 220);
  t.is(connects[0].remoteAddress, '127.0.0.1');
});

for (const [name, bytes] of [
  ['garbage', Buffer.from('HELLO\r\n')],
  ['an FTP command', Buffer.from('USER demo\r\n')],
  ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01])],
  ['a v1 header with a bad address', Buffer.from('PROXY TCP4 127.0.0.999 127.0.0.1 1 21\r\n')],
  ['a v1 header of more than 107 bytes', Buffer.from(`PROXY UNKNOWN ${'x'.repeat(120)}\r\n`)],
  ['a v2 header with a bad version', Buffer.concat([V2_SIGNATURE, Buffer.from([0x31, 0x11, 0x00, 0x0c]), Buffer.alloc(12)])],
] as const) {
  test(`a trusted proxy sending ${name}: dropped without a greeting; the server stays up`, async (t) => {
    const { s } = await server(t);
    const r = await raw(t, s.port);
    r.socket.write(bytes);
    await r.closed;
    t.is(r.received(), '');
    t.is(s.server.sessionCount, 0);
    t.true(s.records.some((rec) => rec.msg === 'PROXY header refused; connection dropped' && rec.proxy === '127.0.0.1'));
    await stillServes(t, s);
  });
}

test('a truncated v2 header, or none at all: dropped after proxyProtocolTimeout', async (t) => {
  const { s } = await server(t);
  const truncated = await raw(t, s.port);
  truncated.socket.write(v2Inet4('127.0.0.2', 1, '127.0.0.1', 21).subarray(0, 20));
  const silent = await raw(t, s.port);
  await Promise.all([truncated.closed, silent.closed]);
  t.is(truncated.received(), '');
  t.is(silent.received(), '');
  const refused = s.records.filter((r) => r.msg === 'PROXY header refused; connection dropped');
  t.is(refused.length, 2);
  t.regex(String((refused[0].err as { message?: string }).message), /no complete header within 300 ms/);
  await stillServes(t, s);
});

test('a v2 header when the server expects v1: dropped', async (t) => {
  const { s } = await server(t, { proxyProtocol: 'v1' });
  const r = await raw(t, s.port);
  r.socket.write(v2Inet4('127.0.0.2', 1, '127.0.0.1', 21));
  await r.closed;
  t.is(r.received(), '');
});

test('a header from an address that is not a trusted proxy: greeted as a direct client, dropped at the header', async (t) => {
  const { s, connects } = await server(t, { trustedProxies: ['127.0.0.9', '10.0.0.0/8'] });
  const r = await raw(t, s.port);
  await new Promise<void>((resolve) => r.socket.once('data', () => resolve()));
  t.regex(r.received(), /^220 /);
  r.socket.write('PROXY TCP4 192.0.2.1 127.0.0.1 1 21\r\nUSER demo\r\n');
  await r.closed;
  t.notRegex(r.received(), /331/);
  t.is(connects[0].remoteAddress, '127.0.0.1');
  t.true(s.records.some((rec) => rec.msg === 'PROXY header from an address not in trustedProxies; connection dropped'));
  // Direct clients (no header) are served.
  const d = await LineClient.open(s.port);
  t.teardown(() => d.close());
  await d.login(USER, PASS);
});

test('maxConnections counts connections waiting for their header', async (t) => {
  const { s } = await server(t, { maxConnections: 1, proxyProtocolTimeout: 5 });
  const waiting = await raw(t, s.port);
  const extra = await raw(t, s.port);
  await extra.closed;
  t.regex(extra.received(), /^421 /);
  waiting.socket.write('PROXY TCP4 127.0.0.2 127.0.0.1 1 21\r\n');
  await new Promise<void>((resolve) => waiting.socket.once('data', () => resolve()));
  t.regex(waiting.received(), /^220 /);
});

// ---- proxyProtocolData: the balancer relays the passive ports too ----

async function dataServer(t: ExecutionContext): Promise<{ s: TestServer; c: LineClient }> {
  const { s } = await server(t, { proxyProtocolData: true, proxyProtocolTimeout: 5 });
  const c = await proxied(t, s.port, Buffer.from('PROXY TCP4 127.0.0.2 127.0.0.1 4000 21\r\n'));
  t.is((await c.read())?.code, 220);
  await c.login(USER, PASS);
  t.is((await c.cmd('TYPE I')).code, 200);
  return { s, c };
}

async function epsvPort(c: LineClient): Promise<number> {
  const r = await c.cmd('EPSV');
  const m = /\(\|\|\|(\d+)\|\)/.exec(r.text);
  if (r.code !== 229 || !m) throw new Error(`EPSV: ${r.code} ${r.text}`);
  return Number(m[1]);
}

function dataConnect(t: ExecutionContext, port: number, first: Buffer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const d = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' }, () => {
      d.write(first);
      resolve(d);
    });
    t.teardown(() => d.destroy());
    d.once('error', reject);
  });
}

test('proxyProtocolData: a download over a relayed data connection naming the client', async (t) => {
  const { s, c } = await dataServer(t);
  const data = crypto.randomBytes(100_000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), data);
  const d = await dataConnect(t, await epsvPort(c), v2Inet4('127.0.0.2', 5000, '127.0.0.1', 60000));
  const body = readAll(d);
  t.true([125, 150].includes((await c.cmd('RETR f.bin')).code));
  t.true((await body).equals(data));
  t.is((await c.read())?.code, 226);
});

test('proxyProtocolData: upload bytes sent with the header in one packet are all stored', async (t) => {
  const { s, c } = await dataServer(t);
  const data = crypto.randomBytes(70_000);
  const port = await epsvPort(c);
  const d = await dataConnect(t, port, Buffer.concat([Buffer.from('PROXY TCP4 127.0.0.2 127.0.0.1 5001 60000\r\n'), data]));
  d.end();
  const r = await c.cmd('STOR up.bin');
  t.true([125, 150].includes(r.code), r.text);
  t.is((await c.read())?.code, 226);
  t.true(fs.readFileSync(path.join(s.root, 'up.bin')).equals(data));
});

test('proxyProtocolData: a relayed data connection for another client is refused; a bad header is dropped', async (t) => {
  const { s, c } = await dataServer(t);
  fs.writeFileSync(path.join(s.root, 'f.bin'), 'x');
  const port = await epsvPort(c);
  const foreign = await dataConnect(t, port, v2Inet4('127.0.0.66', 5000, '127.0.0.1', 60000));
  await new Promise<void>((r) => foreign.resume().once('close', () => r()));
  const bad = await dataConnect(t, port, Buffer.from('GARBAGE\r\n'));
  await new Promise<void>((r) => bad.resume().once('close', () => r()));
  t.true(s.records.some((r) => r.msg === 'refused data connection from a foreign address' && r.remote === '127.0.0.66'));
  t.true(s.records.some((r) => r.msg === 'PROXY header refused on a data connection'));
  // The client's own connection still gets through.
  const d = await dataConnect(t, port, Buffer.from('PROXY TCP4 127.0.0.2 127.0.0.1 5002 60000\r\n'));
  const body = readAll(d);
  await c.cmd('RETR f.bin');
  t.is((await body).toString(), 'x');
  t.is((await c.read())?.code, 226);
});

test('implicit FTPS behind a proxy: the ClientHello in the same packet as the header is not lost', async (t) => {
  const { s, connects } = await server(t, { tls: tlsOption(), implicitTlsPort: 0 });
  const header = Buffer.from('PROXY TCP4 127.0.0.7 127.0.0.1 7000 990\r\n');
  const rawSocket = net.connect({ port: s.server.implicitAddress()!.port, host: '127.0.0.1' });
  t.teardown(() => rawSocket.destroy());
  // The TLS client writes through this pipe: its first write (the ClientHello) goes out glued to the header.
  let first = true;
  const wire = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      rawSocket.write(first ? Buffer.concat([header, chunk]) : chunk, cb);
      first = false;
    },
    read() {},
  });
  rawSocket.on('data', (d: Buffer) => wire.push(d));
  rawSocket.on('end', () => wire.push(null));
  rawSocket.on('error', () => {});
  const secure = tls.connect({ socket: wire, rejectUnauthorized: false });
  t.teardown(() => secure.destroy());
  const greeting = await new Promise<string>((resolve, reject) => {
    let got = '';
    secure.setEncoding('utf8');
    secure.on('data', (d: string) => {
      got += d;
      if (got.includes('\r\n')) resolve(got);
    });
    secure.once('error', reject);
  });
  t.regex(greeting, /^220 /);
  t.is(connects[0].remoteAddress, '127.0.0.7');
});
