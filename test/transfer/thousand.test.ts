// 1,000 zero-copy transfers at once (500 RETR, 500 STOR), all of them in the native engine at
// the same moment: each arrives whole, the event loop keeps answering, no descriptor is left.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import test from 'ava';
import { configureNative, engineStats } from '../../src/native/index';
import { fileDigest, finishHeldTransfers, loggedIn, randomContent, sha256 } from '../helpers/data-client';
import type { LineClient } from '../helpers/line-client';
import { native } from '../helpers/matrix';
import { PASS, USER, downloadCount, eventually, inBatches, openFds, startServer, waitForNoSessions } from '../helpers/server';

const SESSIONS = 1000;
const SIZE = 1024 * 1024;
// With nobody reading, the kernel would take about 4 MiB into each loopback connection (the
// autotuned send buffer) and a 1 MiB download would be over before its client read a byte. A
// 64 KiB send buffer (the kernel doubles it; the engine's sendBufferSize option) keeps each
// download waiting in the engine, as a slow client makes it wait, without gigabytes of socket
// memory for 500 of them.
const SNDBUF = 64 * 1024;

interface Job {
  c: LineClient;
  data: net.Socket;
  up: boolean;
}

test('1,000 zero-copy transfers at once (500 RETR, 500 STOR of 1 MiB): all in the engine together, every byte right, the loop answers, no fd left', async (t) => {
  t.true(native.available, 'the native engine is built here (npm install)');
  configureNative({ sendBufferSize: SNDBUF });
  t.teardown(() => void configureNative({ sendBufferSize: 0 }));
  const s = await startServer(t, { maxConnections: SESSIONS + 10 });
  const content = randomContent(SIZE);
  const digest = sha256(content);
  fs.writeFileSync(path.join(s.root, 'f.bin'), content);
  // One download first, so that lazily loaded modules open their descriptors before the count.
  t.is(await downloadCount(s.port, 'f.bin'), SIZE);
  await waitForNoSessions(s.server);
  const fds = openFds();
  const before = engineStats();

  // Every session: log in, EPSV, connect the data socket and leave it unread (Node reads at most
  // its high-water mark and stops), then RETR or STOR. The 125 comes once the transfer has started.
  const jobs = await inBatches(Array.from({ length: SESSIONS }, (_x, i) => i), 100, async (i): Promise<Job> => {
    const c = await loggedIn(s.port, USER, PASS);
    const data = await c.epsvConnect();
    const up = i % 2 === 1;
    const r = await c.cmd(up ? `STOR up-${i}.bin` : 'RETR f.bin');
    if (r.code !== 125) throw new Error(`session ${i}: ${r.code} ${r.text}`); // 125: the data connection was already open
    return { c, data, up };
  });
  await eventually(() => engineStats().active === SESSIONS, `${SESSIONS} jobs in the engine at once`, 60_000);
  t.is(engineStats().active, SESSIONS, 'every transfer is in the engine at once');

  // The event loop is not held by them: a new session logs in and is answered.
  const extra = await loggedIn(s.port, USER, PASS);
  t.is((await extra.cmd('NOOP')).code, 200);
  extra.close();

  // Now the clients move: downloads are read to the end, uploads send the file and close.
  const results = await finishHeldTransfers(jobs, content);
  t.deepEqual(
    results.filter((code) => code !== 226),
    [],
    'every transfer ended with 226',
  );
  for (let i = 1; i < SESSIONS; i += 2) {
    const d = await fileDigest(path.join(s.root, `up-${i}.bin`));
    if (d.bytes !== SIZE || d.sha256 !== digest) t.fail(`upload ${i}: ${d.bytes} bytes on disk`);
  }
  const after = engineStats();
  t.is(after.sendfile - before.sendfile, SESSIONS / 2, 'the downloads went by sendfile');
  t.is(after.splice - before.splice, SESSIONS / 2, 'the uploads by splice (the default receive)');
  t.is(after.jobs - before.jobs, SESSIONS);

  await inBatches(jobs, 100, async ({ c }) => {
    c.send('QUIT\r\n');
    await c.whenClosed();
  });
  await waitForNoSessions(s.server, 30_000);
  t.is(engineStats().active, 0);
  // (openFds leaves out what I/O threads started meanwhile keep: their epoll and eventfd.)
  await eventually(() => openFds() === fds, `descriptors back to ${fds}`, 10_000).catch(() => undefined);
  t.is(openFds(), fds, 'no descriptor left');
});
