/**
 * Buffers of CHUNK bytes that finished transfers on the stream path gave back, for the next
 * ones: downloads read the file into them (sendFromFd in ./fallback.ts), uploads read the socket
 * into them (./fd-receive.ts). Each new one is memory outside V8's heap that V8 counts: with 100
 * downloads of 1 MiB at a time, two fresh buffers per download made V8 run a full mark-compact
 * every few dozen files, and each buffer's pages were faulted in anew (src/native/bench/RESULTS.md,
 * "The stream path in "many""). Emptied once nothing has given one back for POOL_IDLE_MS.
 */

/** The size of a pooled buffer: a file read of a download, a batch written of an upload. */
export const CHUNK = 1024 * 1024;
/**
 * CHUNK buffers kept between transfers, at most (POOL_MAX MiB): what a burst of downloads held at
 * its peak anyway. 128 made 1,640 files/s where 32 made 1,268 with 100 downloads at a time
 * (src/native/bench/RESULTS.md, "The stream path in "many"").
 */
const POOL_MAX = 128;
/** How long the kept buffers outlive the last transfer that gave one back. */
const POOL_IDLE_MS = 2000;

const pool: Buffer[] = [];
let lastGiven = 0;
let timer: NodeJS.Timeout | null = null;

/** A buffer of `size` bytes, from the pool when it is of CHUNK bytes. Its content is whatever was there. */
export function takeChunk(size: number): Buffer {
  if (size === CHUNK) {
    const b = pool.pop();
    if (b) return b;
  }
  return Buffer.allocUnsafeSlow(size);
}

/** Give buffers back; only those of CHUNK bytes are kept. No read or write may still use them. */
export function giveChunks(bufs: Buffer[]): void {
  for (const b of bufs) if (b.length === CHUNK && pool.length < POOL_MAX) pool.push(b);
  lastGiven = Date.now();
  timer ??= setTimeout(dropChunks, POOL_IDLE_MS).unref();
}

function dropChunks(): void {
  timer = null;
  const idle = Date.now() - lastGiven;
  if (idle >= POOL_IDLE_MS) pool.length = 0;
  else timer = setTimeout(dropChunks, POOL_IDLE_MS - idle).unref();
}

/** Buffers kept for the next transfers now (for tests). */
export function chunkPoolSize(): number {
  return pool.length;
}
