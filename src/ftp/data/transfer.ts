import type { Socket } from 'node:net';
import type { FileHandle } from '../../fs/types';
import type { TlsHandover } from './tls-gate';

/**
 * What net.Socket's `onread` option takes: `buffer` is asked, once when the Socket is made and
 * after each read, where the next read goes; `callback` gets each read's length and the buffer
 * it went into, and returning false stops reading until the socket is resumed.
 */
export interface ReadInto {
  buffer: () => Uint8Array;
  callback: (n: number, buf: Uint8Array) => boolean;
}

/**
 * What a transfer needs of an abort signal (AbortSignal fits): ABOR, timeouts and the server
 * closing stop the transfer through it.
 */
export interface TransferSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * AbortController's job for one transfer command, without an EventTarget: building the
 * AbortSignal and adding and removing its listeners cost about 6% of the event loop's CPU per
 * small download (src/native/bench/RESULTS.md). The controller is its own signal. Listeners
 * run once, in the order added; one added after the abort is never called (as with AbortSignal).
 */
export class TransferAbort implements TransferSignal {
  aborted = false;
  reason: unknown = undefined;
  /** A removed listener leaves null in its slot, so that removing one while the abort runs skips it. */
  private listeners: Array<(() => void) | null> | null = null;

  get signal(): TransferSignal {
    return this;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const l = this.listeners;
    if (l) {
      for (let i = 0; i < l.length; i++) {
        const fn = l[i];
        l[i] = null;
        fn?.();
      }
    }
    this.listeners = null;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted) (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const l = this.listeners;
    const i = l ? l.indexOf(listener) : -1;
    if (i >= 0) l![i] = null;
  }
}

/** Which mechanism carried a transfer. */
export type TransferPath = 'sendfile' | 'splice' | 'copy' | 'tls' | 'stream';

/**
 * The byte rate of one transfer. Absent or 0 at the start means unlimited. The rate may change
 * while the transfer runs (a user's limit re-divided as that user's transfers start and end);
 * an engine follows it, from where the old rate had got to. A transfer paced from its start
 * stays paced: a later 0 is not taken.
 */
export interface Throttle {
  /** Bytes per second for the direction of this transfer, now. */
  readonly bytesPerSecond: number;
  /**
   * Call `listener` with each new bytesPerSecond until the returned function is called. For
   * engines that cannot read the rate as they go (the native one hands it to its thread);
   * the stream path reads bytesPerSecond at each slice.
   */
  watch?(listener: (bytesPerSecond: number) => void): () => void;
}

/** A Throttle whose rate its owner changes with `set` (a share of a user's limit). */
export class AdjustableThrottle implements Throttle {
  private listeners: Set<(bytesPerSecond: number) => void> | null = null;

  constructor(public bytesPerSecond: number) {}

  set(bytesPerSecond: number): void {
    if (bytesPerSecond === this.bytesPerSecond) return;
    this.bytesPerSecond = bytesPerSecond;
    if (this.listeners) for (const l of this.listeners) l(bytesPerSecond);
  }

  watch(listener: (bytesPerSecond: number) => void): () => void {
    const l = (r: number): void => listener(r);
    (this.listeners ??= new Set()).add(l);
    return () => {
      this.listeners?.delete(l);
    };
  }
}

/**
 * One transfer between an open file and a connected, paused data socket:
 * the seam where the zero-copy engine replaces the stream path.
 *
 * The socket is owned by the caller: an engine must never end, destroy or
 * resume it except through the stream API it was given, and must leave
 * closing it to the caller. `signal` aborts the work (ABOR, timeouts,
 * the server closing).
 */
export interface TransferRequest {
  /** send: file → socket (RETR). receive: socket → file (STOR, APPE, STOU). */
  direction: 'send' | 'receive';
  /**
   * The data connection as a stream. For a passive connection taken bare (no Socket made at
   * accept, src/ftp/data/connection.ts) reading this makes the Socket: an engine that can
   * work on `fd` should check it first and then leave `socket` alone.
   */
  socket: Socket;
  /** The connection's descriptor when no stream wraps it (nothing buffered in JS); absent or -1 otherwise. */
  fd?: number;
  /**
   * receive, on a connection no stream was made for yet: make its Socket reading into the
   * buffers `onread` hands out (net.Socket's `onread` option) instead of new ones, and return
   * it (`socket` then returns it too). Null, with nothing made, when the Socket exists already
   * or the connection is TLS. Absent where connections cannot do it.
   */
  readInto?(onread: ReadInto): Socket | null;
  /** APPE: the file may be open O_APPEND, where Linux writes land at the end whatever their position. */
  readonly append?: boolean;
  /** True when the socket is a TLS socket. */
  tls: boolean;
  /** The TCP descriptor under the socket, TLS or not (DataConnection.tcpFd); absent or -1 when unknown. */
  readonly tcpFd?: number;
  /**
   * A TLS connection whose records the native engine can seal and open itself
   * (./tls-gate.ts): an engine that uses it must not touch `socket`. Absent otherwise; a TLS
   * transfer without it goes through the stream path.
   */
  tlsRecords?: TlsHandover;
  handle: FileHandle;
  /** TYPE A: convert line endings (LF → CRLF on send, CRLF → LF on receive). */
  ascii: boolean;
  signal: TransferSignal;
  throttle?: Throttle;
  /** Called with the running total of file bytes moved, at most every ~100 ms. */
  onProgress?: (bytes: number) => void;
  /**
   * Send: the engine may end the socket's write side (FIN) itself once the file is all sent,
   * and then says so in TransferResult.finished. Otherwise the caller ends the socket.
   */
  finish?: boolean;
}

export interface TransferResult {
  /** File bytes moved (read from the file on send, written to it on receive). */
  bytes: number;
  path: TransferPath;
  /** Send with `finish`: the FIN is already sent; the caller only closes the socket. */
  finished?: boolean;
  /**
   * Receive over TLS on the stream path: the connection ended, but whether the client's last
   * record was a close_notify could not be told (./tls-gate.ts, endedWithCloseNotify), so the
   * end of stream was taken as the end.
   */
  tlsEndUnknown?: boolean;
}

/**
 * Failure of a transfer. `bytes` tells how much moved before it failed.
 * `code` is an errno string (ECONNRESET, EPIPE, ENOSPC...) or FTPD_ERR_ABORTED.
 */
export class TransferError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly bytes: number,
    readonly path: TransferPath,
  ) {
    super(message);
    this.name = 'TransferError';
  }
}

/** Something that carries out transfers: the stream path, or the native engine. */
export interface TransferEngine {
  readonly name: string;
  /** Whether this engine can carry this request (binary, plain socket, local fd...). */
  accepts(req: TransferRequest): boolean;
  run(req: TransferRequest): Promise<TransferResult>;
}

/** The abort reason ABOR uses, to tell a client's ABOR from timeouts and shutdown. */
export const ABORTED_BY_CLIENT = new TransferError('Transfer aborted by the client.', 'FTPD_ERR_ABORTED', 0, 'stream');
