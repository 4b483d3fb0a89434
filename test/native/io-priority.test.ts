import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { available, configureNative, engineStats } from '../../src/native/index';
import { downloadCount, startServer } from '../helpers/server';

// The engine's I/O threads run at a lower scheduling priority than the event loop (ioNice,
// default 10), so on a machine short of CPU the loop answering every session's commands gets
// a core first. Checked in the kernel's own view of the threads: /proc/self/task/ID/stat.

/** A thread's nice value: field 19 of /proc/self/task/ID/stat (counted after the command name). */
function threadNice(id: number): number {
  const stat = fs.readFileSync(`/proc/self/task/${id}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[16]); // fields[0] is field 3 (state)
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
  t.is(await download(s.port, s.root, 256 * 1024), 256 * 1024);
  const stats = engineStats();
  if (!available) {
    t.deepEqual(stats.ioThreadIds, [], 'no engine, no I/O threads');
    return;
  }
  t.true(stats.sendfile >= 1, 'the download took the zero-copy path');
  t.true(stats.ioThreadIds.length >= 1, `I/O threads ${JSON.stringify(stats.ioThreadIds)}`);
  const base = threadNice(process.pid);
  t.is(base, os.getPriority(), 'the process keeps its priority');
  for (const id of stats.ioThreadIds) t.is(threadNice(id), Math.min(19, base + 4), `thread ${id}`);
  // Once a thread runs, a new value is not taken: what runs and what is reported stay the same.
  t.is(configureNative({ ioNice: 9 }).ioNice, 4);
  t.is(await download(s.port, s.root, 64 * 1024), 64 * 1024);
  for (const id of engineStats().ioThreadIds) t.is(threadNice(id), Math.min(19, base + 4), `thread ${id} after`);
});

test('ioNice outside 0..19 or not an integer is refused', (t) => {
  for (const bad of [-1, 20, 1.5, Number.NaN]) {
    t.throws(() => configureNative({ ioNice: bad }), { instanceOf: RangeError, message: /ioNice/ }, String(bad));
  }
  t.is(configureNative({}).ioNice, 4, 'unchanged (the serial test set 4)');
});
