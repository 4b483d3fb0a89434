import * as net from 'node:net';
import type Logger from 'bunyan';
import type { Authorizer } from '../auth/types';
import type { FileSystemFactory } from '../fs/types';
import { ConfigError } from './errors';
import { parseCidr } from '../ftp/proxy-protocol';

/**
 * Options of FtpServer. Names are pyftpdlib's, camelCased; times are in seconds
 * as in pyftpdlib. Everything but `authorizer` has a default.
 */
export interface FtpServerOptions {
  /** Address to listen on. Default '::' (every IPv6 and IPv4 address, dual stack); use '127.0.0.1' for loopback only. */
  host?: string;
  /** Control port. Default 21. 0 picks a free port (see server.address()). */
  port?: number;
  authorizer: Authorizer;
  /** Builds each session's filesystem from the user's home. Default: a LocalFileSystem jailed to the home. */
  fileSystem?: FileSystemFactory;
  /** The 220 greeting. */
  banner?: string;
  /** Most control connections at once; more get 421. Default 512. */
  maxConnections?: number;
  /** Most control connections from one address; 0 = no limit. Default 0. */
  maxConnectionsPerIp?: number;
  /** Control-connection idle timeout, seconds; a running transfer is not idleness. Default 300. 0 = none. */
  timeout?: number;
  /** Seconds to wait for a data connection to be made (PASV/EPSV accept, PORT/EPRT connect). Default 30. */
  dataConnectTimeout?: number;
  /** Seconds a data connection may stay idle during a transfer. Default 300. 0 = none. */
  dataTimeout?: number;
  /** Inclusive [first, last] ports for passive data connections. Default: any free port. */
  passivePorts?: [number, number];
  /** The address announced in PASV replies (behind NAT). Default: the control connection's local address. */
  masqueradeAddress?: string;
  /** Per local address, the address to announce in PASV replies: { '10.0.0.5': '203.0.113.7' }. */
  masqueradeAddressMap?: Record<string, string>;
  /** Accept PORT/EPRT to, and passive connections from, addresses other than the client's (FXP). Default false. */
  permitForeignAddresses?: boolean;
  /** Accept PORT/EPRT to ports below 1024. Default false. */
  permitPrivilegedPorts?: boolean;
  /** Times in LIST in UTC (true) or server local time (false). MLSD/MDTM are always UTC. Default true. */
  useGmtTimes?: boolean;
  /** Disable Nagle on control connections. Default true. */
  tcpNoDelay?: boolean;
  /** Encoding of paths on the control connection (RFC 2640). Default 'utf8', falling back to latin1 for lines that are not UTF-8. */
  encoding?: 'utf8' | 'latin1';
  /** Longest accepted command line, bytes. Default 8192. */
  maxLineLength?: number;
  /** Failed logins before the connection is closed. Default 3. */
  maxLoginAttempts?: number;
  /** Seconds to wait before answering a failed login. Default 3. */
  authFailedTimeout?: number;
  /** Use the native zero-copy engine where it applies (binary, plain sockets, local files). Default true. */
  useSendfile?: boolean;
  /**
   * FTPS: binary transfers of local files go through the native engine too, which seals and
   * opens the TLS records itself once Node has run the handshake (src/ftp/data/tls-gate.ts).
   * Needs useSendfile. Default true.
   */
  nativeTls?: boolean;
  /**
   * TCP congestion control of data connections (src/ftp/data/congestion.ts): 'auto' (default)
   * sends data connections with a loopback peer under CUBIC (else Reno) when the system's
   * default is BBR, whose pacing held big downloads to half their speed and cost many small
   * ones CPU: passive ones on a loopback listener from their start, active downloads of 16 MiB
   * or more switched before their first byte; 'system'
   * never changes it; an algorithm's name ('cubic', 'bbr', ...) is set on every data
   * connection. Linux, with the native addon.
   */
  dataCongestionControl?: string;
  /**
   * SITE CPFR / SITE CPTO: copy a file or a folder on the server (proftpd's mod_copy), with the
   * `r` permission on the source and `w` on the destination (`l`/`r` and `m`/`w` through a
   * folder), counted against disk quotas. Default true.
   */
  siteCopy?: boolean;
  /** Upload rate limit per transfer in bytes/s (pyftpdlib's read_limit). 0 = none. */
  readLimit?: number;
  /** Download rate limit per transfer in bytes/s (pyftpdlib's write_limit). 0 = none. */
  writeLimit?: number;
  /** Seconds close() lets transfers finish before closing sessions with 421. Default 10. */
  closeGracePeriod?: number;
  /**
   * Seconds without a session starting or ending or a transfer ending, after which the native
   * memory a burst left behind is given back to the kernel (glibc's malloc_trim, ~0.3 ms); at
   * most every 2 s. Default 0.5. 0 = never.
   */
  memoryTrimDelay?: number;
  /**
   * Seconds of the same quiet after which V8 is asked to shrink its heap, if it holds much more
   * than it uses (src/native/heap.ts); malloc is trimmed again after it. The process's first
   * request, and any while sessions are open, is a full collection; the others, with no session
   * open, are scavenges, which keep the code V8 optimized (a full collection then would make the
   * next burst run slower for thousands of files while V8 compiles that code again). Longer than
   * memoryTrimDelay because the young generation must grow again in the next burst. Default 5.
   * 0 = never.
   */
  heapReduceDelay?: number;
  /** A bunyan logger. Default: a logger that writes nothing. */
  logger?: Logger;
  /** FTPS: certificate and key files. Without it, AUTH TLS is refused and FEAT does not offer it. */
  tls?: TlsOptions;
  /** Refuse USER/PASS on a plain control connection (pyftpdlib's tls_control_required). Default false. */
  tlsControlRequired?: boolean;
  /** Refuse transfers on plain data connections: PROT P required (pyftpdlib's tls_data_required). Default false. */
  tlsDataRequired?: boolean;
  /** Users the two policies above do not apply to ('anonymous' for anonymous logins). */
  tlsExemptUsers?: string[];
  /** A PROT P data connection must resume the control connection's TLS session (vsftpd's require_ssl_reuse). Default true. */
  tlsRequireSessionReuse?: boolean;
  /** Also listen for implicit FTPS (TLS from the first byte, port-990 style) on this port. 0 picks a free port. */
  implicitTlsPort?: number;
  /** Seconds a TLS handshake may take. Default 10. */
  tlsHandshakeTimeout?: number;
  /**
   * Read a PROXY protocol header (HAProxy's; 'v1' text, 'v2' binary, 'auto' either) on control
   * connections from `trustedProxies`, and take the client's address from it: per-IP limits, logs,
   * events and the passive data-connection check then see the real client. Connections from other
   * addresses are served as direct clients, and dropped if they send a header. Default false.
   */
  proxyProtocol?: false | 'v1' | 'v2' | 'auto';
  /** Addresses and CIDRs ('10.0.0.0/8', '2001:db8::/32') of the proxies; a connection from one must start with a header. */
  trustedProxies?: string[];
  /** Seconds a trusted proxy has to send its whole header. Default 5. */
  proxyProtocolTimeout?: number;
  /** Read a header on passive data connections from trusted proxies too (the balancer relays the passive ports). Default false. */
  proxyProtocolData?: boolean;
  /** Serve Prometheus metrics over HTTP at /metrics. Default: no listener (server.metrics() still works). */
  metrics?: MetricsOptions;
}

/** Where the Prometheus endpoint listens. */
export interface MetricsOptions {
  port: number;
  /** Default '127.0.0.1'. */
  host?: string;
}

/** Certificate material for FTPS, read from files at start and on reloadCertificates(). */
export interface TlsOptions {
  /** PEM certificate (with its chain after it, if any). */
  certFile: string;
  /** PEM private key. */
  keyFile: string;
  /** PEM CA bundle to verify client certificates against; setting it asks clients for a certificate. */
  caFile?: string;
  /** Refuse clients without a valid certificate (with caFile). Default false. */
  requireClientCert?: boolean;
  /** Default 'TLSv1.2'. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Default 'TLSv1.3'. */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults). */
  ciphers?: string;
}

export type ResolvedOptions = Readonly<
  Required<
    Omit<
      FtpServerOptions,
      'passivePorts' | 'masqueradeAddress' | 'logger' | 'fileSystem' | 'tls' | 'implicitTlsPort' | 'tlsExemptUsers' | 'trustedProxies' | 'metrics'
    >
  >
> & {
  readonly trustedProxies: readonly string[];
  readonly metrics: Readonly<Required<MetricsOptions>> | null;
  readonly tls: Readonly<TlsOptions> | null;
  readonly implicitTlsPort: number | null;
  readonly tlsExemptUsers: ReadonlySet<string>;
  readonly passivePorts: readonly [number, number] | null;
  readonly masqueradeAddress: string | null;
  readonly fileSystem: FileSystemFactory | null;
  readonly logger: Logger | null;
};

export const DEFAULTS = {
  host: '::',
  port: 21,
  banner: 'ftpdlib ready.',
  maxConnections: 512,
  maxConnectionsPerIp: 0,
  timeout: 300,
  dataConnectTimeout: 30,
  dataTimeout: 300,
  permitForeignAddresses: false,
  permitPrivilegedPorts: false,
  useGmtTimes: true,
  tcpNoDelay: true,
  encoding: 'utf8' as const,
  maxLineLength: 8192,
  maxLoginAttempts: 3,
  authFailedTimeout: 3,
  useSendfile: true,
  nativeTls: true,
  dataCongestionControl: 'auto',
  siteCopy: true,
  readLimit: 0,
  writeLimit: 0,
  closeGracePeriod: 10,
  memoryTrimDelay: 0.5,
  heapReduceDelay: 5,
  tlsControlRequired: false,
  tlsDataRequired: false,
  tlsRequireSessionReuse: true,
  tlsHandshakeTimeout: 10,
  proxyProtocol: false as FtpServerOptions['proxyProtocol'],
  trustedProxies: [] as string[],
  proxyProtocolTimeout: 5,
  proxyProtocolData: false,
};

const KNOWN = new Set([
  ...Object.keys(DEFAULTS),
  'authorizer',
  'fileSystem',
  'passivePorts',
  'masqueradeAddress',
  'masqueradeAddressMap',
  'logger',
  'tls',
  'tlsExemptUsers',
  'implicitTlsPort',
  'metrics',
]);

function int(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(key, `expected an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function num(key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new ConfigError(key, `expected a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function bool(key: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(key, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

function str(key: string, v: unknown): string {
  if (typeof v !== 'string') throw new ConfigError(key, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function congestionSetting(v: unknown): string {
  const s = str('dataCongestionControl', v);
  // 'auto', 'system', or an algorithm's name as the kernel spells them (at most 15 characters)
  if (!/^[a-z][a-z0-9_]{0,14}$/.test(s)) {
    throw new ConfigError('dataCongestionControl', `expected 'auto', 'system' or an algorithm's name such as 'cubic', got ${JSON.stringify(s)}`);
  }
  return s;
}

function ip(key: string, v: unknown): string {
  const s = str(key, v);
  if (!net.isIP(s)) throw new ConfigError(key, `expected an IP address, got ${JSON.stringify(s)}`);
  return s;
}

/** An address PASV can announce: its 227 reply carries four decimal bytes. */
function ipv4(key: string, v: unknown): string {
  const s = str(key, v);
  if (!net.isIPv4(s)) throw new ConfigError(key, `expected an IPv4 address (PASV announces four bytes), got ${JSON.stringify(s)}`);
  return s;
}

/** Check every option once, fill defaults, and freeze the result. Throws ConfigError naming the key. */
export function resolveOptions(input: FtpServerOptions): ResolvedOptions {
  if (!input || typeof input !== 'object') throw new ConfigError('options', 'expected an object');
  for (const key of Object.keys(input)) {
    if (!KNOWN.has(key)) throw new ConfigError(key, 'unknown option');
  }
  const o = { ...DEFAULTS, ...stripUndefined(input) } as Record<string, unknown>;
  const a = o.authorizer as Authorizer | undefined;
  if (!a || typeof a.validateAuthentication !== 'function' || typeof a.hasPerm !== 'function' || typeof a.getHomeDir !== 'function') {
    throw new ConfigError('authorizer', 'expected an Authorizer (validateAuthentication, getHomeDir, hasPerm, ...)');
  }
  if (o.fileSystem !== undefined && typeof o.fileSystem !== 'function') {
    throw new ConfigError('fileSystem', 'expected a function (user, home) => FileSystem');
  }
  const host = str('host', o.host);
  if (host !== '' && !net.isIP(host) && host !== 'localhost') throw new ConfigError('host', `expected an IP address, got ${JSON.stringify(host)}`);
  let passivePorts: [number, number] | null = null;
  if (o.passivePorts !== undefined) {
    const p = o.passivePorts;
    if (!Array.isArray(p) || p.length !== 2) throw new ConfigError('passivePorts', 'expected [first, last]');
    const first = int('passivePorts[0]', p[0], 1, 65535);
    const last = int('passivePorts[1]', p[1], 1, 65535);
    if (last < first) throw new ConfigError('passivePorts', 'expected first <= last');
    passivePorts = [first, last];
  }
  const map: Record<string, string> = {};
  if (o.masqueradeAddressMap !== undefined) {
    if (typeof o.masqueradeAddressMap !== 'object' || o.masqueradeAddressMap === null) {
      throw new ConfigError('masqueradeAddressMap', 'expected an object { localAddress: publicAddress }');
    }
    for (const [k, v] of Object.entries(o.masqueradeAddressMap)) {
      map[ip(`masqueradeAddressMap key`, k)] = ipv4(`masqueradeAddressMap.${k}`, v);
    }
  }
  const encoding = o.encoding;
  if (encoding !== 'utf8' && encoding !== 'latin1') throw new ConfigError('encoding', "expected 'utf8' or 'latin1'");
  const banner = str('banner', o.banner);
  if (/[\r\n\0]/.test(banner)) throw new ConfigError('banner', 'expected one line (no CR, LF or NUL)');
  const resolved: ResolvedOptions = {
    host,
    port: int('port', o.port, 0, 65535),
    authorizer: a,
    fileSystem: (o.fileSystem as FileSystemFactory | undefined) ?? null,
    banner,
    maxConnections: int('maxConnections', o.maxConnections, 1, 1_000_000),
    maxConnectionsPerIp: int('maxConnectionsPerIp', o.maxConnectionsPerIp, 0, 1_000_000),
    timeout: num('timeout', o.timeout, 0, 86400 * 7),
    dataConnectTimeout: num('dataConnectTimeout', o.dataConnectTimeout, 0.001, 3600),
    dataTimeout: num('dataTimeout', o.dataTimeout, 0, 86400),
    passivePorts,
    masqueradeAddress: o.masqueradeAddress === undefined ? null : ipv4('masqueradeAddress', o.masqueradeAddress),
    masqueradeAddressMap: Object.freeze(map),
    permitForeignAddresses: bool('permitForeignAddresses', o.permitForeignAddresses),
    permitPrivilegedPorts: bool('permitPrivilegedPorts', o.permitPrivilegedPorts),
    useGmtTimes: bool('useGmtTimes', o.useGmtTimes),
    tcpNoDelay: bool('tcpNoDelay', o.tcpNoDelay),
    encoding,
    maxLineLength: int('maxLineLength', o.maxLineLength, 512, 1 << 20),
    maxLoginAttempts: int('maxLoginAttempts', o.maxLoginAttempts, 1, 1000),
    authFailedTimeout: num('authFailedTimeout', o.authFailedTimeout, 0, 600),
    useSendfile: bool('useSendfile', o.useSendfile),
    nativeTls: bool('nativeTls', o.nativeTls),
    dataCongestionControl: congestionSetting(o.dataCongestionControl),
    siteCopy: bool('siteCopy', o.siteCopy),
    readLimit: int('readLimit', o.readLimit, 0, Number.MAX_SAFE_INTEGER),
    writeLimit: int('writeLimit', o.writeLimit, 0, Number.MAX_SAFE_INTEGER),
    closeGracePeriod: num('closeGracePeriod', o.closeGracePeriod, 0, 3600),
    memoryTrimDelay: num('memoryTrimDelay', o.memoryTrimDelay, 0, 3600),
    heapReduceDelay: num('heapReduceDelay', o.heapReduceDelay, 0, 3600),
    logger: (o.logger as Logger | undefined) ?? null,
    tls: o.tls === undefined ? null : checkTls(o.tls),
    tlsControlRequired: bool('tlsControlRequired', o.tlsControlRequired),
    tlsDataRequired: bool('tlsDataRequired', o.tlsDataRequired),
    tlsExemptUsers: new Set(strList('tlsExemptUsers', o.tlsExemptUsers ?? [])),
    tlsRequireSessionReuse: bool('tlsRequireSessionReuse', o.tlsRequireSessionReuse),
    implicitTlsPort: o.implicitTlsPort === undefined ? null : int('implicitTlsPort', o.implicitTlsPort, 0, 65535),
    tlsHandshakeTimeout: num('tlsHandshakeTimeout', o.tlsHandshakeTimeout, 0.01, 600),
    proxyProtocol: checkProxyProtocol(o.proxyProtocol),
    trustedProxies: Object.freeze(checkTrustedProxies(o.trustedProxies)),
    proxyProtocolTimeout: num('proxyProtocolTimeout', o.proxyProtocolTimeout, 0.01, 600),
    proxyProtocolData: bool('proxyProtocolData', o.proxyProtocolData),
    metrics: o.metrics === undefined ? null : checkMetrics(o.metrics),
  };
  if (!resolved.tls) {
    if (resolved.tlsControlRequired) throw new ConfigError('tlsControlRequired', 'needs the tls option (certificate and key)');
    if (resolved.tlsDataRequired) throw new ConfigError('tlsDataRequired', 'needs the tls option (certificate and key)');
    if (resolved.implicitTlsPort !== null) throw new ConfigError('implicitTlsPort', 'needs the tls option (certificate and key)');
  }
  if (resolved.proxyProtocol !== false && resolved.trustedProxies.length === 0) {
    throw new ConfigError('trustedProxies', 'needs at least one address or CIDR when proxyProtocol is on');
  }
  if (resolved.proxyProtocolData && resolved.proxyProtocol === false) throw new ConfigError('proxyProtocolData', 'needs proxyProtocol');
  return Object.freeze(resolved);
}

function checkProxyProtocol(v: unknown): false | 'v1' | 'v2' | 'auto' {
  if (v === false || v === 'v1' || v === 'v2' || v === 'auto') return v;
  throw new ConfigError('proxyProtocol', `expected false, 'v1', 'v2' or 'auto', got ${JSON.stringify(v)}`);
}

function checkTrustedProxies(v: unknown): string[] {
  if (!Array.isArray(v)) throw new ConfigError('trustedProxies', 'expected a list of addresses or CIDRs');
  return v.map((e, i) => {
    if (typeof e !== 'string' || !parseCidr(e)) {
      throw new ConfigError(`trustedProxies[${i}]`, `expected an IP address or CIDR (10.0.0.0/8), got ${JSON.stringify(e)}`);
    }
    return e;
  });
}

function checkMetrics(v: unknown): Required<MetricsOptions> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError('metrics', 'expected { port, host }');
  const m = v as Record<string, unknown>;
  for (const k of Object.keys(m)) if (k !== 'port' && k !== 'host') throw new ConfigError(`metrics.${k}`, 'unknown option');
  const port = int('metrics.port', m.port, 0, 65535);
  const host = m.host === undefined ? '127.0.0.1' : str('metrics.host', m.host);
  if (host !== '' && !net.isIP(host) && host !== 'localhost') throw new ConfigError('metrics.host', `expected an IP address, got ${JSON.stringify(host)}`);
  return Object.freeze({ port, host });
}

function strList(key: string, v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ConfigError(key, 'expected a list of strings');
  return v as string[];
}

function checkTls(v: unknown): TlsOptions {
  if (!v || typeof v !== 'object') throw new ConfigError('tls', 'expected { certFile, keyFile, ... }');
  const t = v as Record<string, unknown>;
  const known = new Set(['certFile', 'keyFile', 'caFile', 'requireClientCert', 'minVersion', 'maxVersion', 'ciphers']);
  for (const k of Object.keys(t)) if (!known.has(k)) throw new ConfigError(`tls.${k}`, 'unknown option');
  const versions = ['TLSv1.2', 'TLSv1.3'];
  const out: TlsOptions = { certFile: str('tls.certFile', t.certFile), keyFile: str('tls.keyFile', t.keyFile) };
  if (t.caFile !== undefined) out.caFile = str('tls.caFile', t.caFile);
  if (t.requireClientCert !== undefined) out.requireClientCert = bool('tls.requireClientCert', t.requireClientCert);
  for (const k of ['minVersion', 'maxVersion'] as const) {
    if (t[k] === undefined) continue;
    if (!versions.includes(t[k] as string)) throw new ConfigError(`tls.${k}`, "expected 'TLSv1.2' or 'TLSv1.3'");
    out[k] = t[k] as 'TLSv1.2' | 'TLSv1.3';
  }
  if (out.minVersion && out.maxVersion && versions.indexOf(out.minVersion) > versions.indexOf(out.maxVersion)) {
    throw new ConfigError('tls.minVersion', 'expected minVersion <= maxVersion');
  }
  if (t.ciphers !== undefined) out.ciphers = str('tls.ciphers', t.ciphers);
  if (out.requireClientCert && !out.caFile) throw new ConfigError('tls.requireClientCert', 'needs tls.caFile');
  return Object.freeze(out);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
