import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bareStats } from '../../src/ftp/data/connection';
import { nativeStatus } from '../../src/ftp/data/engines';
import { loggedIn, randomContent, retr, sha256, stor } from '../helpers/data-client';
import { connectData } from '../helpers/line-client';
import { PASS, USER, openFds, startServer, waitForNoSessions } from '../helpers/server';

/**
 * Passive data connections are taken bare from the listener (src/ftp/data/connection.ts): a
 * zero-copy transfer moves the bytes on the accepted descriptor and no net.Socket is ever made
 * for it; anything that needs a stream (listings, TYPE A, TLS) makes one from it. These tests
 * check, over real connections, that each kind of transfer takes the way it should, that the
 * bytes are the same either way, and that nothing is left open. Serial: they read one
 * process-wide counter and one environment variable.
 */

const native = nativeStatus().available;

/**
 * A binary RETR and STOR of `size` bytes over passive connections, checked by hash and by the
 * transfer log's engine; returns how the bare counters moved meanwhile.
 */
async function retrAndStor(t: ExecutionContext, size: number): Promise<{ accepted: number; wrapped: number }> {
  const s = await startServer(t);
  const body = randomContent(size);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const c = await loggedIn(s.port, USER, PASS);
  const before = bareStats();
  const got = await retr(c, 'passive', 'RETR f.bin');
  t.is(got.final?.code, 226);
  t.is(got.digest.sha256, sha256(body));
  const up = await stor(c, 'passive', 'STOR up.bin', body);
  t.is(up.final?.code, 226);
  t.is(sha256(fs.readFileSync(path.join(s.root, 'up.bin'))), sha256(body));
  const after = bareStats();
  const engines = s.records.filter((r) => r.transfer).map((r) => r.engine);
  // The engine receives with splice by default (recv+pwrite, 'copy', when configured).
  t.deepEqual(engines, native ? ['sendfile', 'splice'] : ['stream', 'stream']);
  await c.cmd('QUIT');
  return { accepted: after.accepted - before.accepted, wrapped: after.wrapped - before.wrapped };
}

test.serial('a binary RETR and STOR take the connection bare: no Socket made, bytes intact', async (t) => {
  const moved = await retrAndStor(t, 256 * 1024 + 7);
  t.is(moved.accepted, 2, 'both data connections were taken bare');
  // With the engine the bytes moved on the descriptor; without it (no addon) the stream path
  // made a Socket for each.
  t.is(moved.wrapped, native ? 0 : 2);
});

test.serial('listings and TYPE A downloads make a stream from the bare connection, with the same bytes', async (t) => {
  const s = await startServer(t);
  fs.writeFileSync(path.join(s.root, 'a.txt'), 'one\ntwo\n');
  const c = await loggedIn(s.port, USER, PASS);
  const before = bareStats();
  const list = await retr(c, 'passive', 'NLST');
  t.is(list.final?.code, 226);
  t.is(list.data.toString(), 'a.txt\r\n');
  t.is((await c.cmd('TYPE A')).code, 200);
  const text = await retr(c, 'passive', 'RETR a.txt');
  t.is(text.final?.code, 226);
  t.is(text.data.toString(), 'one\r\ntwo\r\n');
  const after = bareStats();
  t.is(after.accepted - before.accepted, 2);
  t.is(after.wrapped - before.wrapped, 2, 'each needed a stream');
  await c.cmd('QUIT');
});

test.serial('FTPDLIB_NO_BARE_ACCEPT=1: Node makes the Socket at accept, and transfers are the same', async (t) => {
  process.env.FTPDLIB_NO_BARE_ACCEPT = '1';
  t.teardown(() => {
    delete process.env.FTPDLIB_NO_BARE_ACCEPT;
  });
  t.deepEqual(await retrAndStor(t, 100 * 1024 + 1), { accepted: 0, wrapped: 0 }, 'no connection was taken bare');
});

test.serial('a bare connection from a foreign address is refused and closed; the transfer then gets 425', async (t) => {
  const s = await startServer(t, { dataConnectTimeout: 1 });
  fs.writeFileSync(path.join(s.root, 'f.bin'), 'x');
  const c = await loggedIn(s.port, USER, PASS);
  const r = await c.cmd('EPSV');
  const port = Number(/\(\|\|\|(\d+)\|\)/.exec(r.text)![1]);
  // The control connection comes from 127.0.0.1; this data connection from 127.0.0.2.
  const foreign = await connectData(port, '127.0.0.1', '127.0.0.2');
  await new Promise<void>((resolve) => foreign.resume().once('close', () => resolve()));
  t.true(s.records.some((x) => x.msg === 'refused data connection from a foreign address' && x.remote === '127.0.0.2'));
  c.send('RETR f.bin\r\n');
  t.is((await c.read())?.code, 150);
  t.is((await c.read())?.code, 425, 'no connection of the client came in time');
  t.is((await c.cmd('NOOP')).code, 200, 'the session goes on');
  await c.cmd('QUIT');
});

test.serial('bare connections are all closed: unused, refused by a kept listener, after transfers, on QUIT', async (t) => {
  const s = await startServer(t);
  fs.writeFileSync(path.join(s.root, 'f.bin'), randomContent(64 * 1024));
  // Warm up once so that lazily opened descriptors (the addon's threads, epoll) are counted in both.
  const w = await loggedIn(s.port, USER, PASS);
  await retr(w, 'passive', 'RETR f.bin');
  await w.cmd('QUIT');
  await waitForNoSessions(s.server);
  const fdsBefore = openFds();
  const before = bareStats();
  const c = await loggedIn(s.port, USER, PASS);
  for (let i = 0; i < 3; i++) t.is((await retr(c, 'passive', 'RETR f.bin')).final?.code, 226);
  // The listener of the last transfer is kept for the next EPSV: a connection to it now is closed at once.
  const kept = (await c.cmd('EPSV')).text;
  const port = Number(/\(\|\|\|(\d+)\|\)/.exec(kept)![1]);
  t.is((await c.cmd('PWD')).code, 257);
  const early = await connectData(port);
  // A connection the session never uses: EPSV again closes the channel it came on.
  t.is((await c.cmd('EPSV')).code, 229);
  await new Promise<void>((resolve) => early.resume().once('close', () => resolve()));
  const port2 = Number(/\(\|\|\|(\d+)\|\)/.exec((await c.cmd('EPSV')).text)![1]);
  const unused = await connectData(port2);
  await new Promise((r) => setTimeout(r, 50));
  await c.cmd('QUIT');
  await new Promise<void>((resolve) => unused.resume().once('close', () => resolve()));
  await waitForNoSessions(s.server);
  t.true(bareStats().accepted - before.accepted >= 5);
  // Closed handles give their descriptors back on the next loop turns.
  let fds = openFds();
  for (let i = 0; i < 50 && fds > fdsBefore; i++) {
    await new Promise((r) => setTimeout(r, 20));
    fds = openFds();
  }
  t.is(fds, fdsBefore, 'no descriptor left open');
});
