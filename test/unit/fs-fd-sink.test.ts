import test from 'ava';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FdWriteSink } from '../../src/fs/fd-sink';

// The upload sink of local files on the stream path (TLS, TYPE A, throttled uploads): several
// positional writes in flight while the socket keeps being read. What an upload depends on:
// every byte lands at its offset, a failed write fails the stream, and 'close' (after which the
// handle closes the descriptor) never comes while a write is still running.

type Cb = (err: NodeJS.ErrnoException | null, written: number) => void;

function tmpFile(t: { teardown(fn: () => void): void }): { file: string; fd: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-sink-'));
  const file = path.join(dir, 'f.bin');
  const fd = fs.openSync(file, 'w+');
  t.teardown(() => {
    try {
      fs.closeSync(fd);
    } catch {
      /* closed */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { file, fd };
}

/** Chunks of assorted sizes (1 byte to 70 KiB), as sockets and TLS records hand them over. */
function chunks(total: number): Buffer[] {
  const out: Buffer[] = [];
  let left = total;
  let i = 0;
  while (left > 0) {
    const n = Math.min(left, [1, 16384, 65536, 71680, 333, 16381][i++ % 6]);
    out.push(crypto.randomBytes(n));
    left -= n;
  }
  return out;
}

test('one write in flight at a time when asked (an O_APPEND descriptor): the bytes land in order', async (t) => {
  const { file, fd: rw } = tmpFile(t);
  fs.writeSync(rw, Buffer.from('head'), 0, 4, 0);
  // On O_APPEND every write lands at the end when it runs: two in flight could swap places.
  const fd = fs.openSync(file, 'a');
  t.teardown(() => fs.closeSync(fd));
  const parts = chunks(3 * 1024 * 1024 + 5);
  let inFlight = 0;
  let most = 0;
  const writev = (f: number, bufs: Buffer[], pos: number, cb: Cb): void => {
    inFlight++;
    most = Math.max(most, inFlight);
    // A slow disk: the socket keeps delivering while a write runs.
    setTimeout(() => fs.writev(f, bufs, pos, (err, n) => {
      inFlight--;
      cb(err, n);
    }), 2);
  };
  const sink = new FdWriteSink(fd, 4, writev, 256 * 1024, 1);
  await pipeline(Readable.from(parts), sink);
  t.is(most, 1, 'never two writes at once');
  t.true(fs.readFileSync(file).equals(Buffer.concat([Buffer.from('head'), ...parts])));
});

test('every byte lands at its offset, from the start offset on, with writes in flight together', async (t) => {
  const { file, fd } = tmpFile(t);
  fs.writeSync(fd, Buffer.from('keep'), 0, 4, 0);
  const parts = chunks(5 * 1024 * 1024 + 7);
  let inFlight = 0;
  let most = 0;
  const writev = (f: number, bufs: Buffer[], pos: number, cb: Cb): void => {
    inFlight++;
    most = Math.max(most, inFlight);
    fs.writev(f, bufs, pos, (err, n) => {
      inFlight--;
      cb(err, n);
    });
  };
  const sink = new FdWriteSink(fd, 4, writev, 256 * 1024, 2);
  await pipeline(Readable.from(parts), sink);
  const got = fs.readFileSync(file);
  t.is(got.subarray(0, 4).toString(), 'keep', 'bytes before the offset are untouched');
  t.true(got.subarray(4).equals(Buffer.concat(parts)));
  t.is(most, 2, 'two writes ran at once, never more');
});

test('a short write is completed by another write of the rest', async (t) => {
  const { file, fd } = tmpFile(t);
  const parts = chunks(1024 * 1024 + 3);
  let calls = 0;
  // Writes at most 10,000 bytes per call, like a filesystem that takes part of a request.
  const writev = (f: number, bufs: Buffer[], pos: number, cb: Cb): void => {
    calls++;
    const all = Buffer.concat(bufs);
    const part = all.subarray(0, Math.min(all.length, 10_000));
    fs.write(f, part, 0, part.length, pos, (err, n) => cb(err, n));
  };
  await pipeline(Readable.from(parts), new FdWriteSink(fd, 0, writev, 64 * 1024, 2));
  t.true(fs.readFileSync(file).equals(Buffer.concat(parts)));
  t.true(calls > 100, `${calls} calls`);
});

test('a failed write fails the stream with its error, and close waits for the writes still running', async (t) => {
  const { fd } = tmpFile(t);
  const running = new Set<number>();
  let n = 0;
  const writev = (_f: number, bufs: Buffer[], _pos: number, cb: Cb): void => {
    const id = n++;
    running.add(id);
    const len = bufs.reduce((a, b) => a + b.length, 0);
    // The second write fails at once; the first returns later.
    if (id === 1) {
      running.delete(id);
      const e = Object.assign(new Error('No space left on device'), { code: 'ENOSPC' });
      setImmediate(() => cb(e, 0));
      return;
    }
    setTimeout(() => {
      running.delete(id);
      cb(null, len);
    }, 50);
  };
  const sink = new FdWriteSink(fd, 0, writev, 64 * 1024, 2);
  const closedWhileRunning: number[] = [];
  sink.on('close', () => closedWhileRunning.push(running.size));
  const err = await t.throwsAsync(pipeline(Readable.from(chunks(2 * 1024 * 1024)), sink));
  t.is((err as NodeJS.ErrnoException).code, 'ENOSPC');
  if (!sink.closed) await new Promise((r) => sink.once('close', r));
  t.deepEqual(closedWhileRunning, [0], "'close' came once, with no write running");
});

test('a write that fails below one that landed: the file is cut where the gap begins, before close; what is below stays', async (t) => {
  const { file, fd } = tmpFile(t);
  const head = crypto.randomBytes(4096);
  fs.writeSync(fd, head, 0, head.length, 0);
  let calls = 0;
  let failedAt = -1;
  let cutSeen = -1;
  const writev = (f: number, bufs: Buffer[], pos: number, cb: Cb): void => {
    if (++calls === 3) {
      // The third write fails, late: the fourth has landed above it by then.
      failedAt = pos;
      setTimeout(() => cb(Object.assign(new Error('i/o error'), { code: 'EIO' }), 0), 60);
      return;
    }
    fs.writev(f, bufs, pos, cb);
  };
  const parts = chunks(2 * 1024 * 1024);
  const body = Buffer.concat(parts);
  const sink = new FdWriteSink(fd, 4096, writev, 64 * 1024, 2);
  sink.on('close', () => {
    cutSeen = fs.fstatSync(fd).size;
  });
  // An empty chunk while no write runs is no write (it once counted as one that failed).
  await new Promise<void>((resolve) => sink.write(Buffer.alloc(0), () => resolve()));
  const err = await t.throwsAsync(pipeline(Readable.from(parts), sink));
  t.is((err as NodeJS.ErrnoException).code, 'EIO');
  if (!sink.closed) await new Promise((r) => sink.once('close', r));
  t.true(failedAt > 4096, `a write past the first failed (at ${failedAt})`);
  t.is(cutSeen, failedAt, "cut at the failed write's offset by the time of 'close'");
  const stored = fs.readFileSync(file);
  t.is(stored.length, failedAt);
  t.true(stored.equals(Buffer.concat([head, body.subarray(0, failedAt - 4096)])), 'every byte below the cut is the upload\'s, in place');
});

test('the writer waits while the writes in flight are at the limit, and goes on when one returns', async (t) => {
  const { fd } = tmpFile(t);
  const held: Array<() => void> = [];
  const writev = (_f: number, bufs: Buffer[], _pos: number, cb: Cb): void => {
    const len = bufs.reduce((a, b) => a + b.length, 0);
    held.push(() => cb(null, len));
  };
  const sink = new FdWriteSink(fd, 0, writev, 1024, 2);
  const accepted: number[] = [];
  const write = (i: number): void => void sink.write(Buffer.alloc(1024, i), () => accepted.push(i));
  for (let i = 0; i < 4; i++) write(i);
  await new Promise((r) => setImmediate(r));
  t.is(held.length, 2, 'two writes in flight');
  t.deepEqual(accepted, [0], 'the second batch waits for a free slot');
  held.shift()!();
  await new Promise((r) => setImmediate(r));
  t.true(accepted.includes(1), `accepted ${accepted.join(',')}`);
  // Let everything finish.
  const done = new Promise<void>((resolve, reject) => {
    sink.once('finish', () => resolve());
    sink.once('error', reject);
  });
  sink.end();
  while (!sink.writableFinished) {
    while (held.length) held.shift()!();
    await new Promise((r) => setImmediate(r));
  }
  await done;
  t.deepEqual(accepted, [0, 1, 2, 3]);
});

test('a slow upload reaches the disk as it arrives, not once a batch is full', async (t) => {
  const { file, fd } = tmpFile(t);
  const sink = new FdWriteSink(fd, 0);
  await new Promise<void>((resolve, reject) => sink.write(Buffer.from('first'), (e) => (e ? reject(e) : resolve())));
  await new Promise<void>((resolve) => setTimeout(resolve, 50));
  t.is(fs.readFileSync(file, 'utf8'), 'first', 'written with no write running, though far below a batch');
  await new Promise<void>((resolve, reject) => sink.end(Buffer.from(' second'), (e?: Error | null) => (e ? reject(e) : resolve())));
  t.is(fs.readFileSync(file, 'utf8'), 'first second');
});
