import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CopyVia } from '../native';
import type { FileHandle } from './types';

/** How a copy moved its bytes: in the kernel, through a native buffer, or through streams. */
export type CopyPath = 'copy_file_range' | 'read/write' | 'stream';

export interface CopyOutcome {
  bytes: number;
  via: CopyPath;
}

/** The native addon's copyRange (src/native): copies up to `len` bytes between two descriptors. */
export type RangeCopier = (infd: number, outfd: number, inOff: number, outOff: number, len: number) => Promise<{ copied: number; via: CopyVia }>;

/** Bytes per pool job of the native copy: about 10–50 ms of work, so one copy never holds a pool thread long. */
export const COPY_CHUNK = 32 * 1024 * 1024;

/** The error a copy stops with when its `stop()` says so (code ECANCELED). */
export function copyAborted(): Error {
  return Object.assign(new Error('copy aborted'), { code: 'ECANCELED' });
}

/**
 * Copy `size` bytes (fewer if the source ends first) from `src` (from its offset) to `dst`
 * (from its offset). Both handles backed by local descriptors and `native` given: the addon's
 * copyRange in COPY_CHUNK steps on the pool; otherwise the handles' streams. `stop()` is asked
 * between steps; when it says true the copy throws an error with code ECANCELED. `onProgress`
 * hears the bytes copied so far after each step.
 */
export async function copyHandle(
  src: FileHandle,
  dst: FileHandle,
  size: number,
  opts: { native: RangeCopier | null; stop?: () => boolean; onProgress?: (bytes: number) => void },
): Promise<CopyOutcome> {
  const copyRange = opts.native;
  if (copyRange && src.fd !== undefined && dst.fd !== undefined) {
    let done = 0;
    let via: CopyPath = 'copy_file_range';
    while (done < size) {
      if (opts.stop?.()) throw copyAborted();
      const want = Math.min(COPY_CHUNK, size - done);
      const r = await copyRange(src.fd, dst.fd, src.offset + done, dst.offset + done, want);
      done += r.copied;
      opts.onProgress?.(done);
      if (r.via === 'read/write') via = 'read/write';
      if (r.copied < want) break; // the source ended
    }
    return { bytes: done, via };
  }
  let done = 0;
  const limited = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      if (opts.stop?.()) throw copyAborted();
      const part = chunk.length > size - done ? chunk.subarray(0, size - done) : chunk;
      done += part.length;
      opts.onProgress?.(done);
      if (part.length > 0) yield part;
      if (done >= size) return;
    }
  };
  await pipeline(size > 0 ? src.createReadStream() : Readable.from([]), limited, dst.createWriteStream());
  return { bytes: done, via: 'stream' };
}
