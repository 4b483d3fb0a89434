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
import { available, congestionOf, reason } from '../../src/native/index';
import { listenEphemeral, loggedIn, parseEpsv } from '../helpers/data-client';
import { connectData, type LineClient } from '../helpers/line-client';
import { PASS, USER, startServer, type TestServer } from '../helpers/server';
import { FtpsControl, tlsOption } from '../helpers/tls';

/**
 * dataCongestionControl: which TCP congestion control the server's data connections use, read
 * from the kernel (`ss -ti`) while a download is held open by a client that does not read.
 * Linux with the addon (TCP_CONGESTION).
 */

const MiB = 1024 * 1024;
const SYSTEM = systemCongestion() ?? 'unknown';

/** The algorithms this kernel has (the names `ss -ti` may print). */
function availableAlgorithms(): string[] {
  try {
    return fs.readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').trim().split(/\s+/);
  } catch {
    return [];
  }
}

/** An algorithm other than the system's default that every Linux kernel has and lets a process set. */
const OTHER = SYSTEM === 'reno' ? 'cubic' : 'reno';

function needsLinuxAddon(t: ExecutionContext): void {
  t.is(process.platform, 'linux', 'TCP_CONGESTION is Linux');
  t.true(available, reason);
}

/** A sparse file of `size` bytes in `root` (sendfile reads its holes as zeros). */
function sparse(root: string, name: string, size: number): void {
  const fd = fs.openSync(path.join(root, name), 'w');
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
}

/**
 * The congestion control of the one TCP socket matching `filter` (an ss filter naming both ports
 * of a connection), as `ss -ti` reports it once that socket has sent more than `minBytes`:
 * the server sets a download's algorithm right before its first byte, and a TLS data connection
 * has sent its handshake (a few KiB) before that.
 */
async function ccOf(filter: string, minBytes = 64 * 1024): Promise<string> {
  const names = availableAlgorithms();
  for (let i = 0; i < 250; i++) {
    // Not only established: a download the kernel has taken whole is in FIN-WAIT once the server closed its side.
    const r = spawnSync('ss', ['-tinH', 'state', 'established', 'state', 'fin-wait-1', 'state', 'fin-wait-2', `( ${filter} )`], { encoding: 'utf8' });
    if (r.error) throw r.error;
    const found = r.stdout.split(/\s+/).filter((w) => names.includes(w));
    if (found.length > 1) throw new Error(`more than one socket matches ${filter}: ${r.stdout}`);
    const sent = Number(/\bbytes_sent:(\d+)/.exec(r.stdout)?.[1] ?? 0);
    if (found.length === 1 && sent >= minBytes) return found[0];
    await new Promise((ok) => setTimeout(ok, 20));
  }
  throw new Error(`no socket matching ${filter} has sent ${minBytes} bytes`);
}

/** Read `data` to its end and the control connection to its 226; the byte count. */
async function finish(t: ExecutionContext, c: { read(): Promise<{ code: number } | null> }, data: net.Socket): Promise<number> {
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
  const cc = await ccOf(`sport = :${port} and dport = :${data.localPort}`);
  t.is(await finish(t, c, data), size, 'the whole file arrived');
  return cc;
}

/** RETR `name` over EPRT (the server connects to us) without reading; as passiveRetr. */
async function activeRetr(t: ExecutionContext, c: LineClient, name: string, size: number): Promise<string> {
  const srv = await listenEphemeral('127.0.0.1');
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = once(srv, 'connection');
  t.is((await c.cmd(`EPRT |1|127.0.0.1|${port}|`)).code, 200);
  c.send(`RETR ${name}\r\n`);
  const [data] = (await accepted) as [net.Socket];
  data.pause();
  t.is((await c.read())?.code, 150);
  // The server's socket is the one whose peer port is our listener's.
  const cc = await ccOf(`dport = :${port} and sport = :${data.remotePort}`);
  t.is(await finish(t, c, data), size);
  srv.close();
  return cc;
}

/** A server whose 'auto' acts as on a machine whose default is BBR, with `choice` as what it sets (any machine can then see it act). */
function actAsUnderBbr(s: TestServer, choice: string): DataCongestion {
  const policy = new DataCongestion('auto', 'bbr', null, [choice]);
  (s.server as unknown as { ctx: { congestion: DataCongestion } }).ctx.congestion = policy;
  return policy;
}

test.serial('a named algorithm is set on passive and active data connections, not on the control connection', async (t) => {
  needsLinuxAddon(t);
  const s = await startServer(t, { dataCongestionControl: OTHER });
  sparse(s.root, 'big.bin', 32 * MiB);
  sparse(s.root, 'small.bin', 8 * MiB);
  const c = await loggedIn(s.port, USER, PASS);
  t.is(await passiveRetr(t, c, 'big.bin', 32 * MiB), OTHER, 'passive');
  t.is(await passiveRetr(t, c, 'small.bin', 8 * MiB), OTHER, 'passive, any size');
  t.is(await ccOf(`sport = :${s.port} and dport = :${c.socket.localPort}`, 1), SYSTEM, 'the control connection keeps the system default');
  t.is(await activeRetr(t, c, 'big.bin', 32 * MiB), OTHER, 'active');
  t.is((await c.cmd('QUIT')).code, 221);
  t.true(
    s.records.some((r) => r.msg === 'listening' && r.dataCongestion === OTHER),
    'the listening record says which',
  );
});

test.serial("'auto' under BBR: passive connections on a loopback listener from the start, active ones for downloads of 16 MiB or more", async (t) => {
  needsLinuxAddon(t);
  const s = await startServer(t);
  const policy = actAsUnderBbr(s, OTHER);
  sparse(s.root, 'big.bin', 32 * MiB);
  sparse(s.root, 'mid.bin', 8 * MiB);
  const c = await loggedIn(s.port, USER, PASS);
  // The session's listener is on 127.0.0.1: whatever it accepts comes from this host, and
  // starts under the choice (a socket switched after it ran BBR keeps BBR's pacing).
  t.is(await passiveRetr(t, c, 'mid.bin', 8 * MiB), OTHER, 'an 8 MiB download (passive)');
  t.is(policy.applied, 1, 'one setsockopt: the listener');
  t.is(await passiveRetr(t, c, 'big.bin', 32 * MiB), OTHER, 'a 32 MiB download (passive)');
  t.is(policy.applied, 1, 'not switched again: the connection started under it');
  t.is((await c.cmd(`REST ${24 * MiB}`)).code, 350);
  t.is(await passiveRetr(t, c, 'big.bin', 8 * MiB), OTHER, 'REST leaving 8 MiB (passive)');
  // Active connections are made by connect, under the system's default: switched for a bulk
  // download only (what is left to send counts, not the file's size).
  const applied = policy.applied;
  t.is(await activeRetr(t, c, 'big.bin', 32 * MiB), OTHER, 'a 32 MiB download (active)');
  t.is(policy.applied, applied + 1);
  t.is(await activeRetr(t, c, 'mid.bin', 8 * MiB), SYSTEM, 'an 8 MiB download (active) keeps the system default');
  t.is((await c.cmd(`REST ${24 * MiB}`)).code, 350);
  t.is(await activeRetr(t, c, 'big.bin', 8 * MiB), SYSTEM, 'REST leaving 8 MiB (active): the system default');
  t.is(policy.applied, applied + 1);
  t.is(await ccOf(`sport = :${s.port} and dport = :${c.socket.localPort}`, 1), SYSTEM, 'the control connection keeps the system default');
  t.is((await c.cmd('QUIT')).code, 221);
});

test.serial("'auto' as this machine has it: only under a BBR default; 'system' changes nothing", async (t) => {
  needsLinuxAddon(t);
  const s = await startServer(t);
  sparse(s.root, 'big.bin', 32 * MiB);
  const c = await loggedIn(s.port, USER, PASS);
  const big = await passiveRetr(t, c, 'big.bin', 32 * MiB);
  if (SYSTEM.startsWith('bbr')) t.true(big === 'cubic' || big === 'reno', `a 32 MiB download under ${big}`);
  else t.is(big, SYSTEM, `without BBR as the default (${SYSTEM}), auto leaves it`);
  t.is((await c.cmd('QUIT')).code, 221);
  t.true(s.records.some((r) => r.msg === 'listening' && typeof r.dataCongestion === 'string' && r.dataCongestion.startsWith('auto (')));

  const sys = await startServer(t, { dataCongestionControl: 'system' });
  sparse(sys.root, 'big.bin', 32 * MiB);
  const c2 = await loggedIn(sys.port, USER, PASS);
  t.is(await passiveRetr(t, c2, 'big.bin', 32 * MiB), SYSTEM, "'system'");
  t.is((await c2.cmd('QUIT')).code, 221);
});

for (const nativeTls of [true, false]) {
  test.serial(`'auto' under BBR on FTPS downloads too (${nativeTls ? "the engine's records" : "Node's TLS socket"})`, async (t) => {
    needsLinuxAddon(t);
    const s = await startServer(t, { tls: tlsOption(), nativeTls });
    actAsUnderBbr(s, OTHER);
    sparse(s.root, 'big.bin', 32 * MiB);
    const c = await FtpsControl.plain(s.port);
    t.teardown(() => c.close());
    await c.secureLogin(USER, PASS);
    const port = await c.epsv();
    const data = await c.dataTls(port);
    data.pause();
    c.send('RETR big.bin\r\n');
    t.true([125, 150].includes((await c.read())?.code ?? 0));
    t.is(await ccOf(`sport = :${port} and dport = :${data.localPort}`), OTHER);
    t.is(await finish(t, c, data), 32 * MiB);
    t.is((await c.cmd('QUIT')).code, 221);
  });
}

test.serial("the policy alone, on a real loopback connection: 'auto' under BBR, refusals", async (t) => {
  needsLinuxAddon(t);
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const [sock] = (await accepted) as [net.Socket];
  const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
  const before = congestionOf(fd);
  t.is(before, SYSTEM, 'a new connection starts with the system default');
  const conn = (remoteAddress: string): DataConnection =>
    ({ remoteAddress, tcpFd: fd, fd, tls: false, socket: sock, destroy: () => sock.destroy() }) as DataConnection;
  const policy = new DataCongestion('auto', 'bbr', null, [OTHER]);
  // A descriptor that cannot be asked (not a socket; a socket closed meanwhile) uses up nothing.
  const notSocket = fs.openSync('/dev/null', 'r');
  policy.beforeSend({ ...conn('127.0.0.1'), tcpFd: notSocket } as DataConnection, 64 * MiB);
  fs.closeSync(notSocket);
  t.is(policy.applied, 0);
  t.regex(policy.describe(), new RegExp(`loopback: ${OTHER}, passive`), 'its choice is still there');
  policy.beforeSend(conn('192.0.2.7'), 64 * MiB);
  t.is(congestionOf(fd), before, 'a remote peer keeps the system choice');
  policy.beforeSend(conn('127.0.0.1'), 16 * MiB - 1);
  t.is(congestionOf(fd), before, 'below 16 MiB: unchanged');
  policy.beforeSend(conn('::ffff:127.0.0.1'), 16 * MiB);
  t.is(congestionOf(fd), OTHER, '16 MiB to loopback');
  t.is(policy.applied, 1);
  // A listener: 'auto' sets its choice on one bound to a loopback address only (the address
  // it was bound to, as the session passes it), and what it accepts starts under it.
  const lsrv = net.createServer();
  lsrv.listen(0, '127.0.0.1');
  await once(lsrv, 'listening');
  const lfd = (lsrv as unknown as { _handle: { fd: number } })._handle.fd;
  const listening = new DataCongestion('auto', 'bbr', null, [OTHER]);
  listening.onListener(lsrv, '192.0.2.7');
  t.is(congestionOf(lfd), SYSTEM, 'a listener on another address keeps the system default');
  listening.onListener(lsrv, '::ffff:127.0.0.1');
  t.is(congestionOf(lfd), OTHER, 'a loopback listener gets the choice');
  const laccepted = once(lsrv, 'connection');
  const lclient = net.connect((lsrv.address() as net.AddressInfo).port, '127.0.0.1');
  const [lsock] = (await laccepted) as [net.Socket];
  const lsockFd = (lsock as unknown as { _handle: { fd: number } })._handle.fd;
  t.is(congestionOf(lsockFd), OTHER, 'its connection starts under it');
  t.is(listening.applied, 1);
  const acceptedFrom = (remoteAddress: string): DataConnection => ({ remoteAddress, tcpFd: lsockFd }) as DataConnection;
  t.true(listening.onAccepted(lsrv, acceptedFrom('127.0.0.1')), 'a loopback peer: started under the choice');
  t.is(congestionOf(lsockFd), OTHER);
  t.false(new DataCongestion('auto', 'bbr', null, [OTHER]).onAccepted(lsrv, acceptedFrom('127.0.0.1')), 'a listener this policy did not set');
  // A remote client that reached the loopback listener (DNAT with route_localnet): the
  // algorithm the listener had before 'auto' set it, as a remote client's connection would have.
  t.false(listening.onAccepted(lsrv, acceptedFrom('192.0.2.7')));
  t.is(congestionOf(lsockFd), SYSTEM, 'a peer from elsewhere gets the system default back');
  t.is(listening.applied, 1);
  new DataCongestion('auto', 'cubic').onListener(lsrv, '127.0.0.1');
  new DataCongestion('system', 'bbr').onListener(lsrv, '127.0.0.1');
  t.is(congestionOf(lfd), OTHER, "'auto' without BBR, and 'system', leave a listener alone");
  lclient.destroy();
  lsock.destroy();
  lsrv.close();
  // 'auto' does nothing where the default is not BBR; it says what it would try.
  t.regex(new DataCongestion('auto', 'cubic').describe(), /the system's: cubic/);
  t.regex(new DataCongestion('auto', 'bbr').describe(), /loopback: cubic, else reno, passive connections from the start, active ones for downloads of 16 MiB or more; the rest: bbr/);
  // A name the kernel does not have: refused once, then not asked again; 'auto' goes on to the next.
  const bogus = new DataCongestion('nosuchalgo', 'bbr');
  bogus.onConnected(sock);
  bogus.onConnected(sock);
  t.is(bogus.applied, 0);
  t.regex(bogus.describe(), /refused/);
  const fallback = new DataCongestion('auto', 'bbr', null, ['nosuchalgo', OTHER]);
  fallback.beforeSend(conn('127.0.0.1'), 32 * MiB);
  t.is(fallback.applied, 1);
  t.regex(fallback.describe(), new RegExp(`loopback: ${OTHER}, passive`));
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
