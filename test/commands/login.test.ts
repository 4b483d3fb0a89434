import test from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import * as net from 'node:net';
import { LineClient } from '../helpers/line-client';
import { PASS, USER, startServer, waitForNoSessions } from '../helpers/server';
import { native } from '../helpers/matrix';

test('USER/PASS logs in and PWD answers /', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.is((await c.cmd(`USER ${USER}`)).code, 331);
  t.is((await c.cmd(`PASS ${PASS}`)).code, 230);
  const pwd = await c.cmd('PWD');
  t.is(pwd.code, 257);
  t.is(pwd.text, '"/" is the current directory.');
  t.is((await c.cmd('QUIT')).code, 221);
  await c.whenClosed();
  await waitForNoSessions(s.server);
});

test('commands before login get 530 and the session stays up', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  for (const cmd of ['PWD', 'CWD /', 'LIST', 'RETR x', 'STOR x', 'PASV', 'MKD a', 'DELE a']) {
    t.is((await c.cmd(cmd)).code, 530, cmd);
  }
  t.is((await c.cmd('NOOP')).code, 200);
  c.close();
});

test('a wrong password gets 530, and max attempts closes the connection', async (t) => {
  const s = await startServer(t, { maxLoginAttempts: 2 });
  const failed: string[] = [];
  s.server.on('loginFailed', (u) => failed.push(u));
  const c = await LineClient.open(s.port);
  t.is((await c.cmd(`USER ${USER}`)).code, 331);
  t.is((await c.cmd('PASS wrong')).code, 530);
  t.is((await c.cmd('USER nobody')).code, 331);
  const last = await c.cmd('PASS wrong');
  t.is(last.code, 530);
  t.regex(last.text, /Disconnecting/);
  await c.whenClosed();
  t.deepEqual(failed, [USER, 'nobody']);
});

test('the command log masks the arguments of PASS and ACCT (firewall clients send a password in ACCT)', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.is((await c.cmd(`USER ${USER}`)).code, 331);
  t.is((await c.cmd('PASS Wr0ng-Secret-1')).code, 530);
  t.is((await c.cmd(`USER ${USER}`)).code, 331);
  t.is((await c.cmd(`PASS ${PASS}`)).code, 230);
  t.is((await c.cmd('ACCT Firewall-Secret-2')).code, 502);
  t.is((await c.cmd('NOOP')).code, 200);
  c.close();
  const logged = s.records.filter((r) => r.msg === 'command');
  t.deepEqual(logged.filter((r) => r.cmd === 'PASS' || r.cmd === 'ACCT').map((r) => [r.cmd, r.arg]), [['PASS', '******'], ['PASS', '******'], ['ACCT', '******']]);
  const all = JSON.stringify(s.records);
  t.false(all.includes('Secret'), 'no secret anywhere in the log');
  t.false(all.includes(PASS), 'nor the right password');
});

test('PASS without USER is a bad sequence (503)', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.is((await c.cmd('PASS x')).code, 503);
  c.close();
});

test('pipelined commands in one packet are answered in order', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  c.send(`USER ${USER}\r\nPASS ${PASS}\r\nPWD\r\nSYST\r\nNOOP\r\n`);
  const codes = [];
  for (let i = 0; i < 5; i++) codes.push((await c.read())!.code);
  t.deepEqual(codes, [331, 230, 257, 215, 200]);
  c.close();
});

/** A raw client that keeps its end open after the server's FIN, and records how the server ended. */
function halfOpenClient(port: number): Promise<{ sock: net.Socket; text: () => string; ended: Promise<'fin' | string> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let text = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (text += d));
    const ended = new Promise<'fin' | string>((res) => {
      sock.once('end', () => res('fin'));
      sock.once('error', (err: NodeJS.ErrnoException) => res(err.code ?? err.message));
    });
    sock.once('connect', () => {
      sock.off('error', reject);
      resolve({ sock, text: () => text, ended });
    });
    sock.once('error', reject);
  });
}

test('QUIT: 221, then the server closes and frees the session at once, even while the client keeps its end open', async (t) => {
  const s = await startServer(t);
  let disconnected = 0;
  s.server.on('disconnect', () => disconnected++);
  const c = await halfOpenClient(s.port);
  t.teardown(() => c.sock.destroy());
  c.sock.write(`USER ${USER}\r\nPASS ${PASS}\r\nQUIT\r\n`);
  // The server's FIN, not a reset: everything sent before it arrives whole.
  t.is(await c.ended, 'fin');
  t.deepEqual(
    c.text().split('\r\n').filter(Boolean).map((l) => l.slice(0, 3)),
    ['220', '331', '230', '221'],
  );
  // The client has not closed its side; the session is gone anyway (it used to wait for the
  // client's FIN, or 2 s).
  t.false(c.sock.destroyed);
  await waitForNoSessions(s.server, 1500);
  t.is(disconnected, 1);
});

// Python logs in, sends QUIT and counts the TCP segments its socket received from then until
// the end of the stream (TCP_INFO's tcpi_segs_in, Linux 4.2+), for each of `sessions` sessions.
// It prints one line per session: the reply to QUIT, how the stream ended, the count.
const QUIT_SEGMENTS_PY = `
import socket, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.create_connection(('127.0.0.1', port))
    buf = b''
    def line():
        global buf
        while b'\\r\\n' not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit('closed early')
            buf += chunk
        l, _, buf = buf.partition(b'\\r\\n')
        return l.decode()
    line()
    s.sendall(b'USER ${USER}\\r\\n'); line()
    s.sendall(b'PASS ${PASS}\\r\\n'); line()
    before = struct.unpack_from('I', s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 140)[0]
    s.sendall(b'QUIT\\r\\n')
    reply = line()
    try:
        end = 'fin' if s.recv(4096) == b'' else 'data'
    except ConnectionResetError:
        end = 'reset'
    after = struct.unpack_from('I', s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 140)[0]
    print(reply[:3], end, after - before)
    s.close()
`;

test('QUIT: the 221 and the FIN leave in one segment (TCP_CORK until the close), where the addon is loaded', async (t) => {
  const s = await startServer(t);
  // Three sessions: a delayed ACK (a server slower than 40 ms to answer QUIT under load) would
  // add a segment to one of them, never to all three.
  // Not spawnSync: the server runs in this process and must answer meanwhile.
  const r = await promisify(execFile)('python3', ['-c', QUIT_SEGMENTS_PY, String(s.port), '3'], { encoding: 'utf8', timeout: 20000 });
  const sessions = r.stdout.trim().split('\n').map((l) => l.split(' '));
  t.is(sessions.length, 3);
  for (const [code, end] of sessions) {
    t.is(code, '221');
    t.is(end, 'fin');
  }
  const fewest = Math.min(...sessions.map((x) => Number(x[2])));
  // Without the addon there is no cork: the 221, then the FIN, in two segments.
  t.is(fewest, native.available ? 1 : 2);
  await waitForNoSessions(s.server, 1500);
});

// The server's end of a control connection, as the kernel has it: TCP_NODELAY read by Python
// from the descriptor itself (passed as the child's fd 3).
async function serverNoDelay(tcpNoDelay: boolean | undefined, t: import('ava').ExecutionContext): Promise<number> {
  const s = await startServer(t, tcpNoDelay === undefined ? {} : { tcpNoDelay });
  const c = await LineClient.open(s.port);
  t.is((await c.cmd(`USER ${USER}`)).code, 331); // the session has set up its connection
  const sessions = (s.server as unknown as { sessions: Set<{ socket: { _handle: { fd: number } } }> }).sessions;
  t.is(sessions.size, 1);
  const fd = [...sessions][0].socket._handle.fd;
  const py = 'import socket; s = socket.socket(fileno=3); print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)); s.detach()';
  const r = spawnSync('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit', fd], encoding: 'utf8' });
  c.close();
  t.is(r.status, 0);
  return Number(r.stdout.trim()) ? 1 : 0;
}

test('control connections have TCP_NODELAY (tcpNoDelay, the default), and not with tcpNoDelay: false', async (t) => {
  t.is(await serverNoDelay(undefined, t), 1, 'default');
  t.is(await serverNoDelay(true, t), 1, 'tcpNoDelay: true');
  t.is(await serverNoDelay(false, t), 0, 'tcpNoDelay: false');
});
