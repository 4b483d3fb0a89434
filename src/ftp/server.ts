import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import bunyan from 'bunyan';
import type Logger from 'bunyan';
import { resolveOptions, type FtpServerOptions, type ResolvedOptions } from '../config/options';
import { nativeStatus, selectEngine } from './data/engines';
import { PortPool } from './data/ports';
import type { TransferPath, TransferRequest, TransferResult } from './data/transfer';
import { DEFAULT_MLST_FACTS } from './listing';
import { formatReply } from './parser';
import type { ServerContext } from './server-context';
import { Session, type TransferInfo } from './session';

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
    this.ctx = {
      options: this.options,
      log: this.log,
      portPool: pool,
      defaultMlstFacts: DEFAULT_MLST_FACTS,
      transfer: (req: TransferRequest, onEngine: (p: TransferPath) => void): Promise<TransferResult> =>
        selectEngine(req, useNative, onEngine, this.log),
      onSessionClosed: (s) => this.onSessionClosed(s),
      emitLogin: (s, user) => this.emit('login', user, info(s)),
      emitLoginFailed: (s, user) => this.emit('loginFailed', user, info(s)),
      emitLogout: (s, user) => this.emit('logout', user, info(s)),
      emitTransfer: (s, direction, i) => {
        const name =
          direction === 'send' ? (i.ok ? 'fileSent' : 'incompleteFileSent') : i.ok ? 'fileReceived' : 'incompleteFileReceived';
        this.emit(name, i.path, i, info(s));
      },
    };
    this.server = net.createServer({ noDelay: this.options.tcpNoDelay }, (socket) => this.onConnection(socket));
  }

  /** Number of open control connections. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Start listening. With host '::' both IPv6 and IPv4 clients are served (dual stack). */
  async listen(): Promise<net.AddressInfo> {
    const { host, port } = this.options;
    try {
      await this.listenOn(host, port);
    } catch (err) {
      // A machine without IPv6 cannot bind '::'; fall back to every IPv4 address.
      if (host === '::' && (err as NodeJS.ErrnoException).code === 'EAFNOSUPPORT') await this.listenOn('0.0.0.0', port);
      else throw err;
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

  private listenOn(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  address(): net.AddressInfo {
    const a = this.server.address();
    if (!a || typeof a === 'string') throw new Error('server is not listening');
    return a;
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => {});
    const ip = socket.remoteAddress ?? '';
    const o = this.options;
    if (this.closing) {
      socket.end(formatReply(421, 'Server shutting down.'));
      return;
    }
    if (this.sessions.size >= o.maxConnections) {
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
    const session = new Session(this.ctx, socket);
    this.sessions.add(session);
    session.log.info('connected');
    this.emit('connect', info(session));
    session.start();
  }

  private onSessionClosed(s: Session): void {
    if (!this.sessions.delete(s)) return;
    const n = (this.perIp.get(s.remoteAddress) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(s.remoteAddress);
    else this.perIp.set(s.remoteAddress, n);
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
    const listenerClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
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
