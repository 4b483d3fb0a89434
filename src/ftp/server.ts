import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import bunyan from 'bunyan';
import type Logger from 'bunyan';
import { resolveOptions, type FtpServerOptions, type ResolvedOptions } from '../config/options';
import { DataCongestion, systemCongestion } from './data/congestion';
import { heapSettleMs, nativeCopier, nativeStatus, reduceHeap, selectEngine, setCork, setOobInline, trimMemory } from './data/engines';
import { HEAP_SETTLE_MS, MemoryTrimmer } from './memory-trim';
import { IdleWatch } from './data/idle-watch';
import { IdleList } from './idle-list';
import { PortPool } from './data/ports';
import type { TransferRequest, TransferResult } from './data/transfer';
import { DEFAULT_MLST_FACTS } from './listing';
import { refuseSocket } from './refuse';
import type { CopyInfo, ServerContext } from './server-context';
import { Session, type TransferInfo } from './session';
import { TlsManager, type TlsLease } from './tls';
import { looksLikeProxyHeader, trustMatcher, type ProxyHeaderError } from './proxy-protocol';
import { proxiedPeer, readProxyHeader, type ProxiedPeer, type ReadProxyHeaderOptions } from './proxy-socket';
import { ServerMetrics } from '../metrics';
import { UserLimitsTracker, type SessionCounter, type ShareCounter } from './user-limits';
import { BareControl, bareControlAvailable } from './control';
import { socketOfHandle, takeAccepted, type TcpHandle } from './data/connection';

/** What events carry about the session that caused them. */
export interface SessionInfo {
  id: number;
  remoteAddress: string;
  remotePort: number;
  user: string | null;
}

/** pyftpdlib's callbacks, as typed events. */
export interface FtpServerEvents {
  connect: [session: SessionInfo];
  disconnect: [session: SessionInfo];
  login: [user: string, session: SessionInfo];
  loginFailed: [user: string, session: SessionInfo];
  logout: [user: string, session: SessionInfo];
  fileSent: [path: string, info: TransferInfo, session: SessionInfo];
  fileReceived: [path: string, info: TransferInfo, session: SessionInfo];
  incompleteFileSent: [path: string, info: TransferInfo, session: SessionInfo];
  incompleteFileReceived: [path: string, info: TransferInfo, session: SessionInfo];
  /** SITE CPFR/CPTO copied a file on the server (`to` now holds it). */
  fileCopied: [to: string, info: CopyInfo, session: SessionInfo];
}

/** How acceptConnection takes a connection. */
export interface AcceptOptions {
  /** Implicit FTPS: the TLS handshake comes first. */
  implicitTls?: boolean;
  /**
   * Set when the PROXY header was already read (the daemon's primary reads it before its per-IP
   * limit): the client it names, or null for a header that names none (LOCAL, UNKNOWN). The
   * server then reads no header itself.
   */
  proxied?: ProxiedPeer | null;
  /** With `proxied`: the bytes read after the header, given to the session first. */
  head?: Buffer;
}

/**
 * Answer 421 and close. A socket left paused by a header read is resumed, to read the peer's FIN
 * and close; a bare connection becomes a socket for it.
 */
function refuse(conn: net.Socket | BareControl, text: string): void {
  refuseSocket(conn instanceof BareControl ? conn.toSocket() : conn, text);
}

function info(s: Session): SessionInfo {
  return { id: s.id, remoteAddress: s.remoteAddress, remotePort: s.remotePort, user: s.user };
}

/** An 'error' listener that keeps a socket's error from throwing; one function for every socket. */
const ignore = (): void => {};

/** The control idle list's expiry: one function for every server (no closure per server). */
function expireIdleSession(s: Session): void {
  s.idleExpired();
}

/** Whether `socket` was accepted by one of `listeners` (and so has the options set on them). */
function acceptedBy(socket: object, listeners: ReadonlySet<net.Server>): boolean {
  const from = (socket as { server?: net.Server }).server;
  return from !== undefined && listeners.has(from);
}

/** TCP_NODELAY on a listening socket through Node's TCP handle; true when set. */
function setListenerNoDelay(server: net.Server): boolean {
  const handle = (server as unknown as { _handle?: { setNoDelay?: (on: boolean) => number } | null })._handle;
  return typeof handle?.setNoDelay === 'function' && handle.setNoDelay(true) === 0;
}

/** After the last transfer of a drain ends, how long before the sessions get their 421. */
const DRAIN_SETTLE_MS = 250;

/**
 * An FTP server. Build it with options (checked once, here), `listen()`,
 * and `close()` to drain. The library never exits the process, installs
 * signal handlers or writes to stdout.
 */
export class FtpServer extends EventEmitter<FtpServerEvents> {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  private readonly server: net.Server;
  private readonly implicitServer: net.Server | null = null;
  private readonly tls: TlsManager | null;
  private readonly sessions = new Set<Session>();
  /** Listeners with SO_OOBINLINE set, which their accepted sockets inherit (Linux). */
  private readonly oobListeners = new Set<net.Server>();
  /** Listeners with TCP_NODELAY set (tcpNoDelay), which their accepted sockets inherit (Linux). */
  private readonly noDelayListeners = new Set<net.Server>();
  private readonly perIp = new Map<string, number>();
  private readonly ctx: ServerContext;
  private closing: Promise<void> | null = null;
  /** With proxyProtocol: who may send a header, and how it is read. */
  private readonly proxy: { trusted: (address: string) => boolean; read: ReadProxyHeaderOptions } | null;
  private readonly stats: ServerMetrics;
  /** Gives freed malloc memory back after a burst (memoryTrimDelay); null when off or not Linux. */
  private readonly trimmer: MemoryTrimmer | null;

  constructor(options: FtpServerOptions) {
    super();
    this.options = resolveOptions(options);
    this.log = this.options.logger ?? bunyan.createLogger({ name: 'ftpdlib', streams: [] });
    this.proxy =
      this.options.proxyProtocol === false
        ? null
        : {
            trusted: trustMatcher(this.options.trustedProxies),
            read: { mode: this.options.proxyProtocol, timeoutMs: this.options.proxyProtocolTimeout * 1000 },
          };
    this.stats = new ServerMetrics(this);
    const trimMs = this.options.memoryTrimDelay * 1000;
    const heapMs = this.options.heapReduceDelay * 1000;
    this.trimmer =
      (trimMs > 0 || heapMs > 0) && process.platform === 'linux'
        ? new MemoryTrimmer(
            trimMs,
            trimMemory,
            (result, ms, heap) => {
              if (this.log.debug()) {
                this.log.debug({ result, ms: Math.round(ms * 1000) / 1000, heapRoom: heap >= 0 ? heap : undefined }, 'memory trimmed');
              }
            },
            undefined,
            heapMs > 0
              ? {
                  reduce: (again) => reduceHeap(again, this.sessions.size > 0),
                  get settleMs() {
                    return heapSettleMs(HEAP_SETTLE_MS);
                  },
                  quietMs: heapMs,
                }
              : null,
          )
        : null;
    const pool = this.options.passivePorts ? new PortPool(this.options.passivePorts[0], this.options.passivePorts[1]) : null;
    const useNative = this.options.useSendfile;
    this.tls = this.options.tls ? new TlsManager(this.options.tls, this.options.tlsRequireSessionReuse) : null;
    this.ctx = {
      tls: this.tls,
      options: this.options,
      log: this.log,
      portPool: pool,
      defaultMlstFacts: new Set(DEFAULT_MLST_FACTS),
      userLimits: new UserLimitsTracker(),
      dataIdle: new IdleWatch(),
      controlIdle: this.options.timeout > 0 ? new IdleList<Session>(this.options.timeout * 1000, expireIdleSession) : null,
      transfer: (req: TransferRequest, onEngine: (engine: 'native' | 'stream') => void): Promise<TransferResult> =>
        selectEngine(req, useNative, onEngine, this.log),
      onSessionClosed: (s) => this.onSessionClosed(s),
      dropSparePassives: () => {
        for (const s of this.sessions) s.dropSparePassive();
      },
      // A socket accepted by a listener that has SO_OOBINLINE has it too: no call per connection.
      setOobInline: (socket) => {
        if (!acceptedBy(socket, this.oobListeners)) setOobInline(socket);
      },
      setCork,
      congestion: new DataCongestion(this.options.dataCongestionControl, systemCongestion(), this.log),
      // Likewise TCP_NODELAY: Node's own `noDelay` server option would make a setsockopt per
      // connection (1.4% of the event loop's samples in a profile of logins).
      setNoDelay: (socket) => {
        if (this.options.tcpNoDelay && !acceptedBy(socket, this.noDelayListeners)) socket.setNoDelay(true);
      },
      emitLogin: (s, user) => this.emit('login', user, info(s)),
      emitLoginFailed: (s, user) => this.emit('loginFailed', user, info(s)),
      emitLogout: (s, user) => this.emit('logout', user, info(s)),
      emitTransfer: (s, direction, i) => {
        const name =
          direction === 'send' ? (i.ok ? 'fileSent' : 'incompleteFileSent') : i.ok ? 'fileReceived' : 'incompleteFileReceived';
        this.emit(name, i.path, i, info(s));
        this.trimmer?.note();
      },
      copier: useNative ? nativeCopier() : null,
      emitCopy: (s, i) => {
        this.emit('fileCopied', i.to, i, info(s));
        this.trimmer?.note();
      },
    };
    // TCP_NODELAY: set on the listeners once listening, else per socket (ctx.setNoDelay).
    this.server = net.createServer((socket) => this.onConnection(socket, false));
    if (this.options.implicitTlsPort !== null) {
      this.implicitServer = net.createServer((socket) => this.onConnection(socket, true));
    }
  }

  /** How many times this server gave freed memory back to the kernel (memoryTrimDelay). */
  get memoryTrims(): number {
    return this.trimmer?.trims ?? 0;
  }

  /** How many times this server asked V8 to shrink its heap once quiet (heapReduceDelay, src/native/heap.ts). */
  get heapReductions(): number {
    return this.trimmer?.heapReductions ?? 0;
  }

  /** Number of open control connections. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Start listening. With host '::' both IPv6 and IPv4 clients are served (dual stack). */
  async listen(): Promise<net.AddressInfo> {
    const { host, port } = this.options;
    await this.listenOn(this.server, host, port);
    // Plain control connections are served on their TCP handle, without a net.Socket
    // (./control.ts), unless PROXY headers are read on this port (that reader takes sockets).
    if (!this.proxy && bareControlAvailable()) takeAccepted(this.server, this.onBareHandle);
    if (this.implicitServer) {
      try {
        await this.listenOn(this.implicitServer, host, this.options.implicitTlsPort!);
      } catch (err) {
        this.server.close();
        throw err;
      }
      this.implicitServer.on('error', (err) => this.log.error({ err }, 'implicit TLS listener error'));
    }
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
    if (this.options.metrics) {
      const { host: mHost, port: mPort } = this.options.metrics;
      try {
        const m = await this.stats.listen(mHost, mPort);
        this.log.info({ address: m.address, port: m.port }, 'metrics listening at /metrics');
      } catch (err) {
        this.server.close();
        this.implicitServer?.close();
        throw err;
      }
    }
    const addr = this.address();
    const native = nativeStatus();
    this.log.info(
      {
        address: addr.address,
        port: addr.port,
        engine: this.options.useSendfile && native.available ? 'native' : 'stream',
        nativeReason: native.reason,
        ...(this.options.useSendfile && native.available ? { ioThreads: native.ioThreads, ioNice: native.ioNice, soloThread: native.soloThread } : {}),
        dataCongestion: this.ctx.congestion.describe(),
      },
      'listening',
    );
    if (this.options.useSendfile && !native.available) this.log.warn({ reason: native.reason }, 'zero-copy engine unavailable; using streams');
    // What start-up freed (module loading, configuration) goes back too, once it is quiet.
    this.trimmer?.note();
    return addr;
  }

  private async listenOn(server: net.Server, host: string, port: number): Promise<void> {
    const once = (h: string): Promise<void> =>
      new Promise((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.once('error', onError);
        server.listen({ host: h, port }, () => {
          server.off('error', onError);
          resolve();
        });
      });
    try {
      await once(host);
    } catch (err) {
      // A machine without IPv6 cannot bind '::'; fall back to every IPv4 address.
      if (host === '::' && (err as NodeJS.ErrnoException).code === 'EAFNOSUPPORT') await once('0.0.0.0');
      else throw err;
    }
    // Linux copies a listener's socket flags to the sockets it accepts (other systems may not).
    if (process.platform === 'linux' && setOobInline(server)) this.oobListeners.add(server);
    if (process.platform === 'linux' && this.options.tcpNoDelay && setListenerNoDelay(server)) this.noDelayListeners.add(server);
  }

  /** The control listener's address. */
  address(): net.AddressInfo {
    const a = this.server.address();
    if (!a || typeof a === 'string') throw new Error('server is not listening');
    return a;
  }

  /** The Prometheus text exposition of this server's metrics and the process's (what GET /metrics serves). */
  metrics(): Promise<string> {
    return this.stats.text();
  }

  /** The same metrics as `metrics()`, as prom-client's JSON (the daemon's primary sums its workers' with it). */
  metricsJSON(): Promise<import('../metrics').MetricsJson> {
    return this.stats.json();
  }

  /** This server's metrics registry (prom-client), to merge into an embedder's own. */
  get metricsRegistry(): import('prom-client').Registry {
    return this.stats.registry;
  }

  /**
   * Count logged-in sessions for maxSessions with `counter`, shared with other processes (the
   * daemon's workers ask their primary), instead of in this server alone; null: alone again.
   */
  useSessionCounter(counter: SessionCounter | null): void {
    this.ctx.userLimits.useSessionCounter(counter);
  }

  /**
   * Count the transfers that follow a share of a user's rate limit with `counter`, shared with
   * other processes, and take their totals through `sharedTotal`, so that a user's limit is
   * divided over every process (the daemon's workers); null: this server divides alone.
   */
  useShareCounter(counter: ShareCounter | null): void {
    this.ctx.userLimits.useShareCounter(counter);
  }

  /** The ShareCounter's news: `total` share-following transfers of `user` in `direction` over every process. */
  sharedTotal(user: string, direction: 'send' | 'receive', total: number): void {
    this.ctx.userLimits.sharedTotal(user, direction, total);
  }

  /** The metrics endpoint's address (with the metrics option, after listen()), or null. */
  metricsAddress(): net.AddressInfo | null {
    return this.stats.address();
  }

  /** The implicit-FTPS listener's address (with the implicitTlsPort option), or null. */
  implicitAddress(): net.AddressInfo | null {
    const a = this.implicitServer?.address();
    return a && typeof a !== 'string' ? a : null;
  }

  /** Read the certificate, key and CA files again; new handshakes use them, running sessions keep theirs. */
  reloadCertificates(): void {
    if (!this.tls) throw new Error('TLS is not configured');
    this.tls.reload();
    this.log.info('certificates reloaded');
  }

  /** A connection to the plain listener, taken as libuv accepted it: false leaves it to Node. */
  private readonly onBareHandle = (handle: TcpHandle): boolean => {
    const c = BareControl.over(handle, this.server);
    if (!c) return false;
    if (this.closing) refuseSocket(c.toSocket(), 'Server shutting down.');
    else this.admit(c, false, null);
    return true;
  };

  private onConnection(socket: net.Socket, implicitTls: boolean): void {
    socket.on('error', ignore);
    if (this.closing) {
      refuseSocket(socket, 'Server shutting down.');
      return;
    }
    const proxy = this.proxy;
    if (proxy && proxy.trusted(socket.remoteAddress ?? '')) {
      this.acceptProxied(socket, implicitTls);
      return;
    }
    this.admit(socket, implicitTls, null);
  }

  /**
   * A connection from a trusted proxy: the PROXY header first (nothing is sent before it), then the
   * limits and the session for the client it names. The connection counts against maxConnections
   * meanwhile; a bad or late header drops it.
   */
  private acceptProxied(socket: net.Socket, implicitTls: boolean): void {
    const proxyAddress = socket.remoteAddress ?? '';
    if (this.sessions.size + this.pendingHandshakes >= this.options.maxConnections) {
      this.log.warn({ proxy: proxyAddress }, 'too many connections');
      refuseSocket(socket, 'Too many connections. Service temporarily unavailable.');
      return;
    }
    this.pendingHandshakes++;
    readProxyHeader(socket, this.proxy!.read).then(
      (header) => {
        this.pendingHandshakes--;
        if (this.closing || socket.destroyed) {
          socket.destroy();
          return;
        }
        this.admit(socket, implicitTls, proxiedPeer(header, socket));
      },
      (err: ProxyHeaderError) => {
        this.pendingHandshakes--;
        // A proxy that connects and leaves (a plain TCP health check) is routine; bad bytes or silence are not.
        const level = err.reason === 'closed' ? 'info' : 'warn';
        this.log[level]({ err, proxy: proxyAddress }, 'PROXY header refused; connection dropped');
        socket.destroy();
      },
    );
  }

  /** Apply the connection limits to the client (the proxied one, behind a proxy), then start its session. */
  private admit(conn: net.Socket | BareControl, implicitTls: boolean, peer: ProxiedPeer | null): void {
    const socket = conn instanceof BareControl ? null : conn;
    const ip = peer?.remoteAddress ?? conn.remoteAddress ?? '';
    const o = this.options;
    if (this.sessions.size + this.pendingHandshakes >= o.maxConnections) {
      this.log.warn({ remote: ip }, 'too many connections');
      refuse(conn, 'Too many connections. Service temporarily unavailable.');
      return;
    }
    const n = this.perIp.get(ip) ?? 0;
    if (o.maxConnectionsPerIp > 0 && n >= o.maxConnectionsPerIp) {
      this.log.warn({ remote: ip }, 'too many connections from one address');
      refuse(conn, 'Too many connections from the same IP address.');
      return;
    }
    this.perIp.set(ip, n + 1);
    if (!implicitTls || !socket) {
      this.startSession(conn, false, peer);
      // After a header read the socket was left paused, holding what followed the header.
      if (socket?.isPaused()) socket.resume();
      return;
    }
    // Implicit FTPS: the handshake comes first; the connection counts against the limits meanwhile.
    this.pendingHandshakes++;
    const lease = this.tls!.lease();
    this.tls!.accept(socket, this.options.tlsHandshakeTimeout * 1000, lease.context).then(
      (s) => {
        this.pendingHandshakes--;
        if (this.closing) {
          s.destroy();
          lease.release();
          this.release(ip);
          return;
        }
        this.startSession(s, true, peer, lease);
      },
      (err) => {
        this.pendingHandshakes--;
        lease.release();
        this.release(ip);
        this.log.info({ err, remote: ip }, 'implicit TLS handshake failed');
      },
    );
  }

  private pendingHandshakes = 0;

  /**
   * A direct client is served as usual, but a PROXY header from an address not in trustedProxies
   * is someone claiming to relay for another address: the connection is dropped. The check runs
   * before the session reads the first bytes, and destroying the session makes it ignore them.
   */
  private refuseUntrustedHeader(socket: net.Socket, session: Session): void {
    socket.prependOnceListener('data', (chunk: Buffer) => {
      if (!looksLikeProxyHeader(chunk)) return;
      session.log.warn('PROXY header from an address not in trustedProxies; connection dropped');
      session.destroy();
    });
  }

  private startSession(conn: net.Socket | BareControl, implicitTls: boolean, peer: ProxiedPeer | null = null, lease: TlsLease | null = null): void {
    const session = new Session(this.ctx, conn, implicitTls, peer, lease);
    this.sessions.add(session);
    this.trimmer?.note();
    if (!(conn instanceof BareControl)) {
      // The session's own error listener replaces the one the socket got on arrival: with two,
      // Node keeps an array of them on every idle socket.
      conn.off('error', ignore);
      if (this.proxy && !peer && !implicitTls && !this.proxy.trusted(conn.remoteAddress ?? '')) this.refuseUntrustedHeader(conn, session);
    }
    // bare: served on the TCP handle alone (./control.ts), not a net.Socket.
    if (this.log.info()) session.log.info({ implicitTls, bare: conn instanceof BareControl }, 'connected');
    if (this.listenerCount('connect') > 0) this.emit('connect', info(session));
    session.start();
  }

  private release(ip: string): void {
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

  private onSessionClosed(s: Session): void {
    if (!this.sessions.delete(s)) return;
    this.trimmer?.note();
    this.release(s.remoteAddress);
    if (this.log.info()) s.log.info('disconnected');
    if (this.listenerCount('disconnect') > 0) this.emit('disconnect', info(s));
  }

  /**
   * Stop accepting, let running transfers finish within closeGracePeriod,
   * then close every session with 421. Resolves when all are closed.
   */
  close(): Promise<void> {
    this.closing ??= this.drain();
    return this.closing;
  }

  private async drain(): Promise<void> {
    const listenerClosed = Promise.all(
      [this.server, this.implicitServer].map((srv) => (srv ? new Promise<void>((resolve) => srv.close(() => resolve())) : undefined)),
    );
    const deadline = Date.now() + this.options.closeGracePeriod * 1000;
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    // A transfer command still opening its file or data connection counts as running too.
    const busy = (): boolean => [...this.sessions].some((s) => s.transfer || s.transferAbort);
    let waited = false;
    while (busy() && Date.now() < deadline) {
      waited = true;
      await sleep(50);
    }
    // A client whose transfer just ended reads its 226 and the end of the data before the 421:
    // a 421 in the same instant makes some clients (basic-ftp) fail a download that arrived whole.
    if (waited) await sleep(Math.max(0, Math.min(DRAIN_SETTLE_MS, deadline - Date.now())));
    const all = [...this.sessions];
    for (const s of all) {
      s.reply(421, 'Server shutting down.');
      s.close();
    }
    await Promise.all(all.map((s) => s.whenClosed()));
    await listenerClosed;
    await this.stats.close();
    this.trimmer?.stop();
    this.ctx.controlIdle?.clear();
    this.log.info('closed');
  }

  /** Connections given to acceptConnection or acceptHandle, by "address port": what ends each one's count. */
  private handedOver: Map<string, () => void> | null = null;

  private handedOverMap(): Map<string, () => void> {
    if (!this.handedOver) {
      const map = new Map<string, () => void>();
      this.handedOver = map;
      // A session's end is its 'disconnect' (a TLS session, implicit or after AUTH TLS, ends
      // without a 'close' of the raw socket; a bare one has no socket at all).
      this.on('disconnect', (s) => map.get(`${s.remoteAddress} ${s.remotePort}`)?.());
    }
    return this.handedOver;
  }

  /** Whether handed-over TCP handles are served bare (decided at the first one). */
  private bareHandover: boolean | null = null;

  /**
   * @internal The daemon's workers: serve a plain control connection that another process
   * accepted and handed over as libuv's TCP handle, with no `net.Socket` made on either side
   * (./control.ts). Otherwise as `acceptConnection` for a plain connection: the same limits,
   * and the promise resolves once the connection no longer counts.
   */
  acceptHandle(handle: TcpHandle): Promise<void> {
    this.bareHandover ??= bareControlAvailable();
    // No listener of ours set TCP_NODELAY or SO_OOBINLINE on it: the session sets them (server null).
    const c = this.bareHandover ? BareControl.over(handle, null) : null;
    if (!c) return this.acceptConnection(socketOfHandle(handle));
    const map = this.handedOverMap();
    const key = `${c.remoteAddress ?? ''} ${c.remotePort ?? 0}`;
    return new Promise((resolve) => {
      const done = (): void => {
        if (map.get(key) === done) map.delete(key);
        resolve();
      };
      map.set(key, done);
      if (this.closing) refuse(c, 'Server shutting down.');
      else this.admit(c, false, null);
      // Refused (421): it became a socket, and ends with it; a session ends with 'disconnect'.
      c.madeSocket?.once('close', done);
    });
  }

  /**
   * Serve a control connection accepted somewhere else (the daemon's primary process hands
   * sockets to its workers; an embedder may accept on its own listener). It takes the same path
   * as a connection to this server's listener, limits and the implicit-TLS handshake included;
   * `listen()` is not needed. Resolves once the connection no longer counts: its session ended,
   * or it was refused, or its handshake failed.
   */
  acceptConnection(socket: net.Socket, opts: AcceptOptions = {}): Promise<void> {
    const implicitTls = opts.implicitTls === true;
    if (implicitTls && !this.tls) {
      socket.destroy();
      return Promise.reject(new Error('acceptConnection: implicitTls needs the tls option'));
    }
    const map = this.handedOverMap();
    // A session's events name the client the PROXY header gave: the key must too.
    const peer = opts.proxied ?? null;
    const key = peer ? `${peer.remoteAddress} ${peer.remotePort}` : `${socket.remoteAddress ?? ''} ${socket.remotePort ?? 0}`;
    return new Promise((resolve) => {
      const done = (): void => {
        if (map.get(key) === done) map.delete(key);
        socket.off('close', done);
        resolve();
      };
      map.set(key, done);
      // A refused connection, a failed handshake or a plain session ends with the raw socket.
      socket.once('close', done);
      if (opts.proxied === undefined) {
        this.onConnection(socket, implicitTls);
        return;
      }
      // The header was read by whoever accepted the connection: never read one again.
      if (this.closing) {
        refuseSocket(socket, 'Server shutting down.');
        return;
      }
      if (opts.head && opts.head.length > 0) socket.unshift(opts.head);
      this.admit(socket, implicitTls, peer);
    });
  }
}
