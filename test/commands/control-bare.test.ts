// Control connections served on the TCP handle alone (src/ftp/control.ts), and the same
// behaviour with FTPDLIB_NO_BARE_CONTROL=1, where each is a net.Socket as before. Each scenario
// runs on both paths; the counters prove which one served it.
import test from 'ava';
import { bareControlStats } from '../../src/ftp/control';
import { LineClient } from '../helpers/line-client';
import { FtpsControl, tlsOption } from '../helpers/tls';
import { PASS, USER, startServer, waitForNoSessions } from '../helpers/server';
import { collect, connect, onBothPaths } from '../helpers/control-paths';

onBothPaths('a login, commands and QUIT: replies in order, then the FIN, and the session is freed', async (t, s) => {
  const c = await LineClient.open(s.port);
  await c.login(USER, PASS);
  t.is((await c.cmd('PWD')).code, 257);
  t.is((await c.cmd('TYPE I')).code, 200);
  t.is((await c.cmd('QUIT')).code, 221);
  await c.whenClosed();
  t.is(c.endedBy, 'fin');
  await waitForNoSessions(s.server);
});

onBothPaths('thousands of pipelined commands sent without reading: every reply arrives, in order, then the 221', async (t, s) => {
  // The client reads nothing until it has sent all: some 9 MB of replies fill both kernels'
  // buffers, so the server's writes stop completing at once and its reads pause (the input
  // queue's limit) until the client reads again.
  const sock = await connect(s.port);
  const done = collect(sock);
  sock.pause();
  const n = 20000;
  const lines: string[] = [`USER ${USER}\r\n`, `PASS ${PASS}\r\n`];
  for (let i = 0; i < n; i++) lines.push(i % 4 === 3 ? 'NOOP\r\n' : 'HELP\r\n');
  lines.push('QUIT\r\n');
  sock.write(lines.join(''));
  await new Promise((r) => setTimeout(r, 500));
  sock.resume();
  const { replies, end } = await done;
  t.is(end, 'fin');
  const codes = replies.map((r) => r.code);
  t.is(codes.length, n + 4);
  t.deepEqual(codes.slice(0, 3), [220, 331, 230]);
  t.true(codes.slice(3, 3 + n).every((code, i) => code === (i % 4 === 3 ? 200 : 214)), 'HELP and NOOP answered in turn');
  t.is(codes[codes.length - 1], 221);
  await waitForNoSessions(s.server);
});

onBothPaths("the client's half-close: the replies to what came before it, then the server's FIN", async (t, s) => {
  const sock = await connect(s.port, true);
  const done = collect(sock);
  sock.write(`NOOP\r\n`);
  // Wait for the 220 and the 200 before the FIN, so both are owed before it arrives.
  await new Promise<void>((resolve) => {
    let seen = '';
    const on = (d: string): void => {
      seen += d;
      if (/^200 /m.test(seen)) {
        sock.off('data', on);
        resolve();
      }
    };
    sock.on('data', on);
  });
  sock.end();
  const { replies, end } = await done;
  t.is(end, 'fin');
  t.deepEqual(
    replies.map((r) => r.code),
    [220, 200],
  );
  await waitForNoSessions(s.server);
});

onBothPaths('a client that resets its connection: the session closes and the server serves the next', async (t, s) => {
  const c = await LineClient.open(s.port);
  await c.login(USER, PASS);
  c.socket.resetAndDestroy();
  await waitForNoSessions(s.server);
  const d = await LineClient.open(s.port);
  await d.login(USER, PASS);
  t.is((await d.cmd('QUIT')).code, 221);
  await waitForNoSessions(s.server);
});

onBothPaths(
  'maxConnectionsPerIp: the connection over the limit gets 421 and is closed, the others stay',
  async (t, s) => {
    const a = await LineClient.open(s.port);
    const b = await LineClient.connect(s.port);
    const r = await b.read();
    t.is(r?.code, 421);
    await b.whenClosed();
    t.is(b.endedBy, 'fin');
    await a.login(USER, PASS);
    t.is((await a.cmd('QUIT')).code, 221);
    await waitForNoSessions(s.server);
  },
  { maxConnectionsPerIp: 1 },
);

onBothPaths(
  'AUTH TLS on a plain connection: the handshake, a login and QUIT over TLS',
  async (t, s) => {
    const wrappedBefore = bareControlStats().wrapped;
    const c = await FtpsControl.plain(s.port);
    await c.auth({ rejectUnauthorized: false });
    t.is((await c.cmd(`USER ${USER}`)).code, 331);
    t.is((await c.cmd(`PASS ${PASS}`)).code, 230);
    t.is((await c.cmd('PBSZ 0')).code, 200);
    t.is((await c.cmd('PWD')).code, 257);
    t.is((await c.cmd('QUIT')).code, 221);
    await c.whenClosed();
    await waitForNoSessions(s.server);
    // A bare connection becomes a net.Socket for the TLS socket to wrap.
    const wrapped = bareControlStats().wrapped - wrappedBefore;
    t.true(wrapped === 0 || wrapped === 1);
    t.is(wrapped === 1, process.env.FTPDLIB_NO_BARE_CONTROL !== '1');
  },
  { tls: tlsOption() },
);

test('the session learns the client and server addresses from a bare connection as from a socket', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  const seen = new Promise<{ remoteAddress: string; remotePort: number }>((resolve) => s.server.once('login', (_u, info) => resolve(info)));
  await c.login(USER, PASS);
  const info = await seen;
  t.is(info.remoteAddress, '127.0.0.1');
  t.is(info.remotePort, c.socket.localPort ?? -1);
  const pasv = await c.cmd('PASV');
  t.is(pasv.code, 227);
  t.regex(pasv.text, /\(127,0,0,1,\d+,\d+\)/);
  t.is((await c.cmd('QUIT')).code, 221);
  await waitForNoSessions(s.server);
});
