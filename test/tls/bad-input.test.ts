import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { randomContent, sha256 } from '../helpers/data-client';
import { LineClient, connectData } from '../helpers/line-client';
import { PASS, USER, startServer, waitForNoSessions, type StartOptions, type TestServer } from '../helpers/server';
import { FtpsControl, drain, tlsOption } from '../helpers/tls';

/**
 * What a polite FTPS client never sends. Each test ends by checking that the
 * server still serves a fresh client and that no session was left behind.
 */

async function server(t: ExecutionContext, opts: StartOptions = {}): Promise<TestServer> {
  return startServer(t, { tls: tlsOption(), ...opts });
}

/** A second, well-behaved client logs in over TLS; then every session is gone once it quits. */
async function stillServes(t: ExecutionContext, s: TestServer): Promise<void> {
  const c = await FtpsControl.plain(s.port);
  try {
    await c.auth();
    await c.login(USER, PASS);
    t.is((await c.cmd('NOOP')).code, 200, 'a second client is served');
    await c.ok('QUIT', 221);
  } finally {
    c.close();
  }
  await waitForNoSessions(s.server);
}

/** The bytes a Node TLS client sends first: a real ClientHello. */
function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((sock) => {
      sock.once('data', (d: Buffer) => {
        resolve(d);
        sock.destroy();
        srv.close();
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
      c.on('error', () => {});
    });
    srv.on('error', reject);
  });
}

/** Resolve whether `c` closed within `ms`. */
async function closesWithin(c: { whenClosed(): Promise<void> }, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    c.whenClosed().then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return r;
}

test('a TLS ClientHello on the plain control port before AUTH gets a reply and the connection is closed', async (t) => {
  const s = await server(t);
  const hello = await captureClientHello();
  t.is(hello[0], 0x16);
  const c = await LineClient.open(s.port);
  c.send(hello);
  const r = await c.read();
  t.truthy(r, 'a reply in clear before the close');
  t.is(r!.code, 500, r?.text);
  t.true(await closesWithin(c, 5000), 'the connection is closed');
  await stillServes(t, s);
});

test('garbage instead of a ClientHello after 234: the handshake fails and the connection is closed', async (t) => {
  const s = await server(t);
  const c = await LineClient.open(s.port);
  t.is((await c.cmd('AUTH TLS')).code, 234);
  c.send('USER demo\r\nPASS demo-password\r\n');
  t.true(await closesWithin(c, 5000), 'the connection is closed');
  t.false(s.records.some((r) => r.cmd === 'USER'), 'the plaintext lines were never run as commands');
  t.true(s.records.some((r) => r.msg === 'control TLS handshake failed'), 'the failure is logged');
  await stillServes(t, s);
});

test('a handshake that never completes is cut off after tlsHandshakeTimeout (explicit)', async (t) => {
  const s = await server(t, { tlsHandshakeTimeout: 0.3 });
  const hello = await captureClientHello();
  const c = await LineClient.open(s.port);
  t.is((await c.cmd('AUTH TLS')).code, 234);
  c.send(hello.subarray(0, 20)); // half a ClientHello, then silence
  const started = Date.now();
  t.true(await closesWithin(c, 5000), 'the connection is closed');
  t.true(Date.now() - started < 4000);
  await stillServes(t, s);
});

test('a handshake that never starts on the implicit port is cut off, and frees its connection slot', async (t) => {
  const s = await server(t, { implicitTlsPort: 0, tlsHandshakeTimeout: 0.3, maxConnections: 1 });
  const port = s.server.implicitAddress()!.port;
  const raw = await connectData(port);
  const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
  raw.on('error', () => {});
  raw.resume();
  const started = Date.now();
  await closed;
  t.true(Date.now() - started < 4000, 'closed by the handshake timeout');
  const c = await FtpsControl.implicit(port);
  await c.login(USER, PASS);
  await c.ok('NOOP', 200);
  await c.ok('QUIT', 221);
  c.close();
  await waitForNoSessions(s.server);
});

test('PBSZ and PROT before AUTH get 503', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  t.is((await c.cmd('PBSZ 0')).code, 503);
  t.is((await c.cmd('PROT P')).code, 503);
  await c.login(USER, PASS);
  t.is((await c.cmd('PBSZ 0')).code, 503, 'also after a plain login');
  t.is((await c.cmd('PROT P')).code, 503);
});

test('PROT P before PBSZ gets 503; bad PBSZ/PROT arguments are refused', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.auth();
  t.is((await c.cmd('PROT P')).code, 503);
  t.is((await c.cmd('PBSZ abc')).code, 501);
  await c.ok('PBSZ 0', 200);
  t.is((await c.cmd('PROT X')).code, 504);
  t.is((await c.cmd('PROT S')).code, 536);
  await c.ok('PROT P', 200);
});

test('AUTH TLS twice: 503 on the secure connection, which keeps working', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.auth();
  t.is((await c.cmd('AUTH TLS')).code, 503);
  await c.login(USER, PASS);
  await c.ok('NOOP', 200);
});

test('AUTH TLS after USER gets 503 and the connection keeps working', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.ok(`USER ${USER}`, 331);
  t.is((await c.cmd('AUTH TLS')).code, 503);
  await c.ok(`PASS ${PASS}`, 230);
  await c.ok('NOOP', 200);
});

test('AUTH with an unknown mechanism gets 504 and the connection keeps working', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  t.is((await c.cmd('AUTH KERBEROS')).code, 504);
  t.is((await c.cmd('NOOP', 3000)).code, 200);
  await c.auth();
  await c.login(USER, PASS);
});

test('AUTH without an argument gets 501 and the connection keeps working', async (t) => {
  // If the session wedges, server.close() waits on an unref'd 2 s timer to destroy it; keep the worker alive meanwhile.
  const keepAlive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(keepAlive));
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  t.is((await c.cmd('AUTH')).code, 501);
  const noop = await c.cmd('NOOP', 3000).catch((err: Error) => err);
  t.false(noop instanceof Error, 'NOOP after a refused AUTH is answered (the input must not stay held for a handshake)');
  if (!(noop instanceof Error)) t.is(noop.code, 200);
});

test('a refused AUTH pipelined with 1,000 commands in one write (more than one framing slice): every command after it is answered, in order', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  c.send(`AUTH KERBEROS\r\n${'NOOP\r\n'.repeat(999)}SYST\r\n`);
  t.is((await c.read())?.code, 504);
  for (let i = 0; i < 999; i++) {
    const r = await c.read();
    if (r?.code !== 200) {
      t.fail(`NOOP ${i + 1}: ${r?.code} ${r?.text}`);
      return;
    }
  }
  t.is((await c.read())?.code, 215);
});

test('an AUTH TLS behind 100 queued commands, with 700 more and a login after it in the same write: nothing after the AUTH runs, in clear or inside TLS', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  c.send(`${'NOOP\r\n'.repeat(100)}AUTH TLS\r\n${'NOOP\r\n'.repeat(700)}USER ${USER}\r\nPASS ${PASS}\r\n`);
  for (let i = 0; i < 100; i++) t.is((await c.read())?.code, 200);
  t.is((await c.read())?.code, 234);
  await c.upgrade();
  await c.ok('SYST', 215);
  t.is((await c.cmd(`PASS ${PASS}`)).code, 503, 'the pipelined USER was dropped: PASS is out of sequence');
  t.false(s.records.some((x) => x.cmd === 'USER'), 'no USER ran');
  t.is(s.records.filter((x) => x.cmd === 'NOOP').length, 100, 'only the NOOPs before the AUTH ran');
});

test('commands pipelined in the same packet after AUTH TLS are never executed', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  c.send(`AUTH TLS\r\nUSER ${USER}\r\nPASS ${PASS}\r\n`);
  const r = await c.read();
  t.is(r?.code, 234);
  // Any clear reply after 234 would break the handshake below; the USER must not have run either.
  await c.upgrade();
  t.deepEqual(
    c.all.map((x) => x.code),
    [220, 234],
  );
  await c.ok('NOOP', 200);
  t.is((await c.cmd(`PASS ${PASS}`)).code, 503, 'the pipelined USER was dropped: PASS is out of sequence');
  t.false(s.records.some((x) => x.cmd === 'USER' || x.cmd === 'PASS' && x.code === 230), 'nothing ran from the pipelined bytes');
  await c.login(USER, PASS);
});

test('a plaintext data connection under PROT P fails with 522/425 and the session stays usable', async (t) => {
  const s = await server(t, { tlsHandshakeTimeout: 0.5 });
  const body = randomContent(100_000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.secureLogin(USER, PASS);

  // Download: the client waits in clear for data that never comes.
  let port = await c.epsv();
  let d = await connectData(port);
  let got = drain(d).catch(() => Buffer.alloc(0));
  let first = await c.cmd('RETR f.bin');
  let final = first.code === 150 || first.code === 125 ? await c.read() : first;
  t.true(final?.code === 522 || final?.code === 425, JSON.stringify(final));
  const leaked = await got;
  t.false(leaked.includes(body.subarray(0, 64)), 'no file bytes in clear');

  // Upload: the client sends plaintext bytes where a ClientHello should be.
  port = await c.epsv();
  d = await connectData(port);
  d.on('error', () => {});
  d.write('plaintext file body\n');
  first = await c.cmd('STOR up.bin');
  final = first.code === 150 || first.code === 125 ? await c.read() : first;
  t.true(final?.code === 522 || final?.code === 425, JSON.stringify(final));
  d.destroy();
  t.false(fs.existsSync(path.join(s.root, 'up.bin')) && fs.readFileSync(path.join(s.root, 'up.bin')).length > 0, 'nothing stored');

  await c.ok('NOOP', 200);
  port = await c.epsv();
  const td = await c.dataTls(port);
  got = drain(td);
  await c.cmd('RETR f.bin');
  t.is(sha256(await got), sha256(body), 'a proper TLS transfer works afterwards');
  t.is((await c.read())?.code, 226);
  await c.ok('QUIT', 221);
  await waitForNoSessions(s.server);
});

test('CCC is refused with 534 and the control connection stays encrypted', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.auth();
  await c.login(USER, PASS);
  t.is((await c.cmd('CCC')).code, 534);
  await c.ok('NOOP', 200); // still parsed as TLS records
});

test('TLS 1.2 renegotiation is refused and the server stays up', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.auth({ maxVersion: 'TLSv1.2' });
  t.is(c.tlsSocket.getProtocol(), 'TLSv1.2');
  await c.login(USER, PASS);
  const sock = c.tlsSocket;
  const outcome = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve('no answer within 1 s'), 1000);
    sock.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    const started = sock.renegotiate({ rejectUnauthorized: false }, (err) => {
      clearTimeout(timer);
      resolve(err ? `error: ${err.message}` : 'renegotiated');
    });
    if (!started) resolve('not started');
  });
  t.log(`renegotiation: ${outcome}`);
  t.not(outcome, 'renegotiated');
  c.close();
  await stillServes(t, s);
});
