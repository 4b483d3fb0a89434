import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import bunyan from 'bunyan';
import type Logger from 'bunyan';
import { resolveOptions, type FtpServerOptions, type ResolvedOptions } from '../config/options';
import { nativeStatus, selectEngine, setOobInline } from './data/engines';
import { PortPool } from './data/ports';
import type { TransferRequest, TransferResult } from './data/transfer';
import { DEFAULT_MLST_FACTS } from './listing';
import { formatReply } from './parser';
import type { ServerContext } from './server-context';
import { Session, type TransferInfo } from './session';
import { TlsManager } from './tls';

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
  error: [err: Error];
}

function info(s: Session): SessionInfo {
  return { id: s.id, remoteAddress: s.remoteAddress, remotePort: s.remotePort, user: s.user };
}

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
  private readonly perIp = new Map<string, number>();
  private readonly ctx: ServerContext;
  private closing: Promise<void> | null = null;

  constructor(options: FtpServerOptions) {
    super();
    this.options = resolveOptions(options);
    this.log = this.options.logger ?? bunyan.createLogger({ name: 'ftpdlib', streams: [] });
    const pool = this.options.passivePorts ? new PortPool(this.options.passivePorts[0], this.options.passivePorts[1]) : null;
    const useNative = this.options.useSendfile;
    this.tls = this.options.tls ? new TlsManager(this.options.tls, this.options.tlsRequireSessionReuse) : null;
    this.ctx = {
      tls: this.tls,
      options: this.options,
      log: this.log,
      portPool: pool,
      defaultMlstFacts: DEFAULT_MLST_FACTS,
      transfer: (req: TransferRequest, onEngine: (engine: 'native' | 'stream') => void): Promise<TransferResult> =>
        selectEngine(req, useNative, onEngine, this.log),
      onSessionClosed: (s) => this.onSessionClosed(s),
      setOobInline,
      emitLogin: (s, user) => this.emit('login', user, info(s)),
      emitLoginFailed: (s, user) => this.emit('loginFailed', user, info(s)),
      emitLogout: (s, user) => this.emit('logout', user, info(s)),
      emitTransfer: (s, direction, i) => {
        const name =
          direction === 'send' ? (i.ok ? 'fileSent' : 'incompleteFileSent') : i.ok ? 'fileReceived' : 'incompleteFileReceived';
        this.emit(name, i.path, i, info(s));
      },
    };
    this.server = net.createServer({ noDelay: this.options.tcpNoDelay }, (socket) => this.onConnection(socket, false));
    if (this.options.implicitTlsPort !== null) {
      this.implicitServer = net.createServer({ noDelay: this.options.tcpNoDelay }, (socket) => this.onConnection(socket, true));
    }
  }

  /** Number of open control connections. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Start listening. With host '::' both IPv6 and IPv4 clients are served (dual stack). */
  async listen(): Promise<net.AddressInfo> {
    const { host, port } = this.options;
    await this.listenOn(this.server, host, port);
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
    const addr = this.address();
    const native = nativeStatus();
    this.log.info(
      { address: addr.address, port: addr.port, engine: this.options.useSendfile && native.available ? 'native' : 'stream', nativeReason: native.reason },
      'listening',
    );
    if (this.options.useSendfile && !native.available) this.log.warn({ reason: native.reason }, 'zero-copy engine unavailable; using streams');
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
  }

  /** The control listener's address. */
  address(): net.AddressInfo {
    const a = this.server.address();
    if (!a || typeof a === 'string') throw new Error('server is not listening');
    return a;
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

  private onConnection(socket: net.Socket, implicitTls: boolean): void {
    socket.on('error', () => {});
    const ip = socket.remoteAddress ?? '';
    const o = this.options;
    if (this.closing) {
      socket.end(formatReply(421, 'Server shutting down.'));
      return;
    }
    if (this.sessions.size + this.pendingHandshakes >= o.maxConnections) {
      this.log.warn({ remote: ip }, 'too many connections');
      socket.end(formatReply(421, 'Too many connections. Service temporarily unavailable.'));
      return;
    }
    const n = this.perIp.get(ip) ?? 0;
    if (o.maxConnectionsPerIp > 0 && n >= o.maxConnectionsPerIp) {
      this.log.warn({ remote: ip }, 'too many connections from one address');
      socket.end(formatReply(421, 'Too many connections from the same IP address.'));
      return;
    }
    this.perIp.set(ip, n + 1);
    if (!implicitTls) {
      this.startSession(socket, false);
      return;
    }
    // Implicit FTPS: the handshake comes first; the connection counts against the limits meanwhile.
    this.pendingHandshakes++;
    this.tls!.accept(socket, this.options.tlsHandshakeTimeout * 1000).then(
      (s) => {
        this.pendingHandshakes--;
        if (this.closing) {
          s.destroy();
          this.release(ip);
          return;
        }
        this.startSession(s, true);
      },
      (err) => {
        this.pendingHandshakes--;
        this.release(ip);
        this.log.info({ err, remote: ip }, 'implicit TLS handshake failed');
      },
    );
  }

  private pendingHandshakes = 0;

  private startSession(socket: net.Socket, implicitTls: boolean): void {
    const session = new Session(this.ctx, socket, implicitTls);
    this.sessions.add(session);
    session.log.info({ implicitTls }, 'connected');
    this.emit('connect', info(session));
    session.start();
  }

  private release(ip: string): void {
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

  private onSessionClosed(s: Session): void {
    if (!this.sessions.delete(s)) return;
    this.release(s.remoteAddress);
    s.log.info('disconnected');
    this.emit('disconnect', info(s));
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
    while ([...this.sessions].some((s) => s.transfer) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const all = [...this.sessions];
    for (const s of all) {
      s.reply(421, 'Server shutting down.');
      s.close();
    }
    await Promise.all(all.map((s) => s.whenClosed()));
    await listenerClosed;
    this.log.info('closed');
  }
}
