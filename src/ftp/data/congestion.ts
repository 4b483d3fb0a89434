import * as fs from 'node:fs';
import * as net from 'node:net';
import type Logger from 'bunyan';
import { handleFd, type DataConnection } from './connection';
import { congestionControlAvailable, congestionOf, setCongestion } from './engines';

/**
 * The TCP congestion control of data connections (the `dataCongestionControl` option).
 *
 * - `'auto'` (the default): when the system's default algorithm is BBR, data connections with a
 *   peer on this host (a local client, or a proxy such as HAProxy or stunnel in front of the
 *   server) are sent under CUBIC, or Reno where CUBIC is not available or not allowed to this
 *   process. Everything else keeps the system's choice. BBR paces each connection at the rate
 *   it estimates the path's bottleneck to have; a loopback sender has no link to measure, only
 *   its own CPU, and the pacing costs CPU and holds it back:
 *   - a passive listener bound to a loopback address gets the choice itself, so every connection
 *     it accepts (from this host; see onAccepted) starts under it and is never paced. With 100
 *     clients at once downloading 1 MiB, 2,820 files/s against 2,305 under BBR (8 rounds each,
 *     ahead in all 8), the client's CPU per file a quarter lower, and the event loop's delay
 *     p99 under 10 ms in 7 rounds of 8 against 1; downloads of 4 MiB 1.25× the files a second
 *     (src/native/bench/RESULTS.md, "Loopback data connections never paced"). Another build of
 *     the same kernel had 7% fewer files a second under CUBIC, from spurious losses it backed
 *     off on ("RETR under BBR").
 *   - any other download with at least BULK_BYTES left to a loopback peer (an active connection,
 *     which connect makes under the system's default) is switched right before its first byte.
 *     The socket keeps the pacing BBR turned on, at the rate CUBIC's window gives: enough to
 *     take a 2 GiB download over loopback from 2,100–5,100 MB/s (medians 2,566–3,959) to
 *     medians of 6,041–8,209, not to help 1 MiB downloads with 100 clients at once.
 * - `'system'`: never change it.
 * - an algorithm's name (`'cubic'`, `'bbr'`, `'reno'`, ...): every data connection, whatever
 *   its peer and size. Passive listeners get it (the connections they accept start with it: one
 *   setsockopt per listener, which a session keeps between transfers); active connections get
 *   it once connected.
 *
 * Linux only, through the native addon (TCP_CONGESTION). A name the kernel refuses (not built
 * in, or not in net.ipv4.tcp_allowed_congestion_control for a process without CAP_NET_ADMIN)
 * is logged once and not asked again.
 */
export class DataCongestion {
  /** The algorithms 'auto' tries, in order, until one is taken. */
  static readonly AUTO_CHOICES: readonly string[] = ['cubic', 'reno'];
  /** 'auto' switches a connection that started under BBR for downloads of at least this many bytes. */
  static readonly BULK_BYTES = 16 << 20;

  /** The candidates still to try; empty once none could be set (then nothing is changed). */
  private choices: string[];
  private readonly auto: boolean;
  /** Sockets and listeners set so far (diagnostics, tests). */
  applied = 0;
  /** Loopback listeners 'auto' set, with the algorithm they had before (the system's). */
  private readonly autoListeners = new WeakMap<object, string>();

  /**
   * @param setting 'auto', 'system' or an algorithm's name.
   * @param systemDefault the system's default algorithm (null where it cannot be read).
   * @param autoChoices what 'auto' tries, in order (AUTO_CHOICES).
   */
  constructor(
    readonly setting: string,
    readonly systemDefault: string | null,
    private readonly log: Logger | null = null,
    autoChoices: readonly string[] = DataCongestion.AUTO_CHOICES,
  ) {
    this.auto = setting === 'auto';
    if (setting === 'system') this.choices = [];
    else if (this.auto) this.choices = systemDefault !== null && systemDefault.startsWith('bbr') ? [...autoChoices] : [];
    else this.choices = [setting];
  }

  /** What a listener, or a connection as soon as it is connected, gets: only a named algorithm. */
  private get forEvery(): boolean {
    return !this.auto && this.choices.length > 0;
  }

  /**
   * A passive listener (Node server) was opened on `host`: a named algorithm for what it
   * accepts, and 'auto''s choice when `host` is a loopback address.
   */
  onListener(server: object, host: string): void {
    if (this.forEvery) {
      this.applyFd(handleFd(server));
      return;
    }
    if (!this.auto || this.choices.length === 0 || !isLoopback(host)) return;
    const fd = handleFd(server);
    const before = congestionOf(fd);
    if (before !== null && this.applyFd(fd) !== null) this.autoListeners.set(server, before);
  }

  /**
   * A connection was accepted on `server`: true when it started under 'auto''s choice (a
   * loopback listener 'auto' set, a loopback peer). A listener on a loopback address can still be
   * reached from another host where the system routes it there (DNAT to 127.0.0.1 with
   * `route_localnet`): such a connection gets the system's algorithm back, as a remote client's
   * would have.
   */
  onAccepted(server: object, conn: DataConnection): boolean {
    const before = this.autoListeners.get(server);
    if (before === undefined) return false;
    if (isLoopback(conn.remoteAddress)) return true;
    if (conn.tcpFd >= 0) setCongestion(conn.tcpFd, before);
    return false;
  }

  /** An active data connection is connected: a named algorithm. */
  onConnected(socket: object): void {
    if (this.forEvery) this.applyFd(handleFd(socket));
  }

  /**
   * A download of `bytes` is about to start on `conn`: 'auto' gives a bulk one to a peer on this
   * host its choice, unless the connection started under it (`startedUnderChoice`: onAccepted).
   */
  beforeSend(conn: DataConnection, bytes: number, startedUnderChoice = false): void {
    if (startedUnderChoice || !this.auto || this.choices.length === 0 || !(bytes >= DataCongestion.BULK_BYTES) || !isLoopback(conn.remoteAddress)) return;
    this.applyFd(conn.tcpFd);
  }

  /** Set the first candidate the kernel takes on `fd`; the algorithm set, or null. */
  private applyFd(fd: number): string | null {
    while (fd >= 0 && this.choices.length > 0) {
      const name = this.choices[0];
      if (setCongestion(fd, name)) {
        this.applied++;
        return name;
      }
      if (!congestionControlAvailable()) {
        this.giveUp(`data connections: congestion control ${name} not set (needs the native addon on Linux)`);
        return null;
      }
      // A socket that cannot even be asked (closed meanwhile, not TCP): not the name's fault.
      if (congestionOf(fd) === null) return null;
      this.refused(name);
    }
    return null;
  }

  /** The kernel refused `name` (not built in, or not allowed to this process): not asked again. */
  private refused(name: string): void {
    this.choices.shift();
    const msg = `data connections: congestion control ${name} refused (not available, or not allowed to this process: net.ipv4.tcp_allowed_congestion_control)`;
    if (this.auto) this.log?.info({ refused: name, next: this.choices[0] ?? null }, msg);
    else this.log?.warn({ refused: name }, `${msg}; they keep the system's`);
  }

  private giveUp(msg: string): void {
    this.choices = [];
    this.log?.warn(msg);
  }

  /**
   * What the 'listening' log record says of it: the setting, and what it asks for (the kernel
   * may still refuse a name when it is first set, which is logged then).
   */
  describe(): string {
    if (this.setting === 'system') return 'system';
    if (!this.auto) return this.choices.length ? this.setting : `${this.setting} (refused: the system's)`;
    const sys = this.systemDefault ?? 'unknown';
    return this.choices.length
      ? `auto (loopback: ${this.choices.join(', else ')}, passive connections from the start, active ones for downloads of ${DataCongestion.BULK_BYTES >> 20} MiB or more; the rest: ${sys})`
      : `auto (the system's: ${sys})`;
  }
}

/** Whether `address` is this host's loopback (127.0.0.0/8, ::1, or IPv4-mapped 127.x). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (net.isIPv4(a)) return a.startsWith('127.');
  return a === '::1';
}

/** The system's default congestion control (Linux; this process's network namespace), or null. */
export function systemCongestion(): string | null {
  if (process.platform !== 'linux') return null;
  try {
    return fs.readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim() || null;
  } catch {
    return null;
  }
}
