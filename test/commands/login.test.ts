import test from 'ava';
import { LineClient } from '../helpers/line-client';
import { PASS, USER, startServer, waitForNoSessions } from '../helpers/server';

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
