import test from 'ava';
import { Client } from 'basic-ftp';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { available } from '../../src/native/index';
import { PASS, USER, startServer, waitForNoSessions } from '../helpers/server';

// memoryTrimDelay: after sessions and transfers pause, the server gives the memory malloc freed
// back to the kernel (glibc's malloc_trim through the addon). These tests watch it happen, or
// not, through the server's debug log and its counter, around real sessions.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const trimmed = (records: Array<Record<string, unknown>>) => records.filter((r) => r.msg === 'memory trimmed');

/** A login, a download and a QUIT with basic-ftp; resolves once the server has closed the session. */
async function oneSession(port: number, server: Parameters<typeof waitForNoSessions>[0]): Promise<number> {
  const c = new Client(10000);
  let bytes = 0;
  try {
    await c.access({ host: '127.0.0.1', port, user: USER, password: PASS });
    await c.downloadTo(
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          bytes += chunk.length;
          cb();
        },
      }),
      'f.bin',
    );
  } finally {
    c.close();
  }
  await waitForNoSessions(server);
  return bytes;
}

test.serial('after sessions end and the server is quiet, it trims once, and keeps serving', async (t) => {
  const s = await startServer(t, { memoryTrimDelay: 0.1 });
  fs.writeFileSync(path.join(s.root, 'f.bin'), Buffer.alloc(256 * 1024, 7));
  // The trim that follows listen(), 0.1 s later (a timer, so possibly late on a busy machine).
  const first = Date.now() + 3000;
  while (s.server.memoryTrims === 0 && Date.now() < first) await sleep(20);
  t.is(s.server.memoryTrims, 1, 'one trim once the fresh server was quiet');
  await Promise.all([oneSession(s.port, s.server), oneSession(s.port, s.server), oneSession(s.port, s.server)]);
  t.is(s.server.memoryTrims, 1, 'no trim within the 5 s interval after the last one');
  if (!available) {
    // Without the addon there is nothing to trim with: the first attempt says so and the server stops trying.
    await sleep(5500);
    t.is(s.server.memoryTrims, 1);
    t.deepEqual(trimmed(s.records).map((r) => r.result), [-2]);
    return;
  }
  // The next trim waits for the 5 s interval since the first; poll for it.
  const deadline = Date.now() + 8000;
  while (s.server.memoryTrims === 1 && Date.now() < deadline) await sleep(100);
  t.is(s.server.memoryTrims, 2, 'the sessions and transfers ending led to one more trim');
  const recs = trimmed(s.records);
  t.is(recs.length, 2);
  for (const r of recs) {
    // 1 or 0: glibc's malloc_trim ran (it freed pages, or had none to free).
    t.true(r.result === 0 || r.result === 1, `result ${String(r.result)}`);
    t.true(typeof r.ms === 'number' && r.ms >= 0);
  }
  t.is(await oneSession(s.port, s.server), 256 * 1024, 'a session after the trim downloads the whole file');
});

test.serial('memoryTrimDelay 0: never trims', async (t) => {
  const s = await startServer(t, { memoryTrimDelay: 0 });
  fs.writeFileSync(path.join(s.root, 'f.bin'), Buffer.alloc(1024, 7));
  t.is(await oneSession(s.port, s.server), 1024);
  await sleep(700);
  t.is(s.server.memoryTrims, 0);
  t.deepEqual(trimmed(s.records), []);
});
