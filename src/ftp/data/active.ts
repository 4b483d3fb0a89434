import * as net from 'node:net';
import { FtpError } from '../errors';
import { plainAddress, type DataChannel } from './channel';
import { SocketConnection, type DataConnection } from './connection';
import type { TransferSignal } from './transfer';
import type { DataCongestion } from './congestion';

export interface ActiveOptions {
  host: string;
  port: number;
  /** Connect from the control connection's local address. */
  localAddress: string;
  connectTimeoutMs: number;
  /** Sets the connection's congestion control once connected (dataCongestionControl); null: leave it. */
  congestion?: DataCongestion | null;
  /** Makes the connected socket ready (the TLS handshake under PROT P). */
  prepare: (conn: DataConnection) => Promise<DataConnection>;
}

/**
 * An active data channel (PORT/EPRT): connects to the client only when a
 * transfer asks for it, and pauses the socket before any byte is read.
 */
export class ActiveChannel implements DataChannel {
  readonly kind = 'active';
  private socket: net.Socket | null = null;
  private closed = false;

  constructor(private readonly opts: ActiveOptions) {}

  get connected(): boolean {
    return false;
  }

  open(signal: TransferSignal): Promise<DataConnection> {
    if (this.closed || this.socket) return Promise.reject(new FtpError(425, "Can't open data connection."));
    return new Promise((resolve, reject) => {
      const local = plainAddress(this.opts.localAddress);
      const s = net.connect({
        host: this.opts.host,
        port: this.opts.port,
        localAddress: net.isIPv6(local) === net.isIPv6(this.opts.host) ? local : undefined,
      });
      s.pause();
      this.socket = s;
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        s.off('connect', onConnect);
        s.off('error', onError);
        s.on('error', () => {}); // later errors surface through the transfer
        if (err) {
          s.destroy();
          reject(err);
        } else {
          this.opts.congestion?.onConnected(s);
          this.opts.prepare(new SocketConnection(s)).then(resolve, reject);
        }
      };
      const onConnect = (): void => done(null);
      const onError = (): void => done(new FtpError(425, "Can't open data connection."));
      const onAbort = (): void => done(new FtpError(425, "Can't open data connection: aborted."));
      const timer = setTimeout(() => done(new FtpError(425, "Can't open data connection: timed out.")), this.opts.connectTimeoutMs);
      s.once('connect', onConnect);
      s.once('error', onError);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket?.destroy();
  }
}
