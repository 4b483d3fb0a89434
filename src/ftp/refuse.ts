import type * as net from 'node:net';
import { formatReply } from './parser';

/**
 * How long a refused connection may stay open after its 421: time for the reply to reach the
 * client and for its FIN to come back. It used to stay until that FIN, which a client that never
 * sends one never sent: 1,000 silent connections against maxConnections 50 held 972 descriptors
 * 30 s later, and with a descriptor limit of 400 a real client was cut off at once.
 */
export const REFUSED_LINGER_MS = 2000;

const ignore = (): void => {};

/**
 * Answer `421 text` and close. What the client sends meanwhile is read and dropped (closing with
 * unread bytes would make the kernel send a reset, which can destroy the 421 before the client
 * reads it); the socket is destroyed when the client closes its side, or REFUSED_LINGER_MS
 * after the reply, whichever comes first.
 */
export function refuseSocket(socket: net.Socket, text: string): void {
  socket.on('error', ignore);
  socket.resume();
  socket.end(formatReply(421, text));
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
