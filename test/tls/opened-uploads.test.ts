import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nativeTlsAvailable } from '../../src/ftp/data/engines';
import { openedUploads } from '../../src/ftp/data/tls-open';
import { randomContent, sha256 } from '../helpers/data-client';
import { PASS, USER, startServer, type StartOptions, type TestServer } from '../helpers/server';
import { FtpsControl, tlsOption } from '../helpers/tls';
import { CLOSE_NOTIFY, CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_HANDSHAKE, rawDataTls, splitRecords, type Keys, type RawData } from '../helpers/tls-records';

/**
 * FTPS uploads the engine does not carry (TYPE A, another filesystem, `useSendfile: false`) have
 * the client's records opened by the addon (src/ftp/data/tls-open.ts) rather than by Node's TLS
 * socket over the gate. The client here is the test's own record layer (rawDataTls), so each
 * record and each TCP write is the test's choice: records split anywhere across reads, of every
 * size and padding, a KeyUpdate that asks for the server's, alerts, a record that does not
 * authenticate, and bytes after the close_notify. On the wire: the file holds exactly the bytes
 * of the data records up to the close_notify, only a close_notify makes a 226, and whatever the
 * server writes back opens under the keys the client expects.
 */

const OPTS: StartOptions = { useSendfile: false };

async function loggedIn(t: ExecutionContext, opts: StartOptions = OPTS): Promise<{ s: TestServer; c: FtpsControl }> {
  t.true(nativeTlsAvailable(), "the addon reaches Node's OpenSSL");
  const s = await startServer(t, { tls: tlsOption(), ...opts });
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.secureLogin(USER, PASS);
  return { s, c };
}

/** A raw TLS data connection and STOR `name` on it, answered 150 or 125. */
async function storRaw(t: ExecutionContext, c: FtpsControl, name: string): Promise<RawData> {
  const d = await rawDataTls(t, c, await c.epsv());
  t.regex(String((await c.cmd(`STOR ${name}`)).code), /^1(25|50)$/);
  return d;
}

/** Write `bytes` in pieces of the sizes in `cuts` (in turn), each after the last was taken and the loop turned. */
async function writeCut(d: RawData, bytes: Buffer, cuts: number[]): Promise<void> {
  for (let o = 0, i = 0; o < bytes.length; i++) {
    const n = Math.min(cuts[i % cuts.length], bytes.length - o);
    await d.write(bytes.subarray(o, o + n));
    await new Promise((r) => setImmediate(r));
    o += n;
  }
}

/** The server's records after the handshake, opened in order (a KeyUpdate moves the keys on). */
function serverRecords(t: ExecutionContext, d: RawData): Array<{ type: number; content: Buffer }> {
  const { records, rest } = splitRecords(Buffer.concat(d.received));
  t.is(rest.length, 0, 'the server sent whole records only');
  let keys: Keys = d.in;
  return records.map((r) => {
    const o = keys.open(r);
    if (o.type === CONTENT_HANDSHAKE && o.content[0] === 24) keys = keys.next();
    return o;
  });
}

function lastStor(s: TestServer): Record<string, unknown> | undefined {
  return s.records.filter((r) => r.transfer === 'STOR').at(-1);
}

function stored(s: TestServer, name: string): Buffer {
  const f = path.join(s.root, name);
  return fs.existsSync(f) ? fs.readFileSync(f) : Buffer.alloc(0);
}

test.serial('records of every size and padding, split anywhere across reads, then close_notify: 226 with exactly their bytes, and the server answers with its close_notify', async (t) => {
  const { s, c } = await loggedIn(t);
  const before = openedUploads.addon;
  const d = await storRaw(t, c, 'cut.bin');
  const body = randomContent(600_000);
  const sizes = [1, 0, 2, 16384, 5, 1000, 16383, 0, 7, 16384, 300];
  const records: Buffer[] = [];
  for (let o = 0, i = 0; o < body.length; i++) {
    const n = Math.min(sizes[i % sizes.length], body.length - o);
    // Padding (TLS 1.3 hides a record's length): none, a little, and up to the limit (content,
    // type and padding at most 2^14 + 1 bytes, RFC 8446 5.4).
    const pad = i % 3 === 0 ? 0 : i % 3 === 1 ? Math.min(17, 16384 - n) : 16384 - n;
    records.push(d.out.seal(CONTENT_APPLICATION_DATA, body.subarray(o, o + n), pad));
    o += n;
  }
  records.push(d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
  // Cuts inside headers (1, 4), at a header's end (5), inside bodies, and across several records.
  await writeCut(d, Buffer.concat(records), [1, 4, 5, 3, 16390, 2, 70000, 9]);
  const fin = await c.read(20000);
  t.is(fin?.code, 226, `${fin?.code} ${fin?.text}`);
  t.is(sha256(stored(s, 'cut.bin')), sha256(body), 'the file is the data records, in order');
  await d.closed;
  const back = serverRecords(t, d);
  t.deepEqual(
    back.map((r) => [r.type, r.content.toString('hex')]),
    [[CONTENT_ALERT, '0100']],
    'the server wrote its close_notify, and nothing else',
  );
  const rec = lastStor(s);
  t.is(rec?.engine, 'stream');
  t.is(rec?.sealedBy, 'addon');
  t.is(rec?.result, 'ok');
  t.is(openedUploads.addon, before + 1, 'the addon opened the records (serial: no other upload counted)');
  t.is((await c.cmd('NOOP')).code, 200);
});

test('a KeyUpdate that asks for the server\'s, in the middle of an upload: the data under the next keys is stored, and the server answers with a KeyUpdate, then its close_notify under its next keys', async (t) => {
  const { s, c } = await loggedIn(t);
  const d = await storRaw(t, c, 'ku.bin');
  const body = randomContent(200_000);
  let out = d.out;
  const parts: Buffer[] = [];
  for (let o = 0; o < 100_000; o += 16384) parts.push(out.seal(CONTENT_APPLICATION_DATA, body.subarray(o, Math.min(o + 16384, 100_000))));
  parts.push(out.seal(CONTENT_HANDSHAKE, Buffer.from([24, 0, 0, 1, 1]))); // update_requested
  out = out.next();
  for (let o = 100_000; o < body.length; o += 16384) parts.push(out.seal(CONTENT_APPLICATION_DATA, body.subarray(o, Math.min(o + 16384, body.length))));
  parts.push(out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
  await writeCut(d, Buffer.concat(parts), [3000, 11, 65536]);
  const fin = await c.read(20000);
  t.is(fin?.code, 226, `${fin?.code} ${fin?.text}`);
  t.is(sha256(stored(s, 'ku.bin')), sha256(body));
  await d.closed;
  t.deepEqual(
    serverRecords(t, d).map((r) => [r.type, r.content.toString('hex')]),
    [
      [CONTENT_HANDSHAKE, '1800000100'],
      [CONTENT_ALERT, '0100'],
    ],
    'a KeyUpdate (update_not_requested), then the close_notify under the next keys',
  );
  t.is(lastStor(s)?.sealedBy, 'addon');
});

/**
 * Bad endings: each a 426 (never a 226), with the log's result as the engine gives it (EBADMSG:
 * no record or one that does not open; EPROTO: one that should not be there; ECONNRESET: the
 * client's alert, or its FIN); the file keeps at most the bytes before.
 */
const BAD: Array<{ name: string; result: string; tail: (d: RawData) => Buffer; whole?: boolean }> = [
  {
    name: 'a record that does not authenticate (one bit flipped)',
    result: 'EBADMSG',
    // Written at once, so that the records before the bad one are opened in the same call: they
    // are in the file all the same.
    whole: true,
    tail: (d) => {
      const r = d.out.seal(CONTENT_APPLICATION_DATA, randomContent(1000));
      r[20] ^= 1;
      return Buffer.concat([r, d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY)]);
    },
  },
  {
    name: 'a fatal alert (internal_error)',
    result: 'ECONNRESET',
    tail: (d) => d.out.seal(CONTENT_ALERT, Buffer.from([2, 80])),
  },
  {
    name: 'a user_canceled alert, then a close_notify (the client called it off)',
    result: 'ECONNRESET',
    tail: (d) => Buffer.concat([d.out.seal(CONTENT_ALERT, Buffer.from([1, 90])), d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY)]),
  },
  {
    name: 'a handshake message other than KeyUpdate (a ClientHello)',
    result: 'EPROTO',
    tail: (d) => Buffer.concat([d.out.seal(CONTENT_HANDSHAKE, Buffer.from([1, 0, 0, 2, 3, 3])), d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY)]),
  },
  {
    name: 'a record header longer than TLS allows',
    result: 'EBADMSG',
    tail: () => Buffer.from([23, 3, 3, 0x48, 0x01, 1, 2, 3]),
  },
  {
    name: 'a record cut short by a FIN',
    result: 'ECONNRESET',
    tail: (d) => d.out.seal(CONTENT_APPLICATION_DATA, randomContent(5000)).subarray(0, 3000),
  },
];

for (const bad of BAD) {
  test(`an upload that ends with ${bad.name}: 426, the session goes on`, async (t) => {
    const { s, c } = await loggedIn(t);
    const d = await storRaw(t, c, 'bad.bin');
    const head = randomContent(50_000);
    const parts = [];
    for (let o = 0; o < head.length; o += 16384) parts.push(d.out.seal(CONTENT_APPLICATION_DATA, head.subarray(o, o + 16384)));
    await writeCut(d, Buffer.concat([...parts, bad.tail(d)]), [bad.whole ? 1 << 20 : 7000]);
    d.raw.end();
    const fin = await c.read(20000);
    t.is(fin?.code, 426, `${fin?.code} ${fin?.text}`);
    t.regex(fin?.text ?? '', bad.result === 'ECONNRESET' ? /^Connection closed/ : /^TLS error on the data connection/);
    const got = stored(s, 'bad.bin');
    if (bad.whole) t.true(got.equals(head), `the file has every byte before the bad record (${got.length} of ${head.length})`);
    else t.true(got.length <= head.length && got.equals(head.subarray(0, got.length)), `the file keeps a prefix of what came before (${got.length} bytes)`);
    const rec = lastStor(s);
    t.is(rec?.result, bad.result);
    t.is(rec?.sealedBy, 'addon');
    t.is((await c.cmd('NOOP')).code, 200, 'no 226 follows the 426, and the session goes on');
  });
}

test('bytes after the close_notify (a record, then not even one): 226 with the data records\' bytes only', async (t) => {
  const { s, c } = await loggedIn(t);
  const d = await storRaw(t, c, 'uc.bin');
  const body = randomContent(40_000);
  const parts = [d.out.seal(CONTENT_APPLICATION_DATA, body.subarray(0, 16384)), d.out.seal(CONTENT_APPLICATION_DATA, body.subarray(16384, 32768))];
  parts.push(d.out.seal(CONTENT_APPLICATION_DATA, body.subarray(32768)));
  parts.push(d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
  parts.push(d.out.seal(CONTENT_APPLICATION_DATA, Buffer.from('after the end')), Buffer.from('not even a record'));
  await writeCut(d, Buffer.concat(parts), [100_000]);
  const fin = await c.read(20000);
  t.is(fin?.code, 226, `${fin?.code} ${fin?.text}`);
  t.is(sha256(stored(s, 'uc.bin')), sha256(body), 'nothing after the close_notify is stored');
  t.is(lastStor(s)?.sealedBy, 'addon');
});

test("TYPE A: a text upload's records are opened by the addon, and its line ends converted", async (t) => {
  const { s, c } = await loggedIn(t, {});
  await c.ok('TYPE A', 200);
  const d = await storRaw(t, c, 'a.txt');
  const lines = 'a line\r\n'.repeat(20_000);
  const bytes = Buffer.from(lines, 'latin1');
  const parts = [];
  for (let o = 0; o < bytes.length; o += 1000) parts.push(d.out.seal(CONTENT_APPLICATION_DATA, bytes.subarray(o, o + 1000)));
  parts.push(d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
  await writeCut(d, Buffer.concat(parts), [4093]);
  t.is((await c.read(20000))?.code, 226);
  t.is(stored(s, 'a.txt').toString('latin1'), 'a line\n'.repeat(20_000));
  t.is(lastStor(s)?.engine, 'stream');
  t.is(lastStor(s)?.sealedBy, 'addon');
});

// The same answer on every path: the engine's, and Node's TLS socket (whose records the gate
// watches as they pass) as well as the addon's opening.
for (const p of [
  { name: 'the engine', opts: {}, engine: 'tls' },
  { name: "Node's TLS socket (nativeTls: false)", opts: { nativeTls: false }, engine: 'stream' },
]) {
  test(`a user_canceled alert, then a close_notify, on ${p.name}: 426, never 226`, async (t) => {
    const { s, c } = await loggedIn(t, p.opts);
    const d = await storRaw(t, c, 'uc.bin');
    const parts = [d.out.seal(CONTENT_APPLICATION_DATA, randomContent(30_000).subarray(0, 16384))];
    parts.push(d.out.seal(CONTENT_ALERT, Buffer.from([1, 90])), d.out.seal(CONTENT_ALERT, CLOSE_NOTIFY));
    await writeCut(d, Buffer.concat(parts), [100_000]);
    const fin = await c.read(20000);
    t.is(fin?.code, 426, `${fin?.code} ${fin?.text}`);
    t.is(lastStor(s)?.engine, p.engine);
    t.is(lastStor(s)?.result, 'ECONNRESET');
    t.is((await c.cmd('NOOP')).code, 200);
  });
}

test('an opened upload cut by a TCP reset, and one stopped by ABOR: 426 (then 226 for ABOR), the partial file kept, the session goes on', async (t) => {
  const { s, c } = await loggedIn(t);
  const head = randomContent(200_000);
  const records = (d: RawData): Buffer => {
    const parts = [];
    for (let o = 0; o < head.length; o += 16384) parts.push(d.out.seal(CONTENT_APPLICATION_DATA, head.subarray(o, o + 16384)));
    return Buffer.concat(parts);
  };
  const d1 = await storRaw(t, c, 'reset.bin');
  await writeCut(d1, records(d1), [65536]);
  await new Promise((r) => setTimeout(r, 100));
  d1.raw.resetAndDestroy();
  const fin1 = await c.read(10000);
  t.is(fin1?.code, 426, `reset: ${fin1?.code} ${fin1?.text}`);
  t.is(lastStor(s)?.sealedBy, 'addon');
  const got = stored(s, 'reset.bin');
  t.true(got.length > 0 && got.equals(head.subarray(0, got.length)), `the partial file is a prefix (${got.length} bytes)`);
  const d2 = await storRaw(t, c, 'abor.bin');
  await writeCut(d2, records(d2), [65536]);
  const at = Date.now();
  c.send('ABOR\r\n');
  const r1 = await c.read(5000);
  const r2 = await c.read(5000);
  t.deepEqual([r1?.code, r2?.code], [426, 226], `ABOR: ${r1?.code} ${r1?.text} / ${r2?.code} ${r2?.text}`);
  t.true(Date.now() - at < 1000);
  t.is(lastStor(s)?.result, 'FTPD_ERR_ABORTED');
  t.is((await c.cmd('NOOP')).code, 200);
});
