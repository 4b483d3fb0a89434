import { constants, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { ConfigError } from '../config/errors';
import type { TlsOptions } from '../config/options';

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
  private readonly ticketKeys = randomBytes(48);

  constructor(private readonly opts: Readonly<TlsOptions>) {
    this.context = this.build();
  }

  /** Read the files again and use them for new handshakes. Throws ConfigError and keeps the old ones on failure. */
  reload(): void {
    this.context = this.build();
  }

  private build(): tls.SecureContext {
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
        maxVersion: this.opts.maxVersion ?? 'TLSv1.3',
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
  accept(raw: net.Socket, timeoutMs: number): Promise<tls.TLSSocket> {
    const s = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: this.context,
      requestCert: Boolean(this.opts.caFile),
      rejectUnauthorized: Boolean(this.opts.requireClientCert),
    });
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
      const onSecure = (): void => done(null);
      const onError = (err: Error): void => done(new TlsHandshakeError(`TLS handshake failed: ${err.message}`));
      const onClose = (): void => done(new TlsHandshakeError('connection closed during the TLS handshake'));
      const timer = setTimeout(() => done(new TlsHandshakeError('TLS handshake timed out')), timeoutMs);
      s.once('secure', onSecure);
      s.once('error', onError);
      s.once('close', onClose);
    });
  }
}
