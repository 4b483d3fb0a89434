import { ftruncate, write as fsWrite } from 'node:fs';
import type { Socket } from 'node:net';
import { CHUNK, giveChunks, takeChunk } from './chunk-pool';
import { UploadWatch } from './upload-watch';
import { Counter } from './counter';
import { TransferError, type ReadInto, type TransferRequest, type TransferResult } from '../ftp/data/transfer';

/** The first buffer of an upload: one smaller than this touches no more memory than Node's own 64 KiB reads. */
const FIRST = 64 * 1024;
/** A read is offered at least this much room in a buffer; less, and it goes into the next buffer. */
const MIN_ROOM = 16 * 1024;
/** Buffers one upload reads into at most: two being written while the third is read into. */
const MAX_BUFFERS = 3;
/** Positional writes in flight at once (as FdWriteSink, src/fs/fd-sink.ts); one for an O_APPEND descriptor. */
const IN_FLIGHT = 2;
/** Where the first read after a pause goes: every buffer was full then (copied out on arrival). */
const PARK = 16 * 1024;

/** fs.write's positional form, the one call this path writes with (a parameter for tests). */
export type PositionalWrite = (
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
  cb: (err: NodeJS.ErrnoException | null, written: number) => void,
) => void;

const stats = { receives: 0, appends: 0, pauses: 0 };

/** Uploads read this way so far in this process, those of them written one write at a time (APPE), and how often one waited for its writes (for tests). */
export function fdReceiveStats(): { receives: number; appends: number; pauses: number } {
  return { ...stats };
}

/** A buffer of the upload, in file order: read into up to `filled`, handed to writes up to `written`. */
interface Slot {
  buf: Buffer;
  /** The file position of buf[0]. */
  base: number;
  filled: number;
  written: number;
  /** Writes of this buffer still running. */
  writes: number;
}

/**
 * socket → file for a binary, unthrottled upload of a file that has a descriptor, over a plain
 * connection whose Socket is not made yet. The Socket is made reading into the upload's own
 * buffers (net.Socket's `onread`), and each buffer, once read into, is written with a positional
 * write while the next one is read into. A piped upload gets a new 64 KiB Buffer from Node for
 * every read: 16 per MiB of memory outside V8's heap that V8 counts and collects (a sixth of the
 * CPU of an upload on this path, src/native/bench/RESULTS.md).
 *
 * The same rules as the piped path (./fallback.ts): complete only on the client's FIN followed by
 * our own FIN going out; on any failure reading stops and what arrived is still written (a cut
 * upload is kept, as on disk), then the error is reported; it settles only with no write in
 * flight, so the caller may close the descriptor at once. Memory: at most three buffers of 1 MiB
 * (the first 64 KiB), and the socket waits when all three hold bytes not yet written.
 *
 * Null when the connection cannot be read this way (its Socket exists already): the caller
 * pipes instead. `append`: the descriptor is open O_APPEND, where Linux writes at the file's end
 * whatever the position, so the writes go one at a time, in order.
 */
export function receiveToFd(
  req: TransferRequest,
  fd: number,
  append: boolean,
  peerReset: () => boolean,
  write: PositionalWrite = fsWrite,
): Promise<TransferResult> | null {
  const maxInFlight = append ? 1 : IN_FLIGHT;
  const progress = new Counter(req.onProgress);
  const slots: Slot[] = [];
  const free: Buffer[] = [];
  /** Buffers of this upload in slots and free. */
  let held = 0;
  let pos = req.handle.offset;
  let inFlight = 0;
  let written = 0;
  /** Where the lowest failed write began (Infinity: none failed; after a failed write nothing more is written), and where the highest write that landed ended. */
  let failedAt = Infinity;
  let landedTo = 0;
  /** Reading stopped because every buffer holds bytes not yet written. */
  let full = false;
  let park: Buffer | null = null;
  /** The buffer the socket reads into next (the region `buffer` last handed out lies in it). */
  let reading: Buffer | null = null;
  /** The region `buffer` last handed out: the one the next read must report. */
  let handed: Uint8Array | null = null;
  let failure: { message: string; code: string } | null = null;
  /** The client's FIN came: the last buffer is written without waiting for it to fill. */
  let ended = false;
  let socket: Socket | null = null;
  /** Settled: every buffer but `park` may belong to another transfer by now. */
  let done = false;
  let onChange: () => void = () => undefined;

  /** Whether a buffer with room can be had now: the last one's room, a free one, or a new one. */
  const room = (): boolean => {
    const last = slots.length ? slots[slots.length - 1] : null;
    return (last !== null && last.buf.length - last.filled >= MIN_ROOM) || free.length > 0 || held < MAX_BUFFERS;
  };

  /** The buffer being read into (the last slot), or the next one when it has no room left (a new one past MAX_BUFFERS only when `force`). */
  const current = (force: boolean): Slot | null => {
    const last = slots.length ? slots[slots.length - 1] : null;
    if (last && last.buf.length - last.filled >= MIN_ROOM) return last;
    let buf = free.pop();
    if (!buf) {
      if (held >= MAX_BUFFERS && !force) return null;
      buf = takeChunk(held === 0 ? FIRST : CHUNK);
      held++;
    }
    const s: Slot = { buf, base: pos, filled: 0, written: 0, writes: 0 };
    slots.push(s);
    return s;
  };

  /**
   * Buffers before the last one whose bytes are all written are free again; the small first
   * one is dropped instead (so that the buffers read into after it are all of CHUNK bytes).
   */
  const recycle = (): void => {
    while (slots.length > 1 && slots[0].written === slots[0].filled && slots[0].writes === 0) {
      const { buf } = slots.shift()!;
      if (buf.length === CHUNK) free.push(buf);
      else held--;
    }
  };

  const writeOut = (): void => {
    for (let i = 0; i < slots.length && inFlight < maxInFlight && failedAt === Infinity; i++) {
      const s = slots[i];
      if (s.filled === s.written) continue;
      // The buffer being read into is written at once when no write runs (a slow upload reaches
      // the disk as it arrives); while one runs, it gathers until it is full.
      if (i === slots.length - 1 && inFlight > 0 && s.buf.length - s.filled >= MIN_ROOM && !ended) break;
      writeRange(s, s.written, s.filled);
    }
  };

  const writeRange = (s: Slot, from: number, to: number): void => {
    s.written = to;
    s.writes++;
    inFlight++;
    const step = (off: number): void => {
      write(fd, s.buf, off, to - off, s.base + off, (err, n) => {
        if (!err && n > 0) {
          written += n;
          landedTo = Math.max(landedTo, s.base + off + n);
          if (off + n < to) {
            if (failedAt === Infinity) return step(off + n);
            // Another write failed meanwhile (a full disk): no more writes; the rest of this
            // range is where the file ends, as if this write had failed there.
            failedAt = Math.min(failedAt, s.base + off + n);
          }
        }
        s.writes--;
        inFlight--;
        if (err || n <= 0) {
          failedAt = Math.min(failedAt, s.base + off);
          failure ??= { message: err?.message ?? 'short write: no progress', code: err?.code ?? 'EIO' };
          socket?.pause();
        }
        recycle();
        writeOut();
        if (full && !failure && room()) {
          full = false;
          socket?.resume();
        }
        onChange();
      });
    };
    step(from);
  };

  const onread: ReadInto = {
    buffer: () => {
      const s = full || done ? null : current(false);
      if (s) {
        reading = s.buf;
        return (handed = s.buf.subarray(s.filled));
      }
      // Nowhere to read into: the read after the pause lands here and is copied out.
      full = true;
      reading = park ??= Buffer.allocUnsafe(PARK);
      return (handed = park);
    },
    callback: (n, buf) => {
      if (failure || done) return false;
      if (buf !== handed) {
        // A Node that asks `buffer` only once would read every time into the first region:
        // stop rather than take those bytes for the next ones.
        failure = { message: 'the socket read into a buffer it was not given', code: 'EIO' };
        onChange();
        return false;
      }
      if (buf === park) {
        // The first read after a pause, copied into a buffer freed since (a new one if a read
        // came while none was: more memory, never a lost byte).
        const s = current(true)!;
        park.copy(s.buf, s.filled, 0, n);
        s.filled += n;
      } else {
        slots[slots.length - 1].filled += n;
      }
      pos += n;
      progress.add(n);
      writeOut();
      if (room()) return true;
      full = true;
      stats.pauses++;
      return false;
    },
  };
  socket = req.readInto ? req.readInto(onread) : null;
  if (!socket) return null;
  stats.receives++;
  if (append) stats.appends++;
  const sock = socket;
  const { signal } = req;

  return new Promise<TransferResult>((resolve, reject) => {
    let watch: UploadWatch | null = null;
    let cut = false;
    const settle = (): void => {
      if (done || inFlight > 0) return;
      if (landedTo > failedAt && !cut) {
        // A write landed past one that failed (two run at once): cut the file where the hole
        // begins, so that it holds the upload's first bytes and nothing after a gap, which is
        // what a client resuming from SIZE with REST needs.
        // Counted as a write in flight: nothing settles (and closes the descriptor) before it returns.
        cut = true;
        inFlight++;
        ftruncate(fd, failedAt, () => {
          inFlight--;
          settle();
        });
        return;
      }
      // After a failed write nothing more is written; otherwise every byte that arrived is.
      if (failedAt === Infinity && slots.some((s) => s.filled > s.written)) return writeOut();
      if (!failure && !(watch?.sawEnd && watch.finOut())) return;
      done = true;
      watch?.unhook();
      // The buffers serve later transfers. After a failure the one the socket would read into
      // next stays with it (something could still resume it); after its FIN nothing more comes.
      const mine = [...free, ...slots.map((s) => s.buf)];
      free.length = 0;
      slots.length = 0;
      giveChunks(failure ? mine.filter((b) => b !== reading) : mine);
      // After a failed write, the bytes before it (all that the file holds of this upload).
      if (failure) reject(new TransferError(failure.message, failure.code, failedAt < Infinity ? Math.max(0, failedAt - req.handle.offset) : written, 'stream'));
      else resolve({ bytes: written, path: 'stream' });
    };
    onChange = settle;
    const fail = (message: string, code: string): void => {
      if (done) return;
      failure ??= { message, code };
      sock.pause();
      settle();
    };
    const onEnd = (): void => {
      ended = true;
      // libuv may turn a reset that came with the last data into an end of stream.
      if (peerReset()) return fail('Connection reset by peer.', 'ECONNRESET');
      writeOut();
      settle();
    };
    if (signal.aborted) {
      failure = { message: 'Transfer aborted.', code: 'FTPD_ERR_ABORTED' };
      settle();
      return;
    }
    watch = new UploadWatch(sock, signal, { fail, end: onEnd, settle });
    sock.resume();
  });
}
