// The PROXY protocol parser, on bytes: v1 text, v2 binary, incremental input, bounds, trust lists.
import test from 'ava';
import {
  V1_MAX_LENGTH,
  V2_SIGNATURE,
  looksLikeProxyHeader,
  normalizeIPv6,
  parseCidr,
  parseProxyHeader,
  trustMatcher,
  type ProxyParseResult,
} from '../../src/ftp/proxy-protocol';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A v2 header: command 1 = PROXY, 0 = LOCAL; fam 0x11 TCP over IPv4, 0x21 TCP over IPv6. */
function v2(cmd: number, fam: number, addr: Buffer, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(4);
  head[0] = 0x20 | cmd;
  head[1] = fam;
  head.writeUInt16BE(addr.length + tlvs.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, addr, tlvs]);
}

function inet4(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const a = Buffer.alloc(12);
  Buffer.from(src).copy(a, 0);
  Buffer.from(dst).copy(a, 4);
  a.writeUInt16BE(sport, 8);
  a.writeUInt16BE(dport, 10);
  return a;
}

function done(r: ProxyParseResult): Extract<ProxyParseResult, { done: true }> {
  if (!r.done) throw new Error('expected a complete header');
  return r;
}

const code = { code: 'FTPD_ERR_PROXY_HEADER' };

// ---- v1 ----

test('v1 TCP4: addresses, ports and the header length; what follows is not consumed', (t) => {
  const line = 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 21\r\n';
  const r = done(parseProxyHeader(b(`${line}USER bob\r\n`)));
  t.is(r.length, line.length);
  t.deepEqual(r.header, {
    version: 1,
    command: 'proxy',
    source: { address: '192.0.2.1', port: 56324 },
    destination: { address: '198.51.100.2', port: 21 },
  });
});

test('v1 TCP6: addresses normalised as Node writes them', (t) => {
  const r = done(parseProxyHeader(b('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::FFFF:192.0.2.9 1 65535\r\n')));
  t.deepEqual(r.header.source, { address: '2001:db8::1', port: 1 });
  t.deepEqual(r.header.destination, { address: '::ffff:192.0.2.9', port: 65535 });
});

test('v1 UNKNOWN: the socket addresses apply; the rest of the line is ignored', (t) => {
  t.deepEqual(done(parseProxyHeader(b('PROXY UNKNOWN\r\n'))).header, { version: 1, command: 'local', source: null, destination: null });
  t.is(done(parseProxyHeader(b('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nX'))).length, 'PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'.length);
});

test('v1 incomplete input asks for more, at every split point', (t) => {
  const line = b('PROXY TCP4 10.1.2.3 10.0.0.1 40000 2121\r\n');
  for (let i = 0; i < line.length; i++) t.false(parseProxyHeader(line.subarray(0, i)).done, `prefix of ${i} bytes`);
  t.true(parseProxyHeader(line).done);
});

test('v1 malformed headers are errors', (t) => {
  for (const bad of [
    'PROXY TCP4 10.1.2.3 10.0.0.1 40000\r\n', // a field missing
    'PROXY TCP4 10.1.2.3  10.0.0.1 40000 21\r\n', // two spaces
    'PROXY TCP4 10.1.2.3 10.0.0.1 40000 21 extra\r\n',
    'PROXY TCP4 ::1 10.0.0.1 40000 21\r\n', // family mismatch
    'PROXY TCP6 10.1.2.3 ::1 40000 21\r\n',
    'PROXY TCP4 10.1.2.300 10.0.0.1 40000 21\r\n',
    'PROXY TCP4 10.1.2.3 10.0.0.1 65536 21\r\n',
    'PROXY TCP4 10.1.2.3 10.0.0.1 040000 21\r\n', // leading zero
    'PROXY TCP4 10.1.2.3 10.0.0.1 -1 21\r\n',
    'PROXY UDP4 10.1.2.3 10.0.0.1 1 21\r\n',
    'PROXY TCP4 10.1.2.3 10.0.0.1 1 21\n', // LF alone
    'PROXY TCP4 10.1.2.3 10.0.0.1 1 21\rX',
  ]) {
    t.throws(() => parseProxyHeader(b(bad)), code, bad);
  }
});

test('v1 is bounded: no CRLF within 107 bytes is an error; the longest valid header parses', (t) => {
  t.throws(() => parseProxyHeader(b(`PROXY UNKNOWN ${'x'.repeat(200)}`)), code);
  // "PROXY UNKNOWN " is 14 bytes: 91 more and CRLF make 107, 92 more make 108.
  t.throws(() => parseProxyHeader(b(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n`)), code);
  t.throws(() => parseProxyHeader(b(`PROXY UNKNOWN ${'x'.repeat(92)}`)), code, 'an error before the CR arrives');
  t.is(done(parseProxyHeader(b(`PROXY UNKNOWN ${'x'.repeat(91)}\r\n`))).length, V1_MAX_LENGTH);
  const ff = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  const max = `PROXY UNKNOWN ${ff} ${ff} 65535 65535\r\n`;
  t.is(max.length, V1_MAX_LENGTH);
  t.is(done(parseProxyHeader(b(max))).length, V1_MAX_LENGTH);
  const tcp6 = `PROXY TCP6 ${ff} ${ff} 65535 65535\r\n`;
  t.deepEqual(done(parseProxyHeader(b(tcp6))).header.source, { address: ff, port: 65535 });
});

// ---- v2 ----

test('v2 PROXY over IPv4: addresses, ports; TLVs skipped; following bytes left', (t) => {
  const tlv = Buffer.from([0x05, 0x00, 0x03, 0x61, 0x62, 0x63]); // PP2_TYPE_UNIQUE_ID "abc"
  const h = v2(1, 0x11, inet4([192, 0, 2, 1], [198, 51, 100, 2], 56324, 21), tlv);
  const r = done(parseProxyHeader(Buffer.concat([h, b('USER bob\r\n')])));
  t.is(r.length, h.length);
  t.deepEqual(r.header, {
    version: 2,
    command: 'proxy',
    source: { address: '192.0.2.1', port: 56324 },
    destination: { address: '198.51.100.2', port: 21 },
  });
});

test('v2 PROXY over IPv6', (t) => {
  const a = Buffer.alloc(36);
  a[15] = 1; // ::1
  Buffer.from([0x20, 0x01, 0x0d, 0xb8]).copy(a, 16); // 2001:db8::
  a.writeUInt16BE(4000, 32);
  a.writeUInt16BE(21, 34);
  const r = done(parseProxyHeader(v2(1, 0x21, a)));
  t.deepEqual(r.header.source, { address: '::1', port: 4000 });
  t.deepEqual(r.header.destination, { address: '2001:db8::', port: 21 });
});

test('v2 LOCAL (health checks), UNSPEC and AF_UNIX: the socket addresses apply', (t) => {
  t.is(done(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0)))).header.command, 'local');
  t.is(done(parseProxyHeader(v2(0, 0x11, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)))).header.command, 'local');
  t.is(done(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0)))).header.command, 'local');
  t.is(done(parseProxyHeader(v2(1, 0x31, Buffer.alloc(216)))).header.command, 'local');
});

test('v2 incomplete input asks for more, at every split point', (t) => {
  const h = v2(1, 0x11, inet4([10, 0, 0, 2], [10, 0, 0, 1], 1234, 21), Buffer.alloc(20));
  for (let i = 0; i < h.length; i++) t.false(parseProxyHeader(h.subarray(0, i)).done, `prefix of ${i} bytes`);
  t.true(parseProxyHeader(h).done);
});

test('v2 malformed headers are errors as soon as they can be told', (t) => {
  const ok = v2(1, 0x11, inet4([10, 0, 0, 2], [10, 0, 0, 1], 1234, 21));
  const mutate = (i: number, v: number): Buffer => {
    const c = Buffer.from(ok);
    c[i] = v;
    return c;
  };
  t.throws(() => parseProxyHeader(mutate(12, 0x11)), code, 'version 1 in a v2 header');
  t.throws(() => parseProxyHeader(mutate(12, 0x22)), code, 'unknown command');
  t.throws(() => parseProxyHeader(mutate(13, 0x41)), code, 'unknown family');
  t.throws(() => parseProxyHeader(mutate(13, 0x13)), code, 'unknown transport');
  t.throws(() => parseProxyHeader(mutate(13, 0x12)), code, 'UDP');
  t.throws(() => parseProxyHeader(v2(1, 0x11, Buffer.alloc(8))), code, 'IPv4 block too short');
  t.throws(() => parseProxyHeader(v2(1, 0x21, Buffer.alloc(12))), code, 'IPv6 block too short');
  // Known to be bad from the fixed part alone, before the announced length has arrived.
  t.throws(() => parseProxyHeader(mutate(12, 0x11).subarray(0, 16)), code);
  t.throws(() => parseProxyHeader(Buffer.concat([V2_SIGNATURE.subarray(0, 5), b('x')])), code, 'broken signature');
});

// ---- either ----

test('mode: v1 refuses v2 and v2 refuses v1; auto takes both; garbage fails at the first byte', (t) => {
  const one = b('PROXY TCP4 10.1.2.3 10.0.0.1 40000 21\r\n');
  const two = v2(1, 0x11, inet4([10, 1, 2, 3], [10, 0, 0, 1], 40000, 21));
  t.throws(() => parseProxyHeader(two, 'v1'), code);
  t.throws(() => parseProxyHeader(one, 'v2'), code);
  t.deepEqual(done(parseProxyHeader(one, 'auto')).header.source, done(parseProxyHeader(two, 'auto')).header.source);
  t.throws(() => parseProxyHeader(b('U')), code);
  t.throws(() => parseProxyHeader(b('USER bob\r\n')), code);
  t.throws(() => parseProxyHeader(Buffer.from([0x16, 0x03, 0x01])), code, 'a TLS ClientHello');
  t.false(parseProxyHeader(b('PRO')).done);
  t.false(parseProxyHeader(Buffer.alloc(0)).done);
});

test('looksLikeProxyHeader tells a header from FTP commands and TLS', (t) => {
  t.true(looksLikeProxyHeader(b('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')));
  t.true(looksLikeProxyHeader(v2(0, 0, Buffer.alloc(0))));
  t.false(looksLikeProxyHeader(b('USER bob\r\n')));
  t.false(looksLikeProxyHeader(b('\r\n')));
  t.false(looksLikeProxyHeader(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])));
});

test('normalizeIPv6 writes addresses as Node reports remote addresses', (t) => {
  t.is(normalizeIPv6('0:0:0:0:0:0:0:1'), '::1');
  t.is(normalizeIPv6('2001:DB8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  t.is(normalizeIPv6('0:0:0:0:0:ffff:c000:0201'), '::ffff:192.0.2.1');
});

test('trusted proxies: addresses and CIDRs, IPv4-mapped addresses match as IPv4', (t) => {
  t.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  t.is(parseCidr('10.0.0.0/33'), null);
  t.is(parseCidr('10.0.0.0/08'), null);
  t.is(parseCidr('example.com'), null);
  t.is(parseCidr('::1/129'), null);
  const trusted = trustMatcher(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
  t.true(trusted('10.200.0.1'));
  t.true(trusted('::ffff:10.1.1.1'));
  t.true(trusted('192.0.2.7'));
  t.false(trusted('192.0.2.8'));
  t.true(trusted('2001:db8:1::5'));
  t.false(trusted('2001:db9::1'));
  t.false(trusted(''));
});
