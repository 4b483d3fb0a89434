import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tls from 'node:tls';
import { nativeTlsAvailable } from '../../src/ftp/data/engines';
import { sha256 } from '../helpers/data-client';
import { PASS, USER, startServer, type TestServer } from '../helpers/server';
import { FtpsControl, tlsOption } from '../helpers/tls';
import { CLOSE_NOTIFY, CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_HANDSHAKE, Keys, rawDataTls, splitRecords, type RawData } from '../helpers/tls-records';

/**
 * The engine's TLS record layer (src/native/tlsrec.c, engine.c move_tls_recv) on the wire.
 *
 * Node's TLS client runs the data connection's handshake (resuming the control session, as the
 * server requires) over a stream of ours, and is cut off the moment it has sent its Finished:
 * from then on the test writes TLS 1.3 records it seals itself straight onto the TCP socket
 * (client sequence numbers from 0, keys from the client's `keylog` event), in shapes ordinary
 * clients never produce: 1-byte and empty records, maximal padding, records straddling many TCP
 * segments, KeyUpdates, corrupted records, fatal alerts, a FIN inside a record. What the server
 * sends back on the data connection is read raw and opened with the server's keys.
 */

// ---- FTP side ---------------------------------------------------------------------------------

async function loggedIn(t: ExecutionContext, tlsOpts: tls.ConnectionOptions = {}): Promise<{ s: TestServer; c: FtpsControl }> {
  t.true(nativeTlsAvailable(), "the addon reaches Node's OpenSSL");
  const s = await startServer(t, { tls: tlsOption() });
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.secureLogin(USER, PASS, tlsOpts);
  t.is(c.tlsSocket.getProtocol(), 'TLSv1.3');
  return { s, c };
}

/** EPSV, the data connection's handshake, then STOR `name` up to its 125/150. */
async function startUpload(t: ExecutionContext, c: FtpsControl, name: string, tlsOpts: tls.ConnectionOptions = {}): Promise<RawData> {
  const port = await c.epsv();
  const d = await rawDataTls(t, c, port, tlsOpts);
  const first = await c.cmd(`STOR ${name}`);
  if (first.code !== 150 && first.code !== 125) throw new Error(`STOR ${name}: ${first.code} ${first.text}`);
  return d;
}

function stored(s: TestServer, name: string): Buffer {
  const f = path.join(s.root, name);
  return fs.existsSync(f) ? fs.readFileSync(f) : Buffer.alloc(0);
}

function transferRecord(s: TestServer, name: string): Record<string, unknown> | undefined {
  return s.records.find((r) => r.transfer === 'STOR' && typeof r.path === 'string' && r.path.endsWith(`/${name}`));
}

/** The file on disk is exactly `want` (compared by digest, with the sizes in the message). */
function sameFile(t: ExecutionContext, s: TestServer, name: string, want: Buffer): void {
  const got = stored(s, name);
  t.true(got.length === want.length && sha256(got) === sha256(want), `${name}: ${got.length} bytes stored, ${want.length} expected (content must match)`);
}

/** A seeded PRNG (mulberry32): the same record shapes and TCP cuts on every run. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Write `stream` in pieces of 1 to `maxPiece` bytes, each its own TCP write, with short pauses between some. */
async function writeInPieces(d: RawData, stream: Buffer, rnd: (n: number) => number, maxPiece = 6000): Promise<void> {
  for (let o = 0; o < stream.length; ) {
    const n = Math.min(stream.length - o, 1 + rnd(maxPiece));
    await d.write(stream.subarray(o, o + n));
    o += n;
    if (rnd(3) === 0) await new Promise((r) => setTimeout(r, 1 + rnd(3)));
  }
}

/** The server's records on the data connection after the transfer, opened with its keys. */
async function serverRecords(d: RawData): Promise<Array<{ type: number; content: Buffer }>> {
  await d.closed;
  const { records, rest } = splitRecords(Buffer.concat(d.received));
  if (rest.length) throw new Error(`${rest.length} bytes of an incomplete record from the server`);
  return records.map((r) => d.in.open(r));
}

/** A clean upload's end as the server sends it: its close_notify, under SERVER_TRAFFIC_SECRET_0, sequence 0. */
async function expectServerCloseNotify(t: ExecutionContext, d: RawData): Promise<void> {
  const recs = await serverRecords(d);
  t.deepEqual(
    recs.map((r) => [r.type, r.content.toString('hex')]),
    [[CONTENT_ALERT, '0100']],
    'the server ends with one close_notify, its first record under the application keys',
  );
}

/** Good data, then one record `bad` sealed with the current keys, then more data and a close_notify: 426, `result` in the log. */
async function refused(t: ExecutionContext, c: FtpsControl, s: TestServer, name: string, bad: (k: Keys) => Buffer, result: string): Promise<void> {
  const d = await startUpload(t, c, name);
  const good = randomBytes(20_000);
  const stream = Buffer.concat([
    d.out.seal(CONTENT_APPLICATION_DATA, good.subarray(0, 10_000)),
    d.out.seal(CONTENT_APPLICATION_DATA, good.subarray(10_000)),
    bad(d.out),
    d.out.seal(CONTENT_APPLICATION_DATA, randomBytes(1000)),
    d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY),
  ]);
  await d.write(stream);
  const final = await c.read(15000);
  t.is(final?.code, 426, `${name}: ${final?.code} ${final?.text}`);
  const rec = transferRecord(s, name);
  sameFile(t, s, name, good);
  t.is(rec?.engine, 'tls', name);
  t.is(rec?.result, result, name);
  t.is((await c.cmd('NOOP')).code, 200);
}

// ---- the tests --------------------------------------------------------------------------------

const SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

for (const suiteName of SUITES) {
  test(`${suiteName}: 1-byte, empty, 16384-byte and random-size records, zero padding, split across TCP writes, then close_notify: 226`, async (t) => {
    const opts: tls.ConnectionOptions = { ciphers: suiteName };
    const { s, c } = await loggedIn(t, opts);
    const d = await startUpload(t, c, 'odd.bin', opts);
    t.is(d.out.suite.name, suiteName);
    const rnd = prng(0x5eed + suiteName.length);
    const parts: Buffer[] = [];
    const records: Buffer[] = [];
    const record = (content: Buffer, padding = 0): void => {
      parts.push(content);
      records.push(d.out.seal(CONTENT_APPLICATION_DATA, content, padding));
    };
    // 1-byte records, some padded (one to the largest TLSInnerPlaintext: 1 + 1 + 16383 = 2^14 + 1).
    for (let i = 0; i < 40; i++) record(randomBytes(1), i % 3 === 0 ? rnd(300) : 0);
    record(Buffer.from([0]), 16383);
    record(Buffer.from([0]));
    // Empty application data records (RFC 8446 5.1 allows them), bare and padded.
    record(Buffer.alloc(0));
    record(Buffer.alloc(0), 100);
    // Records of 2^14 bytes, the largest: no room for padding. One of them all zeros.
    for (let i = 0; i < 5; i++) record(randomBytes(16384));
    record(Buffer.alloc(16384));
    // Data that ends in zeros, before its type byte and the padding's zeros.
    record(Buffer.concat([randomBytes(1000), Buffer.alloc(50)]), 200);
    // Random sizes, half of them with random padding.
    for (let i = 0; i < 30; i++) {
      const len = 1 + rnd(16384);
      record(randomBytes(len), i % 2 ? rnd(16384 - len + 1) : 0);
    }
    for (let i = 0; i < 20; i++) record(randomBytes(1));
    records.push(d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
    await writeInPieces(d, Buffer.concat(records), rnd);
    const final = await c.read(15000);
    t.is(final?.code, 226, `${final?.code} ${final?.text}`);
    sameFile(t, s, 'odd.bin', Buffer.concat(parts));
    t.is(transferRecord(s, 'odd.bin')?.engine, 'tls');
    t.is(transferRecord(s, 'odd.bin')?.result, 'ok');
    await expectServerCloseNotify(t, d);
    t.is(d.gate.dropped, 0, 'Node wrote nothing after its Finished');
  });
}

test('KeyUpdate (update_not_requested) between data records: the server reads on with the next keys, 226', async (t) => {
  const { s, c } = await loggedIn(t);
  const d = await startUpload(t, c, 'ku0.bin');
  const rnd = prng(0xc0ffee);
  const before = randomBytes(100_000);
  const after = randomBytes(70_001);
  const records: Buffer[] = [];
  for (let o = 0; o < before.length; o += 16384) records.push(d.out.seal(CONTENT_APPLICATION_DATA, before.subarray(o, o + 16384)));
  records.push(d.out.seal(CONTENT_HANDSHAKE, Buffer.from([24, 0, 0, 1, 0])));
  d.out = d.out.next();
  for (let o = 0; o < after.length; o += 10000) records.push(d.out.seal(CONTENT_APPLICATION_DATA, after.subarray(o, o + 10000), 7));
  records.push(d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
  await writeInPieces(d, Buffer.concat(records), rnd);
  const final = await c.read(15000);
  t.is(final?.code, 226, `${final?.code} ${final?.text}`);
  sameFile(t, s, 'ku0.bin', Buffer.concat([before, after]));
  t.is(transferRecord(s, 'ku0.bin')?.engine, 'tls');
  // Not asked for one: the server's keys stay as they were, and it says goodbye with them.
  await expectServerCloseNotify(t, d);
});

test('KeyUpdate (update_requested): 226, then the server sends its own KeyUpdate and a close_notify under its next keys', async (t) => {
  const { s, c } = await loggedIn(t);
  const d = await startUpload(t, c, 'ku1.bin');
  const rnd = prng(0xbeef);
  const before = randomBytes(40_000);
  const after = randomBytes(60_000);
  const records: Buffer[] = [];
  for (let o = 0; o < before.length; o += 9000) records.push(d.out.seal(CONTENT_APPLICATION_DATA, before.subarray(o, o + 9000)));
  records.push(d.out.seal(CONTENT_HANDSHAKE, Buffer.from([24, 0, 0, 1, 1])));
  d.out = d.out.next();
  for (let o = 0; o < after.length; o += 16384) records.push(d.out.seal(CONTENT_APPLICATION_DATA, after.subarray(o, o + 16384)));
  records.push(d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
  await writeInPieces(d, Buffer.concat(records), rnd);
  const final = await c.read(15000);
  t.is(final?.code, 226, `${final?.code} ${final?.text}`);
  sameFile(t, s, 'ku1.bin', Buffer.concat([before, after]));
  t.is(transferRecord(s, 'ku1.bin')?.engine, 'tls');

  await d.closed;
  const { records: got, rest } = splitRecords(Buffer.concat(d.received));
  t.is(rest.length, 0, 'no partial record from the server');
  t.is(got.length, 2, 'the server sent two records: its KeyUpdate and its close_notify');
  // The first under SERVER_TRAFFIC_SECRET_0 at sequence 0 (the server sent nothing after the
  // handshake of a resumed data connection), the second under the next secret at sequence 0.
  const ku = d.in.open(got[0]);
  t.is(ku.type, CONTENT_HANDSHAKE);
  t.is(ku.content.toString('hex'), '1800000100', 'KeyUpdate, update_not_requested');
  const next = d.in.next();
  const cn = next.open(got[1]);
  t.is(cn.type, CONTENT_ALERT);
  t.is(cn.content.toString('hex'), '0100', 'close_notify');
});

test('a record with one flipped ciphertext byte: 426 (EBADMSG), the data before it kept, the session usable', async (t) => {
  const { s, c } = await loggedIn(t);
  const d = await startUpload(t, c, 'bad.bin');
  const good = randomBytes(50_000);
  const records: Buffer[] = [];
  for (let o = 0; o < good.length; o += 12500) records.push(d.out.seal(CONTENT_APPLICATION_DATA, good.subarray(o, o + 12500)));
  const bad = d.out.seal(CONTENT_APPLICATION_DATA, randomBytes(5000));
  bad[5 + 2500] ^= 0x40;
  records.push(bad);
  records.push(d.out.seal(CONTENT_APPLICATION_DATA, randomBytes(5000)));
  records.push(d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
  await d.write(Buffer.concat(records));
  const final = await c.read(15000);
  t.is(final?.code, 426, `${final?.code} ${final?.text}`);
  sameFile(t, s, 'bad.bin', good);
  const rec = transferRecord(s, 'bad.bin');
  t.is(rec?.engine, 'tls');
  t.is(rec?.result, 'EBADMSG');
  // The next reply is the NOOP's: no 226 came after the 426.
  t.is((await c.cmd('NOOP')).code, 200);
  t.false(c.all.some((r) => r.code === 226), 'no 226 at any time');
  // And the session can still upload.
  const d2 = await startUpload(t, c, 'after.bin');
  const more = randomBytes(3000);
  await d2.write(Buffer.concat([d2.out.seal(CONTENT_APPLICATION_DATA, more), d2.out.seal(CONTENT_ALERT, CLOSE_NOTIFY)]));
  t.is((await c.read(15000))?.code, 226);
  sameFile(t, s, 'after.bin', more);
});

test('a fatal alert (handshake_failure) instead of close_notify: 426', async (t) => {
  const { s, c } = await loggedIn(t);
  const d = await startUpload(t, c, 'alert.bin');
  const good = randomBytes(33_333);
  const records: Buffer[] = [];
  for (let o = 0; o < good.length; o += 8000) records.push(d.out.seal(CONTENT_APPLICATION_DATA, good.subarray(o, o + 8000)));
  records.push(d.out.seal(CONTENT_ALERT, Buffer.from([2, 40])));
  await d.write(Buffer.concat(records));
  const final = await c.read(15000);
  t.is(final?.code, 426, `${final?.code} ${final?.text}`);
  sameFile(t, s, 'alert.bin', good);
  const rec = transferRecord(s, 'alert.bin');
  t.is(rec?.engine, 'tls');
  t.is(rec?.result, 'ECONNRESET');
  t.is((await c.cmd('NOOP')).code, 200);
  t.false(c.all.some((r) => r.code === 226), 'no 226 at any time');
});

test('a FIN in the middle of a record: 426 (ECONNRESET), only the whole records before it stored', async (t) => {
  const { s, c } = await loggedIn(t);
  const d = await startUpload(t, c, 'fin.bin');
  const good = randomBytes(48_000);
  const records: Buffer[] = [];
  for (let o = 0; o < good.length; o += 16000) records.push(d.out.seal(CONTENT_APPLICATION_DATA, good.subarray(o, o + 16000)));
  const cut = d.out.seal(CONTENT_APPLICATION_DATA, randomBytes(10_000));
  await d.write(Buffer.concat([...records, cut.subarray(0, 4321)]));
  d.raw.end();
  const final = await c.read(15000);
  t.is(final?.code, 426, `${final?.code} ${final?.text}`);
  sameFile(t, s, 'fin.bin', good);
  const rec = transferRecord(s, 'fin.bin');
  t.is(rec?.engine, 'tls');
  t.is(rec?.result, 'ECONNRESET');
  t.is((await c.cmd('NOOP')).code, 200);
  t.false(c.all.some((r) => r.code === 226), 'no 226 at any time');
});

test('handshake records other than a well-formed KeyUpdate, and a protected ChangeCipherSpec: 426 each (EPROTO)', async (t) => {
  const { s, c } = await loggedIn(t);
  // KeyUpdate with an undefined update_requested value.
  await refused(t, c, s, 'ku2.bin', (k) => k.seal(CONTENT_HANDSHAKE, Buffer.from([24, 0, 0, 1, 2])), 'EPROTO');
  // KeyUpdate whose length says 2 (a trailing byte).
  await refused(t, c, s, 'kulen.bin', (k) => k.seal(CONTENT_HANDSHAKE, Buffer.from([24, 0, 0, 2, 0, 0])), 'EPROTO');
  // A NewSessionTicket from the client: not a message a server may receive.
  await refused(t, c, s, 'nst.bin', (k) => k.seal(CONTENT_HANDSHAKE, Buffer.from([4, 0, 0, 4, 0, 0, 0, 0])), 'EPROTO');
  // A ClientHello-like message after the handshake.
  await refused(t, c, s, 'hello.bin', (k) => k.seal(CONTENT_HANDSHAKE, Buffer.concat([Buffer.from([1, 0, 0, 40]), randomBytes(40)])), 'EPROTO');
  // A ChangeCipherSpec inside a protected record.
  await refused(t, c, s, 'ccs.bin', (k) => k.seal(20, Buffer.from([1])), 'EPROTO');
  t.false(c.all.some((r) => r.code === 226), 'no 226 at any time');
});

test('a record whose inner plaintext is all zeros (no content type, RFC 8446 5.4): 426', async (t) => {
  const { s, c } = await loggedIn(t);
  // seal() puts the type byte after the content: type 0 plus zero content leaves no non-zero octet.
  await refused(t, c, s, 'zeros.bin', (k) => k.seal(0, Buffer.alloc(30), 10), 'EBADMSG');
});

// RFC 8446 5.1, 5.4 and 6.2: at most 2^14 bytes of content per record (TLSInnerPlaintext at most
// 2^14 + 1); a record that decrypts to more is a record_overflow, the end of the connection.
test('a record with 2^14 + 1 bytes of data (over the limit of RFC 8446 5.1/5.4, record_overflow): 426', async (t) => {
  const { s, c } = await loggedIn(t);
  const d = await startUpload(t, c, 'big.bin');
  const good = randomBytes(16384);
  await d.write(
    Buffer.concat([
      d.out.seal(CONTENT_APPLICATION_DATA, good),
      d.out.seal(CONTENT_APPLICATION_DATA, randomBytes(16385)),
      d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY),
    ]),
  );
  const final = await c.read(15000);
  t.is(final?.code, 426, `${final?.code} ${final?.text}`);
  sameFile(t, s, 'big.bin', good);
  t.is(transferRecord(s, 'big.bin')?.engine, 'tls');
});
