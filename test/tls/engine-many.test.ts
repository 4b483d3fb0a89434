// 200 FTPS transfers at once through the engine (100 RETR, 100 STOR of 1 MiB): all in the engine
// together, each record stream sealed or opened by the one I/O thread, every byte right, the
// event loop answering meanwhile, no descriptor left.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tls from 'node:tls';
import { nativeTlsAvailable } from '../../src/ftp/data/engines';
import { configureNative, engineStats } from '../../src/native/index';
import { digestSocket, fileDigest, finishHeldTransfers, randomContent, sha256 } from '../helpers/data-client';
import { PASS, USER, eventually, inBatches, openFds, startServer, waitForNoSessions } from '../helpers/server';
import { FtpsControl, tlsOption } from '../helpers/tls';

const SESSIONS = 200;
const SIZE = 1024 * 1024;
// As in test/transfer/thousand.test.ts: a small send buffer keeps each download waiting in the
// engine while its client does not read, as a slow client would.
const SNDBUF = 64 * 1024;

interface Job {
  c: FtpsControl;
  data: tls.TLSSocket;
  up: boolean;
}

test('200 FTPS transfers at once (100 RETR, 100 STOR of 1 MiB): all in the engine together, every byte right, the loop answers, no fd left', async (t) => {
  t.true(nativeTlsAvailable(), "the addon reaches Node's OpenSSL");
  configureNative({ sendBufferSize: SNDBUF });
  t.teardown(() => void configureNative({ sendBufferSize: 0 }));
  const s = await startServer(t, { tls: tlsOption(), maxConnections: SESSIONS + 10 });
  const content = randomContent(SIZE);
  const digest = sha256(content);
  fs.writeFileSync(path.join(s.root, 'f.bin'), content);

  const open = async (): Promise<FtpsControl> => {
    const c = await FtpsControl.plain(s.port);
    await c.secureLogin(USER, PASS);
    return c;
  };
  // One download first, so that lazily made descriptors (the I/O thread's) exist before the count.
  {
    const c = await open();
    const d = await c.dataTls(await c.epsv());
    t.is((await c.cmd('RETR f.bin')).code, 125);
    t.is((await digestSocket(d)).sha256, digest);
    t.is((await c.read())?.code, 226);
    await c.cmd('QUIT');
    c.close();
  }
  await waitForNoSessions(s.server);
  await eventually(() => engineStats().active === 0, 'the first job ended');
  const fds = openFds();
  const before = engineStats();

  const jobs = await inBatches(Array.from({ length: SESSIONS }, (_x, i) => i), 50, async (i): Promise<Job> => {
    const c = await open();
    const data = await c.dataTls(await c.epsv());
    data.on('error', () => {});
    const up = i % 2 === 1;
    const r = await c.cmd(up ? `STOR up-${i}.bin` : 'RETR f.bin');
    if (r.code !== 125) throw new Error(`session ${i}: ${r.code} ${r.text}`);
    return { c, data, up };
  });
  await eventually(() => engineStats().active === SESSIONS, `${SESSIONS} jobs in the engine at once`, 60_000);
  t.is(engineStats().active, SESSIONS, 'every transfer is in the engine at once');

  // The event loop is not held by them: a new session logs in over TLS and is answered.
  const extra = await open();
  t.is((await extra.cmd('NOOP')).code, 200);
  extra.close();

  // Uploads end with a close_notify after the data: a clean end.
  const results = await finishHeldTransfers(jobs, content);
  t.deepEqual(
    results.filter((code) => code !== 226),
    [],
    'every transfer ended with 226',
  );
  for (let i = 1; i < SESSIONS; i += 2) {
    const got = await fileDigest(path.join(s.root, `up-${i}.bin`));
    if (got.bytes !== SIZE || got.sha256 !== digest) t.fail(`upload ${i}: ${got.bytes} bytes on disk`);
  }
  const after = engineStats();
  t.is(after.tls - before.tls, SESSIONS, 'the engine sealed or opened the records of all of them');
  t.is(after.jobs - before.jobs, SESSIONS);

  await inBatches(jobs, 50, async ({ c }) => {
    c.send('QUIT\r\n');
    await c.whenClosed();
  });
  await waitForNoSessions(s.server, 30_000);
  t.is(engineStats().active, 0);
  await eventually(() => openFds() === fds, `descriptors back to ${fds}`, 10_000).catch(() => undefined);
  t.is(openFds(), fds, 'no descriptor left');
});
