// The PROXY protocol behind a real HAProxy (send-proxy and send-proxy-v2). Control connections go
// through HAProxy from 127.0.0.2 or 127.0.0.3; HAProxy itself connects from 127.0.0.1. Data
// connections go straight to the server's passive port, from the client's own address: the
// server must know the client (from the header) to accept them and to count per-address limits.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { SessionInfo } from '../../src';
import { startHaproxy } from '../helpers/haproxy';
import { LineClient, connectData, readAll } from '../helpers/line-client';
import { PASS, USER, startServer, type StartOptions, type TestServer } from '../helpers/server';

async function setup(
  t: ExecutionContext,
  send: 'v1' | 'v2',
  opts: StartOptions = {},
): Promise<{ s: TestServer; hp: number; connects: SessionInfo[] }> {
  const s = await startServer(t, { proxyProtocol: send, trustedProxies: ['127.0.0.1'], ...opts });
  const connects: SessionInfo[] = [];
  s.server.on('connect', (info) => connects.push(info));
  const hp = await startHaproxy(t, { backendPort: s.port, send });
  return { s, hp: hp.port, connects };
}

async function open(t: ExecutionContext, port: number, from: string): Promise<LineClient> {
  const c = await LineClient.open(port, '127.0.0.1', from);
  t.teardown(() => c.close());
  return c;
}

/** PASV: the announced address and port. */
async function pasv(c: LineClient): Promise<{ host: string; port: number }> {
  const r = await c.cmd('PASV');
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text);
  if (r.code !== 227 || !m) throw new Error(`PASV: ${r.code} ${r.text}`);
  return { host: m.slice(1, 5).join('.'), port: Number(m[5]) * 256 + Number(m[6]) };
}

/** Resolves when the server closes `s` (destroyed as a foreign data connection, say). */
function closedBy(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    s.resume();
    s.once('close', () => resolve());
  });
}

for (const send of ['v1', 'v2'] as const) {
  test(`${send}: login and a passive download through HAProxy; the session is the real client's`, async (t) => {
    const { s, hp, connects } = await setup(t, send);
    const data = crypto.randomBytes(256 * 1024 + 3);
    fs.writeFileSync(path.join(s.root, 'f.bin'), data);
    const c = await open(t, hp, '127.0.0.2');
    await c.login(USER, PASS);
    t.is(connects.length, 1);
    t.is(connects[0].remoteAddress, '127.0.0.2');
    t.is(connects[0].remotePort, c.socket.localPort!);
    const rec = s.records.find((r) => r.msg === 'connected');
    t.is(rec?.remote, `127.0.0.2:${c.socket.localPort}`);
    t.is(rec?.proxy, '127.0.0.1');

    t.is((await c.cmd('TYPE I')).code, 200);
    const p = await pasv(c);
    // PASV announces the address the client reached on the proxy (its header's destination).
    t.is(p.host, '127.0.0.1');
    // A data connection from HAProxy's address is not the client's: refused.
    const foreign = await connectData(p.port, '127.0.0.1', '127.0.0.1');
    await closedBy(foreign);
    // The client's own connection, straight to the passive port, is accepted.
    const d = await connectData(p.port, '127.0.0.1', '127.0.0.2');
    const body = readAll(d);
    const r1 = await c.cmd('RETR f.bin');
    t.true(r1.code === 150 || r1.code === 125, r1.text);
    t.true((await body).equals(data));
    t.is((await c.read())?.code, 226);
    t.true(s.records.some((r) => r.msg === 'refused data connection from a foreign address' && r.remote === '127.0.0.1'));
  });

  test(`${send}: maxConnectionsPerIp counts the real client addresses behind HAProxy`, async (t) => {
    const { s, hp } = await setup(t, send, { maxConnectionsPerIp: 1 });
    const a = await open(t, hp, '127.0.0.2');
    await a.login(USER, PASS);
    // The second client from 127.0.0.2 (through the same proxy) is one too many.
    const b = await LineClient.connect(hp, '127.0.0.1', '127.0.0.2');
    t.teardown(() => b.close());
    t.is((await b.read())?.code, 421);
    await b.whenClosed();
    // 127.0.0.3 comes through the same proxy address, and still gets in.
    const c = await open(t, hp, '127.0.0.3');
    await c.login(USER, PASS);
    t.is(s.server.sessionCount, 2);
    t.is((await a.cmd('NOOP')).code, 200);
  });
}

test('a header from HAProxy when it is not a trusted proxy: the connection is dropped, the server stays up', async (t) => {
  const s = await startServer(t, { proxyProtocol: 'auto', trustedProxies: ['127.0.0.9'] });
  const hp = await startHaproxy(t, { backendPort: s.port, send: 'v2' });
  const c = await LineClient.connect(hp.port, '127.0.0.1', '127.0.0.2');
  t.teardown(() => c.close());
  // The server greets a connection it does not trust (a direct client), then drops it at the header.
  await c.whenClosed();
  let r;
  while ((r = await c.read()) !== null) t.not(r.code, 230);
  t.true(s.records.some((rec) => rec.msg === 'PROXY header from an address not in trustedProxies; connection dropped'));
  // Direct clients are still served.
  const d = await open(t, s.port, '127.0.0.1');
  await d.login(USER, PASS);
});

test('a trusted proxy that sends no header (HAProxy without send-proxy) is dropped without a greeting', async (t) => {
  const s = await startServer(t, { proxyProtocol: 'v1', trustedProxies: ['127.0.0.1'], proxyProtocolTimeout: 0.5 });
  const hp = await startHaproxy(t, { backendPort: s.port, send: 'none' });
  const c = await LineClient.connect(hp.port, '127.0.0.1', '127.0.0.2');
  t.teardown(() => c.close());
  // The client speaks first, as a confused one might: not a header, so the connection goes.
  c.send('USER demo\r\n');
  await c.whenClosed();
  t.is(await c.read(), null);
  t.is(s.server.sessionCount, 0);
  t.true(s.records.some((r) => r.msg === 'PROXY header refused; connection dropped'));
});
