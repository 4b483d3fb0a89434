// copyHandle (src/fs/copy.ts) on its native path, with a stand-in for the addon's copyRange: the
// steps it asks for, the progress it reports after each, and a stop between two steps.
import test from 'ava';
import { COPY_CHUNK, copyHandle, type RangeCopier } from '../../src/fs/copy';
import type { FileHandle } from '../../src/fs/types';

const handle = (fd: number, offset: number): FileHandle => ({
  fd,
  offset,
  createReadStream: () => {
    throw new Error('the native path reads no stream');
  },
  createWriteStream: () => {
    throw new Error('the native path writes no stream');
  },
  close: async () => undefined,
});

/** A copyRange that copies everything it is asked for, a little later, and records the calls. */
function recorder(): { copier: RangeCopier; calls: number[][] } {
  const calls: number[][] = [];
  const copier: RangeCopier = async (infd, outfd, inOff, outOff, len) => {
    calls.push([infd, outfd, inOff, outOff, len]);
    await new Promise((r) => setTimeout(r, 2));
    return { copied: len, via: 'copy_file_range' };
  };
  return { copier, calls };
}

test('copyHandle copies in COPY_CHUNK steps from both offsets and reports the bytes after each step', async (t) => {
  const { copier, calls } = recorder();
  const size = 2 * COPY_CHUNK + 5;
  const progress: number[] = [];
  const r = await copyHandle(handle(7, 100), handle(8, 0), size, { native: copier, onProgress: (b) => progress.push(b) });
  t.deepEqual(r, { bytes: size, via: 'copy_file_range' });
  t.deepEqual(calls, [
    [7, 8, 100, 0, COPY_CHUNK],
    [7, 8, 100 + COPY_CHUNK, COPY_CHUNK, COPY_CHUNK],
    [7, 8, 100 + 2 * COPY_CHUNK, 2 * COPY_CHUNK, 5],
  ]);
  t.deepEqual(progress, [COPY_CHUNK, 2 * COPY_CHUNK, size]);
});

test('copyHandle stops between two steps when stop() says so, with ECANCELED', async (t) => {
  const { copier, calls } = recorder();
  let steps = 0;
  const err = await t.throwsAsync(
    copyHandle(handle(7, 0), handle(8, 0), 10 * COPY_CHUNK, { native: copier, stop: () => steps >= 2, onProgress: () => steps++ }),
  );
  t.is((err as NodeJS.ErrnoException).code, 'ECANCELED');
  t.is(calls.length, 2, 'no step starts after stop() said true');
});
