/**
 * The socket side of the PROXY protocol: read the header off a connection from a trusted proxy,
 * leaving every byte after it for the protocol behind.
 */
import type * as net from 'node:net';
import { parseProxyHeader, ProxyHeaderError, type ProxyHeader, type ProxyProtocolMode } from './proxy-protocol';

/** The client behind a trusted proxy, as its header named it. */
export interface ProxiedPeer {
  /** The client's address (what remoteAddress means for the session). */
  remoteAddress: string;
  remotePort: number;
  /** The address the client connected to on the proxy (what PASV can announce). */
  destinationAddress: string;
  /** The proxy's own address, for the logs. */
  proxyAddress: string;
}

export interface ReadProxyHeaderOptions {
  mode: ProxyProtocolMode;
  timeoutMs: number;
  /**
   * Give the bytes after the header to `onRest` instead of pushing them back, and stop the
   * kernel reads at once, so that what follows stays in the socket (the daemon's primary hands
   * the socket to a worker, with these bytes beside it).
   */
  onRest?: (rest: Buffer) => void;
}

/**
 * Read a PROXY header from the start of `socket`. Resolves once it is complete, with the socket
 * paused and the bytes that came after the header in the same reads pushed back (unshift), so
 * whoever reads next gets them first. Rejects with a ProxyHeaderError on a malformed header, a
 * timeout, or a close before the end; the caller then destroys the socket.
 */
export function readProxyHeader(socket: net.Socket, opts: ReadProxyHeaderOptions): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | null, header?: ProxyHeader, rest?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (opts.onRest) stopReading(socket);
      if (err) {
        reject(err);
        return;
      }
      if (opts.onRest) opts.onRest(rest ?? Buffer.alloc(0));
      else if (rest && rest.length > 0) socket.unshift(rest);
      resolve(header!);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let r;
      try {
        r = parseProxyHeader(buf, opts.mode);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (r.done) finish(null, r.header, buf.subarray(r.length));
    };
    const onEnd = (): void => finish(new ProxyHeaderError(`connection closed after ${buf.length} bytes, before the header was complete`, 'closed'));
    const timer = setTimeout(
      () => finish(new ProxyHeaderError(`no complete header within ${opts.timeoutMs} ms (${buf.length} bytes received)`, 'timeout')),
      opts.timeoutMs,
    );
    timer.unref();
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.resume();
  });
}

/** The peer a header names, or null when the socket's own addresses apply (LOCAL, UNKNOWN). */
export function proxiedPeer(header: ProxyHeader, socket: net.Socket): ProxiedPeer | null {
  if (header.command !== 'proxy' || !header.source || !header.destination) return null;
  return {
    remoteAddress: header.source.address,
    remotePort: header.source.port,
    destinationAddress: header.destination.address,
    proxyAddress: socket.remoteAddress ?? '',
  };
}

/**
 * Stop the kernel reads a header read started, so that a data socket is again "paused and not
 * read from" for the transfer engines: the native engine moves bytes on a dup of the descriptor
 * and must not race libuv for them. Node's own pauseOnConnect does the same.
 */
export function stopReading(socket: net.Socket): void {
  const handle = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
  if (handle && handle.reading && typeof handle.readStop === 'function') {
    handle.reading = false;
    handle.readStop();
  }
}
