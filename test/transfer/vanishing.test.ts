import test from 'ava';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { LineClient } from '../helpers/line-client';
import { firstBytes, loggedIn, nextEvent, oneChunkFile, prepareData, randomContent, retr, sha256, sparse, startTransfer } from '../helpers/data-client';
import { MATRIX, transferRecords } from '../helpers/matrix';
import { PASS, USER, openFds, startServer, waitForNoSessions } from '../helpers/server';
import type { TransferInfo } from '../../src';
import { explain, run } from '../helpers/run';

/**
 * Clients that vanish: a data socket destroyed mid-RETR and reset mid-STOR,
 * a control connection dropped mid-transfer, and a soak of both. Serial, so
 * the fd counts of the soak belong to this file's tests alone.
 */



function closed(s: net.Socket): Promise<void> {
  return s.destroyed && s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

for (const row of MATRIX) {
  test.serial(`data socket destroyed mid-RETR: 426, no 226, session usable ${row.suffix}`, async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    sparse(s.root, 'big.bin');
    fs.writeFileSync(path.join(s.root, 'small.bin'), randomContent(999));
    const c = await loggedIn(s.port, USER, PASS);
    const incomplete = nextEvent<[string, TransferInfo]>(s.server, 'incompleteFileSent');
    const data = await startTransfer(t, c, row.mode, 'RETR big.bin');
    await firstBytes(data);
    data.destroy(); // unread bytes pending: the kernel answers with a reset
    const fin = await c.read();
    t.is(fin?.code, 426, `${fin?.code} ${fin?.text}`);
    t.is((await c.cmd('NOOP')).code, 200, 'no 226 follows the 426');
    const [, info] = await incomplete;
    t.false(info.ok);
    t.not(transferRecords(s)[0]?.result, 'ok');
    const again = await retr(c, row.mode, 'RETR small.bin');
    t.is(again.final?.code, 226);
    t.is(again.digest.sha256, sha256(randomContent(999)));
    c.close();
  });

  test.serial(`data socket reset mid-STOR: 426, never 226, partial file kept ${row.suffix}`, async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    const c = await loggedIn(s.port, USER, PASS);
    const incomplete = nextEvent<[string, TransferInfo]>(s.server, 'incompleteFileReceived', 5000);
    let complete = false;
    s.server.on('fileReceived', () => (complete = true));
    const data = await startTransfer(t, c, row.mode, 'STOR cut.bin');
    const body = randomContent(16 * 1024 * 1024);
    await new Promise<void>((resolve, reject) => data.write(body, (err) => (err ? reject(err) : resolve())));
    data.resetAndDestroy();
    const fin = await c.read();
    t.is(fin?.code, 426, `an upload cut by a reset must not be reported complete: ${fin?.code} ${fin?.text}`);
    t.is((await c.cmd('NOOP')).code, 200, 'no 226 follows the 426');
    const [p, info] = await incomplete;
    t.is(p, '/cut.bin');
    t.false(info.ok);
    t.false(complete, 'no fileReceived event');
    t.true(fs.existsSync(path.join(s.root, 'cut.bin')), 'the partial upload is kept');
    c.close();
  });

  test.serial(`control connection dropped mid-RETR: transfer aborted, session and data socket gone ${row.suffix}`, async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    sparse(s.root, 'big.bin');
    const c = await loggedIn(s.port, USER, PASS);
    const incomplete = nextEvent<[string, TransferInfo]>(s.server, 'incompleteFileSent');
    const plan = await prepareData(c, row.mode);
    c.send('RETR big.bin\r\n');
    await c.read();
    const data = await plan.socket();
    data.on('error', () => {});
    await firstBytes(data);
    c.close();
    await waitForNoSessions(s.server);
    data.resume(); // drain, so a clean FIN or a reset can reach us
    await closed(data);
    const [, info] = await incomplete;
    t.false(info.ok);
    t.pass();
  });

  test.serial(`control connection dropped mid-STOR: upload reported incomplete ${row.suffix}`, async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    const c = await loggedIn(s.port, USER, PASS);
    const incomplete = nextEvent<[string, TransferInfo]>(s.server, 'incompleteFileReceived');
    let complete = false;
    s.server.on('fileReceived', () => (complete = true));
    const plan = await prepareData(c, row.mode);
    c.send('STOR half.bin\r\n');
    await c.read();
    const data = await plan.socket();
    data.on('error', () => {});
    await new Promise<void>((resolve) => data.write(randomContent(1024 * 1024), () => resolve()));
    c.close();
    await waitForNoSessions(s.server);
    const [, info] = await incomplete;
    t.false(info.ok);
    t.false(complete);
    await closed(data);
    t.true(fs.existsSync(path.join(s.root, 'half.bin')));
  });
}

for (const engine of ['native', 'stream'] as const) {
  const row = MATRIX.find((r) => r.engine === engine && r.mode === 'passive')!;
  test.serial(`soak: 50 × connect/login/EPSV/RETR cut off/destroy leaks no fd and no session ${row.suffix}`, async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    sparse(s.root, 'big.bin');
    let incomplete = 0;
    let waiting: (() => void) | null = null;
    let want = 0;
    s.server.on('incompleteFileSent', () => {
      incomplete++;
      if (waiting && incomplete >= want) waiting();
    });
    const allReported = (n: number): Promise<void> =>
      incomplete >= n
        ? Promise.resolve()
        : new Promise((resolve) => {
            want = n;
            waiting = resolve;
          });

    const once = async (i: number): Promise<void> => {
      const c = await LineClient.open(s.port);
      await c.login(USER, PASS);
      await c.cmd('TYPE I');
      const data = await c.epsvConnect();
      data.on('error', () => {});
      c.send('RETR big.bin\r\n');
      await c.read();
      await firstBytes(data);
      // Alternate which side goes first.
      if (i % 2) {
        data.destroy();
        c.close();
      } else {
        c.close();
        data.destroy();
      }
      await Promise.all([closed(data), c.whenClosed()]);
    };

    // Warm-up: lazily loaded modules and pools open their fds here, not in the count.
    await once(0);
    await waitForNoSessions(s.server);
    await allReported(1);
    const fdsBefore = openFds();
    const sessionsBefore = s.server.sessionCount;

    for (let i = 1; i <= 50; i++) await once(i);
    await waitForNoSessions(s.server);
    await allReported(51);

    t.is(s.server.sessionCount, sessionsBefore);
    t.is(openFds(), fdsBefore, 'open file descriptors are back to where they were');
    t.is(incomplete, 51);
    // And the server still serves.
    const c = await loggedIn(s.port, USER, PASS);
    t.is((await c.cmd('NOOP')).code, 200);
    c.close();
  });
}

test.serial('server.close() resolves only once every session is gone (sessionCount 0)', async (t) => {
  // Clients that have just quit (curl): a session's socket can be destroyed while its 'close'
  // event, which removes it from the server, has not run yet.
  let leftovers = 0;
  for (let i = 0; i < 20; i++) {
    const s = await startServer(t);
    const r = await run('curl', ['-sS', '--list-only', `${s.url}/`], { timeoutMs: 30000 });
    t.is(r.code, 0, explain(r));
    await s.server.close();
    if (s.server.sessionCount !== 0) leftovers++;
    await waitForNoSessions(s.server);
  }
  t.is(leftovers, 0, `close() resolved with a session still counted in ${leftovers} of 20 runs`);
});

for (const useSendfile of [true, false]) {
  test.serial(`server.close() during a download: basic-ftp gets the whole file, then the session closes (${useSendfile ? 'native' : 'stream'})`, async (t) => {
    // 512 KiB/s for 384 KiB: close() comes with the first bytes and must wait for the rest;
    // the 421 that follows must not reach the client before it has read its 226.
    const s = await startServer(t, { useSendfile, writeLimit: 512 * 1024, closeGracePeriod: 20 });
    const body = randomContent(384 * 1024);
    fs.writeFileSync(path.join(s.root, 'f.bin'), body);
    const c = new Client(20000);
    t.teardown(() => c.close());
    await c.access({ host: '127.0.0.1', port: s.port, user: USER, password: PASS });
    const chunks: Buffer[] = [];
    let closing: Promise<void> | null = null;
    await c.downloadTo(
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          chunks.push(chunk);
          closing ??= s.server.close();
          cb();
        },
      }),
      'f.bin',
    );
    t.truthy(closing, 'close() was called during the transfer');
    t.is(sha256(Buffer.concat(chunks)), sha256(body), 'the whole file arrived');
    await closing;
    t.is(s.server.sessionCount, 0);
  });
}

for (const mode of ['passive', 'active'] as const) {
  test.serial(`a download reset while its last bytes wait in the server's buffer: 426, never 226 (stream, ${mode})`, async (t) => {
    // 32 MiB in one chunk: the client reads nothing, so the kernel takes a few MiB and the rest
    // waits in the socket while the server ends it. The reset must fail that end.
    const held = oneChunkFile(32 * 1024 * 1024);
    const s = await startServer(t, { fileSystem: held.fileSystem });
    const c = await loggedIn(s.port, USER, PASS);
    const incomplete = nextEvent<[string, TransferInfo]>(s.server, 'incompleteFileSent', 10_000);
    let complete = false;
    s.server.on('fileSent', () => (complete = true));
    const data = await startTransfer(t, c, mode, 'RETR held.bin');
    await held.handedOver;
    await new Promise((r) => setTimeout(r, 50)); // the server is now waiting for its FIN to go out
    data.resetAndDestroy();
    const fin = await c.read();
    t.is(fin?.code, 426, `a download cut before its end went out must not be reported complete: ${fin?.code} ${fin?.text}`);
    t.is((await c.cmd('NOOP')).code, 200, 'no 226 follows the 426, and the session goes on');
    const [, info] = await incomplete;
    t.false(complete);
    t.false(info.ok);
    t.true(info.bytes < held.body.length, `bytes reported: ${info.bytes}`);
    t.is(transferRecords(s)[0]?.result, 'ECONNRESET');
    const again = await retr(c, mode, 'RETR held.bin');
    t.is(again.final?.code, 226, 'the next download of the same file completes');
    t.is(again.digest.sha256, sha256(held.body));
    c.close();
  });
}

test.serial("a download whose client stops reading once the server has handed over every byte: ABOR is 426 then 226, at once", async (t) => {
  const held = oneChunkFile(32 * 1024 * 1024);
  const s = await startServer(t, { fileSystem: held.fileSystem });
  const c = await loggedIn(s.port, USER, PASS);
  const data = await startTransfer(t, c, 'passive', 'RETR held.bin');
  await held.handedOver;
  await new Promise((r) => setTimeout(r, 50)); // the server waits for its FIN to go out
  const at = Date.now();
  c.send('ABOR\r\n');
  const r1 = await c.read(5000);
  const r2 = await c.read(5000);
  t.deepEqual([r1?.code, r2?.code], [426, 226], `${r1?.code} ${r1?.text} / ${r2?.code} ${r2?.text}`);
  t.true(Date.now() - at < 1000, `answered in ${Date.now() - at} ms`);
  t.is(transferRecords(s)[0]?.result, 'FTPD_ERR_ABORTED');
  t.is((await c.cmd('NOOP')).code, 200);
  data.destroy();
  c.close();
});

test.serial('a download whose client stops reading once the server has handed over every byte: 426 after dataTimeout', async (t) => {
  const held = oneChunkFile(32 * 1024 * 1024);
  const s = await startServer(t, { fileSystem: held.fileSystem, dataTimeout: 0.5 });
  const c = await loggedIn(s.port, USER, PASS);
  const data = await startTransfer(t, c, 'passive', 'RETR held.bin');
  await held.handedOver;
  const fin = await c.read(10000);
  t.is(fin?.code, 426, `${fin?.code} ${fin?.text}`);
  t.regex(fin?.text ?? '', /idle/);
  t.is(transferRecords(s)[0]?.result, 'FTPD_ERR_DATA_TIMEOUT');
  t.is((await c.cmd('NOOP')).code, 200);
  data.destroy();
  c.close();
});
