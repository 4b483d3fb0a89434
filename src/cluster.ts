/**
 * The daemon on several cores (server.workers > 1), with node:cluster. Part of the daemon, not of
 * the library: an embedder's FtpServer stays one process.
 *
 * The primary owns the control listeners (and the implicit-TLS one). It accepts each connection
 * paused, applies maxConnections and maxConnectionsPerIp over all workers (421 and close when
 * over), and sends the socket to the worker with the fewest open connections. The worker serves
 * it with `FtpServer.acceptConnection` and reports its end, so the primary's counts drop. The
 * primary never reads a byte from a client. A plain control connection (no PROXY headers on the
 * port) goes over as libuv's TCP handle, with no net.Socket made on either side: the worker
 * serves it bare, as FtpServer's own listener does (src/ftp/control.ts).
 *
 * A worker's passive listeners are its own (they listen with `exclusive`, never through the
 * primary), so a data connection always reaches the worker whose session opened the port; two
 * workers sharing one passivePorts range skip the ports the other holds (EADDRINUSE).
 *
 * A worker that exits is replaced and logged, at most `maxRestartsPerMinute` times a minute; the
 * rest wait. This module installs no signal handler and never exits the process: cli.ts does.
 */
import cluster, { type Worker } from 'node:cluster';
import type * as http from 'node:http';
import * as net from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import type Logger from 'bunyan';
import { MemoryLockoutStore, type LockoutRecord, type LockoutStore } from './auth/lockout';
import { bareControlAvailable } from './ftp/control';
import { isTcpHandle, socketOfHandle, takeAccepted, type TcpHandle } from './ftp/data/connection';
import { refuseSocket } from './ftp/refuse';
import { trustMatcher, type ProxyHeaderError, type ProxyProtocolMode } from './ftp/proxy-protocol';
import { proxiedPeer, readProxyHeader, type ProxiedPeer } from './ftp/proxy-socket';
import type { FtpServer } from './ftp/server';
import type { SessionCounter } from './ftp/user-limits';
import { serveMetrics, type MetricsJson } from './metrics';

/** Set in a worker's environment by the primary: the same command line then runs a worker. */
export const WORKER_ENV = 'FTPDLIB_CLUSTER_WORKER';

/** True in a process the primary forked. */
export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1';
}

/** A lockout store call a worker makes, answered by the primary's store (one count for all workers). */
type LockoutCall =
  | { op: 'get'; key: string; now: number }
  | { op: 'addFailure'; key: string; now: number; windowMs: number }
  | { op: 'ban'; key: string; until: number }
  | { op: 'reset'; key: string };

/** Primary → worker. */
type ToWorker =
  /** `proxied` (even null) when the primary read the PROXY header; `head`: the bytes after it, base64. */
  | { type: 'conn'; id: number; implicit: boolean; proxied?: ProxiedPeer | null; head?: string }
  | { type: 'stop'; signal: string }
  | { type: 'lockout-reply'; rid: number; record?: LockoutRecord }
  | { type: 'session-reply'; hid: number; granted: boolean }
  | { type: 'metrics-request'; rid: number }
  /** How many transfers of `user` in `direction` follow a share of the user's rate limit, over all workers. */
  | { type: 'share-total'; user: string; direction: 'send' | 'receive'; total: number };
/** Worker → primary. */
type ToPrimary =
  | { type: 'ready' }
  | { type: 'end'; id: number }
  | { type: 'lockout'; rid: number; call: LockoutCall }
  /** A login of `user` (maxSessions `max`, 0: none); `hid` names the hold until its release. */
  | { type: 'session-acquire'; hid: number; user: string; max: number }
  /** Logins minus logouts per user, of users with no limit, since the last such message. */
  | { type: 'session-counts'; counts: Array<[string, number]> }
  | { type: 'session-release'; hid: number }
  | { type: 'metrics-reply'; rid: number; metrics: MetricsJson }
  /** One more or one fewer transfer of `user` in `direction` following a share of its rate limit, in this worker. */
  | { type: 'share-change'; user: string; direction: 'send' | 'receive'; delta: 1 | -1 };

export interface PrimaryOptions {
  workers: number;
  host: string;
  port: number;
  implicitTlsPort: number | null;
  maxConnections: number;
  /** 0: no limit. */
  maxConnectionsPerIp: number;
  tcpNoDelay: boolean;
  log: Logger;
  /** Replacements of exited workers allowed in any 60 s; more wait for the window. Default 10. */
  maxRestartsPerMinute?: number;
  /** With the lockout section: the store every worker's lockout uses (IpcLockoutStore asks it). */
  lockoutStore?: LockoutStore;
  /** With server.metrics: the primary serves GET /metrics there, the sum of every worker's metrics. */
  metrics?: { host: string; port: number } | null;
  /**
   * With proxyProtocol: the primary reads the header of a connection from a trusted proxy, applies
   * maxConnectionsPerIp to the client it names, and hands the worker the parsed peer.
   */
  proxy?: { mode: ProxyProtocolMode; trustedProxies: string[]; timeoutMs: number } | null;
  /** How long a scrape waits for each worker's metrics; one that does not answer is left out. Default 2000. */
  metricsTimeoutMs?: number;
  /**
   * Asked before a replacement worker is started: why the config file on disk would not load now
   * (a half-edited file), or null. A replacement reads the file as it is then, so with a broken
   * one it would exit at once, again and again, while the primary listened and served nobody;
   * instead the primary waits (retrying every RECHECK_MS, and at once on SIGHUP).
   */
  configProblem?: () => string | null;
}

/** How often the primary looks at the config file again while it keeps a replacement back. */
const RECHECK_MS = 10_000;

/** A worker exited before it was ready, during start. */
export class WorkerStartError extends Error {
  readonly code = 'FTPD_ERR_WORKER_START';
  constructor(
    readonly exitCode: number | null,
    readonly signal: string | null,
  ) {
    super(`a worker exited during start (${signal ? `signal ${signal}` : `exit code ${exitCode}`})`);
    this.name = 'WorkerStartError';
  }
}

interface Slot {
  worker: Worker;
  pid: number;
  ready: boolean;
  /** Connection id → client address, for the connections this worker serves. */
  conns: Map<number, string>;
  /** Hold id → user, for the logged-in sessions (maxSessions) this worker holds. */
  holds: Map<number, string>;
  /** User → sessions this worker reported in 'session-counts' (users with no limit). */
  counted: Map<string, number>;
  /** Direction and user (`send\0alice`) → this worker's transfers following a share of the user's rate limit. */
  shares: Map<string, number>;
  /**
   * Connections sent to this worker whose descriptor it has not yet acknowledged, oldest first:
   * Node sends one descriptor at a time and the worker answers each with an ACK, or a NACK when
   * the descriptor did not arrive (the worker is out of descriptors: the kernel truncated the
   * message's ancillary data). The answers match this list in order only because these are the
   * only descriptors sent to a worker: a worker's own listeners (passive ports) are `exclusive`,
   * so node:cluster sends it none.
   */
  handover: Handover[];
}

/** A connection on its way to a worker (see Slot.handover). */
interface Handover {
  id: number;
  conn: net.Socket | TcpHandle;
  msg: ToWorker;
  ip: string;
  /** NACKs so far, over every worker it was sent to. */
  nacks: number;
}

/**
 * Tries of one connection over the workers (the first and up to three more, each on another worker
 * where there is one) before the client gets 421: the four tries Node itself makes of a socket it
 * sends (MAX_HANDLE_RETRANSMISSIONS), but not all to the same worker.
 */
const MAX_HANDOVER_NACKS = 4;

const MINUTE_MS = 60_000;

export class ClusterPrimary {
  private readonly log: Logger;
  private readonly control: net.Server;
  private readonly implicit: net.Server | null;
  private readonly slots = new Map<number, Slot>();
  private readonly perIp = new Map<string, number>();
  /** Logged-in sessions per user over all workers (maxSessions). */
  private readonly userSessions = new Map<string, number>();
  private readonly maxRestarts: number;
  private total = 0;
  private nextId = 1;
  private turn = 0;
  private started = false;
  private startWaiter: { resolve(): void; reject(err: Error): void } | null = null;
  private stopping: Promise<void> | null = null;
  private allExited: (() => void) | null = null;
  /** Workers to start again (they exited); started as the restart budget allows. */
  private missing = 0;
  private restarts: number[] = [];
  private restartTimer: NodeJS.Timeout | null = null;
  private metricsServer: http.Server | null = null;
  private nextMetricsRid = 1;
  private readonly metricsWaiters = new Map<number, (metrics: MetricsJson) => void>();
  private readonly trusted: ((address: string) => boolean) | null;
  /** Connections whose PROXY header is being read: they count against maxConnections. */
  private pendingHeaders = 0;

  constructor(private readonly o: PrimaryOptions) {
    this.log = o.log;
    this.maxRestarts = o.maxRestartsPerMinute ?? 10;
    this.trusted = o.proxy ? trustMatcher(o.proxy.trustedProxies) : null;
    const listener = (implicit: boolean): net.Server =>
      net.createServer({ pauseOnConnect: true, noDelay: o.tcpNoDelay }, (s) => this.onConnection(s, implicit));
    this.control = listener(false);
    this.implicit = o.implicitTlsPort !== null ? listener(true) : null;
  }

  /** Listen on the control port (and the implicit-TLS one). Rejects with the listen error. */
  async listen(): Promise<{ control: net.AddressInfo; implicit: net.AddressInfo | null }> {
    await listenOn(this.control, this.o.host, this.o.port);
    // Plain connections are handed over as TCP handles, never made sockets here; a port that
    // reads PROXY headers takes sockets (the header is read here).
    if (!this.o.proxy && bareControlAvailable()) takeAccepted(this.control, this.onHandle);
    if (this.implicit) {
      try {
        await listenOn(this.implicit, this.o.host, this.o.implicitTlsPort!);
      } catch (err) {
        this.control.close();
        throw err;
      }
      this.implicit.on('error', (err) => this.log.error({ err }, 'implicit TLS listener error'));
    }
    if (this.o.metrics) {
      try {
        this.metricsServer = await serveMetrics(this.o.metrics.host, this.o.metrics.port, () => this.clusterMetrics(), AggregatorRegistry.PROMETHEUS_CONTENT_TYPE);
      } catch (err) {
        this.control.close();
        this.implicit?.close();
        throw err;
      }
      const m = this.metricsServer.address() as net.AddressInfo;
      this.log.info({ address: m.address, port: m.port }, 'metrics of all workers listening at /metrics (primary)');
    }
    this.control.on('error', (err) => this.log.error({ err }, 'listener error'));
    const control = this.control.address() as net.AddressInfo;
    this.log.info({ address: control.address, port: control.port, workers: this.o.workers }, 'listening (primary)');
    return { control, implicit: (this.implicit?.address() as net.AddressInfo | null) ?? null };
  }

  /** Fork the workers. Resolves when every one is ready; rejects with WorkerStartError when one exits first. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.startWaiter = { resolve, reject };
      for (let i = 0; i < this.o.workers; i++) this.fork();
    });
  }

  /** The address of the primary's /metrics listener (with the metrics option, after listen()), or null. */
  metricsAddress(): net.AddressInfo | null {
    const a = this.metricsServer?.address();
    return a && typeof a !== 'string' ? a : null;
  }

  /**
   * Every ready worker's metrics (its server's and its process's), summed as prom-client's
   * AggregatorRegistry does for node:cluster (gauges summed too, unless a metric says otherwise).
   * A worker that does not answer within metricsTimeoutMs is left out of this scrape.
   */
  async clusterMetrics(): Promise<string> {
    const timeoutMs = this.o.metricsTimeoutMs ?? 2000;
    const ready = [...this.slots.values()].filter((s) => s.ready && s.worker.isConnected());
    const answers = await Promise.all(
      ready.map(
        (slot) =>
          new Promise<MetricsJson | null>((resolve) => {
            const rid = this.nextMetricsRid++;
            const done = (m: MetricsJson | null): void => {
              clearTimeout(timer);
              this.metricsWaiters.delete(rid);
              resolve(m);
            };
            const timer = setTimeout(() => done(null), timeoutMs);
            this.metricsWaiters.set(rid, done);
            slot.worker.send({ type: 'metrics-request', rid } satisfies ToWorker, undefined, (err: Error | null) => {
              if (err) done(null);
            });
          }),
      ),
    );
    const got = answers.filter((m): m is MetricsJson => m !== null);
    if (got.length < ready.length) this.log.warn({ workers: ready.length, answered: got.length }, 'metrics: some workers did not answer');
    return AggregatorRegistry.aggregate(got).metrics();
  }

  /** The pids of the running workers. */
  get workerPids(): number[] {
    return [...this.slots.values()].map((s) => s.pid);
  }

  /** Start the workers a broken config file kept back, now (after SIGHUP). */
  retryReplacements(): void {
    if (this.missing === 0 || this.stopping) return;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.replenish();
  }

  /** Send a signal to every worker (SIGHUP: reload; SIGUSR2: reopen the log). */
  forward(signal: NodeJS.Signals): void {
    for (const s of this.slots.values()) {
      try {
        s.worker.process.kill(signal);
      } catch {
        // exiting already
      }
    }
  }

  /**
   * Stop accepting; ask every worker to drain (its server.close(): transfers finish within
   * closeGracePeriod) and exit. Resolves when all have exited.
   */
  stop(signal = 'SIGTERM'): Promise<void> {
    this.stopping ??= this.drain(signal);
    return this.stopping;
  }

  /** Kill every worker at once (a second SIGTERM). */
  kill(): void {
    this.forward('SIGKILL');
  }

  private async drain(signal: string): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.missing = 0;
    const closed = [this.control, this.implicit].map((srv) => (srv?.listening ? new Promise<void>((r) => srv.close(() => r())) : undefined));
    const metricsServer = this.metricsServer;
    this.metricsServer = null;
    if (metricsServer) {
      closed.push(new Promise<void>((r) => metricsServer.close(() => r())));
      metricsServer.closeAllConnections();
    }
    const exited = this.slots.size === 0 ? Promise.resolve() : new Promise<void>((r) => (this.allExited = r));
    for (const s of this.slots.values()) this.send(s, { type: 'stop', signal });
    await exited;
    await Promise.all(closed);
  }

  private fork(): Slot {
    const worker = cluster.fork({ [WORKER_ENV]: '1' });
    const slot: Slot = { worker, pid: worker.process.pid ?? 0, ready: false, conns: new Map(), holds: new Map(), counted: new Map(), shares: new Map(), handover: [] };
    this.slots.set(worker.id, slot);
    worker.on('message', (msg: ToPrimary) => this.onMessage(slot, msg));
    // Node's answers to a descriptor sent, which it handles itself before this listener runs:
    // the same event node:cluster listens to for its own messages.
    worker.process.on('internalMessage', (msg: { cmd?: string } | null) => {
      if (msg?.cmd === 'NODE_HANDLE_ACK') this.handedOver(slot, true);
      else if (msg?.cmd === 'NODE_HANDLE_NACK') this.handedOver(slot, false);
    });
    worker.on('error', (err) => this.log.warn({ err, worker: worker.id, workerPid: slot.pid }, 'worker IPC error'));
    worker.on('exit', (code, signal) => this.onExit(slot, code, signal));
    this.log.info({ worker: worker.id, workerPid: slot.pid }, 'worker started');
    return slot;
  }

  private onMessage(slot: Slot, msg: ToPrimary): void {
    if (msg?.type === 'end') {
      // The worker's ACK of this connection's descriptor came before this on the same channel. A
      // hand-over still waiting means ACKs are not seen here (a Node that no longer emits
      // 'internalMessage' for them): close the descriptor now rather than keep it.
      const i = slot.handover.findIndex((h) => h.id === msg.id);
      if (i >= 0) closeOwnCopy(slot.handover.splice(i, 1)[0].conn);
      this.release(slot, msg.id);
    } else if (msg?.type === 'lockout') {
      void this.answerLockout(slot, msg.rid, msg.call);
    } else if (msg?.type === 'session-acquire') {
      this.send(slot, { type: 'session-reply', hid: msg.hid, granted: this.acquireSession(slot, msg.hid, msg.user, msg.max) });
    } else if (msg?.type === 'session-counts') {
      for (const [user, d] of msg.counts) {
        const n = (slot.counted.get(user) ?? 0) + d;
        if (n === 0) slot.counted.delete(user);
        else slot.counted.set(user, n);
        this.addSessions(user, d);
      }
    } else if (msg?.type === 'session-release') {
      this.releaseSession(slot, msg.hid);
    } else if (msg?.type === 'share-change') {
      if ((msg.direction === 'send' || msg.direction === 'receive') && (msg.delta === 1 || msg.delta === -1) && typeof msg.user === 'string') {
        this.changeShares(slot, msg.user, msg.direction, msg.delta);
      }
    } else if (msg?.type === 'metrics-reply') {
      this.metricsWaiters.get(msg.rid)?.(msg.metrics);
    } else if (msg?.type === 'ready') {
      slot.ready = true;
      this.log.info({ worker: slot.worker.id, workerPid: slot.pid }, 'worker ready');
      if (!this.started && [...this.slots.values()].every((s) => s.ready) && this.slots.size === this.o.workers) {
        this.started = true;
        this.startWaiter?.resolve();
        this.startWaiter = null;
      }
      // If SIGTERM came while this worker was starting, it missed the stop message.
      if (this.stopping) this.send(slot, { type: 'stop', signal: 'SIGTERM' });
    }
  }

  private onExit(slot: Slot, code: number | null, signal: string | null): void {
    this.slots.delete(slot.worker.id);
    // Connections the worker may or may not have received when it died: closed, not sent again
    // (one it had may have had its greeting already).
    for (const h of slot.handover.splice(0)) closeOwnCopy(h.conn);
    for (const id of [...slot.conns.keys()]) this.release(slot, id);
    for (const hid of [...slot.holds.keys()]) this.releaseSession(slot, hid);
    for (const [user, n] of slot.counted) this.addSessions(user, -n);
    slot.counted.clear();
    for (const [key, n] of [...slot.shares]) {
      const i = key.indexOf('\0');
      this.changeShares(slot, key.slice(i + 1), key.slice(0, i) as 'send' | 'receive', -n);
    }
    if (this.stopping) {
      this.log.info({ worker: slot.worker.id, workerPid: slot.pid, code, signal }, 'worker stopped');
      if (this.slots.size === 0) this.allExited?.();
      return;
    }
    if (!this.started) {
      // A worker that cannot start (bad certificate, missing home) will not do better the next time.
      this.log.error({ worker: slot.worker.id, workerPid: slot.pid, code, signal }, 'worker exited during start');
      this.startWaiter?.reject(new WorkerStartError(code, signal));
      this.startWaiter = null;
      this.stopping = this.drain('start failed');
      return;
    }
    this.log.error({ worker: slot.worker.id, workerPid: slot.pid, code, signal, connections: slot.conns.size }, 'worker exited; starting a new one');
    this.missing++;
    this.replenish();
  }

  /** Start the missing workers, within the restart budget; the rest wait for it. */
  private replenish(): void {
    this.restartTimer = null;
    while (this.missing > 0 && !this.stopping) {
      const now = Date.now();
      this.restarts = this.restarts.filter((t) => now - t < MINUTE_MS);
      if (this.restarts.length >= this.maxRestarts) {
        const wait = MINUTE_MS - (now - this.restarts[0]) + 10;
        this.log.error(
          { missing: this.missing, restartsLastMinute: this.restarts.length, retryInSeconds: Math.ceil(wait / 1000) },
          'workers keep exiting: waiting before starting another',
        );
        this.restartTimer ??= setTimeout(() => this.replenish(), wait);
        return;
      }
      const problem = this.o.configProblem?.() ?? null;
      if (problem !== null) {
        this.log.error(
          { missing: this.missing, retryInSeconds: RECHECK_MS / 1000, problem },
          'the config file does not load: no replacement worker until it does (SIGHUP retries at once)',
        );
        this.restartTimer ??= setTimeout(() => this.replenish(), RECHECK_MS);
        return;
      }
      this.restarts.push(now);
      this.missing--;
      const slot = this.fork();
      this.log.warn({ worker: slot.worker.id, workerPid: slot.pid }, 'replacement worker started');
    }
  }

  /** A plain connection, as libuv accepted it. */
  private readonly onHandle = (handle: TcpHandle): boolean => {
    this.admit(handle, false);
    return true;
  };

  private onConnection(socket: net.Socket, implicit: boolean): void {
    socket.on('error', () => {});
    const proxy = this.o.proxy;
    if (proxy && this.trusted && this.trusted(socket.remoteAddress ?? '') && !this.stopping) {
      this.readHeader(socket, implicit, proxy);
      return;
    }
    this.admit(socket, implicit);
  }

  /**
   * A connection from a trusted proxy: read its PROXY header here, then the limits apply to the
   * client it names. What came after the header goes to the worker with the socket (the kernel
   * reads stop as the header ends, so the rest stays in the socket the worker gets).
   */
  private readHeader(socket: net.Socket, implicit: boolean, proxy: NonNullable<PrimaryOptions['proxy']>): void {
    const proxyAddress = socket.remoteAddress ?? '';
    if (this.total + this.pendingHeaders >= this.o.maxConnections) {
      this.log.warn({ proxy: proxyAddress }, 'too many connections');
      refuseSocket(socket, 'Too many connections. Service temporarily unavailable.');
      return;
    }
    this.pendingHeaders++;
    let head: Buffer = Buffer.alloc(0);
    readProxyHeader(socket, { mode: proxy.mode, timeoutMs: proxy.timeoutMs, onRest: (rest) => (head = rest) }).then(
      (header) => {
        this.pendingHeaders--;
        if (socket.destroyed) return;
        this.admit(socket, implicit, { peer: proxiedPeer(header, socket), head });
      },
      (err: ProxyHeaderError) => {
        this.pendingHeaders--;
        const level = err.reason === 'closed' ? 'info' : 'warn';
        this.log[level]({ err, proxy: proxyAddress }, 'PROXY header refused; connection dropped');
        socket.destroy();
      },
    );
  }

  /**
   * Apply the limits to the client (the one a PROXY header named, when read) and hand the
   * connection (a socket, or a plain connection's TCP handle) to a worker.
   */
  private admit(conn: net.Socket | TcpHandle, implicit: boolean, proxied?: { peer: ProxiedPeer | null; head: Buffer }): void {
    const ip = proxied?.peer?.remoteAddress ?? remoteAddressOf(conn);
    const refuse = (reason: string): void => refuseConnection(conn, reason);
    if (this.stopping) return refuse('Server shutting down.');
    if (this.total + this.pendingHeaders >= this.o.maxConnections) {
      this.log.warn({ remote: ip }, 'too many connections');
      return refuse('Too many connections. Service temporarily unavailable.');
    }
    const n = this.perIp.get(ip) ?? 0;
    if (this.o.maxConnectionsPerIp > 0 && n >= this.o.maxConnectionsPerIp) {
      this.log.warn({ remote: ip }, 'too many connections from one address');
      return refuse('Too many connections from the same IP address.');
    }
    const slot = this.pick();
    if (!slot) {
      this.log.warn({ remote: ip }, 'no worker ready');
      return refuse('Service not available, try again later.');
    }
    const id = this.nextId++;
    this.total++;
    this.perIp.set(ip, n + 1);
    const msg: ToWorker = proxied
      ? { type: 'conn', id, implicit, proxied: proxied.peer, head: proxied.head.toString('base64') }
      : { type: 'conn', id, implicit };
    this.handOver(slot, { id, conn, msg, ip, nacks: 0 });
  }

  /**
   * Send a connection to the worker in `slot`. The primary keeps its own copy of the descriptor
   * until the worker answers: it closes it on the worker's ACK (handedOver), and on a NACK sends
   * the connection to another worker. A TCP handle goes as Node's cluster hands its own over
   * ('net.Native'), for which Node keeps nothing; a socket goes with `keepOpen`, without which
   * Node would keep it and send it again itself, always to the same worker.
   */
  private handOver(slot: Slot, h: Handover): void {
    slot.conns.set(h.id, h.ip);
    slot.handover.push(h);
    slot.worker.send(h.msg, h.conn as net.Socket, { keepOpen: true }, (err: Error | null) => {
      if (!err) return;
      // Not written: no ACK or NACK will come for it.
      const i = slot.handover.indexOf(h);
      if (i >= 0) slot.handover.splice(i, 1);
      this.log.warn({ err, worker: slot.worker.id, remote: h.ip }, 'could not hand a connection to a worker');
      this.release(slot, h.id);
      closeOwnCopy(h.conn);
    });
  }

  /** The worker in `slot` acknowledged (`ok`) or refused the oldest descriptor sent to it. */
  private handedOver(slot: Slot, ok: boolean): void {
    const h = slot.handover.shift();
    if (!h) return;
    if (ok) {
      closeOwnCopy(h.conn);
      return;
    }
    h.nacks++;
    this.log.warn({ worker: slot.worker.id, workerPid: slot.pid, remote: h.ip, attempts: h.nacks }, 'a worker could not take a connection (out of descriptors?)');
    const next = h.nacks < MAX_HANDOVER_NACKS && !this.stopping ? this.pick(slot) : null;
    if (next) {
      slot.conns.delete(h.id); // its place in the limits goes with it
      this.handOver(next, h);
      return;
    }
    this.release(slot, h.id);
    refuseConnection(h.conn, this.stopping ? 'Server shutting down.' : 'Service not available, try again later.');
  }

  /** The ready worker with the fewest connections; ties go round. `avoid`: unless it is the only one. */
  private pick(avoid?: Slot): Slot | null {
    let ready = [...this.slots.values()].filter((s) => s.ready && s.worker.isConnected());
    if (avoid && ready.length > 1) ready = ready.filter((s) => s !== avoid);
    if (ready.length === 0) return null;
    this.turn = (this.turn + 1) % ready.length;
    let best: Slot | null = null;
    for (let i = 0; i < ready.length; i++) {
      const s = ready[(this.turn + i) % ready.length];
      if (!best || s.conns.size < best.conns.size) best = s;
    }
    return best;
  }

  private release(slot: Slot, id: number): void {
    const ip = slot.conns.get(id);
    if (ip === undefined) return;
    slot.conns.delete(id);
    this.total--;
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

  /** Count a login of `user` for the worker in `slot`, unless the user has `max` (0: no limit) over all workers. */
  private acquireSession(slot: Slot, hid: number, user: string, max: number): boolean {
    if (slot.holds.has(hid)) return true;
    const n = this.userSessions.get(user) ?? 0;
    if (max > 0 && n >= max) return false;
    this.userSessions.set(user, n + 1);
    slot.holds.set(hid, user);
    return true;
  }

  private releaseSession(slot: Slot, hid: number): void {
    const user = slot.holds.get(hid);
    if (user === undefined) return;
    slot.holds.delete(hid);
    this.addSessions(user, -1);
  }

  /**
   * A worker's count of `user`'s share-following transfers in `direction` changed by `d`: tell the
   * new total to that worker and to every worker with such transfers, so that each divides the
   * user's limit by it (a worker with none hears it in answer to its first). Only users with a
   * rate limit send these: per start and end of their transfers, one message in and one out per
   * worker involved.
   */
  private changeShares(slot: Slot, user: string, direction: 'send' | 'receive', d: number): void {
    const key = `${direction}\0${user}`;
    const own = Math.max(0, (slot.shares.get(key) ?? 0) + d);
    if (own === 0) slot.shares.delete(key);
    else slot.shares.set(key, own);
    // Over the live workers (one that exited has left this.slots already).
    let total = 0;
    for (const s of this.slots.values()) total += s.shares.get(key) ?? 0;
    for (const s of this.slots.values()) {
      if (s === slot || s.shares.has(key)) this.send(s, { type: 'share-total', user, direction, total });
    }
  }

  private addSessions(user: string, d: number): void {
    const n = (this.userSessions.get(user) ?? 0) + d;
    if (n <= 0) this.userSessions.delete(user);
    else this.userSessions.set(user, n);
  }

  private async answerLockout(slot: Slot, rid: number, call: LockoutCall): Promise<void> {
    const store = this.o.lockoutStore;
    let record: LockoutRecord | undefined;
    try {
      if (!store) throw new Error('no lockout store');
      switch (call.op) {
        case 'get':
          record = await store.get(call.key, call.now);
          break;
        case 'addFailure':
          record = await store.addFailure(call.key, call.now, call.windowMs);
          break;
        case 'ban':
          await store.ban(call.key, call.until);
          break;
        case 'reset':
          await store.reset(call.key);
          break;
      }
    } catch (err) {
      this.log.error({ err }, 'lockout store call failed');
    }
    this.send(slot, { type: 'lockout-reply', rid, ...(record ? { record } : {}) });
  }

  private send(slot: Slot, msg: ToWorker): void {
    if (!slot.worker.isConnected()) return;
    slot.worker.send(msg, undefined, () => undefined);
  }
}

/**
 * Close the primary's descriptor of a connection a worker has (or that no worker will get). Only
 * the descriptor: no FIN, as the connection lives on in the worker.
 */
function closeOwnCopy(conn: net.Socket | TcpHandle): void {
  if (conn instanceof net.Socket) conn.destroy();
  else conn.close();
}

/** Answer a connection no worker will serve with `421 reason` and close it. */
function refuseConnection(conn: net.Socket | TcpHandle, reason: string): void {
  refuseSocket(conn instanceof net.Socket ? conn : socketOfHandle(conn), reason);
}

/** The client's address of a socket or of a TCP handle ('' when unknown). */
function remoteAddressOf(conn: net.Socket | TcpHandle): string {
  if (conn instanceof net.Socket) return conn.remoteAddress ?? '';
  const out: { address?: string } = {};
  return conn.getpeername(out) === 0 ? (out.address ?? '') : '';
}

function listenOn(server: net.Server, host: string, port: number): Promise<void> {
  const once = (h: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host: h, port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
  return once(host).catch((err: NodeJS.ErrnoException) => {
    // A machine without IPv6 cannot bind '::'; fall back to every IPv4 address (as FtpServer.listen does).
    if (host === '::' && err.code === 'EAFNOSUPPORT') return once('0.0.0.0');
    throw err;
  });
}

/**
 * In a worker: serve the connections the primary hands over and report the end of each; call
 * `onStop` when the primary asks to stop or is gone. Tells the primary this worker is ready.
 */
export function serveForPrimary(server: FtpServer, onStop: (signal: string) => void): void {
  const send = (msg: ToPrimary): void => {
    if (process.connected) process.send!(msg, undefined, {}, () => undefined);
  };
  // maxSessions counts a user's sessions over all workers, and a user's rate limit is divided
  // among the user's transfers over all workers.
  server.useSessionCounter(new IpcSessionCounter());
  server.useShareCounter({ change: (user, direction, delta) => send({ type: 'share-change', user, direction, delta }) });
  process.on('message', (message: unknown, handle: unknown) => {
    const msg = message as ToWorker | null;
    if (msg?.type === 'conn') {
      let served: Promise<void>;
      if (handle instanceof net.Socket) {
        const opts =
          msg.proxied !== undefined
            ? { implicitTls: msg.implicit, proxied: msg.proxied, head: Buffer.from(msg.head ?? '', 'base64') }
            : { implicitTls: msg.implicit };
        served = server.acceptConnection(handle, opts);
      } else if (isTcpHandle(handle)) {
        // A plain connection handed over as its TCP handle.
        served = server.acceptHandle(handle);
      } else {
        send({ type: 'end', id: msg.id });
        return;
      }
      served.then(
        () => send({ type: 'end', id: msg.id }),
        (err) => {
          server.log.error({ err }, 'cannot serve a handed-over connection');
          send({ type: 'end', id: msg.id });
        },
      );
    } else if (msg?.type === 'metrics-request') {
      server.metricsJSON().then(
        (metrics) => send({ type: 'metrics-reply', rid: msg.rid, metrics }),
        (err: unknown) => server.log.warn({ err }, 'metrics could not be collected for the primary'),
      );
    } else if (msg?.type === 'share-total') {
      server.sharedTotal(msg.user, msg.direction, msg.total);
    } else if (msg?.type === 'stop') {
      onStop(msg.signal);
    }
  });
  // The primary died: nobody hands connections over or counts them; finish what runs and exit
  // (dividing users' rate limits among this worker's transfers alone meanwhile).
  process.on('disconnect', () => {
    server.useShareCounter(null);
    onStop('primary gone');
  });
  send({ type: 'ready' });
}

/** The lockout section's store sizes: its key bound, and how long a record matters (the longer of window and ban). */
export interface LockoutSizing {
  maxEntries: number;
  keepMs: number;
}

/** The primary's lockout store, which every worker's IpcLockoutStore asks. */
export function sharedLockoutStore(o: LockoutSizing): LockoutStore {
  return new MemoryLockoutStore(o.maxEntries, o.keepMs);
}

/**
 * A worker's lockout store: every call goes to the primary's store, so failures are counted over
 * all workers and a ban holds whichever worker a client reaches. Without an answer (no primary,
 * or none within `timeoutMs`) the worker's own in-memory store answers instead.
 */
export class IpcLockoutStore implements LockoutStore {
  private readonly pending = new Map<number, (record: LockoutRecord | undefined) => void>();
  private nextRid = 1;
  private readonly local: MemoryLockoutStore;

  constructor(
    opts: LockoutSizing,
    private readonly timeoutMs = 2000,
  ) {
    this.local = new MemoryLockoutStore(opts.maxEntries, opts.keepMs);
    process.on('message', (message: unknown) => {
      const msg = message as ToWorker | null;
      if (msg?.type !== 'lockout-reply') return;
      this.pending.get(msg.rid)?.(msg.record);
    });
  }

  private call(call: LockoutCall, fallback: () => LockoutRecord | undefined): Promise<LockoutRecord | undefined> {
    if (!process.connected || !process.send) return Promise.resolve(fallback());
    const rid = this.nextRid++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(fallback()), this.timeoutMs);
      const done = (record: LockoutRecord | undefined): void => {
        clearTimeout(timer);
        this.pending.delete(rid);
        resolve(record);
      };
      this.pending.set(rid, done);
      const msg: ToPrimary = { type: 'lockout', rid, call };
      process.send!(msg, undefined, {}, (err: Error | null) => {
        if (err) done(fallback());
      });
    });
  }

  get(key: string, now: number): Promise<LockoutRecord | undefined> {
    return this.call({ op: 'get', key, now }, () => this.local.get(key, now));
  }

  async addFailure(key: string, now: number, windowMs: number): Promise<LockoutRecord> {
    const r = await this.call({ op: 'addFailure', key, now, windowMs }, () => this.local.addFailure(key, now, windowMs));
    return r ?? this.local.addFailure(key, now, windowMs);
  }

  async ban(key: string, until: number): Promise<void> {
    await this.call({ op: 'ban', key, until }, () => {
      this.local.ban(key, until);
      return undefined;
    });
  }

  async reset(key: string): Promise<void> {
    await this.call({ op: 'reset', key }, () => {
      this.local.reset(key);
      return undefined;
    });
  }
}

/** How long a worker sums the logins and logouts of users with no limit before telling the primary. */
const COUNT_FLUSH_MS = 100;

/**
 * A worker's maxSessions count: each login of a user with a limit asks the primary, which counts
 * every worker's sessions (and drops the holds of a worker that exits); logins of users without
 * one are summed and told (`count`). Without an answer (no primary, or none within
 * `timeoutMs`) the login is counted in this worker alone, against the same maximum, and the hold
 * asked for is released, so a late grant does not stay counted.
 */
export class IpcSessionCounter implements SessionCounter {
  private readonly pending = new Map<number, (granted: boolean) => void>();
  private readonly local = new Map<string, number>();
  private nextHid = 1;

  constructor(private readonly timeoutMs = 2000) {
    process.on('message', (message: unknown) => {
      const msg = message as ToWorker | null;
      if (msg?.type !== 'session-reply') return;
      this.pending.get(msg.hid)?.(msg.granted);
    });
  }

  acquire(user: string, max: number): Promise<(() => void) | null> {
    if (!process.connected || !process.send) return Promise.resolve(this.acquireLocal(user, max));
    // The primary decides on every session of the user, the unlimited ones too.
    this.flush();
    const hid = this.nextHid++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sendRelease(hid);
        finish(this.acquireLocal(user, max));
      }, this.timeoutMs);
      const finish = (release: (() => void) | null): void => {
        clearTimeout(timer);
        this.pending.delete(hid);
        resolve(release);
      };
      this.pending.set(hid, (granted) => {
        if (!granted) return finish(null);
        let released = false;
        finish(() => {
          if (released) return;
          released = true;
          this.sendRelease(hid);
        });
      });
      const msg: ToPrimary = { type: 'session-acquire', hid, user, max };
      process.send!(msg, undefined, {}, (err: Error | null) => {
        if (err && this.pending.has(hid)) finish(this.acquireLocal(user, max));
      });
    });
  }

  /**
   * A login with no limit: nothing to ask, so nothing to wait for. The primary still counts it
   * (a user's limit may be set later): logins and logouts are summed here per user and sent in
   * one message at most every COUNT_FLUSH_MS, and always before an `acquire`, so the primary
   * has this worker's count when it decides. A session shorter than that costs no message.
   */
  count(user: string): () => void {
    if (!process.connected || !process.send) return this.acquireLocal(user, 0)!;
    this.bump(user, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.bump(user, -1);
    };
  }

  private readonly deltas = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | null = null;

  private bump(user: string, d: number): void {
    const n = (this.deltas.get(user) ?? 0) + d;
    if (n === 0) this.deltas.delete(user);
    else this.deltas.set(user, n);
    if (!this.flushTimer && this.deltas.size > 0) this.flushTimer = setTimeout(() => this.flush(), COUNT_FLUSH_MS).unref();
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.deltas.size === 0 || !process.connected) return;
    const msg: ToPrimary = { type: 'session-counts', counts: [...this.deltas] };
    this.deltas.clear();
    process.send!(msg, undefined, {}, () => undefined);
  }

  private sendRelease(hid: number): void {
    const msg: ToPrimary = { type: 'session-release', hid };
    if (process.connected) process.send!(msg, undefined, {}, () => undefined);
  }

  private acquireLocal(user: string, max: number): (() => void) | null {
    const n = this.local.get(user) ?? 0;
    if (max > 0 && n >= max) return null;
    this.local.set(user, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.local.get(user) ?? 1) - 1;
      if (left <= 0) this.local.delete(user);
      else this.local.set(user, left);
    };
  }
}
