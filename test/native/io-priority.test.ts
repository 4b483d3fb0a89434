import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { available, configureNative, engineStats } from '../../src/native/index';
import { downloadCount, eventually, startServer, waitForNoSessions } from '../helpers/server';

// The engine's I/O threads run at a lower scheduling priority than the event loop (ioNice,
// default 10), so on a machine short of CPU the loop answering every session's commands gets
// a core first. Checked in the kernel's own view of the threads: /proc/self/task/ID/stat.

/** A thread's nice value: field 19 of /proc/self/task/ID/stat (counted after the command name). */
function threadNice(id: number): number {
  const stat = fs.readFileSync(`/proc/self/task/${id}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[16]); // fields[0] is field 3 (state)
}

/** A thread's name: /proc/self/task/ID/comm. */
function threadName(id: number): string {
  return fs.readFileSync(`/proc/self/task/${id}/comm`, 'utf8').trim();
}

/** One binary download of a `size`-byte file with basic-ftp; the bytes received. */
async function download(port: number, root: string, size: number): Promise<number> {
  fs.writeFileSync(path.join(root, 'f.bin'), Buffer.alloc(size, 3));
  return downloadCount(port, 'f.bin');
}

// Serial, and first in this file: the engine (one per test worker) starts its I/O thread at the
// first transfer, and ioNice applies to threads not started yet.
test.serial('the I/O thread that moved a zero-copy download runs ioNice lower than the process; set once', async (t) => {
  t.is(configureNative({}).ioNice, 10, 'the default');
  t.is(configureNative({ ioNice: 4 }).ioNice, 4);
  const s = await startServer(t);
  t.is(engineStats().heldFds, 0, 'no thread yet, no descriptor held');
  const rawFds = (): number => fs.readdirSync('/proc/self/fd').length;
  const fdsBefore = rawFds();
  t.is(await download(s.port, s.root, 256 * 1024), 256 * 1024);
  await waitForNoSessions(s.server);
  const stats = engineStats();
  // The thread that started keeps its epoll and eventfd, and heldFds says so (test/helpers'
  // openFds subtracts it in every leak check).
  t.is(stats.heldFds, 2 * stats.ioThreadIds.length, 'two descriptors per started I/O thread');
  await eventually(() => rawFds() === fdsBefore + stats.heldFds, 'the held descriptors are all that stays', 5000).catch(() => undefined);
  t.is(rawFds(), fdsBefore + stats.heldFds, 'the held descriptors are all that stays');
  if (!available) {
    t.deepEqual(stats.ioThreadIds, [], 'no engine, no I/O threads');
    return;
  }
  t.true(stats.sendfile >= 1, 'the download took the zero-copy path');
  t.true(stats.ioThreadIds.length >= 1, `I/O threads ${JSON.stringify(stats.ioThreadIds)}`);
  const base = threadNice(process.pid);
  t.is(base, os.getPriority(), 'the process keeps its priority');
  // A download alone ran on the solo thread, which keeps the process's priority.
  const solo = stats.ioThreadIds.filter((id) => threadName(id) === 'ftpdlib-io-solo');
  t.is(solo.length, 1, `threads ${stats.ioThreadIds.map(threadName).join(', ')}`);
  t.is(threadNice(solo[0]), base);
  // Two at once: the second goes to an ioNice thread.
  const big = 2 * 1024 * 1024;
  fs.writeFileSync(path.join(s.root, 'g.bin'), Buffer.alloc(big, 5));
  const slow = await startServer(t, { writeLimit: 4 * 1024 * 1024 });
  fs.writeFileSync(path.join(slow.root, 'g.bin'), Buffer.alloc(big, 5));
  t.deepEqual(await Promise.all([downloadCount(slow.port, 'g.bin'), downloadCount(slow.port, 'g.bin')]), [big, big]);
  const niced = engineStats().ioThreadIds.filter((id) => threadName(id) === 'ftpdlib-io');
  t.is(engineStats().heldFds, 2 * engineStats().ioThreadIds.length, 'two descriptors per started I/O thread');
  t.true(niced.length >= 1, `threads ${engineStats().ioThreadIds.map(threadName).join(', ')}`);
  for (const id of niced) t.is(threadNice(id), Math.min(19, base + 4), `thread ${id}`);
  // Once a thread runs, a new value is not taken: what runs and what is reported stay the same.
  t.is(configureNative({ ioNice: 9 }).ioNice, 4);
  t.is(await downloadCount(slow.port, 'g.bin'), big);
  for (const id of niced) t.is(threadNice(id), Math.min(19, base + 4), `thread ${id} after`);
});

test.serial('soloThread: false sends every transfer to the ioNice threads; it can be switched at any time', async (t) => {
  t.is(configureNative({}).soloThread, true, 'the default');
  t.throws(() => configureNative({ soloThread: 'yes' as unknown as boolean }), { instanceOf: RangeError, message: /soloThread/ });
  const s = await startServer(t);
  if (!available) return void t.is(await download(s.port, s.root, 1024), 1024);
  t.like(s.records.find((r) => r.msg === 'listening'), { ioNice: 4, soloThread: true }, 'the listening record says how files move');
  // The solo thread (started by the test above) sleeps in epoll_wait; a job handed to it wakes
  // it, which the kernel counts as a voluntary context switch of that thread.
  const solo = engineStats().ioThreadIds.filter((id) => threadName(id) === 'ftpdlib-io-solo');
  t.is(solo.length, 1);
  const wakeups = (): number => Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/task/${solo[0]}/status`, 'utf8'))![1]);
  t.is(configureNative({ soloThread: false }).soloThread, false);
  t.teardown(() => void configureNative({ soloThread: true }));
  let before = wakeups();
  t.is(await download(s.port, s.root, 256 * 1024), 256 * 1024);
  t.is(wakeups(), before, 'off: the solo thread slept through the download');
  t.is(configureNative({ soloThread: true }).soloThread, true);
  before = wakeups();
  t.is(await download(s.port, s.root, 256 * 1024), 256 * 1024);
  t.true(wakeups() > before, 'on again: the download woke the solo thread');
});

test('ioNice outside 0..19 or not an integer is refused', (t) => {
  for (const bad of [-1, 20, 1.5, Number.NaN]) {
    t.throws(() => configureNative({ ioNice: bad }), { instanceOf: RangeError, message: /ioNice/ }, String(bad));
  }
  t.is(configureNative({}).ioNice, 4, 'unchanged (the serial test set 4)');
});
