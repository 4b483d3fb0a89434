import { read as fsRead } from 'node:fs';
import { CHUNK, chunkPoolSize, giveChunks, takeChunk } from './chunk-pool';
import { receiveToFd } from './fd-receive';
import { UploadWatch } from './upload-watch';
import { Counter } from './counter';
import { Transform, type TransformCallback } from 'node:stream';
import type { Readable, Writable } from 'node:stream';

const CR = Buffer.from('\r');
import {
  TransferError,
  type TransferEngine,
  type TransferRequest,
  type TransferResult,
  type TransferSignal,
  type Throttle,
} from '../ftp/data/transfer';

/**
 * The stream path: moves bytes with Node streams. It accepts every request
 * (TLS, TYPE A, filesystems without descriptors), so it is what the server
 * falls back to whenever the native engine declines or is missing.
 *
 * Completion rules, the same as the native engine's:
 * - send: every byte from the handle's offset to the file's end is written to
 *   the socket; the caller then ends the socket and replies 226.
 * - receive: the peer ended the connection cleanly (a FIN, or over TLS a
 *   close_notify before it); the bytes are flushed to the file before the promise
 *   resolves. A reset, an error, or a TLS connection ended by a FIN alone is a failure
 *   (426), never a 226.
 */
export const streamEngine: TransferEngine = {
  name: 'stream',
  accepts: () => true,
  run: runStream,
};

function runStream(req: TransferRequest): Promise<TransferResult> {
  return req.direction === 'send' ? send(req) : receive(req);
}

/**
 * How far behind its pace a throttled transfer may be and still catch up (ms), as the engine's
 * PACE_CREDIT_NS: a quarter second, more than a late timer of a busy loop (which would otherwise
 * slow the transfer below its rate), far less than a client's stop.
 */
const PACE_CREDIT_MS = 250;

/** Counts bytes, converts line endings for TYPE A, and paces for a throttle. */
class Meter extends Transform {
  private readonly counter: Counter;
  private lastCr = false;
  /** The pace: `rate` bytes/s since `paceFrom` (ms), counted from `paceBytes`. */
  private rate: number;
  private paceFrom = Date.now();
  private paceBytes = 0;

  constructor(
    private readonly mode: 'none' | 'toCrlf' | 'fromCrlf',
    private readonly countOutput: boolean,
    private readonly throttle: Throttle | undefined,
    onProgress?: (bytes: number) => void,
  ) {
    // Throttled, it holds about a quarter second's worth (at least 16 KiB): a paused socket does
    // not see the client's reset, so whatever sits here is still paced out after one. 256 KiB
    // at a third of 256 KiB/s kept a reset upload counted (and its share taken) for 6 s.
    const rate = throttle?.bytesPerSecond ?? 0;
    super({ highWaterMark: rate > 0 ? Math.max(16 * 1024, Math.min(256 * 1024, Math.floor(rate / 4))) : 256 * 1024 });
    this.rate = rate;
    this.counter = new Counter(onProgress);
  }

  /** File bytes moved so far. */
  get bytes(): number {
    return this.counter.bytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const out = this.mode === 'toCrlf' ? this.toCrlf(chunk) : this.mode === 'fromCrlf' ? this.fromCrlf(chunk) : chunk;
    if (this.rate > 0) {
      this.paced(out, this.countOutput ? out.length : chunk.length, cb);
      return;
    }
    this.count(this.countOutput ? out.length : chunk.length);
    if (out.length) this.push(out);
    cb();
  }

  private count(n: number): void {
    this.counter.add(n);
  }

  /**
   * Throttled: pass `out` on in slices of a tenth of a second's worth, each when the
   * average rate since the start allows it, so the bytes (and progress) flow evenly
   * instead of a whole chunk at once followed by a long silence.
   */
  private paced(out: Buffer, counted: number, cb: TransformCallback): void {
    let off = 0;
    let countedLeft = counted;
    const next = (): void => {
      if (this.destroyed) return;
      if (off >= out.length) {
        if (countedLeft > 0) this.count(countedLeft);
        cb();
        return;
      }
      this.followRate();
      const now = Date.now();
      const due = this.due();
      if (now - due > PACE_CREDIT_MS) {
        // Behind the pace (a slow reader or writer): keep a quarter second's credit, so that a
        // stop does not come back as a burst at full speed (as the engine).
        this.paceFrom = now - PACE_CREDIT_MS;
        this.paceBytes = this.bytes;
      }
      const wait = due - now;
      if (wait > 0) {
        setTimeout(next, wait);
        return;
      }
      const piece = out.subarray(off, off + Math.max(1, Math.floor(this.rate / 10)));
      off += piece.length;
      // Bytes counted follow the slices (in file bytes when they differ from output bytes).
      const share = off >= out.length ? countedLeft : Math.min(countedLeft, Math.round((piece.length * counted) / out.length));
      countedLeft -= share;
      this.count(share);
      this.counter.reportNext(); // a throttled transfer reports every slice
      this.push(piece);
      next();
    };
    next();
  }

  /** When the pace lets the next byte go (ms). */
  private due(): number {
    return this.paceFrom + ((this.bytes - this.paceBytes) / this.rate) * 1000;
  }

  /**
   * Take the throttle's new rate, if it changed, from where the old pace had got to (or from
   * now when behind it): what went ahead of the old pace stays counted (as the engine's retime).
   */
  private followRate(): void {
    const r = this.throttle?.bytesPerSecond ?? 0;
    if (r === this.rate || !(r >= 1)) return;
    this.paceFrom = Math.max(Date.now(), this.due());
    this.paceBytes = this.bytes;
    this.rate = r;
  }

  override _flush(cb: TransformCallback): void {
    // A lone CR at the very end of a TYPE A upload is kept as data.
    if (this.mode === 'fromCrlf' && this.lastCr) {
      this.push(Buffer.from('\r'));
      if (this.countOutput) this.counter.bytes += 1;
    }
    cb();
  }

  /** LF → CRLF (send in TYPE A). An LF already preceded by CR is left alone. */
  private toCrlf(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    let from = 0;
    let prev = this.lastCr ? 13 : -1;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) {
      if ((i > 0 ? chunk[i - 1] : prev) !== 13) {
        parts.push(chunk.subarray(from, i), CR);
        from = i;
      }
    }
    if (chunk.length) this.lastCr = chunk[chunk.length - 1] === 13;
    if (from === 0 && parts.length === 0) return chunk;
    parts.push(chunk.subarray(from));
    return Buffer.concat(parts);
  }

  /** CRLF → LF (receive in TYPE A); a CR not followed by LF is kept. */
  private fromCrlf(chunk: Buffer): Buffer {
    const out = Buffer.allocUnsafe(chunk.length + 1);
    let o = 0;
    let i = 0;
    if (this.lastCr) {
      if (chunk.length && chunk[0] === 10) {
        out[o++] = 10;
        i = 1;
      } else if (chunk.length) {
        out[o++] = 13;
      }
    }
    this.lastCr = false;
    for (; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === 13) {
        if (i + 1 === chunk.length) {
          this.lastCr = true;
        } else if (chunk[i + 1] === 10) {
          out[o++] = 10;
          i++;
        } else {
          out[o++] = 13;
        }
      } else {
        out[o++] = c;
      }
    }
    return out.subarray(0, o);
  }
}

type ResetProbe = (socket: unknown) => boolean;
let probe: ResetProbe | null | undefined;

/** The addon's reset check, when the addon is loaded (loaded lazily: the addon's loader imports this module). */
function peerReset(req: TransferRequest): boolean {
  if (probe === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      probe = (require('./index') as { socketReset?: ResetProbe }).socketReset ?? null;
    } catch {
      probe = null;
    }
  }
  if (!probe) return false;
  // The TCP socket under a TLS socket: the request knows its descriptor (under a TLS gate Node's
  // socket has no `_parent`); else the socket a TLS socket was made over, or the socket itself.
  const fd = req.tcpFd ?? -1;
  return probe(fd >= 0 ? { _handle: { fd } } : ((req.socket as { _parent?: unknown })._parent ?? req.socket));
}

function aborted(signal: TransferSignal, bytes: number): TransferError {
  const why = signal.reason instanceof Error ? signal.reason.message : 'Transfer aborted.';
  return new TransferError(why, 'FTPD_ERR_ABORTED', bytes, 'stream');
}

function socketError(err: NodeJS.ErrnoException | undefined, bytes: number): TransferError {
  return new TransferError(err?.message ?? 'Data connection closed.', err?.code ?? 'ECONNRESET', bytes, 'stream');
}

/**
 * Make `finish` run when the transfer is aborted, or the socket fails or closes; `bytes()` says
 * how many moved. Returns what undoes it. When the signal is already aborted, `finish` has run
 * before this returns and nothing was hooked.
 */
function onSendEnd(
  socket: TransferRequest['socket'],
  signal: TransferSignal,
  bytes: () => number,
  finish: (err: TransferError) => void,
): () => void {
  const onAbort = (): void => finish(aborted(signal, bytes()));
  const onSocketError = (err: NodeJS.ErrnoException): void => finish(socketError(err, bytes()));
  const onSocketClose = (): void => finish(socketError(undefined, bytes()));
  if (signal.aborted) {
    onAbort();
    return () => undefined;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  socket.on('error', onSocketError);
  socket.on('close', onSocketClose);
  return () => {
    signal.removeEventListener('abort', onAbort);
    socket.off('error', onSocketError);
    socket.off('close', onSocketClose);
  };
}

/** Whether a transfer needs the Meter (TYPE A conversion or a throttle), or can pipe directly. */
function needsMeter(req: TransferRequest): boolean {
  return req.ascii || (req.throttle?.bytesPerSecond ?? 0) > 0;
}

/** Bytes per file read when sendFromFd sends (as the file streams read: src/fs/local.ts). */
const SEND_CHUNK = CHUNK;
/** sendFromFd's buffers: one being sent while the next is read. */
const SEND_BUFFERS = 2;
/** The smallest buffer sendFromFd reads into (a file smaller than SEND_CHUNK gets one its size). */
const SEND_MIN_CHUNK = 16 * 1024;

/** Buffers kept for transfers on the stream path now (for tests; ./chunk-pool.ts). */
export const sendPoolSize = chunkPoolSize;

/** file → socket. Resolves once every byte has been handed to the socket. */
function send(req: TransferRequest): Promise<TransferResult> {
  // Binary and unthrottled from a local file: read ahead into reused buffers.
  const fd = req.handle.fd;
  if (!needsMeter(req) && typeof fd === 'number' && fd >= 0) return sendFromFd(req, fd);
  const { socket, signal } = req;
  const src: Readable = req.handle.createReadStream();
  // Binary and unthrottled: file → socket directly, counted on the way.
  const meter = needsMeter(req) ? new Meter(req.ascii ? 'toCrlf' : 'none', false, req.throttle, req.onProgress) : null;
  const counter = meter ?? new Counter(req.onProgress);
  const last: Readable = meter ?? src;
  return new Promise<TransferResult>((resolve, reject) => {
    let settled = false;
    let unhook = (): void => undefined;
    const finish = (err?: TransferError): void => {
      if (settled) return;
      settled = true;
      unhook();
      last.unpipe(socket);
      if (err) {
        src.destroy();
        meter?.destroy();
        reject(err);
      } else {
        resolve({ bytes: counter.bytes, path: 'stream' });
      }
    };
    unhook = onSendEnd(socket, signal, () => counter.bytes, finish);
    if (signal.aborted) return;
    src.on('error', (err: NodeJS.ErrnoException) => finish(new TransferError(err.message, err.code ?? 'EIO', counter.bytes, 'stream')));
    // Every byte is queued on the socket; the caller's end() flushes them before the FIN
    // (waiting for 'drain' here would hang: it only fires after a write returned false).
    last.on('end', () => finish());
    if (meter) {
      src.pipe(meter).pipe(socket, { end: false });
    } else {
      src.on('data', (counter as Counter).count);
      src.pipe(socket, { end: false });
    }
  });
}

/**
 * file → socket for a binary, unthrottled send of a local file: reads into a few buffers that
 * are reused (no new Buffer per chunk: no page faults for it, no external memory for V8's GC to
 * chase), and the next read is already running while the socket takes (and TLS encrypts) the
 * current chunk, where a piped fs stream reads the next chunk only after the write returned.
 * Settles only with no read in flight, so the caller may close the descriptor at once.
 */
function sendFromFd(req: TransferRequest, fd: number): Promise<TransferResult> {
  const { socket, signal } = req;
  const counter = new Counter(req.onProgress);
  // A small file gets buffers its size (a file that grows meanwhile is read on to its end anyway).
  const left = req.handle.size === undefined ? SEND_CHUNK : req.handle.size - req.handle.offset;
  const size = Math.min(SEND_CHUNK, Math.max(SEND_MIN_CHUNK, left + 1));
  const known = req.handle.size;
  let buffers = 0;
  const free: Buffer[] = [];
  /** Chunks read and not yet written, in file order: the buffer and how much of it was read. */
  const ready: Array<{ buf: Buffer; n: number }> = [];
  let pos = req.handle.offset;
  let reading = false;
  let eof = false;
  let writing = false;
  return new Promise<TransferResult>((resolve, reject) => {
    let done: TransferError | null | undefined;
    let settled = false;
    let unhook = (): void => undefined;
    const settle = (): void => {
      if (settled || done === undefined || reading) return;
      settled = true;
      unhook();
      // Buffers no read or write holds any more serve the next downloads; the one a failed
      // write may still hold is left to the collector.
      for (const r of ready) free.push(r.buf);
      giveChunks(free);
      if (done) reject(done);
      else resolve({ bytes: counter.bytes, path: 'stream' });
    };
    const finish = (err?: TransferError): void => {
      if (done !== undefined) return;
      done = err ?? null;
      settle();
    };
    const pump = (): void => {
      if (done !== undefined) return;
      if (!reading && !eof && (free.length || buffers < SEND_BUFFERS)) {
        // The second buffer is made only when the file needs it. Once the size the file had at
        // the open is read, the read that finds its end (or what was appended since) needs no
        // buffer of a chunk's size.
        const probe = !free.length && known !== undefined && pos >= known;
        const buf = free.pop() ?? (buffers++, takeChunk(probe ? Math.min(size, SEND_MIN_CHUNK) : size));
        reading = true;
        fsRead(fd, buf, 0, buf.length, pos, (err, n) => {
          reading = false;
          if (err) {
            finish(new TransferError(err.message, err.code ?? 'EIO', counter.bytes, 'stream'));
          } else if (n === 0) {
            eof = true;
            free.push(buf);
          } else {
            pos += n;
            ready.push({ buf, n });
          }
          settle();
          pump();
        });
      }
      if (!writing && ready.length) {
        const { buf, n } = ready.shift()!;
        const chunk = n < buf.length ? buf.subarray(0, n) : buf;
        writing = true;
        counter.count(chunk);
        // The buffer is reused once the socket is done with it (its callback).
        socket.write(chunk, (err) => {
          writing = false;
          if (err) return finish(socketError(err, counter.bytes));
          free.push(buf);
          pump();
        });
        pump(); // the next read starts while this chunk is being sent
        return;
      }
      // Every byte is queued on the socket; the caller's end() flushes them before the FIN.
      if (eof && !reading && !writing && !ready.length) finish();
    };
    unhook = onSendEnd(socket, signal, () => counter.bytes, finish);
    if (signal.aborted) return;
    pump();
  });
}

/**
 * socket → file. Resolves once the peer ended cleanly and every byte is in the file.
 *
 * "Cleanly" is checked twice: the peer's FIN ('end'), and then our own FIN going out
 * without error. libuv can report a reset that arrives with the last data as an
 * end of stream (its EPOLLHUP shortcut); the shutdown that follows 'end' then fails
 * with ENOTCONN, which is how a cut upload is told from a complete one.
 */
function receive(req: TransferRequest): Promise<TransferResult> {
  // Binary and unthrottled into a file with a descriptor, on a connection whose Socket is not
  // made yet: read into reused buffers and write them by position (./fd-receive.ts).
  const fd = req.handle.fd;
  if (!needsMeter(req) && !req.tls && typeof fd === 'number' && fd >= 0 && req.fd !== undefined && req.fd >= 0) {
    const direct = receiveToFd(req, fd, req.append === true, () => peerReset(req));
    if (direct) return direct;
  }
  const { socket, signal } = req;
  // Binary and unthrottled: socket → file directly, counted on the way.
  const meter = needsMeter(req) ? new Meter(req.ascii ? 'fromCrlf' : 'none', true, req.throttle, req.onProgress) : null;
  const counter = meter ?? new Counter(req.onProgress);
  const dest: Writable = req.handle.createWriteStream();
  /** What the socket is piped into: the Meter, or the file itself. */
  const first: Writable = meter ?? dest;
  return new Promise<TransferResult>((resolve, reject) => {
    let failure: { message: string; code: string } | null = null;
    let tlsEndUnknown = false;
    let destDone = false;
    let settled = false;
    let watch: UploadWatch | null = null;
    const settle = (): void => {
      if (settled || !destDone) return;
      if (!failure && !watch?.finOut()) return;
      settled = true;
      watch?.unhook();
      // Bytes are counted now, after the buffered tail of a failed upload was flushed to the file.
      if (failure) reject(new TransferError(failure.message, failure.code, counter.bytes, 'stream'));
      else resolve(tlsEndUnknown ? { bytes: counter.bytes, path: 'stream', tlsEndUnknown } : { bytes: counter.bytes, path: 'stream' });
    };
    // On any failure stop reading, but still flush what arrived to the file
    // (a partial upload is kept, as on disk), then report.
    const fail = (message: string, code: string): void => {
      if (failure || settled) return;
      failure = { message, code };
      socket.unpipe(first);
      socket.pause();
      if (!first.writableEnded) first.end();
      settle();
    };
    const onEnd = (): void => {
      if (req.tls) {
        // Over TLS only a close_notify ends an upload: Node's socket ends on a bare FIN as well,
        // and the gate it reads through tells the two apart (../ftp/data/tls-gate.ts). After a
        // close_notify every byte is in, whatever ends the TCP connection (as in the engine).
        const closeNotify = req.tlsRecords ? req.tlsRecords.endedWithCloseNotify() : null;
        if (closeNotify === false) fail('TLS data connection closed without close_notify; the upload may be cut short.', 'ECONNRESET');
        else if (closeNotify === null) {
          if (peerReset(req)) fail('Connection reset by peer.', 'ECONNRESET');
          else tlsEndUnknown = true;
        }
        return;
      }
      // libuv may turn a reset that came with the last data into an end of stream; the
      // engine's addon, when loaded, can read the socket's real state at this moment.
      if (peerReset(req)) fail('Connection reset by peer.', 'ECONNRESET');
    };
    if (signal.aborted) {
      failure = { message: 'Transfer aborted.', code: 'FTPD_ERR_ABORTED' };
      dest.once('finish', () => {
        destDone = true;
        settle();
      });
      dest.once('error', () => {
        destDone = true;
        settle();
      });
      dest.end();
      return;
    }
    watch = new UploadWatch(socket, signal, { fail, end: onEnd, settle });
    dest.on('error', (err: NodeJS.ErrnoException) => {
      failure ??= { message: err.message, code: err.code ?? 'EIO' };
      socket.unpipe(first);
      socket.pause();
      destDone = true;
      settle();
    });
    dest.on('finish', () => {
      destDone = true;
      settle();
    });
    if (meter) {
      socket.pipe(meter).pipe(dest);
    } else {
      socket.on('data', (counter as Counter).count);
      socket.pipe(dest);
    }
  });
}
