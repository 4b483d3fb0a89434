// The client's half-close (its FIN) on the control connection: the commands it sent before are
// answered in order, then the server ends the connection (as vsftpd, proftpd and pyftpdlib do for
// `printf 'USER ...\r\nPASS ...\r\n...' | nc -N host 21`). An upload is not started after it, and
// a transfer running when it arrives is aborted, as for a client that went away.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineClient } from '../helpers/line-client';
import { FtpsControl, tlsOption } from '../helpers/tls';
import { PASS, USER, eventually, startServer, waitForNoSessions } from '../helpers/server';
import { collect, connect, onBothPaths } from '../helpers/control-paths';

onBothPaths('pipelined commands then a half-close: every one answered in order, then the FIN', async (t, s) => {
  fs.writeFileSync(path.join(s.root, 'f.bin'), Buffer.alloc(4321, 7));
  const sock = await connect(s.port);
  const done = collect(sock);
  // More than the 32 commands a session holds before it stops reading, each a round trip to
  // the filesystem's threads: the FIN is read once the queue has drained to half, with
  // commands still queued.
  const mkds = Array.from({ length: 60 }, (_, i) => `MKD m${i}\r\n`).join('');
  sock.end(`USER ${USER}\r\nPASS ${PASS}\r\nTYPE I\r\nSIZE f.bin\r\nMKD made\r\n${mkds}PWD\r\n`);
  const { replies, end } = await done;
  t.is(end, 'fin');
  const codes = replies.map((r) => r.code);
  t.deepEqual(codes.slice(0, 6), [220, 331, 230, 200, 213, 257]);
  t.is(replies[4].text, '4321');
  t.is(codes.length, 6 + 60 + 1);
  t.true(codes.slice(6, 66).every((c) => c === 257), 'each MKD answered');
  t.is(codes[66], 257);
  for (const d of ['made', 'm0', 'm59']) t.true(fs.statSync(path.join(s.root, d)).isDirectory(), `${d} made`);
  await waitForNoSessions(s.server);
});

onBothPaths('a half-close after QUIT: the 221 still comes, last', async (t, s) => {
  const sock = await connect(s.port);
  const done = collect(sock);
  sock.end(`USER ${USER}\r\nPASS ${PASS}\r\nCWD /\r\nQUIT\r\nNOOP\r\n`);
  const { replies, end } = await done;
  t.is(end, 'fin');
  // Nothing after QUIT runs.
  t.deepEqual(
    replies.map((r) => r.code),
    [220, 331, 230, 250, 221],
  );
  await waitForNoSessions(s.server);
});

onBothPaths('an upload sent before a half-close is not started: 426, no file, the next command answered', async (t, s) => {
  let received = 0;
  s.server.on('fileReceived', () => received++);
  s.server.on('incompleteFileReceived', () => received++);
  const c = await LineClient.open(s.port);
  await c.login(USER, PASS);
  t.is((await c.cmd('TYPE I')).code, 200);
  // A data connection is open and holds bytes, with its FIN: a client killed mid-sequence
  // leaves the same, and a 226 for it would be a truncated file.
  const data = await c.epsvConnect();
  // The server drops this connection with its bytes unread: a reset, here not a failure.
  data.on('error', () => {});
  data.end(Buffer.alloc(1000, 1));
  // Forty MKDs hold STOR in the queue until the FIN is read (as in the first test). A transfer
  // already started when it is read is aborted instead (the next test).
  c.socket.end(`${Array.from({ length: 40 }, (_, i) => `MKD d${i}\r\n`).join('')}STOR up.bin\r\nNOOP\r\n`);
  for (let i = 0; i < 40; i++) t.is((await c.read())?.code, 257);
  const stor = await c.read();
  t.is(stor?.code, 426);
  t.regex(stor!.text, /upload not started/);
  t.is((await c.read())?.code, 200);
  await c.whenClosed();
  t.is(c.endedBy, 'fin');
  t.false(fs.existsSync(path.join(s.root, 'up.bin')));
  await waitForNoSessions(s.server);
  t.is(received, 0);
  data.destroy();
});

onBothPaths('a half-close during a download aborts it, as a client gone away, and closes both connections', async (t, s) => {
  const size = 256 * 1024 * 1024;
  fs.closeSync(fs.openSync(path.join(s.root, 'big.bin'), 'w'));
  fs.truncateSync(path.join(s.root, 'big.bin'), size);
  const incomplete: number[] = [];
  s.server.on('incompleteFileSent', (_p: string, info: { bytes: number }) => incomplete.push(info.bytes));
  const c = await LineClient.open(s.port);
  await c.login(USER, PASS);
  t.is((await c.cmd('TYPE I')).code, 200);
  const data = await c.epsvConnect();
  let dataEnded = false;
  data.on('close', () => (dataEnded = true));
  data.on('error', () => {});
  t.is((await c.cmd('RETR big.bin')).code, 125);
  // The first bytes, then the client reads no more: the transfer stops on full buffers and is
  // still running.
  await new Promise((resolve) => data.once('data', resolve));
  data.pause();
  c.socket.end();
  await c.whenClosed();
  await waitForNoSessions(s.server);
  await eventually(() => incomplete.length === 1, 'incompleteFileSent');
  t.true(incomplete[0] > 0 && incomplete[0] < size, `bytes moved: ${incomplete[0]}`);
  // The server closed the data connection too: reading it now ends.
  data.resume();
  await eventually(() => dataEnded, 'the data connection closed');
});

test('over TLS (AUTH TLS): the commands before the close_notify and FIN are answered, then the server ends', async (t) => {
  const s = await startServer(t, { tls: tlsOption() });
  const c = await FtpsControl.plain(s.port);
  await c.auth({ rejectUnauthorized: false });
  const before = c.all.length;
  c.tlsSocket.end(`USER ${USER}\r\nPASS ${PASS}\r\nPBSZ 0\r\nPROT P\r\nPWD\r\n`);
  await c.whenClosed();
  t.deepEqual(
    c.all.slice(before).map((r) => r.code),
    [331, 230, 200, 200, 257],
  );
  await waitForNoSessions(s.server);
});

test('implicit FTPS: the commands before the close_notify and FIN are answered, then the server ends', async (t) => {
  const s = await startServer(t, { tls: tlsOption(), implicitTlsPort: 0 });
  const c = await FtpsControl.implicit(s.server.implicitAddress()!.port, { rejectUnauthorized: false });
  const before = c.all.length;
  c.tlsSocket.end(`USER ${USER}\r\nPASS ${PASS}\r\nPBSZ 0\r\nSYST\r\n`);
  await c.whenClosed();
  t.deepEqual(
    c.all.slice(before).map((r) => r.code),
    [331, 230, 200, 215],
  );
  await waitForNoSessions(s.server);
});
