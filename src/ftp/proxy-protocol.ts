/**
 * The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer sends first on a
 * connection it forwards, naming the client it came from. Pure: bytes in, a header or an error
 * out; no sockets, no timers. The socket side is in proxy-socket.ts.
 *
 * Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */
import * as net from 'node:net';

/** Which header versions a listener accepts. */
export type ProxyProtocolMode = 'v1' | 'v2' | 'auto';

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /**
   * 'proxy': the connection is relayed for `source`. 'local': the proxy speaks for itself (a v2
   * LOCAL health check, v1 UNKNOWN, or a v2 family we do not relay): the socket's own addresses apply.
   */
  command: 'proxy' | 'local';
  /** The client, as the proxy saw it (command 'proxy' only). */
  source: ProxyEndpoint | null;
  /** The address and port the client connected to on the proxy (command 'proxy' only). */
  destination: ProxyEndpoint | null;
}

export type ProxyParseResult =
  | { done: false }
  | {
      done: true;
      header: ProxyHeader;
      /** Bytes the header took; what follows belongs to the protocol behind it. */
      length: number;
    };

/** A header that is malformed, too long, or of a version the listener does not accept. */
export class ProxyHeaderError extends Error {
  readonly code = 'FTPD_ERR_PROXY_HEADER';
  constructor(
    message: string,
    /** Bad bytes, none in time, or a close before the end (a health check that only connects, say). */
    readonly reason: 'malformed' | 'timeout' | 'closed' = 'malformed',
  ) {
    super(message);
    this.name = 'ProxyHeaderError';
  }
}

/** The longest v1 header, CRLF included (spec, section 2.1). */
export const V1_MAX_LENGTH = 107;
/** v2: 12-byte signature, version/command, family/transport, 16-bit length. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;
/** The longest v2 header: the fixed part and a 16-bit length. Bounded, if generous (TLVs). */
export const V2_MAX_LENGTH = V2_FIXED + 0xffff;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

/** Whether `buf` agrees with `prefix` over their common length. */
function agrees(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

/**
 * Parse a header at the start of `buf`, the bytes received so far. Returns `{ done: false }` while
 * the bytes are a valid beginning of a header, so it can be called again with more; throws
 * ProxyHeaderError as soon as they cannot be one.
 */
export function parseProxyHeader(buf: Buffer, mode: ProxyProtocolMode = 'auto'): ProxyParseResult {
  if (buf.length === 0) return { done: false };
  const maybeV1 = mode !== 'v2' && agrees(buf, V1_PREFIX);
  const maybeV2 = mode !== 'v1' && agrees(buf, V2_SIGNATURE);
  if (maybeV1) return parseV1(buf);
  if (maybeV2) return parseV2(buf);
  const expected = mode === 'v1' ? 'a PROXY v1 header' : mode === 'v2' ? 'a PROXY v2 header' : 'a PROXY header';
  throw new ProxyHeaderError(`expected ${expected}`);
}

/** Whether the first bytes a client sent look like a PROXY header (of either version). */
export function looksLikeProxyHeader(chunk: Buffer): boolean {
  if (chunk.length >= V1_PREFIX.length - 1 && agrees(chunk, V1_PREFIX)) return true;
  return chunk.length >= 6 && agrees(chunk, V2_SIGNATURE);
}

// ---- v1: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 21\r\n" --------------------------------------

function parseV1(buf: Buffer): ProxyParseResult {
  // The CR can be at most at V1_MAX_LENGTH - 2, so the LF completes the longest header.
  const limit = Math.min(buf.length, V1_MAX_LENGTH - 1);
  let end = -1;
  for (let i = 0; i < limit; i++) {
    if (buf[i] === 0x0d) {
      if (i + 1 >= buf.length) return { done: false };
      if (buf[i + 1] !== 0x0a) throw new ProxyHeaderError('v1: CR not followed by LF');
      end = i;
      break;
    }
    if (buf[i] === 0x0a) throw new ProxyHeaderError('v1: LF without CR');
  }
  if (end < 0) {
    if (buf.length >= V1_MAX_LENGTH - 1) throw new ProxyHeaderError(`v1: no CRLF within ${V1_MAX_LENGTH} bytes`);
    return { done: false };
  }
  const line = buf.toString('latin1', 0, end);
  const length = end + 2;
  const parts = line.split(' ');
  const proto = parts[1];
  if (proto === 'UNKNOWN') {
    // The rest of the line, whatever it holds, is to be ignored.
    return { done: true, length, header: { version: 1, command: 'local', source: null, destination: null } };
  }
  if (proto !== 'TCP4' && proto !== 'TCP6') throw new ProxyHeaderError(`v1: expected TCP4, TCP6 or UNKNOWN, got ${JSON.stringify(proto ?? '')}`);
  if (parts.length !== 6) throw new ProxyHeaderError('v1: expected PROXY <proto> <source> <destination> <source port> <destination port>');
  const family = proto === 'TCP4' ? 4 : 6;
  const src = v1Address(parts[2], family);
  const dst = v1Address(parts[3], family);
  return {
    done: true,
    length,
    header: { version: 1, command: 'proxy', source: { address: src, port: v1Port(parts[4]) }, destination: { address: dst, port: v1Port(parts[5]) } },
  };
}

function v1Address(s: string, family: 4 | 6): string {
  if (net.isIP(s) !== family) throw new ProxyHeaderError(`v1: expected an IPv${family} address, got ${JSON.stringify(s)}`);
  return family === 6 ? normalizeIPv6(s) : s;
}

function v1Port(s: string): number {
  // Decimal, no sign, no leading zero (spec 2.1), 0 to 65535.
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s) || Number(s) > 65535) throw new ProxyHeaderError(`v1: expected a port, got ${JSON.stringify(s)}`);
  return Number(s);
}

// ---- v2: binary ------------------------------------------------------------------------------

function parseV2(buf: Buffer): ProxyParseResult {
  if (buf.length < V2_FIXED) return { done: false };
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError(`v2: expected version 2, got ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw new ProxyHeaderError(`v2: unknown command ${cmd}`);
  const famProto = buf[13];
  const len = buf.readUInt16BE(14);
  const length = V2_FIXED + len;
  // Checked before waiting for the rest: a bad family is an error now, not after 64 KiB.
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family > 3 || transport > 2) throw new ProxyHeaderError(`v2: unknown address family/transport 0x${famProto.toString(16)}`);
  if (cmd === 1 && family === 1 && len < 12) throw new ProxyHeaderError('v2: address block too short for AF_INET');
  if (cmd === 1 && family === 2 && len < 36) throw new ProxyHeaderError('v2: address block too short for AF_INET6');
  if (buf.length < length) return { done: false };
  const local: ProxyParseResult = { done: true, length, header: { version: 2, command: 'local', source: null, destination: null } };
  // LOCAL: the proxy's own connection (health checks); the address block, if any, is ignored.
  if (cmd === 0) return local;
  if (transport === 2) throw new ProxyHeaderError('v2: a datagram (UDP) header on a stream connection');
  // UNSPEC and AF_UNIX carry nothing we can use as a client address: use the socket's (spec 2.2).
  if (family !== 1 && family !== 2) return local;
  const a = V2_FIXED;
  if (family === 1) {
    return {
      done: true,
      length,
      header: {
        version: 2,
        command: 'proxy',
        source: { address: ipv4(buf, a), port: buf.readUInt16BE(a + 8) },
        destination: { address: ipv4(buf, a + 4), port: buf.readUInt16BE(a + 10) },
      },
    };
  }
  // TLVs after the address block (ALPN, authority, SSL details, unique id) are skipped.
  return {
    done: true,
    length,
    header: {
      version: 2,
      command: 'proxy',
      source: { address: ipv6(buf, a), port: buf.readUInt16BE(a + 32) },
      destination: { address: ipv6(buf, a + 16), port: buf.readUInt16BE(a + 34) },
    },
  };
}

function ipv4(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

function ipv6(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i).toString(16));
  return normalizeIPv6(groups.join(':'));
}

/**
 * The form Node gives socket.remoteAddress (RFC 5952: lower case, longest zero run compressed,
 * IPv4-mapped as ::ffff:a.b.c.d), so addresses from headers and from sockets compare as strings.
 */
export function normalizeIPv6(s: string): string {
  const host = new URL(`http://[${s}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (!mapped) return host;
  const hi = parseInt(mapped[1], 16);
  const lo = parseInt(mapped[2], 16);
  return `::ffff:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

// ---- trusted proxies ---------------------------------------------------------------------------

/**
 * Parse an address or CIDR ("10.0.0.0/8", "2001:db8::/32", "127.0.0.1"). Returns null when it is
 * neither.
 */
export function parseCidr(s: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const slash = s.indexOf('/');
  const address = slash < 0 ? s : s.slice(0, slash);
  const v = net.isIP(address);
  if (v === 0) return null;
  const max = v === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) return null;
    prefix = Number(p);
  }
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** A matcher for `trustedProxies`; entries must have passed parseCidr. IPv4-mapped IPv6 addresses match as IPv4. */
export function trustMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new net.BlockList();
  for (const e of entries) {
    const c = parseCidr(e);
    if (!c) throw new TypeError(`not an address or CIDR: ${e}`);
    list.addSubnet(c.address, c.prefix, c.family);
  }
  return (address: string): boolean => {
    const plain = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
    const v = net.isIP(plain);
    if (v === 0) return false;
    return list.check(plain, v === 4 ? 'ipv4' : 'ipv6');
  };
}
