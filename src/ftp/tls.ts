import { constants, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { ConfigError } from '../config/errors';
import type { TlsOptions } from '../config/options';
import { TlsGate } from './data/tls-gate';

/** Why a TLS handshake did not produce a usable socket. */
export class TlsHandshakeError extends Error {
  readonly code = 'FTPD_ERR_TLS';
  constructor(message: string) {
    super(message);
    this.name = 'TlsHandshakeError';
  }
}

/**
 * The server's TLS material: one SecureContext shared by control and data
 * connections, so a data connection can resume the control connection's
 * session (tickets are encrypted with keys that live in the context; the
 * keys survive a certificate reload, so sessions resume across it too).
 */
export class TlsManager {
  private context: tls.SecureContext;
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

  constructor(
    private readonly opts: Readonly<TlsOptions>,
    private readonly dataMustResume = true,
  ) {
    this.context = this.build();
    this.dataContext = dataMustResume ? this.context : this.build('TLSv1.2');
  }

  /** Read the files again and use them for new handshakes. Throws ConfigError and keeps the old ones on failure. */
  reload(): void {
    const context = this.build();
    this.dataContext = this.dataMustResume ? context : this.build('TLSv1.2');
    this.context = context;
  }

  private build(maxVersion?: 'TLSv1.2'): tls.SecureContext {
    const read = (key: string, file: string): Buffer => {
      try {
        return fs.readFileSync(file);
      } catch (err) {
        throw new ConfigError(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    const cert = read('tls.certFile', this.opts.certFile);
    const key = read('tls.keyFile', this.opts.keyFile);
    const ca = this.opts.caFile ? read('tls.caFile', this.opts.caFile) : undefined;
    try {
      return tls.createSecureContext({
        cert,
        key,
        ca,
        minVersion: this.opts.minVersion ?? 'TLSv1.2',
        maxVersion: maxVersion ?? this.opts.maxVersion ?? 'TLSv1.3',
        ciphers: this.opts.ciphers,
        ticketKeys: this.ticketKeys,
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
   * AUTH TLS, an implicit-TLS connection, or a data connection). Resolves
   * once the handshake is complete; rejects (and destroys the socket) on
   * failure or after `timeoutMs`.
   */
  accept(raw: net.Socket, timeoutMs: number, data = false): Promise<tls.TLSSocket> {
    return this.handshake(raw, this.socketOver(raw, data), timeoutMs);
  }

  /**
   * accept() for a data connection through a TlsGate (src/ftp/data/tls-gate.ts), so that the
   * native engine can take the connection's records over once the handshake is done.
   */
  async acceptGated(raw: net.Socket, timeoutMs: number): Promise<{ socket: tls.TLSSocket; gate: TlsGate }> {
    const gate = new TlsGate(raw);
    const s = this.socketOver(gate, true);
    gate.bind(s);
    return { socket: await this.handshake(raw, s, timeoutMs), gate };
  }

  private socketOver(under: net.Socket | TlsGate, data: boolean): tls.TLSSocket {
    return new tls.TLSSocket(under as net.Socket, {
      isServer: true,
      secureContext: data ? this.dataContext : this.context,
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
