import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { FtpServer } from '../../src';
import { VirtualAuthorizer } from '../../src/auth/virtual';
import { ConfigError } from '../../src/config/errors';
import { DataCongestion, isLoopback, systemCongestion } from '../../src/ftp/data/congestion';
import type { DataConnection } from '../../src/ftp/data/connection';
import { congestionOf } from '../../src/native/index';
import { listenEphemeral, loggedIn, parseEpsv } from '../helpers/data-client';
import { connectData, type LineClient } from '../helpers/line-client';
import { PASS, USER, startServer } from '../helpers/server';
import { FtpsControl, tlsOption } from '../helpers/tls';

/**
 * dataCongestionControl: which TCP congestion control the server's data connections use, read
 * from the kernel (`ss -ti`) while a download is held open by a client that does not read.
 */

const MiB = 1024 * 1024;
const SYSTEM = systemCongestion();
const AVAILABLE = fs.readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').trim().split(/\s+/);

/** A sparse file of `size` bytes in `root` (sendfile reads its holes as zeros). */
function sparse(root: string, name: string, size: number): void {
  const fd = fs.openSync(path.join(root, name), 'w');
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
}

/**
 * The congestion control of the one established TCP socket matching `filter` (an ss filter such
 * as `sport = :2121`), as `ss -ti` reports it once that socket has sent data (the server sets the
 * algorithm before the first byte of a transfer; an active connection is seen here before that).
 */
async function ccOf(filter: string): Promise<string> {
  for (let i = 0; i < 250; i++) {
    const r = spawnSync('ss', ['-tinH', 'state', 'established', `( ${filter} )`], { encoding: 'utf8' });
    if (r.error) throw r.error;
    const names = r.stdout.split(/\s+/).filter((w) => AVAILABLE.includes(w));
    if (names.length > 1) throw new Error(`more than one socket matches ${filter}: ${r.stdout}`);
    if (names.length === 1 && /\bbytes_sent:[1-9]/.test(r.stdout)) return names[0];
    await new Promise((ok) => setTimeout(ok, 20));
  }
  throw new Error(`no established socket matching ${filter} has sent data`);
}

/** Read `data` to its end and the control connection to its 226; the byte count. */
async function finish(t: ExecutionContext, c: LineClient, data: net.Socket): Promise<number> {
  let n = 0;
  data.on('data', (d: Buffer) => (n += d.length));
  data.resume();
  await once(data, 'close');
  t.is((await c.read())?.code, 226);
  return n;
}

/** RETR `name` over EPSV without reading; the server's data socket's algorithm, then the download to its end. */
async function passiveRetr(t: ExecutionContext, c: LineClient, name: string, size: number): Promise<string> {
  const port = parseEpsv(await c.cmd('EPSV'));
  const data = await connectData(port);
  data.pause();
  c.send(`RETR ${name}\r\n`);
  t.true([125, 150].includes((await c.read())?.code ?? 0));
  const cc = await ccOf(`sport = :${port}`);
  t.is(await finish(t, c, data), size, 'the whole file arrived');
  return cc;
}

test.serial('a named algorithm is set on passive and active data connections, not on the control connection', async (t) => {
  const s = await startServer(t, { dataCongestionControl: 'reno' });
  sparse(s.root, 'big.bin', 32 * MiB);
  const c = await loggedIn(s.port, USER, PASS);
  t.is(await passiveRetr(t, c, 'big.bin', 32 * MiB), 'reno', 'passive');
  // The control connection keeps the system's.
  t.is(await ccOf(`sport = :${s.port}`), SYSTEM ?? 'unknown');
  // Active (EPRT): the server connects to us; its socket is the one whose peer port is ours.
  const srv = await listenEphemeral('127.0.0.1');
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = once(srv, 'connection');
  t.is((await c.cmd(`EPRT |1|127.0.0.1|${port}|`)).code, 200);
  c.send('RETR big.bin\r\n');
  const [data] = (await accepted) as [net.Socket];
  data.pause();
  t.is((await c.read())?.code, 150);
  t.is(await ccOf(`dport = :${port}`), 'reno', 'active');
  t.is(await finish(t, c, data), 32 * MiB);
  srv.close();
  t.is((await c.cmd('QUIT')).code, 221);
  t.true(
    s.records.some((r) => r.msg === 'listening' && r.dataCongestion === 'reno'),
    'the listening record says which',
  );
});

test.serial("'auto' changes only bulk downloads to a loopback peer, and only under BBR; 'system' changes nothing", async (t) => {
  t.truthy(SYSTEM, 'the system default is readable on Linux');
  const s = await startServer(t);
  sparse(s.root, 'big.bin', 32 * MiB);
  sparse(s.root, 'mid.bin', 8 * MiB);
  const c = await loggedIn(s.port, USER, PASS);
  const big = await passiveRetr(t, c, 'big.bin', 32 * MiB);
  if (SYSTEM!.startsWith('bbr')) t.true(big === 'cubic' || big === 'reno', `a 32 MiB download under ${big}`);
  else t.is(big, SYSTEM!, 'without BBR as the default, auto leaves it');
  // Below 16 MiB: many small downloads at once did better paced (the system's BBR).
  t.is(await passiveRetr(t, c, 'mid.bin', 8 * MiB), SYSTEM!, 'an 8 MiB download keeps the system default');
  // REST near the end: what is left to send counts, not the file's size.
  t.is((await c.cmd(`REST ${24 * MiB}`)).code, 350);
  t.is(await passiveRetr(t, c, 'big.bin', 8 * MiB), SYSTEM!, 'REST leaves 8 MiB: the system default');
  t.is((await c.cmd('QUIT')).code, 221);

  const sys = await startServer(t, { dataCongestionControl: 'system' });
  sparse(sys.root, 'big.bin', 32 * MiB);
  const c2 = await loggedIn(sys.port, USER, PASS);
  t.is(await passiveRetr(t, c2, 'big.bin', 32 * MiB), SYSTEM!, "'system'");
  t.is((await c2.cmd('QUIT')).code, 221);
});

for (const nativeTls of [true, false]) {
  test.serial(`'auto' on FTPS downloads too (${nativeTls ? "the engine's records" : "Node's TLS socket"})`, async (t) => {
    const s = await startServer(t, { tls: tlsOption(), nativeTls });
    sparse(s.root, 'big.bin', 32 * MiB);
    const c = await FtpsControl.plain(s.port);
    t.teardown(() => c.close());
    await c.secureLogin(USER, PASS);
    const port = await c.epsv();
    const data = await c.dataTls(port);
    data.pause();
    c.send('RETR big.bin\r\n');
    t.true([125, 150].includes((await c.read())?.code ?? 0));
    const cc = await ccOf(`sport = :${port}`);
    if (SYSTEM!.startsWith('bbr')) t.true(cc === 'cubic' || cc === 'reno', `under ${cc}`);
    else t.is(cc, SYSTEM!);
    let n = 0;
    data.on('data', (d: Buffer) => (n += d.length));
    data.resume();
    await once(data, 'close');
    t.is((await c.read())?.code, 226);
    t.is(n, 32 * MiB);
    t.is((await c.cmd('QUIT')).code, 221);
  });
}

test.serial("'auto' under BBR (the policy alone, on a real loopback connection): bulk sends to loopback peers", async (t) => {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const [sock] = (await accepted) as [net.Socket];
  const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
  const before = congestionOf(fd);
  t.is(before, SYSTEM!, 'a new connection starts with the system default');
  const conn = (remoteAddress: string): DataConnection =>
    ({ remoteAddress, tcpFd: fd, fd, tls: false, socket: sock, destroy: () => sock.destroy() }) as DataConnection;
  const policy = new DataCongestion('auto', 'bbr');
  policy.beforeSend(conn('192.0.2.7'), 64 * MiB);
  t.is(congestionOf(fd), before, 'a remote peer keeps the system choice');
  policy.beforeSend(conn('127.0.0.1'), 16 * MiB - 1);
  t.is(congestionOf(fd), before, 'below 16 MiB: unchanged');
  policy.beforeSend(conn('::ffff:127.0.0.1'), 16 * MiB);
  const now = congestionOf(fd);
  t.true(now === 'cubic' || now === 'reno', `16 MiB to loopback: ${now}`);
  t.is(policy.applied, 1);
  // Not under BBR: nothing to change.
  const cubicDefault = new DataCongestion('auto', 'cubic');
  t.regex(cubicDefault.describe(), /the system's: cubic/);
  t.regex(policy.describe(), /16 MiB or more to loopback: (cubic|reno)/);
  // A name the kernel does not have is refused once, and then not asked again.
  const bogus = new DataCongestion('nosuchalgo', 'bbr');
  bogus.onConnected(sock);
  bogus.onConnected(sock);
  t.is(bogus.applied, 0);
  t.regex(bogus.describe(), /refused/);
  t.is(congestionOf(fd), now, 'unchanged by the refused name');
  client.destroy();
  sock.destroy();
  srv.close();
});

test('loopback addresses', (t) => {
  for (const a of ['127.0.0.1', '127.5.6.7', '::1', '::ffff:127.0.0.1']) t.true(isLoopback(a), a);
  for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '192.0.2.1', '2001:db8::1', '::', '0.0.0.0', '', undefined]) t.false(isLoopback(a), String(a));
});

test('the option takes auto, system or an algorithm name, nothing else', (t) => {
  const authorizer = new VirtualAuthorizer();
  for (const bad of ['', 'BBR', 'cubic;', 'a'.repeat(16), 'rm -rf', 42]) {
    const err = t.throws(() => new FtpServer({ authorizer, dataCongestionControl: bad as string }));
    t.true(err instanceof ConfigError, String(bad));
    t.regex(err!.message, /dataCongestionControl/);
  }
  for (const ok of ['auto', 'system', 'cubic', 'bbr', 'htcp', 'dctcp']) t.notThrows(() => new FtpServer({ authorizer, dataCongestionControl: ok }));
});
