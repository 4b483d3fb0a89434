import * as net from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { TcpHandle } from './data/connection';

/**
 * What a session asks of its control connection. A `net.Socket` (or the `tls.TLSSocket` over
 * one) has all of it; so has a `BareControl`, a connection served on libuv's TCP handle alone.
 */
export interface ControlSocket {
  write(text: string, encoding: 'utf8' | 'latin1'): unknown;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
  /** Bytes of replies not yet in the kernel. */
  readonly writableLength: number;
  readonly destroyed: boolean;
  /** Close now: what is not yet in the kernel is dropped. */
  destroy(): unknown;
  /** FIN after the replies written so far; the connection closes once the client's FIN is read. */
  end(): unknown;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly localAddress?: string;
  setNoDelay(on: boolean): unknown;
}

/** Where a bare control connection delivers what it reads and how it ends (the session). */
export interface ControlSink {
  controlData(chunk: Buffer): void;
  /** The client's FIN: nothing more to read. The sink ends the connection when it is done. */
  controlEnded(): void;
  controlError(err: Error): void;
  controlClosed(): void;
}

/** The accepted handle's stream side (Node's internal TCPWrap and StreamBase), as used here. */
interface StreamHandle extends TcpHandle {
  getsockname(out: { address?: string }): number;
  getpeername(out: { address?: string; port?: number }): number;
  setNoDelay(on: boolean): number;
  readStart(): number;
  readStop(): number;
  writeUtf8String(req: object, text: string): number;
  writeLatin1String(req: object, text: string): number;
  shutdown(req: object): number;
  onread: ((this: StreamHandle, ab: ArrayBuffer | undefined) => void) | null;
  [kControl]?: BareControl | null;
}

/** What Node's `stream_wrap` binding gives: request constructors and the shared state array. */
interface StreamWrap {
  WriteWrap: new () => Req;
  ShutdownWrap: new () => Req;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kBytesWritten: number;
  kLastWriteWasAsync: number;
}

interface Req {
  handle?: StreamHandle;
  oncomplete?: (this: Req, status: number) => void;
  owner?: BareControl;
  bytes?: number;
}

const kControl = Symbol('ftpdlib.control');
const UV_EOF = -4095; // libuv's end of stream, the same number on every platform

let wrap: StreamWrap | null | undefined;

/**
 * Node's stream internals, or null where this Node does not give them (the control connections
 * are then `net.Socket`s, as before). Looked up once.
 */
function streamWrap(): StreamWrap | null {
  if (wrap !== undefined) return wrap;
  wrap = null;
  try {
    const b = (process as unknown as { binding(name: string): Partial<StreamWrap> }).binding('stream_wrap');
    if (
      typeof b.WriteWrap === 'function' &&
      typeof b.ShutdownWrap === 'function' &&
      b.streamBaseState instanceof Int32Array &&
      [b.kReadBytesOrError, b.kArrayBufferOffset, b.kBytesWritten, b.kLastWriteWasAsync].every((k) => typeof k === 'number')
    ) {
      wrap = b as StreamWrap;
    }
  } catch {
    // process.binding gone or the module no longer allowed: stay on net.Socket.
  }
  return wrap;
}

/** Whether an accepted handle has every method a bare control connection calls. */
function streamCapable(h: TcpHandle): h is StreamHandle {
  const s = h as Partial<StreamHandle>;
  return (
    typeof s.readStart === 'function' &&
    typeof s.readStop === 'function' &&
    typeof s.writeUtf8String === 'function' &&
    typeof s.writeLatin1String === 'function' &&
    typeof s.shutdown === 'function' &&
    typeof s.getsockname === 'function' &&
    typeof s.setNoDelay === 'function'
  );
}

let bareAccepted = 0;
let bareWrapped = 0;

/**
 * Control connections served bare so far in this process, and how many of them were made into
 * a `net.Socket` later (AUTH TLS, a refusal). For tests and diagnostics.
 */
export function bareControlStats(): { accepted: number; wrapped: number } {
  return { accepted: bareAccepted, wrapped: bareWrapped };
}

/** Whether control connections can be served bare in this process (FTPDLIB_NO_BARE_CONTROL=1: never). */
export function bareControlAvailable(): boolean {
  return process.env.FTPDLIB_NO_BARE_CONTROL !== '1' && streamWrap() !== null;
}

function sysError(status: number, syscall: string): Error {
  let code: string;
  try {
    code = getSystemErrorName(status);
  } catch {
    code = `E${-status}`;
  }
  return Object.assign(new Error(`${syscall} ${code}`), { code, errno: status, syscall });
}

/** handle.onread: `this` is the handle, the connection is found on it (no closure per connection). */
function onRead(this: StreamHandle, ab: ArrayBuffer | undefined): void {
  const c = this[kControl];
  if (!c) return;
  const w = wrap!;
  const n = w.streamBaseState[w.kReadBytesOrError];
  if (n > 0 && ab) c.onChunk(Buffer.from(ab, w.streamBaseState[w.kArrayBufferOffset], n));
  else if (n < 0) c.onReadEnd(n);
}

/** A write the kernel did not take at once, now done (or failed, or cancelled by the close). */
function afterWrite(this: Req, status: number): void {
  this.owner?.writeDone(this.bytes ?? 0, status);
}

function afterShutdown(this: Req): void {
  this.owner?.shutdownDone();
}

/**
 * A plain control connection as libuv accepted it, served without a `net.Socket`: reads come
 * through the handle's `onread`, replies go out through write requests, and the end is the
 * handle's `close()`. Node's stream machinery (the readable and writable states, their events,
 * the destroy sequence) was a third of a minimal login's CPU on this machine
 * (src/native/bench/RESULTS.md, "Logins: what Node's net.Socket costs").
 *
 * It behaves as the half-open `net.Socket` the session would have: the client's FIN stops the
 * reading and is reported (ControlSink.controlEnded); replies can still be written until the
 * session ends the connection. Whatever needs a real socket (AUTH TLS, a refusal) calls
 * `toSocket()`: from then on the connection is that socket's.
 */
export class BareControl implements ControlSocket {
  private handle: StreamHandle | null;
  private sink: ControlSink | null = null;
  private made: net.Socket | null = null;
  private paused = true;
  /** end() called: the FIN follows the replies written so far, nothing more is written. */
  private ending = false;
  /** The FIN is sent. */
  private shut = false;
  /** The client's FIN is read. */
  private eof = false;
  private closing = false;
  private pendingBytes = 0;
  private peer: { address?: string; port?: number } | null = null;
  private local: string | undefined | null = null;
  /**
   * The listener that accepted it (ServerContext.setNoDelay reads it, as on a net.Socket); null
   * for one accepted by another process (the daemon's primary).
   */
  readonly server: net.Server | null;

  private constructor(handle: StreamHandle, server: net.Server | null) {
    this.handle = handle;
    this.server = server;
    handle[kControl] = this;
    handle.onread = onRead;
    bareAccepted++;
  }

  /**
   * A bare control connection over `handle`, or null when this Node cannot serve one bare.
   * Whether to serve bare at all (bareControlAvailable) is the listener's choice, made once.
   */
  static over(handle: TcpHandle, server: net.Server | null): BareControl | null {
    if (!wrap || !streamCapable(handle)) return null;
    return new BareControl(handle, server);
  }

  /** The socket `toSocket()` made of this connection, if it did. */
  get madeSocket(): net.Socket | null {
    return this.made;
  }

  /** The handle while it is open and no socket took it (for its descriptor: `_handle.fd`, as on a net.Socket). */
  get _handle(): TcpHandle | null {
    return this.closing ? null : this.handle;
  }

  get remoteAddress(): string | undefined {
    return this.peerName().address;
  }

  get remotePort(): number | undefined {
    return this.peerName().port;
  }

  private peerName(): { address?: string; port?: number } {
    if (!this.peer) {
      const out: { address?: string; port?: number } = {};
      this.peer = this.handle && this.handle.getpeername(out) === 0 ? out : {};
    }
    return this.peer;
  }

  get localAddress(): string | undefined {
    if (this.local === null) {
      const out: { address?: string } = {};
      this.local = this.handle && this.handle.getsockname(out) === 0 ? out.address : undefined;
    }
    return this.local;
  }

  get writableLength(): number {
    return this.pendingBytes;
  }

  get destroyed(): boolean {
    return this.closing;
  }

  /** Deliver reads and the end to `sink`, and start reading. */
  attach(sink: ControlSink): void {
    this.sink = sink;
    this.resume();
  }

  setNoDelay(on: boolean): this {
    this.handle?.setNoDelay(on);
    return this;
  }

  isPaused(): boolean {
    return this.paused;
  }

  pause(): this {
    if (!this.paused) {
      this.paused = true;
      if (!this.closing) this.handle?.readStop();
    }
    return this;
  }

  resume(): this {
    // After the client's FIN there is nothing more to read.
    if (this.paused && !this.eof) {
      this.paused = false;
      if (!this.closing && this.handle) {
        const err = this.handle.readStart();
        if (err < 0) this.fail(err, 'read');
      }
    }
    return this;
  }

  write(text: string, encoding: 'utf8' | 'latin1'): boolean {
    const h = this.handle;
    if (!h || this.closing || this.ending) return false;
    const w = wrap!;
    const req = new w.WriteWrap();
    req.handle = h;
    req.oncomplete = afterWrite;
    const err = encoding === 'latin1' ? h.writeLatin1String(req, text) : h.writeUtf8String(req, text);
    if (err < 0) {
      this.fail(err, 'write');
      return false;
    }
    if (w.streamBaseState[w.kLastWriteWasAsync]) {
      // Not all in the kernel yet: libuv finishes it, in order, and calls afterWrite.
      req.owner = this;
      req.bytes = w.streamBaseState[w.kBytesWritten];
      this.pendingBytes += req.bytes;
      return false;
    }
    return true;
  }

  /** @internal A write that went on later has ended. */
  writeDone(bytes: number, status: number): void {
    this.pendingBytes -= bytes;
    if (status < 0 && !this.closing) this.fail(status, 'write');
  }

  end(): this {
    if (this.ending || this.closing || !this.handle) return this;
    this.ending = true;
    const w = wrap!;
    const req = new w.ShutdownWrap();
    req.handle = this.handle;
    req.oncomplete = afterShutdown;
    req.owner = this;
    // libuv shuts the socket down after the writes queued before it.
    const err = this.handle.shutdown(req);
    if (err < 0) this.destroy();
    return this;
  }

  /** @internal The FIN is sent: the close waits for the client's (or for destroy()). */
  shutdownDone(): void {
    this.shut = true;
    if (this.eof) this.destroy();
  }

  destroy(): this {
    if (this.closing) return this;
    this.closing = true;
    const h = this.handle;
    if (!h) return this;
    h[kControl] = null;
    h.close(() => {
      this.handle = null;
      this.sink?.controlClosed();
    });
    return this;
  }

  /** @internal Bytes read. */
  onChunk(chunk: Buffer): void {
    if (!this.closing) this.sink?.controlData(chunk);
  }

  /** @internal The client's FIN (or a read error). */
  onReadEnd(status: number): void {
    if (status !== UV_EOF) {
      this.fail(status, 'read');
      return;
    }
    this.eof = true;
    this.paused = true;
    this.handle?.readStop();
    // Ended already: the close follows our FIN (shutdownDone), or follows now if it is out.
    // Nothing is left unread, so the close cannot turn into a reset.
    if (this.ending) {
      if (this.shut) this.destroy();
    } else if (this.sink) {
      this.sink.controlEnded();
    } else {
      this.destroy();
    }
  }

  private fail(status: number, syscall: string): void {
    this.sink?.controlError(sysError(status, syscall));
    this.destroy();
  }

  /**
   * The connection as a `net.Socket` from now on (paused as this was, with no listeners but an
   * 'error' one that ignores): for what needs a real socket, such as a TLS socket over it. The
   * session, if one was attached, hears nothing more from this object.
   */
  toSocket(): net.Socket {
    if (this.made) return this.made;
    const h = this.handle;
    const wasPaused = this.paused;
    this.sink = null;
    this.handle = null;
    bareWrapped++;
    let s: net.Socket;
    if (!h || this.closing) {
      s = new net.Socket();
      s.destroy();
    } else {
      h.readStop();
      h[kControl] = null;
      // What Node's own accept does with a handle, the socket not reading until asked.
      s = new net.Socket({ handle: h, pauseOnCreate: true, readable: true, writable: true, allowHalfOpen: false } as net.SocketConstructorOpts);
      if (this.server) (s as { server?: net.Server }).server = this.server;
      if (this.ending) s.end();
      else if (!wasPaused) s.resume();
    }
    s.on('error', ignore);
    this.closing = true;
    this.made = s;
    return s;
  }
}

const ignore = (): void => {};
