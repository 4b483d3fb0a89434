import { constants, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { ConfigError } from '../config/errors';
import type { TlsOptions } from '../config/options';
import { TlsGate } from './data/tls-gate';
import type { NativeSeal } from './data/tls-seal';

/** Why a TLS handshake did not produce a usable socket. */
export class TlsHandshakeError extends Error {
  readonly code = 'FTPD_ERR_TLS';
  constructor(message: string) {
    super(message);
    this.name = 'TlsHandshakeError';
  }
}

/**
 * The TLS context of one session's control and data connections (TlsManager.lease). Its ticket
 * keys are this session's alone, so a data connection can resume only this session's control
 * connection: a ticket of any other session (another user's, or an attacker's who did AUTH TLS
 * without logging in) does not decrypt, the handshake is a full one, and tlsRequireSessionReuse
 * refuses it.
 */
export interface TlsLease {
  /** For the control connection. */
  readonly context: tls.SecureContext;
  /** For its data connections: the same context, or undefined for the shared data context. */
  readonly dataContext: tls.SecureContext | undefined;
  /** Give the context back (the session ended); its ticket keys are replaced before any reuse. */
  release(): void;
}

interface Material {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

/** Released session contexts kept for the next sessions (about 40 KiB each; making one costs about 1 ms). */
const SPARE_CONTEXTS = 64;

/**
 * The server's TLS material. With tlsRequireSessionReuse (the default), each session's control
 * and data connections share a context of their own, whose ticket keys no other session has
 * (lease()); otherwise one context serves every control connection.
 */
export class TlsManager {
  private context: tls.SecureContext;
  /** Contexts given back by ended sessions, with fresh ticket keys; emptied by reload(). */
  private spare: tls.SecureContext[] = [];
  /** Counts reloads: a context made before the last one is not kept for reuse. */
  private generation = 0;
  /**
   * For data connections that need not resume the control session: TLS 1.2 at most.
   * A fresh TLS 1.3 handshake is followed by session tickets, which a client that only
   * uploads never reads (its close then resets the connection and can cut the upload,
   * FIELD-NOTES), and which some clients (Python's ssl) trip over when they arrive after
   * a listing. TLS 1.2 puts its ticket inside the handshake. A resumed TLS 1.3 data
   * connection, what the default tlsRequireSessionReuse asks for, gets no ticket.
   */
  private dataContext: tls.SecureContext;
  private readonly ticketKeys = randomBytes(48);

  /** The files as last read (and found usable): sessions' contexts are made from these. */
  private material: Material;

  constructor(
    private readonly opts: Readonly<TlsOptions>,
    private readonly dataMustResume = true,
  ) {
    this.material = this.readFiles();
    this.context = this.build(this.material);
    this.dataContext = dataMustResume ? this.context : this.build(this.material, 'TLSv1.2');
  }

  /** Read the files again and use them for new handshakes. Throws ConfigError and keeps the old ones on failure. */
  reload(): void {
    const material = this.readFiles();
    const context = this.build(material);
    this.dataContext = this.dataMustResume ? context : this.build(material, 'TLSv1.2');
    this.context = context;
    this.material = material;
    // Sessions already secured keep theirs; new ones get contexts with the new files.
    this.spare = [];
    this.generation++;
  }

  /**
   * The context for one session's control connection and its data connections: a context of its
   * own when data connections must resume the control session, the shared one otherwise.
   */
  lease(): TlsLease {
    if (!this.dataMustResume) return { context: this.context, dataContext: undefined, release: () => undefined };
    const generation = this.generation;
    const context = this.spare.pop() ?? this.build(this.material, undefined, randomBytes(48));
    let released = false;
    return {
      context,
      dataContext: context,
      release: () => {
        if (released) return;
        released = true;
        if (generation !== this.generation || this.spare.length >= SPARE_CONTEXTS) return;
        // No ticket this session was given works with the context's next session.
        (context as unknown as { context: { setTicketKeys(k: Buffer): void } }).context.setTicketKeys(randomBytes(48));
        this.spare.push(context);
      },
    };
  }

  private readFiles(): Material {
    const read = (key: string, file: string): Buffer => {
      try {
        return fs.readFileSync(file);
      } catch (err) {
        throw new ConfigError(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    return {
      cert: read('tls.certFile', this.opts.certFile),
      key: read('tls.keyFile', this.opts.keyFile),
      ca: this.opts.caFile ? read('tls.caFile', this.opts.caFile) : undefined,
    };
  }

  private build({ cert, key, ca }: Material, maxVersion?: 'TLSv1.2', ticketKeys = this.ticketKeys): tls.SecureContext {
    try {
      return tls.createSecureContext({
        cert,
        key,
        ca,
        minVersion: this.opts.minVersion ?? 'TLSv1.2',
        maxVersion: maxVersion ?? this.opts.maxVersion ?? 'TLSv1.3',
        ciphers: this.opts.ciphers,
        ticketKeys,
        sessionTimeout: 3600,
        sessionIdContext: 'ftpdlib',
        // No client-initiated renegotiation (TLS 1.2): a cheap DoS and never needed by FTP clients.
        secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
      });
    } catch (err) {
      const msg = (err as Error).message;
      const which = /key/i.test(msg) ? 'tls.keyFile' : 'tls.certFile';
      throw new ConfigError(which, `unusable certificate or key (${msg})`);
    }
  }

  /**
   * Run the server side of a handshake over `raw` (a control socket after
   * AUTH TLS, or an implicit-TLS connection; data connections use acceptGated). Resolves
   * once the handshake is complete; rejects (and destroys the socket) on
   * failure or after `timeoutMs`.
   */
  accept(raw: net.Socket, timeoutMs: number, context?: tls.SecureContext): Promise<tls.TLSSocket> {
    return this.handshake(raw, this.socketOver(raw, false, context), timeoutMs);
  }

  /**
   * accept() for a data connection through a TlsGate (src/ftp/data/tls-gate.ts): the native
   * engine can take the connection's records over once the handshake is done (`handover`), and
   * otherwise the gate tells an upload ended by the client's close_notify from one cut short.
   */
  async acceptGated(
    raw: net.Socket,
    timeoutMs: number,
    context?: tls.SecureContext,
    handover = true,
    sealing: NativeSeal | 'js' | null = null,
  ): Promise<{ socket: tls.TLSSocket; gate: TlsGate }> {
    const gate = new TlsGate(raw, handover, sealing);
    const s = this.socketOver(gate, true, context);
    gate.bind(s);
    return { socket: await this.handshake(raw, s, timeoutMs), gate };
  }

  /** `context`: the session's (lease()); without it the shared control or data context. */
  private socketOver(under: net.Socket | TlsGate, data: boolean, context?: tls.SecureContext): tls.TLSSocket {
    return new tls.TLSSocket(under as net.Socket, {
      isServer: true,
      secureContext: context ?? (data ? this.dataContext : this.context),
      requestCert: Boolean(this.opts.caFile),
      rejectUnauthorized: Boolean(this.opts.requireClientCert),
    });
  }

  private handshake(raw: net.Socket, s: tls.TLSSocket, timeoutMs: number): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        s.off('secure', onSecure);
        s.off('error', onError);
        s.off('close', onClose);
        if (err) {
          s.on('error', () => {});
          s.destroy();
          raw.destroy();
          reject(err);
        } else {
          resolve(s);
        }
      };
      const onSecure = (): void => {
        // A standalone server TLSSocket neither sets `authorized` nor enforces
        // rejectUnauthorized: check the client's certificate here.
        if (this.opts.requireClientCert) {
          const why = clientCertProblem(s);
          if (why) return done(new TlsHandshakeError(`client certificate refused: ${why}`));
        }
        done(null);
      };
      const onError = (err: Error): void => done(new TlsHandshakeError(`TLS handshake failed: ${err.message}`));
      const onClose = (): void => done(new TlsHandshakeError('connection closed during the TLS handshake'));
      const timer = setTimeout(() => done(new TlsHandshakeError('TLS handshake timed out')), timeoutMs);
      s.once('secure', onSecure);
      s.once('error', onError);
      s.once('close', onClose);
    });
  }
}

/** Why the client's certificate is not acceptable, or null when it was sent and verifies against the CA. */
function clientCertProblem(s: tls.TLSSocket): string | null {
  const cert = s.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return 'no certificate';
  const handle = (s as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  const err = handle?.verifyError?.() ?? null;
  return err ? err.message : null;
}
