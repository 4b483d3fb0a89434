import * as net from 'node:net';
import type Logger from 'bunyan';
import { FtpError } from '../errors';
import { plainAddress, type DataChannel } from './channel';
import { acceptBare, SocketConnection, type DataConnection } from './connection';
import { listenAnyPort, type PortPool } from './ports';
import { proxiedPeer, readProxyHeader, stopReading, type ReadProxyHeaderOptions } from '../proxy-socket';
import type { TransferSignal } from './transfer';
import type { DataCongestion } from './congestion';

/** proxyProtocolData: connections from these proxies start with a PROXY header naming the client. */
export interface PassiveProxyOptions {
  trusted: (address: string) => boolean;
  read: ReadProxyHeaderOptions;
}

/**
 * A listener a session keeps between transfers (PassiveOptions.keep): the next PASV/EPSV of
 * that session on the same local address answers with the same port instead of opening,
 * binding and closing a listener per file. While kept, connections to it are closed at once.
 */
export interface SparePassive {
  readonly server: net.Server;
  readonly port: number;
  readonly host: string;
}

/** The channel a listener currently accepts for; none while it is kept spare. */
const OWNER = Symbol('passiveOwner');
type OwnedServer = net.Server & { [OWNER]?: PassiveChannel | null };

/** Close a listener and give its port back to the pool at once (its 'close' waits for accepted sockets). */
export function closePassiveListener(server: net.Server, port: number, pool: PortPool | null): void {
  (server as OwnedServer)[OWNER] = null;
  if (server.listening) server.close();
  pool?.release(port, server);
}

export interface PassiveOptions {
  /** Local address of the control connection: the listener binds there. */
  localAddress: string;
  /** The client's address: only it may connect, unless foreign addresses are permitted. */
  peerAddress: string;
  permitForeignAddresses: boolean;
  /** The congestion control data connections get (dataCongestionControl); null: the system's. */
  congestion?: DataCongestion | null;
  /** Read a PROXY header on connections from trusted proxies (proxyProtocolData); null: never. */
  proxy: PassiveProxyOptions | null;
  connectTimeoutMs: number;
  pool: PortPool | null;
  log: Logger;
  /**
   * Makes an accepted socket ready (the TLS handshake under PROT P). Called as
   * soon as the connection arrives, not when the transfer command comes:
   * clients start the handshake before they send RETR/STOR.
   */
  prepare: (conn: DataConnection) => Promise<DataConnection>;
  /**
   * Offered the listener once its connection came: true if the session keeps it for its next
   * PASV/EPSV (then the session closes it later), false to close it now. A channel closed
   * before any connection came always closes its listener.
   */
  keep?: (spare: SparePassive) => boolean;
}

/**
 * A passive data channel: a listener that accepts one connection from the
 * client, paused so that no byte is read before a transfer engine takes it. Where Node
 * allows it the connection is taken bare (./connection.ts): no Socket unless one is needed.
 */
export class PassiveChannel implements DataChannel {
  readonly kind = 'passive';
  private conn: DataConnection | null = null;
  private ready: Promise<DataConnection> | null = null;
  private waiter: ((ready: Promise<DataConnection>) => void) | null = null;
  private closed = false;
  /** The listener was handed on (kept by the session, or closed). */
  private released = false;
  /** Its connection started under dataCongestionControl 'auto''s choice (DataCongestion.onAccepted). */
  autoCongestion = false;

  /**
   * Closes a channel no transfer command came for within connectTimeoutMs (as pyftpdlib's
   * passive listener times out): a PASV that is never used must not hold its port, and with it
   * a place in the passive range, for as long as the session lasts.
   */
  private unused: NodeJS.Timeout | null;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly opts: PassiveOptions,
  ) {
    (server as OwnedServer)[OWNER] = this;
    this.unused = setTimeout(() => this.expire(), opts.connectTimeoutMs);
    this.unused.unref();
  }

  /** No transfer command came: close the connection if one came, and free the port (not kept). */
  private expire(): void {
    this.unused = null;
    if (this.closed) return;
    this.opts.log.debug({ port: this.port }, 'passive channel closed: no transfer command came for it');
    this.shut(false);
  }

  private stopUnusedTimer(): void {
    if (this.unused) {
      clearTimeout(this.unused);
      this.unused = null;
    }
  }

  /**
   * Open a listener, or take `spare` (a listener this session kept) when it still listens on
   * the same local address; resolves null when the passive port range is exhausted.
   */
  static async create(opts: PassiveOptions, spare: SparePassive | null = null): Promise<PassiveChannel | null> {
    const host = plainAddress(opts.localAddress);
    if (spare) {
      if (spare.host === host && spare.server.listening) return new PassiveChannel(spare.server, spare.port, opts);
      closePassiveListener(spare.server, spare.port, opts.pool);
    }
    const server = net.createServer({ pauseOnConnect: true, noDelay: false });
    const port = opts.pool ? await opts.pool.listen(server, host) : await listenAnyPort(server, host);
    if (port === null) return null;
    server.unref();
    // A named algorithm, or 'auto''s on a loopback address: one setsockopt per listener (kept
    // between transfers), none per connection.
    opts.congestion?.onListener(server, host);
    const onConnection = (c: DataConnection): void => {
      const owner = (server as OwnedServer)[OWNER];
      if (owner) owner.onConnection(c);
      else c.destroy(); // kept between transfers: no PASV is waiting for this connection
    };
    if (!acceptBare(server, onConnection)) {
      server.on('connection', (s) => {
        s.on('error', () => {}); // errors surface through the transfer that owns the socket
        onConnection(new SocketConnection(s));
      });
    }
    server.on('error', (err) => opts.log.warn({ err }, 'passive listener error'));
    return new PassiveChannel(server, port, opts);
  }

  get connected(): boolean {
    return this.conn !== null;
  }

  private onConnection(c: DataConnection): void {
    if (this.conn || this.closed) {
      c.destroy();
      return;
    }
    const proxy = this.opts.proxy;
    if (proxy && proxy.trusted(c.remoteAddress ?? '')) {
      // The balancer relays the passive port too: the client is whom its header names.
      const s = c.socket;
      readProxyHeader(s, proxy.read).then(
        (header) => {
          stopReading(s);
          this.accept(c, proxiedPeer(header, s)?.remoteAddress ?? s.remoteAddress);
        },
        (err) => {
          this.opts.log.warn({ err, proxy: s.remoteAddress }, 'PROXY header refused on a data connection');
          s.destroy();
        },
      );
      return;
    }
    this.accept(c, c.remoteAddress);
  }

  /** Take a connection from `from` (the client's address), unless it is foreign or one came first. */
  private accept(c: DataConnection, from: string | undefined): void {
    const remote = plainAddress(from);
    if (this.conn || this.closed) {
      c.destroy();
      return;
    }
    if (!this.opts.permitForeignAddresses && remote !== plainAddress(this.opts.peerAddress)) {
      this.opts.log.warn({ remote, expected: this.opts.peerAddress }, 'refused data connection from a foreign address');
      c.destroy();
      return;
    }
    this.conn = c;
    this.autoCongestion = this.opts.congestion?.onAccepted(this.server, c) ?? false;
    this.ready = this.opts.prepare(c);
    this.ready.catch(() => {}); // reported through open()
    // One connection per channel: the listener takes no more for it (kept or closed).
    this.release(true);
    if (this.waiter) this.waiter(this.ready);
  }

  open(signal: TransferSignal): Promise<DataConnection> {
    this.stopUnusedTimer();
    if (this.closed) return Promise.reject(new FtpError(425, "Can't open data connection."));
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, ready?: Promise<DataConnection>): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.waiter = null;
        if (err) reject(err);
        else ready!.then(resolve, reject);
      };
      const timer = setTimeout(() => {
        this.close();
        done(new FtpError(425, "Can't open data connection: timed out waiting for the client."));
      }, this.opts.connectTimeoutMs);
      const onAbort = (): void => done(new FtpError(425, "Can't open data connection: aborted."));
      signal.addEventListener('abort', onAbort, { once: true });
      if (this.ready) done(null, this.ready);
      else this.waiter = (r) => done(null, r);
    });
  }

  close(): void {
    this.stopUnusedTimer();
    // Without a connection, a late one may still be on its way here: close the listener (as
    // always), so that it is refused rather than taken by this session's next PASV.
    this.shut(this.conn !== null);
  }

  /** Close the channel and its connection; `offer`: the session may keep the listener. */
  private shut(offer: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.release(offer);
    this.conn?.destroy();
    this.ready?.then((c) => c.destroy(), () => {});
  }

  /**
   * Hand the listener on, once: to the session (opts.keep, when `offer` and the session wants
   * it) or closed, with its port given back to the pool at once (the next PASV may need it).
   */
  private release(offer: boolean): void {
    if (this.released) return;
    this.released = true;
    const server = this.server as OwnedServer;
    if (server[OWNER] === this) server[OWNER] = null;
    if (offer && server.listening && this.opts.keep?.({ server, port: this.port, host: plainAddress(this.opts.localAddress) })) return;
    closePassiveListener(server, this.port, this.opts.pool);
  }
}
