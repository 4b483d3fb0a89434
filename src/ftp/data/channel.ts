import type { DataConnection } from './connection';
import type { TransferSignal } from './transfer';

/**
 * A data connection made ready by PASV/EPSV (passive) or PORT/EPRT (active).
 * One per session; it knows nothing about files.
 */
export interface DataChannel {
  readonly kind: 'passive' | 'active';
  /** True once the peer's connection is in hand (passive: accepted early). */
  readonly connected: boolean;
  /**
   * Resolve to a connection that has not been read from (paused, or bare), within
   * the data-connect timeout; reject with an FtpError(425) otherwise.
   */
  open(signal: TransferSignal): Promise<DataConnection>;
  /** Release everything (listener, socket). Safe to call more than once. */
  close(): void;
  /** Its connection started under dataCongestionControl 'auto''s choice (a loopback listener it set). */
  readonly autoCongestion?: boolean;
}

/** Strip the IPv4-mapped prefix so ::ffff:127.0.0.1 and 127.0.0.1 compare equal. */
export function plainAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
