// Connection limits, timeouts, shutdown and the session events.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import test from 'ava';
import type { SessionInfo } from '../../src';
import { LineClient } from '../helpers/line-client';
import { PASS, USER, eventually, openFds, startServer, waitForNoSessions } from '../helpers/server';
import { loggedIn } from './_support';

/** Connect (optionally from a given local address) and return the first reply and whether the server then closed. */
function firstReply(port: number, localAddress?: string): Promise<{ text: string; closed: Promise<void>; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\r\n')) resolve({ text: buf.slice(0, buf.indexOf('\r\n')), closed, socket });
    });
  });
}

test('maxConnections: the extra connection gets 421 and is closed; a freed slot is reused', async (t) => {
  const s = await startServer(t, { maxConnections: 2 });
  const a = await LineClient.open(s.port);
  const b = await LineClient.open(s.port);
  t.teardown(() => {
    a.close();
    b.close();
  });
  const extra = await firstReply(s.port);
  t.regex(extra.text, /^421 /);
  await extra.closed;
  t.is(s.server.sessionCount, 2);
  // The two sessions are unaffected.
  t.is((await a.cmd('NOOP')).code, 200);
  const gone = new Promise<void>((r) => s.server.once('disconnect', () => r()));
  a.close();
  await gone;
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(USER, PASS);
});

test('a refused connection whose client never closes is closed by the server soon after its 421 (it held a descriptor until the client left)', async (t) => {
  const s = await startServer(t, { maxConnections: 1 });
  const a = await LineClient.open(s.port);
  t.teardown(() => a.close());
  const before = openFds();
  const COUNT = 20;
  // allowHalfOpen: the clients read the 421 and the server's FIN, and never send their own.
  const silent = await Promise.all(
    Array.from({ length: COUNT }, () =>
      new Promise<{ socket: net.Socket; text: Promise<string> }>((resolve, reject) => {
        const socket = net.connect({ port: s.port, host: '127.0.0.1', allowHalfOpen: true }, () => {
          let buf = '';
          const text = new Promise<string>((r) => socket.on('data', (d: Buffer) => (buf += d.toString())).once('end', () => r(buf)));
          resolve({ socket, text });
        });
        socket.once('error', reject);
      }),
    ),
  );
  t.teardown(() => silent.forEach((c) => c.socket.destroy()));
  for (const c of silent) t.regex(await c.text, /^421 Too many connections/);
  // Each client still holds its own end here (COUNT descriptors of this process): the server's are what go.
  await eventually(() => openFds() <= before + COUNT, `the server's ends closed (${openFds()} descriptors, ${before} + ${COUNT} expected)`, 15_000);
  t.true(silent.every((c) => !c.socket.destroyed), 'the clients never closed');
  t.is((await a.cmd('NOOP')).code, 200);
});

test('maxConnectionsPerIp: a second connection from one address gets 421; another address gets in', async (t) => {
  const s = await startServer(t, { maxConnectionsPerIp: 1 });
  const a = await LineClient.open(s.port);
  t.teardown(() => a.close());
  const extra = await firstReply(s.port);
  t.regex(extra.text, /^421 /);
  await extra.closed;
  // 127.0.0.2 is another address on Linux loopback.
  const other = await firstReply(s.port, '127.0.0.2');
  t.teardown(() => other.socket.destroy());
  t.regex(other.text, /^220 /);
  t.is((await a.cmd('NOOP')).code, 200);
});

test('maxConnectionsPerIp: a connection that QUITs gives its slot back (three in turn from one address)', async (t) => {
  const s = await startServer(t, { maxConnectionsPerIp: 1 });
  for (let i = 1; i <= 3; i++) {
    const c = await LineClient.connect(s.port);
    t.teardown(() => c.close());
    const greeting = await c.read();
    t.is(greeting?.code, 220, `connection ${i}: ${greeting?.code} ${greeting?.text}`);
    if (greeting?.code !== 220) return;
    t.is((await c.cmd('QUIT')).code, 221, `connection ${i}`);
    await c.whenClosed();
    // The server has let go of the session before the next one comes.
    await waitForNoSessions(s.server, 15_000);
  }
});

test('idle timeout: 421 and the connection is closed', async (t) => {
  const { s, c } = await loggedIn(t, { timeout: 0.3 });
  const started = Date.now();
  const r = await c.read();
  t.is(r?.code, 421);
  await c.whenClosed();
  t.true(Date.now() - started >= 250, 'not before the timeout');
  await waitForNoSessions(s.server);
});

test('idle timeout is each session\'s own: commands keep one open while the silent ones close, oldest first', async (t) => {
  // 1 s, not less: the busy session's commands must keep coming within it on a loaded machine.
  const s = await startServer(t, { timeout: 1 });
  const busy = await LineClient.open(s.port);
  const first = await LineClient.open(s.port);
  t.teardown(() => {
    busy.close();
    first.close();
  });
  await busy.login(USER, PASS);
  await new Promise((r) => setTimeout(r, 300));
  const second = await LineClient.open(s.port);
  t.teardown(() => second.close());
  const closedAt: string[] = [];
  const done = Promise.all(
    ([['first', first], ['second', second]] as const).map(async ([name, c]) => {
      t.is((await c.read())?.code, 421, `${name} timed out`);
      await c.whenClosed();
      closedAt.push(name);
    }),
  );
  // NOOP every 200 ms for 2.4 s: more than twice the timeout, never 1 s without a command.
  for (let i = 0; i < 12; i++) {
    t.is((await busy.cmd('NOOP')).code, 200);
    await new Promise((r) => setTimeout(r, 200));
  }
  await done;
  t.deepEqual(closedAt, ['first', 'second'], 'the session silent longer closes first');
  t.false(busy.closed, 'the session sending commands is still open');
  t.is((await busy.cmd('PWD')).code, 257);
  // Once it falls silent it times out like the others.
  t.is((await busy.read())?.code, 421);
  await busy.whenClosed();
  await waitForNoSessions(s.server);
});

test('idle timeout applies before login too', async (t) => {
  const s = await startServer(t, { timeout: 0.3 });
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  const r = await c.read();
  t.is(r?.code, 421, 'a silent client before login is closed too');
  await c.whenClosed();
});

test('idle timeout does not fire during a transfer', async (t) => {
  // 1 s, not 0.3: each step before the transfer must come within the timeout even on a loaded machine.
  const { s, c } = await loggedIn(t, { timeout: 1 });
  t.is((await c.cmd('TYPE I')).code, 200);
  const sock = await c.epsvConnect();
  const first = await c.cmd('STOR slow.bin');
  t.true(first.code < 200, `${first.code} ${first.text}`);
  sock.write('part one;');
  // A second, idle session started after the transfer began times out: the idle time has passed.
  const idle = await LineClient.open(s.port);
  t.teardown(() => idle.close());
  t.is((await idle.read())?.code, 421);
  await idle.whenClosed();
  t.false(c.closed, 'the transferring session is still open');
  sock.end('part two');
  t.is((await c.read())?.code, 226);
  // Once the transfer is over, the idle timer runs again.
  t.is((await c.read())?.code, 421);
  await c.whenClosed();
});

test('dataConnectTimeout: a data connection that never comes gets 150 then 425', async (t) => {
  const { s, c } = await loggedIn(t, { dataConnectTimeout: 0.3 });
  fs.writeFileSync(path.join(s.root, 'a.txt'), 'a');
  t.is((await c.cmd('EPSV')).code, 229);
  const first = await c.cmd('RETR a.txt');
  t.is(first.code, 150);
  const second = await c.read();
  t.is(second?.code, 425);
  t.is((await c.cmd('NOOP')).code, 200);
  // The channel is gone: the next transfer needs a new EPSV.
  t.is((await c.cmd('LIST')).code, 425);
});

test('close() while sessions are open: they get 421 and are closed', async (t) => {
  const s = await startServer(t);
  const a = await LineClient.open(s.port);
  const b = await LineClient.open(s.port);
  t.teardown(() => {
    a.close();
    b.close();
  });
  await a.login(USER, PASS);
  const closing = s.server.close();
  t.is((await a.read())?.code, 421);
  t.is((await b.read())?.code, 421);
  await Promise.all([a.whenClosed(), b.whenClosed()]);
  await closing;
  t.is(s.server.sessionCount, 0);
  // No longer accepting.
  await t.throwsAsync(LineClient.open(s.port));
});

test('events: connect, login, logout, disconnect fire with the session', async (t) => {
  const s = await startServer(t);
  const events: Array<[string, string | null, number]> = [];
  const rec = (name: string) => (...args: unknown[]) => {
    const info = args[args.length - 1] as SessionInfo;
    events.push([name, typeof args[0] === 'string' ? (args[0] as string) : null, info.id]);
  };
  for (const e of ['connect', 'login', 'logout', 'disconnect', 'loginFailed'] as const) s.server.on(e, rec(e) as never);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(USER, PASS);
  t.is((await c.cmd('REIN')).code, 220);
  t.is((await c.cmd(`USER ${USER}`)).code, 331);
  t.is((await c.cmd('PASS nope')).code, 530);
  await c.login(USER, PASS);
  const gone = new Promise<void>((r) => s.server.once('disconnect', () => r()));
  t.is((await c.cmd('QUIT')).code, 221);
  await gone;
  const id = events[0][2];
  t.deepEqual(events, [
    ['connect', null, id],
    ['login', USER, id],
    ['logout', USER, id],
    ['loginFailed', USER, id],
    ['login', USER, id],
    ['logout', USER, id],
    ['disconnect', null, id],
  ]);
});

test('events: a dropped connection still logs out and disconnects', async (t) => {
  const s = await startServer(t);
  const seen: string[] = [];
  s.server.on('logout', (u) => seen.push(`logout ${u}`));
  s.server.on('disconnect', (i) => seen.push(`disconnect ${i.remoteAddress}`));
  const c = await LineClient.open(s.port);
  await c.login(USER, PASS);
  const gone = new Promise<void>((r) => s.server.once('disconnect', () => r()));
  c.close();
  await gone;
  t.deepEqual(seen, [`logout ${USER}`, 'disconnect 127.0.0.1']);
});
