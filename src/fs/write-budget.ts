import { Writable } from 'node:stream';
import type { FileHandle } from './types';

/**
 * Asked before each chunk is written with its length; answers how many of those bytes may be
 * written (the rest are refused). It is consulted in order, once per chunk.
 */
export type TakeBytes = (wanted: number) => number;

/** The error a write past the budget fails with (ftp/errors.ts maps it to 552). */
export class WriteBudgetError extends Error {
  readonly code = 'FTPD_ERR_QUOTA';
  constructor() {
    super('Quota exceeded.');
    this.name = 'WriteBudgetError';
  }
}

/**
 * A handle whose write stream writes only what `take` grants: the granted part of a chunk is
 * written and flushed, then the stream fails with FTPD_ERR_QUOTA, like a disk that fills up.
 * What was written before stays in the file.
 *
 * The handle has no `fd`, on purpose: the native engine writes through the descriptor, where no
 * budget could be enforced, so a budgeted upload always takes the stream path.
 */
export function withWriteBudget(inner: FileHandle, take: TakeBytes): FileHandle {
  return {
    offset: inner.offset,
    size: inner.size,
    createReadStream: () => inner.createReadStream(),
    createWriteStream: () => new BudgetedWriteStream(inner.createWriteStream(), take),
    close: () => inner.close(),
  };
}

/**
 * Writes into `dest` one chunk at a time, each after the previous one reached the file, so that
 * when the budget runs out every granted byte is already written when the error is reported.
 */
class BudgetedWriteStream extends Writable {
  private destError: Error | null = null;

  constructor(
    private readonly dest: Writable,
    private readonly take: TakeBytes,
  ) {
    super({ highWaterMark: dest.writableHighWaterMark });
    dest.on('error', (err) => {
      this.destError ??= err;
      this.destroy(err);
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.destError) return cb(this.destError);
    const granted = Math.max(0, Math.min(chunk.length, this.take(chunk.length)));
    const done = (err?: Error | null): void => {
      if (err) cb(err);
      else cb(granted < chunk.length ? new WriteBudgetError() : null);
    };
    if (granted === 0) return done();
    this.dest.write(granted < chunk.length ? chunk.subarray(0, granted) : chunk, done);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.destError) return cb(this.destError);
    const onFinish = (): void => {
      this.dest.off('error', onError);
      cb();
    };
    const onError = (err: Error): void => {
      this.dest.off('finish', onFinish);
      cb(err);
    };
    this.dest.once('finish', onFinish);
    this.dest.once('error', onError);
    this.dest.end();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Leave a finished destination alone; otherwise stop it (its pending write still completes).
    if (!this.dest.destroyed && !this.dest.writableFinished) this.dest.destroy();
    cb(err);
  }
}
