import * as nodeFs from 'node:fs';
import { Writable } from 'node:stream';

/** Bytes gathered before one positional write goes to the thread pool. */
export const SINK_BATCH = 1024 * 1024;
/** Positional writes of one upload allowed in flight at once before the writer makes the socket wait. */
export const SINK_IN_FLIGHT = 2;

type WritevFn = (fd: number, buffers: Buffer[], position: number, cb: (err: NodeJS.ErrnoException | null, written: number) => void) => void;

/**
 * A write stream on a descriptor that keeps reading while the file is written.
 *
 * Node's fs.WriteStream has one write in flight at a time, and says 'drain' only when its whole
 * buffer is written: an upload's socket is paused for every write of a full buffer (about once
 * per MiB, 0.6-0.8 ms each here, about a fifth of an FTPS upload's time). This sink writes what
 * arrives at once when no write runs, gathers it while one does (a second write starts for a full
 * batch of SINK_BATCH bytes, and whatever was gathered goes out when a write returns), writes each
 * batch at its own offset (pwritev), and accepts more data while fewer than SINK_IN_FLIGHT writes
 * run: the socket waits only when the disk does.
 *
 * Contract, as for the fs streams of src/fs/local.ts: explicit positions, the descriptor is never
 * closed here, and 'close' comes only after every write returned, so the handle can close the
 * descriptor then. 'finish' means every byte is written; a failed write destroys the stream with
 * its error once the other writes have returned.
 */
export class FdWriteSink extends Writable {
  private pos: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inFlight = 0;
  private failure: NodeJS.ErrnoException | null = null;
  /** The callback of a write accepted while SINK_IN_FLIGHT writes ran: called when one returns. */
  private waiting: ((err?: Error | null) => void) | null = null;
  /** _final or _destroy, waiting for the writes in flight. */
  private idle: (() => void) | null = null;
  /** Where the lowest failed write began (Infinity: none failed), and where the highest write that landed ended. */
  private failedAt = Infinity;
  private landedTo = 0;
  private cut = false;

  constructor(
    private readonly fd: number,
    start: number,
    private readonly writev: WritevFn = nodeFs.writev as unknown as WritevFn,
    private readonly batch = SINK_BATCH,
    private readonly maxInFlight = SINK_IN_FLIGHT,
  ) {
    super({ highWaterMark: batch, decodeStrings: true });
    this.pos = start;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.take(chunk);
    this.afterTake(cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    for (const c of chunks) this.take(c.chunk);
    this.afterTake(cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.failure) return cb(this.failure);
    if (this.pendingBytes > 0) this.flush();
    this.whenIdle(() => cb(this.failure));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Bytes whose write was acknowledged are written even now (an upload cut off keeps what
    // arrived, as with fs.WriteStream, which writes each chunk before acknowledging it).
    if (this.pendingBytes > 0 && !this.failure) this.flush();
    this.whenIdle(() => cb(err ?? null));
  }

  private take(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  private afterTake(cb: (err?: Error | null) => void): void {
    if (this.failure) return cb(this.failure);
    // With no write running, write at once (a slow upload reaches the disk as it arrives, as
    // with fs.WriteStream); while one runs, gather, and start another only for a full batch.
    if (this.pendingBytes > 0 && (this.inFlight === 0 || this.pendingBytes >= this.batch)) this.flush();
    if (this.inFlight < this.maxInFlight) cb();
    else this.waiting = cb;
  }

  private whenIdle(fn: () => void): void {
    if (this.inFlight === 0) return fn();
    const before = this.idle;
    this.idle = before
      ? () => {
          before();
          fn();
        }
      : fn;
  }

  private flush(): void {
    const bufs = this.pending;
    const len = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const at = this.pos;
    this.pos += len;
    this.inFlight++;
    this.writeAll(bufs, at, len, (err) => {
      if (err && !this.failure) this.failure = err;
      if (this.failure && this.inFlight === 1 && this.landedTo > this.failedAt && !this.cut) {
        // A write landed past one that failed (two run at once): cut the file where the gap
        // begins, so that it holds the upload's first bytes and nothing after a gap (a client
        // resuming from SIZE with REST needs that). Still in flight meanwhile: 'close', after
        // which the descriptor is closed, waits for it.
        this.cut = true;
        nodeFs.ftruncate(this.fd, this.failedAt, () => this.afterWrite());
        return;
      }
      this.afterWrite();
    });
  }

  /** One write (and the cut after a failure, if any) returned. */
  private afterWrite(): void {
    this.inFlight--;
    // What was gathered meanwhile goes out now, not when the next chunk happens to come.
    if (!this.failure && this.pendingBytes > 0) this.flush();
    const w = this.waiting;
    if (w && (this.failure || this.inFlight < this.maxInFlight)) {
      this.waiting = null;
      w(this.failure);
    } else if (this.failure && !w && !this.destroyed && this.idle === null) {
      // Nobody is waiting on a callback: report the failure now (the stream ends in 'error').
      this.destroy(this.failure);
    }
    if (this.inFlight === 0 && this.idle) {
      const fn = this.idle;
      this.idle = null;
      fn();
    }
  }

  /** pwritev all of `bufs` at `at`, again for the rest after a short write. */
  private writeAll(bufs: Buffer[], at: number, len: number, done: (err: NodeJS.ErrnoException | null) => void): void {
    this.writev(this.fd, bufs, at, (err, n) => {
      if (err || (n <= 0 && len > 0)) this.failedAt = Math.min(this.failedAt, at);
      else if (n > 0) this.landedTo = Math.max(this.landedTo, at + Math.min(n, len));
      if (err) return done(err);
      if (n >= len) return done(null);
      if (n <= 0) {
        const e = new Error('short write: no progress') as NodeJS.ErrnoException;
        e.code = 'EIO';
        return done(e);
      }
      // Another write failed meanwhile (a full disk): no more writes; the file ends where this
      // one stopped, as if it had failed there (the sink already carries that failure).
      if (this.failedAt !== Infinity) {
        this.failedAt = Math.min(this.failedAt, at + n);
        return done(null);
      }
      let skip = n;
      const rest: Buffer[] = [];
      for (const b of bufs) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
      this.writeAll(rest, at + n, len - n, done);
    });
  }
}
