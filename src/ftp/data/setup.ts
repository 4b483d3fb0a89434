import * as net from 'node:net';
import type Logger from 'bunyan';
import { FtpError } from '../errors';
import type { Session } from '../session';
import { ActiveChannel } from './active';
import { plainAddress } from './channel';
import type { DataConnection } from './connection';
import { PassiveChannel, type PassiveOptions, type PassiveProxyOptions, type SparePassive } from './passive';
import type { ResolvedOptions } from '../../config/options';
import { trustMatcher } from '../proxy-protocol';
import type { PortPool } from './ports';
import type { DataCongestion } from './congestion';

/** Per server (its frozen options), how passive connections read PROXY headers (proxyProtocolData). */
const dataProxies = new WeakMap<ResolvedOptions, PassiveProxyOptions | null>();

function dataProxy(o: ResolvedOptions): PassiveProxyOptions | null {
  let p = dataProxies.get(o);
  if (p === undefined) {
    p =
      o.proxyProtocolData && o.proxyProtocol !== false
        ? { trusted: trustMatcher(o.trustedProxies), read: { mode: o.proxyProtocol, timeoutMs: o.proxyProtocolTimeout * 1000 } }
        : null;
    dataProxies.set(o, p);
  }
  return p;
}

/**
 * A session's PassiveOptions, read from the session when the channel asks. A class, not an
 * object literal with a getter and arrow functions: such a literal gets its own closures and
 * accessor pair on every PASV/EPSV and is kept as a dictionary (about 1 KB each).
 */
class SessionPassive implements PassiveOptions {
  constructor(private readonly session: Session) {}

  get localAddress(): string {
    return this.session.localAddress;
  }

  get peerAddress(): string {
    return this.session.remoteAddress;
  }

  get permitForeignAddresses(): boolean {
    return this.session.options.permitForeignAddresses;
  }

  get congestion(): DataCongestion {
    return this.session.ctx.congestion;
  }

  get proxy(): PassiveProxyOptions | null {
    return dataProxy(this.session.options);
  }

  get connectTimeoutMs(): number {
    return this.session.options.dataConnectTimeout * 1000;
  }

  get pool(): PortPool | null {
    return this.session.ctx.portPool;
  }

  /** Made only if the listener has something to report. */
  get log(): Logger {
    return this.session.log;
  }

  prepare(conn: DataConnection): Promise<DataConnection> {
    return this.session.prepareDataSocket(conn);
  }

  keep(spare: SparePassive): boolean {
    return this.session.keepSparePassive(spare);
  }
}

/** Open a passive listener for PASV/EPSV; 425 when the range is exhausted. */
export async function openPassive(session: Session): Promise<PassiveChannel> {
  session.setDataChannel(null);
  const opts = new SessionPassive(session);
  let ch = await PassiveChannel.create(opts, session.takeSparePassive());
  if (!ch && session.ctx.portPool) {
    // Listeners kept idle between transfers hold ports too: take them back, then try again.
    session.ctx.dropSparePassives();
    ch = await PassiveChannel.create(opts);
  }
  if (!ch) {
    session.log.warn('passive port range exhausted');
    throw new FtpError(425, "Can't open passive connection: no free port in the passive range.");
  }
  session.dataChannel = ch;
  return ch;
}

/**
 * The IPv4 address a PASV reply announces: masquerade map, masquerade address, the address the
 * client connected to on a trusted proxy (what its PROXY header named: the balancer, which must
 * then relay the passive ports too), or our own.
 */
export function announcedAddress(session: Session): string | null {
  const o = session.options;
  const local = plainAddress(session.localAddress);
  const mapped = o.masqueradeAddressMap[local];
  const proxied = session.proxied ? plainAddress(session.proxied.destinationAddress) : undefined;
  const addr = mapped ?? o.masqueradeAddress ?? proxied ?? local;
  return net.isIPv4(addr) ? addr : null;
}

/** Validate a PORT/EPRT target and make the active channel (it connects only when a transfer starts). */
export function setActive(session: Session, host: string, port: number): void {
  const o = session.options;
  if (port < 1 || port > 65535) throw new FtpError(501, 'Invalid port.');
  if (!o.permitForeignAddresses && plainAddress(host) !== plainAddress(session.remoteAddress)) {
    throw new FtpError(501, 'Rejected data connection to a foreign address.');
  }
  if (!o.permitPrivilegedPorts && port < 1024) throw new FtpError(501, 'Rejected data connection to a privileged port.');
  session.setDataChannel(
    new ActiveChannel({
      host,
      port,
      localAddress: session.localAddress,
      connectTimeoutMs: o.dataConnectTimeout * 1000,
      congestion: session.ctx.congestion,
      prepare: (raw) => session.prepareDataSocket(raw),
    }),
  );
}
