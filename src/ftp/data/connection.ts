import * as net from 'node:net';
import * as tls from 'node:tls';
import { getSystemErrorName } from 'node:util';
import type { TlsHandover } from './tls-gate';
import type { ReadInto } from './transfer';

/**
 * A connected data connection that JS has not read from. Either a `net.Socket` (active
 * channels, TLS, PROXY headers, platforms without descriptors), or a passive connection taken
 * bare from its listener: the accepted TCP handle and its descriptor, with no stream made for
 * it. A zero-copy transfer then moves the bytes on the descriptor and the connection is closed
 * without Node ever building a Socket, its two stream states and their listeners: about a
 * fifth of the event loop's CPU per small download (src/native/bench/RESULTS.md).
 */
export interface DataConnection {
  /** The stream. For a bare connection it is made on first use, and the connection is bare no longer. */
  readonly socket: net.Socket;
  /** The descriptor while the connection is bare (no stream wraps it); -1 otherwise. */
  readonly fd: number;
  readonly tls: boolean;
  /** A gated FTPS connection whose records the native engine can take over (./tls-gate.ts). */
  readonly tlsRecords?: TlsHandover;
  /** The peer's address as the socket reports it (IPv4-mapped form included). */
  readonly remoteAddress: string | undefined;
  /** The TCP descriptor under it, TLS or not, without making a stream; -1 when there is none. */
  readonly tcpFd: number;
  /** A download whose TLS records were sealed by ftpdlib rather than Node's TLS socket (./tls-seal.ts): by what. */
  readonly sealedBy?: 'addon' | 'js' | null;
  /** The Socket made reading into `onread`'s buffers (TransferRequest.readInto); null when it exists already. */
  readInto?(onread: ReadInto): net.Socket | null;
  /** `socket`, for a transfer in `direction` (a gated FTPS connection seals a download's records itself). */
  socketFor?(direction: 'send' | 'receive'): net.Socket;
  /** Close it: the stream if one was made, else the handle. Safe to call more than once. */
  destroy(): void;
}

/** A connection that is a stream from the start. */
export class SocketConnection implements DataConnection {
  readonly fd = -1;
  readonly tls: boolean;

  constructor(readonly socket: net.Socket) {
    this.tls = socket instanceof tls.TLSSocket;
  }

  /** A TLS socket's handle (Node's TLSWrap) answers with the descriptor of the TCP socket under it. */
  get tcpFd(): number {
    return handleFd(this.socket);
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The TCP handle libuv accepted (Node's internal TCPWrap), as much of it as is used here. */
export interface TcpHandle {
  readonly fd?: unknown;
  getpeername(out: { address?: string }): number;
  close(cb?: () => void): void;
}

/** Whether `h` looks like libuv's TCP handle as Node hands one over (from a listener or another process). */
export function isTcpHandle(h: unknown): h is TcpHandle {
  const o = h as TcpHandle | null;
  return typeof o === 'object' && o !== null && typeof o.fd === 'number' && typeof o.getpeername === 'function' && typeof o.close === 'function';
}

/**
 * A net.Socket over an accepted TCP handle, not reading until asked: what Node's own accept
 * does on a listener made with pauseOnConnect. Its errors are ignored; whoever uses it hears of
 * them through what it does with it.
 */
export function socketOfHandle(handle: TcpHandle, onread?: ReadInto): net.Socket {
  const s = new net.Socket({ handle, pauseOnCreate: true, readable: true, writable: true, allowHalfOpen: false, onread } as net.SocketConstructorOpts);
  s.on('error', ignore);
  return s;
}

const ignore = (): void => {};

/** What Node's listener handle calls for each accepted connection. */
type OnConnection = (this: unknown, status: number, handle: TcpHandle | undefined) => void;

let bareAccepted = 0;
let bareWrapped = 0;

/**
 * Connections taken bare so far in this process, and how many of those a stream was made for
 * later (TLS, streams, listings). For tests and diagnostics.
 */
export function bareStats(): { accepted: number; wrapped: number } {
  return { accepted: bareAccepted, wrapped: bareWrapped };
}

/** A passive connection as libuv accepted it: no Socket until something asks for one. */
export class BareConnection implements DataConnection {
  readonly tls = false;
  private handle: TcpHandle | null;
  private made: net.Socket | null = null;
  private peer: string | undefined | null = null;

  constructor(handle: TcpHandle) {
    this.handle = handle;
    bareAccepted++;
  }

  get fd(): number {
    const fd = this.handle?.fd;
    return typeof fd === 'number' && fd >= 0 ? fd : -1;
  }

  get tcpFd(): number {
    return this.made ? handleFd(this.made) : this.fd;
  }

  get remoteAddress(): string | undefined {
    if (this.made) return this.made.remoteAddress;
    if (this.peer === null) {
      const out: { address?: string } = {};
      this.peer = this.handle && this.handle.getpeername(out) === 0 ? out.address : undefined;
    }
    return this.peer;
  }

  get socket(): net.Socket {
    return this.made ?? this.make();
  }

  readInto(onread: ReadInto): net.Socket | null {
    return this.made || !this.handle ? null : this.make(onread);
  }

  private make(onread?: ReadInto): net.Socket {
    const handle = this.handle;
    this.handle = null;
    // Errors surface through the transfer that owns the socket.
    const s = handle ? socketOfHandle(handle, onread) : new net.Socket().on('error', ignore);
    if (!handle) s.destroy(); // closed before anyone asked for the stream
    this.made = s;
    bareWrapped++;
    return s;
  }

  destroy(): void {
    if (this.made) {
      this.made.destroy();
      return;
    }
    const h = this.handle;
    this.handle = null;
    h?.close();
  }
}

/**
 * Take the connections of `server` (listening, made with pauseOnConnect) bare: `onBare` gets
 * each one instead of the server making a Socket and emitting 'connection'. False, with
 * nothing changed, when this Node does not expose what that needs (then 'connection' events
 * come as usual); FTPDLIB_NO_BARE_ACCEPT=1 turns it off.
 */
export function acceptBare(server: net.Server, onBare: (conn: DataConnection) => void): boolean {
  if (process.env.FTPDLIB_NO_BARE_ACCEPT === '1') return false;
  return takeAccepted(server, (handle) => {
    onBare(new BareConnection(handle));
    return true;
  });
}

/**
 * Give each connection `server` accepts (it must be listening) to `onHandle` as libuv's TCP
 * handle, before Node makes a Socket of it. `onHandle` returns false to leave the handle to
 * Node (a Socket and 'connection' then, as usual); so does a handle without a descriptor.
 * False, with nothing changed, when this Node's listener lacks what this needs. A failed
 * accept is the server's 'error'.
 */
export function takeAccepted(server: net.Server, onHandle: (handle: TcpHandle) => boolean): boolean {
  const lh = (server as unknown as { _handle?: { onconnection?: OnConnection } | null })._handle;
  if (!lh || typeof lh.onconnection !== 'function') return false;
  const nodeOwn = lh.onconnection;
  lh.onconnection = function (status: number, handle: TcpHandle | undefined): void {
    if (status < 0 || !handle) {
      const code = status < 0 ? getSystemErrorName(status) : 'EINVAL'; // (0 never comes without a handle)
      server.emit('error', Object.assign(new Error(`accept failed: ${code}`), { code, syscall: 'accept' }));
      return;
    }
    const fd = handle.fd;
    const usable = typeof fd === 'number' && fd >= 0 && typeof handle.getpeername === 'function' && typeof handle.close === 'function';
    // No descriptor to hand over (not a platform with one), or declined: Node makes the Socket.
    if (!usable || !onHandle(handle)) nodeOwn.call(this, status, handle);
  };
  return true;
}

/** The descriptor under a Node socket or server (-1 when it has none, or is closed). */
export function handleFd(owner: object): number {
  const fd = (owner as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}
