import * as net from 'node:net';
import * as tls from 'node:tls';
import type Logger from 'bunyan';
import type { ResolvedOptions } from '../config/options';
import type { FileSystem, FileHandle, FileStat } from '../fs/types';
import type { CopyPath } from '../fs/copy';
import { ftpJoin, resolveFtpPath } from '../fs/paths';
import type { PermLetter, UserLimits } from '../auth/types';
import { CommandFramer, formatReply, latin1Safe, sanitizeLine, type FrameEvent, type CommandEvent } from './parser';
import { FtpError, toReply, isExpected } from './errors';
import type { DataChannel } from './data/channel';
import type { DataConnection } from './data/connection';
import { nativeSeal, nativeTlsAvailable } from './data/engines';
import { GatedTlsConnection, type TlsGate, type TlsHandover } from './data/tls-gate';
import type { TlsLease } from './tls';
import { closePassiveListener, type SparePassive } from './data/passive';
import { ABORTED_BY_CLIENT, AdjustableThrottle, TransferAbort, TransferError, type ReadInto, type Throttle, type TransferPath, type TransferRequest, type TransferResult, type TransferSignal } from './data/transfer';
import type { WatchedTransfer } from './data/idle-watch';
import type { IdleNode } from './idle-list';
import { dispatch, dispatchTransfer } from './dispatch';
import { COMMANDS } from './commands';
import type { ServerContext } from './server-context';
import type { ProxiedPeer } from './proxy-socket';
import type { LoginSlot, RunningTransfer } from './user-limits';
import { BareControl, type ControlSink } from './control';

/** Where a session is in the login sequence. Transfers are tracked by `transfer`. */
export type SessionState = 'auth' | 'pass' | 'ready';

/** Commands served while a transfer runs; everything else waits its turn. */
export const DURING_TRANSFER = new Set(['ABOR', 'STAT', 'QUIT', 'NOOP', 'HELP']);
/**
 * Of those, what acts at once while a transfer command has not sent its first reply yet (its
 * checks, its open): ABOR and QUIT, which answer after that reply. An answer to STAT, NOOP or
 * HELP would go out ahead of it, and a client that sent them right behind the command would
 * take that answer for the command's.
 */
const BEFORE_FIRST_REPLY = new Set(['ABOR', 'QUIT']);

/** Most commands held while an earlier one runs before we stop reading the socket. */
const MAX_QUEUED = 32;

/**
 * Commands one session runs before it lets the event loop turn. A pump's commands follow one
 * another in microtasks, so without a turn nothing else ran until its queue was empty: one
 * unauthenticated connection pipelining "X\n" (32,750 commands a 64 KiB read, about 1.6 s of
 * CPU) kept every other session, accept and timer waiting, 8–16 s for a 10 s flood.
 */
const PUMP_SLICE = 64;
/** Bytes of a read framed at once (then to the next LF) while the queue has room. */
const FRAME_SLICE = 4096;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/**
 * Reply bytes the client has not taken yet beyond which no further command runs (and, once
 * MAX_QUEUED wait, the socket is not read): a client that sends and never reads cannot make the
 * server hold its replies without bound.
 */
export const MAX_UNSENT_REPLIES = 256 * 1024;

/** Uploads: not started once the client has half-closed the control connection (onInputEnd). */
const UPLOADS = new Set(['STOR', 'APPE', 'STOU']);

export interface ActiveTransfer {
  verb: string;
  path: string;
  direction: 'send' | 'receive';
  started: number;
  bytes: number;
  /** 'native' or 'stream' while it runs; for a copy (SITE CPTO), how it copies. */
  engine: 'native' | 'stream' | CopyPath | null;
  readonly abort: TransferAbort;
}

export interface TransferInfo {
  verb: string;
  path: string;
  bytes: number;
  seconds: number;
  engine: TransferPath;
  ok: boolean;
}

/** On a control socket: the session it serves (see Session.listenTo). */
const kSession = Symbol('ftpdlib.session');
type ListenedSocket = net.Socket & { [kSession]?: Session };
/** A control connection: a socket, or a connection served on its TCP handle alone (./control.ts). */
type Control = net.Socket | BareControl;

let nextId = 1;

/**
 * One control connection: its state machine, its command queue, and the
 * transfer it runs. Commands are executed one at a time in arrival order, so
 * pipelined commands get their replies in order.
 */
export class Session implements ControlSink {
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The client as a trusted proxy's PROXY header named it; remoteAddress/remotePort are its. */
  readonly proxied: ProxiedPeer | null;

  state: SessionState = 'auth';
  /** The logged-in user, or null. */
  user: string | null = null;
  /** The name given with USER, awaiting PASS. */
  pendingUser: string | null = null;
  loginAttempts = 0;
  /** The logged-in user's limits (the authorizer's answer at login), or null. */
  limits: Readonly<UserLimits> | null = null;
  /** Gives back the user's session slot (maxSessions) at logout. */
  private loginSlot: LoginSlot | null = null;
  fs: FileSystem | null = null;
  cwd = '/';
  type: 'A' | 'I' = 'A';
  restOffset = 0;
  renameFrom: string | null = null;
  /** The source named by SITE CPFR, for the SITE CPTO right after it. */
  copyFrom: string | null = null;
  dataChannel: DataChannel | null = null;
  epsvAll = false;
  quitPending = false;
  /** The MLST/MLSD facts shown (OPTS MLST replaces the set; sessions share the default one). */
  mlstFacts: ReadonlySet<string>;
  transfer: ActiveTransfer | null = null;
  /** Abort controller of the transfer command being run, set before its transfer starts. */
  transferAbort: TransferAbort | null = null;
  /** Set when the transfer answered an ABOR itself (426 + 226). */
  abortAnswered = false;
  /** An ABOR that reached a command which did not answer it: 225 after that command's reply. */
  abortOwed = false;

  private readonly framer: CommandFramer;
  /** Commands and framing errors, answered in arrival order. */
  private readonly queue: FrameEvent[] = [];
  private busy = false;
  private closed = false;
  /** The server's idle list (`ctx.controlIdle`) links sessions through these (idle-list.ts). */
  idlePrev: IdleNode | null = null;
  idleNext: IdleNode | null = null;
  idleAt = -1;
  private readPaused = false;
  /** The client's FIN is read: no command follows; those read before it are still answered. */
  private inputEnded = false;
  private closeWaiters: Array<() => void> | null = null;

  /** The control connection: the TCP connection, or the TLS socket over it after AUTH TLS. */
  private control: Control;
  /** The control connection is TLS (AUTH TLS done, or implicit FTPS). */
  secure = false;
  /** PBSZ 0 received on a secure control connection. */
  pbsz = false;
  /** Data channel protection: C (clear) or P (private, TLS). */
  prot: 'C' | 'P' = 'C';
  /** AUTH TLS accepted and the handshake not done yet: input is held. */
  private tlsPending = false;
  private firstChunk = true;

  /** This session's TLS context (its own ticket keys: TlsManager.lease), from AUTH TLS or the implicit handshake on. */
  private tlsLease: TlsLease | null;

  constructor(
    readonly ctx: ServerContext,
    socket: Control,
    implicitTls = false,
    proxied: ProxiedPeer | null = null,
    tlsLease: TlsLease | null = null,
  ) {
    this.tlsLease = tlsLease;
    this.control = socket;
    if (implicitTls) {
      this.secure = true;
      this.pbsz = true;
      this.prot = 'P';
    }
    this.id = nextId++;
    this.proxied = proxied;
    this.remoteAddress = proxied?.remoteAddress ?? socket.remoteAddress ?? '';
    this.remotePort = proxied?.remotePort ?? socket.remotePort ?? 0;
    this.raw = socket;
    this.framer = new CommandFramer({ maxLineLength: ctx.options.maxLineLength, encoding: ctx.options.encoding });
    this.mlstFacts = ctx.defaultMlstFacts;
    ctx.setNoDelay(socket);
    // Python's ftplib sends ABOR with MSG_OOB: keep the urgent byte in the stream.
    ctx.setOobInline(socket);
    this.listenTo(socket);
  }

  /**
   * The control socket's listeners. They are the same three functions for every session (each
   * finds its session on the socket): an idle session holds no closure of its own for them.
   */
  private listenTo(socket: Control): void {
    if (socket instanceof BareControl) {
      socket.attach(this);
      return;
    }
    (socket as ListenedSocket)[kSession] = this;
    // The client's FIN ends its commands, not the replies owed to them: the session ends the
    // connection itself once those are out (onInputEnd). A Duplex reads allowHalfOpen when its
    // readable side ends, so setting it here holds for sockets made by any listener.
    socket.allowHalfOpen = true;
    socket.on('data', Session.onSocketData);
    socket.on('end', Session.onSocketEnd);
    socket.on('error', Session.onSocketError);
    socket.on('close', Session.onSocketClose);
  }

  private static onSocketData(this: ListenedSocket, chunk: Buffer): void {
    this[kSession]!.onData(chunk);
  }

  private static onSocketEnd(this: ListenedSocket): void {
    this[kSession]!.onInputEnd();
  }

  private static onSocketError(this: ListenedSocket, err: Error): void {
    this[kSession]!.log.debug({ err }, 'control connection error');
  }

  private static onSocketClose(this: ListenedSocket): void {
    this[kSession]!.onClose();
  }

  /** @internal A bare control connection's reads (ControlSink). */
  controlData(chunk: Buffer): void {
    this.onData(chunk);
  }

  /** @internal A bare control connection read the client's FIN (ControlSink). */
  controlEnded(): void {
    this.onInputEnd();
  }

  /** @internal A bare control connection's error, before it closes (ControlSink). */
  controlError(err: Error): void {
    this.log.debug({ err }, 'control connection error');
  }

  /** @internal A bare control connection has closed (ControlSink). */
  controlClosed(): void {
    this.onClose();
  }

  /** The accepted connection, under any TLS; its local address is looked up when first needed. */
  private raw: Control;
  private local: string | undefined;

  /** The server's address on this connection (PASV, EPSV, STAT). */
  get localAddress(): string {
    this.local ??= this.raw.localAddress ?? '';
    return this.local;
  }

  private logger: Logger | null = null;
  private logUser: string | null = null;

  /**
   * This session's logger, a child of the server's naming the session, the client and, once
   * logged in, the user. Made when first used: a server that logs nothing never makes one.
   */
  get log(): Logger {
    if (!this.logger) {
      const p = this.proxied;
      this.logger = this.ctx.log.child(
        {
          session: this.id,
          remote: `${this.remoteAddress}:${this.remotePort}`,
          ...(p ? { proxy: p.proxyAddress } : {}),
          ...(this.logUser !== null ? { user: this.logUser } : {}),
        },
        true,
      );
    }
    return this.logger;
  }

  /** Name `user` in this session's log records from now on (after a login). */
  logAs(user: string): void {
    if (this.logger) this.logger = this.logger.child({ user }, true);
    else this.logUser = user;
  }

  /** The control connection (TLS after AUTH TLS). */
  get socket(): Control {
    return this.control;
  }

  get options(): ResolvedOptions {
    return this.ctx.options;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Send the greeting and start the idle timer. */
  start(): void {
    this.reply(220, this.options.banner);
    this.touch();
  }

  // ---- replies -------------------------------------------------------------

  lastReplyCode = 0;

  reply(code: number, text: string | readonly string[]): void {
    this.lastReplyCode = code;
    if (this.closed || this.socket.destroyed) return;
    const latin1 = this.options.encoding === 'latin1';
    const out = formatReply(code, text);
    this.control.write(latin1 ? latin1Safe(out) : out, latin1 ? 'latin1' : 'utf8');
  }

  /**
   * A multi-line reply whose body comes in pieces (STAT of a folder): the first line now, each
   * piece's lines as they come, each piece written once the client has read what waits unsent
   * down to MAX_UNSENT_REPLIES, then the last line. Body lines start with a space, so none can end
   * the reply (RFC 959, 4.2), and are sanitised as every reply line is. A failure after the first
   * line ends the reply with its own code and says the listing is incomplete (a reply of another
   * code there would be read as one more body line, and the client would wait for the end).
   */
  async replyStreamed(code: number, first: string, body: AsyncIterable<readonly string[]>, last: string): Promise<void> {
    const latin1 = this.options.encoding === 'latin1';
    const write = (text: string): void => {
      if (!this.closed && !this.socket.destroyed) this.control.write(latin1 ? latin1Safe(text) : text, latin1 ? 'latin1' : 'utf8');
    };
    this.lastReplyCode = code;
    write(`${code}-${sanitizeLine(first)}\r\n`);
    try {
      for await (const lines of body) {
        if (this.closed) return;
        let text = '';
        for (const l of lines) text += ` ${sanitizeLine(l)}\r\n`;
        write(text);
        await this.roomForReplies();
      }
    } catch (err) {
      const r = toReply(err);
      if (!isExpected(err)) this.log.error({ err }, 'listing failed');
      this.reply(code, `Listing incomplete: ${r.text}`);
      return;
    }
    this.reply(code, last);
  }

  /** Reply, then close the control connection once the reply is flushed. */
  replyAndClose(code: number, text: string): void {
    // Where close() will end the connection with one close(2), the last reply waits in the
    // kernel (TCP_CORK) until that close sends it with the FIN, in one segment: a packet and a
    // wake-up of the client fewer per session. Should the reply not all reach the kernel at once,
    // the cork comes off and close() takes its slower way, which sends what is left.
    const corked = !this.closed && this.closesAtOnce() && this.ctx.setCork(this.socket, true);
    this.reply(code, text);
    if (corked && !this.closesAtOnce()) this.ctx.setCork(this.socket, false);
    this.close();
  }

  /**
   * Whether close() would end the connection with one close(2): plain TCP, every reply already
   * in the kernel, and the socket reading, so that no unread input turns the close into a reset.
   */
  private closesAtOnce(): boolean {
    const s = this.socket;
    return !this.secure && s === this.raw && s.writableLength === 0 && (this.inputEnded || (!this.readPaused && !s.isPaused()));
  }

  // ---- input ---------------------------------------------------------------

  /**
   * The client half-closed the control connection (its FIN, or a TLS close_notify): no more
   * commands come. Those it sent before are answered in order, as vsftpd, proftpd and pyftpdlib
   * do for `printf '...' | nc -N`, and then the session ends the connection. A transfer running
   * now is aborted as before, since a client that goes away mid-transfer sends this same FIN.
   */
  private onInputEnd(): void {
    if (this.closed || this.inputEnded) return;
    this.inputEnded = true;
    this.framer.reset();
    if (this.transfer || this.transferAbort || (!this.busy && this.queue.length === 0)) this.close();
    // Otherwise pump() closes once it has answered the queue.
  }

  private onData(chunk: Buffer): void {
    if (this.tlsPending) return; // bytes sent after AUTH TLS in the same packet: never commands
    if (this.firstChunk) {
      this.firstChunk = false;
      // A TLS ClientHello (handshake record 0x16 0x03) on the plain port: the client wanted implicit FTPS.
      if (!this.secure && chunk.length >= 2 && chunk[0] === 0x16 && chunk[1] === 0x03) {
        this.log.info('TLS handshake on a plain control connection');
        this.replyAndClose(500, 'This port speaks plain FTP; use AUTH TLS, or the implicit FTPS port.');
        return;
      }
    }
    if (this.unframed) {
      // Read before the pause took hold: kept as bytes behind the rest.
      this.unframed = Buffer.concat([this.unframed, chunk]);
      return;
    }
    this.frameInput(chunk);
  }

  /**
   * Bytes read but not framed yet, while MAX_QUEUED commands wait: framed as the queue drains.
   * A 64 KiB read of "X\n" had been framed whole, 32,768 command objects at once (1.3 MB a
   * connection: 100 such connections grew the server by 128 MB).
   */
  private unframed: Buffer | null = null;

  /** Frame `chunk` a few KiB at a time (cut after a LF), and stop once MAX_QUEUED commands wait. */
  private frameInput(chunk: Buffer): void {
    if (this.tlsPending) {
      // Behind an AUTH: kept until it is answered (see cancelTlsPending and upgradeControl).
      this.unframed = this.unframed ? Buffer.concat([this.unframed, chunk]) : chunk;
      return;
    }
    let rest = chunk;
    while (rest.length > 0 && !this.closed) {
      const lf = rest.length > FRAME_SLICE ? rest.indexOf(0x0a, FRAME_SLICE) : -1;
      const cut = lf === -1 ? rest.length : lf + 1;
      let events: FrameEvent[];
      try {
        events = this.framer.push(cut === rest.length ? rest : rest.subarray(0, cut));
      } catch (err) {
        // The framer promises never to throw; if it ever does, drop the connection, not the server.
        this.log.error({ err }, 'framer failed');
        this.replyAndClose(500, 'Internal error.');
        return;
      }
      rest = rest.subarray(cut);
      this.takeEvents(events);
      // After an AUTH the rest of the read waits with it: framed if AUTH is refused, dropped
      // if the handshake starts (as onData drops later reads).
      if (this.tlsPending) {
        if (rest.length > 0) this.unframed = Buffer.from(rest);
        return;
      }
      if (rest.length > 0 && this.queue.length > MAX_QUEUED) {
        this.unframed = Buffer.from(rest);
        return;
      }
    }
  }

  /**
   * Commands read after an AUTH in the same read, held until AUTH is answered: dropped when the
   * handshake starts (they would run inside TLS unprotected, the STARTTLS command injection),
   * run in order when AUTH is refused.
   */
  private heldAfterAuth: FrameEvent[] | null = null;

  /** Commands answered at once during a transfer (STAT, NOOP, HELP...) still running. */
  private immediateRunning = 0;

  private takeEvents(events: FrameEvent[]): void {
    for (let i = 0; i < events.length; i++) {
      this.onEvent(events[i]);
      if (this.tlsPending) {
        if (i + 1 < events.length) this.heldAfterAuth = events.slice(i + 1);
        return;
      }
    }
  }

  private onEvent(ev: FrameEvent): void {
    if (this.closed) return;
    if (ev.type === 'error') {
      // Framing errors are answered in order with the commands around them.
      this.queue.push(ev);
    } else if (
      this.busy &&
      DURING_TRANSFER.has(ev.verb) &&
      (this.transfer || (this.transferAbort && BEFORE_FIRST_REPLY.has(ev.verb))) &&
      // Replies go in the order of the commands: only ABOR passes commands already waiting, or
      // one still running. One at a time, the unsent replies are checked against each one's:
      // HELP awaits before it replies, and 64 KiB of them had passed the check at once (5.8 MB
      // of replies held by a session whose client read nothing).
      (ev.verb === 'ABOR' || (this.queue.length === 0 && this.immediateRunning === 0)) &&
      (ev.verb === 'ABOR' || this.socket.writableLength <= MAX_UNSENT_REPLIES)
    ) {
      this.immediateRunning++;
      void this.execute(ev).finally(() => this.immediateRunning--);
      return;
    } else {
      this.queue.push(ev);
      if (ev.verb === 'AUTH' && this.ctx.tls && !this.secure) {
        // Hold all further input (the ClientHello) for the TLS socket.
        this.tlsPending = true;
        this.control.pause();
      }
    }
    if (this.queue.length > MAX_QUEUED && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    let ran = 0;
    try {
      while (this.queue.length && !this.closed) {
        if (++ran > PUMP_SLICE) {
          ran = 1;
          await nextTurn();
          if (this.closed) break;
        }
        if (this.socket.writableLength > MAX_UNSENT_REPLIES) {
          await this.roomForReplies();
          if (this.closed) break;
        }
        const ev = this.queue.shift()!;
        // Not while an AUTH waits: the bytes after it are framed only if it is refused.
        if (this.readPaused && this.queue.length < MAX_QUEUED / 2 && !this.tlsPending) {
          if (this.unframed) {
            const held = this.unframed;
            this.unframed = null;
            this.frameInput(held);
          }
          if (!this.unframed && this.queue.length <= MAX_QUEUED && !this.tlsPending) {
            this.readPaused = false;
            this.control.resume();
          }
        }
        if (ev.type === 'error') {
          // A line that is no command still comes between RNFR and RNTO (or REST and its transfer).
          this.renameFrom = null;
          this.copyFrom = null;
          this.restOffset = 0;
          this.reply(ev.code, ev.reason);
          continue;
        }
        await this.execute(ev);
        if (this.quitPending && !this.transfer) break;
      }
    } finally {
      this.busy = false;
      // Emptied by shift(), an array keeps its grown backing store (about 140 bytes); setting
      // the length drops it, so an idle session does not hold one.
      if (this.queue.length === 0) this.queue.length = 0;
      // Every command read before the client's FIN is answered: end the connection.
      if (this.inputEnded && !this.closed) this.close();
    }
  }

  /**
   * Wait until the client has read its replies down to MAX_UNSENT_REPLIES. Meanwhile commands
   * queue up to MAX_QUEUED and the socket is then not read, so TCP makes the client wait too; the
   * idle timeout still runs, as no command does.
   */
  private async roomForReplies(): Promise<void> {
    while (!this.closed && this.socket.writableLength > MAX_UNSENT_REPLIES) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  private async execute(ev: CommandEvent): Promise<void> {
    const started = Date.now();
    this.touch();
    try {
      // An upload whose client has half-closed the control connection is not started: the
      // data connection's end could not be told from a client that died mid-upload.
      if (this.inputEnded && UPLOADS.has(ev.verb)) throw new FtpError(426, 'Control connection closed by the client; upload not started.');
      if (COMMANDS.get(ev.verb)?.transfer) await dispatchTransfer(this, ev.verb, ev.arg);
      else await dispatch(this, ev.verb, ev.arg);
    } catch (err) {
      const r = toReply(err);
      if (!isExpected(err)) this.log.error({ err, cmd: ev.verb }, 'command failed');
      else if (this.ctx.log.debug()) this.log.debug({ err, cmd: ev.verb }, 'command refused');
      this.reply(r.code, r.text);
      if (r.code === 421) this.close();
    } finally {
      // An AUTH refused anywhere (even by dispatch's argument check) releases the held input.
      if (ev.verb === 'AUTH') this.cancelTlsPending();
    }
    if (this.ctx.log.info()) {
      this.log.info(
        { cmd: ev.verb, arg: ev.verb === 'PASS' || ev.verb === 'ACCT' ? '******' : ev.arg, code: this.lastReplyCode, ms: Date.now() - started },
        'command',
      );
    }
    // What a transfer or copy owes an ABOR or QUIT that came while it ran, after its own reply.
    if (this.abortOwed) {
      this.abortOwed = false;
      this.reply(225, 'ABOR command successful.');
    }
    if (this.quitPending && !this.transfer && !this.transferAbort) await this.finishQuit();
    this.touch();
  }

  // ---- TLS -------------------------------------------------------------------

  /**
   * AUTH TLS: reply 234 in clear, then run the handshake on the same socket.
   * Any bytes that followed AUTH in the same read were dropped by onData.
   */
  async upgradeControl(): Promise<void> {
    const tlsm = this.ctx.tls!;
    let raw = this.control;
    if (raw instanceof BareControl) {
      // The TLS socket is made over a net.Socket: this connection becomes one, paused as it is.
      const made = raw.toSocket();
      this.control = this.raw = raw = made;
      this.listenTo(made);
    }
    raw.removeAllListeners('data');
    // The TLS socket reports the end from now on (a FIN in the handshake fails it instead).
    raw.off('end', Session.onSocketEnd);
    this.framer.reset();
    this.heldAfterAuth = null;
    this.unframed = null;
    this.reply(234, 'AUTH TLS successful.');
    try {
      this.tlsLease ??= tlsm.lease();
      const s = await tlsm.accept(raw, this.options.tlsHandshakeTimeout * 1000, this.tlsLease.context);
      this.control = s;
      this.secure = true;
      this.listenTo(s);
      // Guarded: the record's fields are native calls, and the session's logger is made on first use.
      if (this.ctx.log.info()) this.log.info({ protocol: s.getProtocol(), cipher: s.getCipher()?.name }, 'control connection secured');
    } catch (err) {
      this.log.info({ err }, 'control TLS handshake failed');
      this.destroy();
    } finally {
      this.tlsPending = false;
    }
  }

  /** Called by AUTH when it refuses: release the input held for a handshake. */
  cancelTlsPending(): void {
    if (!this.tlsPending) return;
    this.tlsPending = false;
    const held = this.heldAfterAuth;
    this.heldAfterAuth = null;
    if (held) this.takeEvents(held);
    if (this.unframed && !this.tlsPending) {
      const rest = this.unframed;
      this.unframed = null;
      this.frameInput(rest);
    }
    if (this.readPaused && !this.unframed && !this.tlsPending && this.queue.length <= MAX_QUEUED) this.readPaused = false;
    if (!this.readPaused && !this.tlsPending) this.control.resume();
  }

  /** Whether the TLS policies exempt this user name. */
  tlsExempt(user: string | null): boolean {
    return user !== null && this.options.tlsExemptUsers.has(user);
  }

  /**
   * Make a data socket ready per PROT: as is for C; for P a TLS handshake
   * (started as soon as the connection arrives, since clients begin it before
   * sending RETR/STOR) and, by default, proof that it resumed our session.
   */
  async prepareDataSocket(raw: DataConnection): Promise<DataConnection> {
    if (this.prot !== 'P') return raw;
    const tlsm = this.ctx.tls;
    if (!tlsm) throw new FtpError(522, 'TLS is not available.');
    let s: tls.TLSSocket;
    let gate: TlsGate;
    try {
      const timeout = this.options.tlsHandshakeTimeout * 1000;
      // Always through a gate: it lets the engine carry the records of a binary transfer when
      // it can, and tells the stream path whether an upload ended with a close_notify.
      const handover = this.options.useSendfile && this.options.nativeTls && nativeTlsAvailable();
      // A download the engine does not carry has its records sealed by the gate (src/ftp/data/tls-seal.ts).
      const sealing = this.options.nativeTls ? (nativeSeal() ?? 'js') : null;
      ({ socket: s, gate } = await tlsm.acceptGated(raw.socket, timeout, this.tlsLease?.dataContext, handover, sealing));
    } catch (err) {
      this.log.info({ err }, 'data TLS handshake failed');
      throw new FtpError(522, 'Data connection must use TLS (PROT P); the TLS handshake failed.');
    }
    if (this.options.tlsRequireSessionReuse && !s.isSessionReused()) {
      s.destroy();
      this.log.warn('data connection did not resume the control TLS session');
      throw new FtpError(522, 'TLS session of the data connection must resume the control connection session.');
    }
    s.on('error', () => {});
    return new GatedTlsConnection(s, gate);
  }

  /**
   * The user's letters for the `perm` fact of the entry at `path` (MLSD, MLST), per-directory
   * overrides applied: those at the path itself, and for a folder those at a new name in it.
   * Only when the fact is asked for (OPTS MLST can leave it out).
   */
  async permsAt(path: string, kind: FileStat['kind']): Promise<{ self: string; inside: string }> {
    if (!this.mlstFacts.has('perm')) return { self: '', inside: '' };
    const a = this.ctx.options.authorizer;
    const user = this.user!;
    const letters = async (p: string, which: string): Promise<string> => {
      let out = '';
      for (const l of which) {
        const r = a.hasPerm(user, l as PermLetter, p);
        if (typeof r === 'boolean' ? r : await r) out += l;
      }
      return out;
    };
    if (kind !== 'dir') return { self: await letters(path, 'adfrw'), inside: '' };
    return { self: await letters(path, 'defl'), inside: await letters(ftpJoin(path, 'new-entry'), 'wmd') };
  }

  // ---- timers --------------------------------------------------------------

  /**
   * Restart the idle timeout. A running transfer suspends it: the session stays in the idle
   * list meanwhile (idleExpired ignores it then; no work per transfer), and the transfer's
   * end touches it again, which puts it back if it expired.
   */
  touch(): void {
    const idle = this.ctx.controlIdle;
    if (idle && !this.closed) {
      if (this.transfer) return;
      idle.touch(this);
    }
  }

  /** The server's idle list calls this when the session's timeout has passed. */
  idleExpired(): void {
    if (this.transfer || this.closed) return;
    this.log.info('control connection timed out');
    this.replyAndClose(421, 'Control connection timed out.');
  }

  // ---- paths and permissions ------------------------------------------------

  /** Resolve a client argument to an FTP path inside the root. */
  resolvePath(arg: string): string {
    return resolveFtpPath(this.cwd, arg);
  }

  /** Throw 550 unless the user holds `perm` on `path`. */
  async requirePerm(perm: PermLetter, path: string): Promise<void> {
    const pending = this.checkPerm(perm, path);
    if (pending) await pending;
  }

  /**
   * requirePerm without a promise when the authorizer answers at once (every authorizer of
   * ftpdlib's does): throws 530/550 now, returns null when allowed, or a promise for an
   * authorizer that answers later. dispatch() checks every command's permission this way: an
   * async function's frame and promise per command were 0.5 KiB of garbage per download.
   */
  checkPerm(perm: PermLetter, path: string): Promise<void> | null {
    if (!this.user) throw new FtpError(530, 'Log in with USER and PASS first.');
    const ok = this.ctx.options.authorizer.hasPerm(this.user, perm, path);
    if (typeof ok === 'boolean') {
      if (!ok) throw new FtpError(550, 'Not enough privileges.');
      return null;
    }
    return Promise.resolve(ok).then((yes) => {
      if (!yes) throw new FtpError(550, 'Not enough privileges.');
    });
  }

  requireFs(): FileSystem {
    if (!this.fs) throw new FtpError(530, 'Log in with USER and PASS first.');
    return this.fs;
  }

  // ---- data connections and transfers ---------------------------------------

  private spare: { listener: SparePassive; timer: NodeJS.Timeout } | null = null;

  /**
   * Keep a passive listener whose connection came, for this session's next PASV/EPSV: a
   * client fetching many files then costs no listen, bind and close per file. Not kept when
   * the session is closing, or when more than half of a passive port range is in use (ports
   * are then given back at once, as before); dropped after SPARE_PASSIVE_MS unused.
   */
  keepSparePassive(listener: SparePassive): boolean {
    if (this.closed) return false;
    const pool = this.ctx.portPool;
    if (pool && pool.used * 2 > pool.size) return false;
    this.dropSparePassive();
    const timer = setTimeout(() => this.dropSparePassive(), SPARE_PASSIVE_MS);
    timer.unref();
    this.spare = { listener, timer };
    return true;
  }

  /** The kept listener, handed over (it is the caller's from now on), or null. */
  takeSparePassive(): SparePassive | null {
    const sp = this.spare;
    if (!sp) return null;
    this.spare = null;
    clearTimeout(sp.timer);
    return sp.listener;
  }

  /** Close the kept listener, if any (its port goes back to the pool at once). */
  dropSparePassive(): void {
    const sp = this.takeSparePassive();
    if (sp) closePassiveListener(sp.server, sp.port, this.ctx.portPool);
  }

  setDataChannel(ch: DataChannel | null): void {
    this.dataChannel?.close();
    this.dataChannel = ch;
  }

  /** Take the REST offset: it belongs to the one command that uses it. */
  takeRest(): number {
    const n = this.restOffset;
    this.restOffset = 0;
    return n;
  }

  /**
   * Carry out one transfer over the prepared data channel: 150, connect,
   * move the bytes through the chosen engine, then 226 (or 426/425/4xx).
   * Closes `handle` whatever happens.
   */
  async runTransfer(opts: {
    verb: string;
    path: string;
    direction: 'send' | 'receive';
    handle: FileHandle;
    /** A download: the file's size (what is left to send decides its congestion control). */
    size?: number;
    ascii: boolean;
    /** The 150 reply's text. */
    preliminary: string;
    /** Whether this is a file transfer (events, transfer log) or a listing. */
    file: boolean;
  }): Promise<void> {
    const channel = this.dataChannel;
    this.dataChannel = null;
    const abort = this.transferAbort ?? new TransferAbort();
    const t: ActiveTransfer = {
      verb: opts.verb,
      path: opts.path,
      direction: opts.direction,
      started: Date.now(),
      bytes: 0,
      engine: null,
      abort,
    };
    let result: TransferResult | null = null;
    let failure: unknown = null;
    let conn: DataConnection | null = null;
    let watched: WatchedTransfer | null = null;
    let running: RunningTransfer | null = null;
    try {
      if (!channel) throw new FtpError(425, 'Use PORT, EPRT, PASV or EPSV first.');
      if (this.options.tlsDataRequired && this.prot !== 'P' && !this.tlsExempt(this.user)) {
        throw new FtpError(522, 'SSL/TLS required on the data channel: use PROT P.');
      }
      if (abort.signal.aborted) throw new TransferError('Transfer aborted.', 'FTPD_ERR_ABORTED', 0, 'stream');
      this.transfer = t;
      this.reply(channel.connected ? 125 : 150, opts.preliminary);
      const c = (conn = await channel.open(abort.signal));
      // A passive connection is made ready (TLS or not) as it arrives, under the PROT of that
      // moment: one that came in clear before a PROT P must not carry a PROT P transfer
      // (tlsDataRequired would otherwise be bypassed by connecting first).
      if (this.prot === 'P' && !c.tls) throw new FtpError(522, 'Data connection must use TLS (PROT P); it was opened in clear.');
      if (opts.direction === 'send' && opts.file) this.ctx.congestion.beforeSend(c, (opts.size ?? opts.handle.size ?? 0) - opts.handle.offset, channel.autoCongestion);
      // Idle means no byte moved for dataTimeout (src/ftp/data/idle-watch.ts).
      const dataTimeoutMs = this.options.dataTimeout * 1000;
      if (dataTimeoutMs > 0) {
        watched = {
          lastMove: Date.now(),
          limitMs: dataTimeoutMs,
          expire: () => abort.abort(new TransferError('Data connection idle.', 'FTPD_ERR_DATA_TIMEOUT', t.bytes, 'stream')),
        };
        this.ctx.dataIdle.add(watched);
      }
      if (this.user) running = this.ctx.userLimits.beginTransfer(this.user, opts.direction);
      const onProgress = (bytes: number): void => {
        if (bytes !== t.bytes && watched) watched.lastMove = Date.now();
        t.bytes = bytes;
      };
      const throttle = this.throttleFor(opts.direction, running);
      const req = new ConnectionRequest(c, opts.direction, opts.handle, opts.ascii, abort.signal, throttle, onProgress, opts.verb === 'APPE');
      result = await this.ctx.transfer(req, (engine) => {
        t.engine = engine;
      });
      t.bytes = result.bytes;
      // A download ends with a FIN (socket.end), unless the engine already sent it.
      if (opts.direction === 'send' && !result.finished) await endSocket(c.socket, result.bytes, result.path, abort.signal);
    } catch (err) {
      failure = err;
      if (err instanceof TransferError) t.bytes = err.bytes;
    } finally {
      running?.end();
      if (watched) this.ctx.dataIdle.delete(watched);
      conn?.destroy();
      channel?.close();
      await opts.handle.close().catch((err) => this.log.warn({ err }, 'closing a file failed'));
      this.transfer = null;
      this.transferAbort = null;
    }

    const aborted = abort.signal.aborted && abort.signal.reason === ABORTED_BY_CLIENT;
    const info: TransferInfo = {
      verb: opts.verb,
      path: opts.path,
      bytes: t.bytes,
      seconds: (Date.now() - t.started) / 1000,
      engine: result?.path ?? (failure instanceof TransferError ? failure.path : 'stream'),
      ok: failure === null,
    };
    if (opts.file) this.logTransfer(info, failure, result?.tlsEndUnknown === true, conn?.sealedBy ?? null);
    if (failure === null) {
      this.reply(226, 'Transfer complete.');
    } else if (aborted) {
      this.abortAnswered = true;
      this.reply(426, 'Transfer aborted.');
      this.reply(226, 'ABOR command successful.');
    } else {
      // An abort by the server (data timeout, shutdown) is answered for its reason,
      // whatever code the engine reported the abort with.
      const reason = abort.signal.aborted ? abort.signal.reason : null;
      const r = toReply(reason instanceof TransferError ? reason : failure);
      this.reply(r.code, r.text);
    }
    if (opts.file) this.ctx.emitTransfer(this, opts.direction, info);
    this.touch();
  }

  /**
   * The rate for a transfer: the smaller non-zero of the server's limit (per transfer) and the
   * user's share of theirs. A user's limit is divided equally among the user's transfers in that
   * direction running now (`sharedBy`, this one included), and divided again as they start and
   * end: the transfer's throttle follows (both engines take its changes as they go).
   */
  private throttleFor(direction: 'send' | 'receive', running: RunningTransfer | null): Throttle | undefined {
    const server = direction === 'send' ? this.options.writeLimit : this.options.readLimit;
    const own = (direction === 'send' ? this.limits?.writeLimit : this.limits?.readLimit) ?? 0;
    const rateFor = (sharedBy: number): number => {
      const share = own > 0 ? Math.max(1, Math.floor(own / Math.max(1, sharedBy))) : 0;
      return server > 0 && share > 0 ? Math.min(server, share) : server || share;
    };
    const limit = rateFor(running?.sharedBy ?? 1);
    if (limit <= 0) return undefined;
    if (own <= 0 || !running) return { bytesPerSecond: limit };
    const throttle = new AdjustableThrottle(limit);
    running.onShare((sharedBy) => throttle.set(rateFor(sharedBy)));
    return throttle;
  }

  /** `tlsEndUnknown`: an FTPS upload whose end could not be checked for a close_notify (TransferResult). */
  private logTransfer(info: TransferInfo, failure: unknown, tlsEndUnknown = false, sealedBy: 'addon' | 'js' | null = null): void {
    if (!this.ctx.log.info()) return;
    const rate = info.seconds > 0 ? Math.round(info.bytes / info.seconds) : info.bytes;
    const rec = {
      transfer: info.verb,
      path: info.path,
      bytes: info.bytes,
      seconds: info.seconds,
      rate,
      engine: info.engine,
      result: info.ok ? 'ok' : ((failure as { code?: string })?.code ?? 'failed'),
      ...(tlsEndUnknown ? { tlsEnd: 'unknown' } : {}),
      ...(sealedBy ? { sealedBy } : {}),
      ...(info.ok || isExpected(failure) ? {} : { err: failure }),
    };
    this.log.info(rec, 'transfer');
  }

  /** ABOR: abort the running transfer. Returns whether there was one. */
  abortTransfer(): boolean {
    const ab = this.transferAbort ?? this.transfer?.abort;
    if (!ab) return false;
    ab.abort(ABORTED_BY_CLIENT);
    return true;
  }

  // ---- login and logout ------------------------------------------------------

  /**
   * Count this session as one of `user`'s (maxSessions) and keep `limits` for it.
   * False, with nothing changed, when the user already has maxSessions sessions. Synchronous
   * unless the server counts sessions with a shared SessionCounter (the daemon's workers).
   */
  takeLoginSlot(user: string, limits: Readonly<UserLimits>): boolean | Promise<boolean> {
    const slot = this.ctx.userLimits.acquireLogin(user, limits.maxSessions ?? 0);
    if (slot instanceof Promise) return slot.then((r) => this.keepLoginSlot(r, limits));
    return this.keepLoginSlot(slot, limits);
  }

  private keepLoginSlot(slot: LoginSlot | null, limits: Readonly<UserLimits>): boolean {
    if (!slot) return false;
    // Closed while a shared counter answered: nothing will log this session out.
    if (this.closed) {
      slot.release();
      return false;
    }
    this.loginSlot?.release();
    this.loginSlot = slot;
    this.limits = limits;
    return true;
  }

  /** Forget the logged-in user (REIN, QUIT, close). */
  logout(): void {
    if (this.user) this.ctx.emitLogout(this, this.user);
    this.loginSlot?.release();
    this.loginSlot = null;
    this.limits = null;
    this.user = null;
    this.pendingUser = null;
    this.state = 'auth';
    this.fs = null;
    this.cwd = '/';
    this.restOffset = 0;
    this.renameFrom = null;
    this.copyFrom = null;
    this.setDataChannel(null);
    this.epsvAll = false;
    this.type = 'A';
  }

  /** Send 221 and close, now or after the running transfer. */
  async quit(): Promise<void> {
    if (this.transfer || this.transferAbort) {
      this.quitPending = true;
      return;
    }
    await this.finishQuit();
  }

  async finishQuit(): Promise<void> {
    if (this.closed) return;
    let msg = 'Goodbye.';
    if (this.user) {
      try {
        msg = await this.ctx.options.authorizer.getMsgQuit(this.user);
      } catch (err) {
        this.log.warn({ err }, 'getMsgQuit failed');
      }
    }
    this.replyAndClose(221, msg);
  }

  // ---- closing ---------------------------------------------------------------

  /** Close the control connection after pending replies are flushed. */
  close(): void {
    if (this.closed) return;
    const s = this.socket;
    // Plain TCP with every reply already in the kernel and nothing left unread there (the socket
    // reads whatever arrives while not paused): one close(2) sends the FIN after the replies and
    // frees the session now. A half-close instead (shutdown, then wait for the client's FIN)
    // cost an eighth more server CPU per login (0.19 against 0.17 ms). Under TLS (explicit, or
    // implicit, where the socket given at the start is already TLS), end() sends close_notify first.
    if (this.closesAtOnce()) {
      s.destroy();
    } else {
      s.end();
      // A client that never reads must not keep the socket: destroy after a short grace.
      this.closeTimer = setTimeout(() => this.socket.destroy(), 2000).unref();
    }
    this.shutdown();
  }

  /** Close at once: abort any transfer, release the data channel. */
  destroy(): void {
    this.socket.destroy();
    this.shutdown();
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.dropSparePassive();
    this.ctx.controlIdle?.remove(this);
    this.transferAbort?.abort(new TransferError('Session closed.', 'FTPD_ERR_ABORTED', 0, 'stream'));
    this.transfer?.abort.abort(new TransferError('Session closed.', 'FTPD_ERR_ABORTED', 0, 'stream'));
    this.logout();
    this.tlsLease?.release();
    this.tlsLease = null;
  }

  private closeHandled = false;
  private closeTimer: NodeJS.Timeout | null = null;

  private onClose(): void {
    if (this.closeHandled) return;
    this.closeHandled = true;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.shutdown();
    this.ctx.onSessionClosed(this);
    const waiters = this.closeWaiters;
    this.closeWaiters = null;
    if (waiters) for (const w of waiters) w();
  }

  /** Resolves once the control socket has closed. */
  whenClosed(): Promise<void> {
    if (this.closeHandled) return Promise.resolve();
    return new Promise((resolve) => (this.closeWaiters ??= []).push(resolve));
  }
}

/**
 * What a transfer hands its engine. The data connection's socket, descriptor and TLS records
 * are read from it when an engine asks (a bare passive connection makes its Socket only if an
 * engine wants one). A class, not an object literal with getters: such a literal gets its own
 * closures and accessor pairs each time and is kept as a dictionary, some 1.5 KB per transfer
 * for the collector to copy while the transfer runs.
 */
class ConnectionRequest implements TransferRequest {
  readonly tls: boolean;
  /** A download ends with a FIN, which the engine may send itself. */
  readonly finish: boolean;

  constructor(
    private readonly conn: DataConnection,
    readonly direction: 'send' | 'receive',
    readonly handle: FileHandle,
    readonly ascii: boolean,
    readonly signal: TransferSignal,
    readonly throttle: Throttle | undefined,
    readonly onProgress: (bytes: number) => void,
    readonly append: boolean,
  ) {
    this.tls = conn.tls;
    this.finish = direction === 'send';
  }

  /** An upload on a bare passive connection: its Socket made reading into the stream path's own buffers (src/native/fd-receive.ts). */
  readInto(onread: ReadInto): net.Socket | null {
    return this.conn.readInto ? this.conn.readInto(onread) : null;
  }

  /** A bare passive connection (./data/connection.ts) becomes a Socket here, if an engine asks. */
  get socket(): net.Socket {
    return this.conn.socketFor ? this.conn.socketFor(this.direction) : this.conn.socket;
  }

  /** -1 once something made the Socket: only a still-bare descriptor skips the stream checks. */
  get fd(): number {
    return this.conn.fd;
  }

  /** A gated FTPS connection (./data/tls-gate.ts): the engine may take its records over. */
  get tlsRecords(): TlsHandover | undefined {
    return this.conn.tlsRecords;
  }

  get tcpFd(): number {
    return this.conn.tcpFd;
  }
}

/** How long a session keeps its last passive listener for a next PASV/EPSV (keepSparePassive). */
const SPARE_PASSIVE_MS = 5000;

/**
 * End a socket we wrote to and wait until the FIN is queued after the data. Rejects when the
 * socket fails or closes first (a client's reset while the last bytes still wait in the
 * socket): those bytes never reached the client, so the download is not complete. Rejects too
 * when `signal` aborts meanwhile (ABOR, the data timeout of a client that reads no more, the
 * server closing), destroying the socket. `bytes` is what the engine handed to the socket; a
 * failure counts only what the socket had finished writing when it was ended (a failed
 * socket's own count is gone or stale by then).
 */
function endSocket(socket: net.Socket, bytes: number, path: TransferPath, signal: TransferSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.writableFinished) return resolve();
    const pending = socket.writableLength;
    const fail = (err: NodeJS.ErrnoException | null, code = 'ECONNRESET'): void => {
      const moved = Math.max(0, bytes - pending);
      reject(new TransferError(err?.message ?? 'Data connection closed before the transfer ended.', err?.code ?? code, moved, path));
    };
    if (signal.aborted) {
      socket.destroy();
      return fail(signal.reason instanceof Error ? signal.reason : null, 'FTPD_ERR_ABORTED');
    }
    if (socket.destroyed) return fail(socket.errored as NodeJS.ErrnoException | null);
    const done = (err?: NodeJS.ErrnoException | null, code?: string): void => {
      socket.off('finish', onFinish);
      socket.off('close', onClose);
      socket.off('error', onError);
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else fail(err, code);
    };
    const onFinish = (): void => done();
    const onClose = (): void => done(socket.errored as NodeJS.ErrnoException | null);
    const onError = (err: NodeJS.ErrnoException): void => done(err);
    const onAbort = (): void => {
      done(signal.reason instanceof Error ? signal.reason : null, 'FTPD_ERR_ABORTED');
      socket.destroy();
    };
    socket.once('finish', onFinish);
    socket.once('close', onClose);
    socket.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.end();
  });
}
