// The gate's reading of how an FTPS upload ended (src/ftp/data/tls-gate.ts, CloseNotifyWatch):
// records sealed here as a client would (RFC 8446 5.2; RFC 5246 with RFC 5288 and RFC 7905),
// fed in chunks of every size, then the verdict. The wire tests
// (test/tls/upload-truncation.test.ts) cover real clients; these cover what they cannot make on
// demand: padding, other alerts, KeyUpdates after many small records or inside a large one.
import test from 'ava';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { CloseNotifyWatch, type TlsRecordState } from '../../src/ftp/data/tls-gate';

const ALERT = 21;
const HANDSHAKE = 22;
const DATA = 23;

/** HKDF-Expand (RFC 5869 2.3), written out here rather than taken from the code under test. */
function hkdfExpand(hash: string, prk: Buffer, info: Buffer, len: number): Buffer {
  const out: Buffer[] = [];
  let t = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(out).length < len; i++) {
    t = createHmac(hash, prk).update(Buffer.concat([t, info, Buffer.from([i])])).digest();
    out.push(t);
  }
  return Buffer.concat(out).subarray(0, len);
}

function label(hash: string, secret: Buffer, name: string, len: number): Buffer {
  const l = Buffer.from(`tls13 ${name}`);
  return hkdfExpand(hash, secret, Buffer.concat([Buffer.from([len >> 8, len & 255, l.length]), l, Buffer.from([0])]), len);
}

const SUITES = [
  { aead: 0 as const, alg: 'aes-128-gcm', klen: 16, sha384: 0 as const },
  { aead: 1 as const, alg: 'aes-256-gcm', klen: 32, sha384: 1 as const },
  { aead: 2 as const, alg: 'chacha20-poly1305', klen: 32, sha384: 0 as const },
];

/** A client's side of a TLS 1.3 connection after its handshake: seals records, updates its keys. */
class Client {
  secret: Buffer;
  key: Buffer;
  iv: Buffer;
  seq: number;
  readonly state: TlsRecordState;
  private readonly hash: string;

  constructor(
    private readonly suite: (typeof SUITES)[number],
    readSeq = 0,
  ) {
    this.hash = suite.sha384 ? 'sha384' : 'sha256';
    this.secret = randomBytes(suite.sha384 ? 48 : 32);
    this.key = label(this.hash, this.secret, 'key', suite.klen);
    this.iv = label(this.hash, this.secret, 'iv', 12);
    this.seq = readSeq;
    this.state = {
      version: 13,
      aead: suite.aead,
      sha384: suite.sha384,
      readKey: this.key,
      readIv: this.iv,
      writeKey: Buffer.alloc(suite.klen),
      writeIv: Buffer.alloc(12),
      readSecret: this.secret,
      writeSecret: Buffer.alloc(this.secret.length),
      readSeq,
      writeSeq: 0,
    };
  }

  seal(type: number, content: Buffer, padding = 0): Buffer {
    const inner = Buffer.concat([content, Buffer.from([type]), Buffer.alloc(padding)]);
    const header = Buffer.from([DATA, 3, 3, (inner.length + 16) >> 8, (inner.length + 16) & 255]);
    const nonce = Buffer.from(this.iv);
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(BigInt(this.seq++));
    for (let i = 0; i < 8; i++) nonce[4 + i] ^= seq[i];
    const c = createCipheriv(this.suite.alg as 'aes-128-gcm', this.key, nonce, { authTagLength: 16 });
    c.setAAD(header, { plaintextLength: inner.length });
    const body = Buffer.concat([c.update(inner), c.final(), c.getAuthTag()]);
    return Buffer.concat([header, body]);
  }

  data(n: number): Buffer {
    return this.seal(DATA, randomBytes(n));
  }

  closeNotify(padding = 0): Buffer {
    return this.seal(ALERT, Buffer.from([1, 0]), padding);
  }

  /** A KeyUpdate (RFC 8446 4.6.3), then every record after it under the next keys. */
  keyUpdate(): Buffer {
    const r = this.seal(HANDSHAKE, Buffer.from([24, 0, 0, 1, 0]));
    this.secret = label(this.hash, this.secret, 'traffic upd', this.secret.length);
    this.key = label(this.hash, this.secret, 'key', this.suite.klen);
    this.iv = label(this.hash, this.secret, 'iv', 12);
    this.seq = 0;
    return r;
  }
}

/** A TLS 1.2 client's side after its Finished (RFC 5246 6.2.3.3): seals records with AES-GCM or ChaCha20-Poly1305. */
class Client12 {
  readonly state: TlsRecordState;
  seq: number;

  constructor(private readonly suite: (typeof SUITES)[number]) {
    const key = randomBytes(suite.klen);
    const iv = randomBytes(suite.aead === 2 ? 12 : 4);
    this.seq = 1; // the Finished was record 0 under these keys
    this.state = { version: 12, aead: suite.aead, sha384: suite.sha384, readKey: key, readIv: iv, writeKey: Buffer.alloc(suite.klen), writeIv: Buffer.alloc(iv.length), readSeq: 1, writeSeq: 0 };
  }

  seal(type: number, content: Buffer): Buffer {
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(BigInt(this.seq++));
    let nonce: Buffer;
    let explicit = Buffer.alloc(0);
    if (this.suite.aead === 2) {
      nonce = Buffer.from(this.state.readIv);
      for (let i = 0; i < 8; i++) nonce[4 + i] ^= seq[i];
    } else {
      explicit = randomBytes(8);
      nonce = Buffer.concat([this.state.readIv, explicit]);
    }
    const aad = Buffer.concat([seq, Buffer.from([type, 3, 3, content.length >> 8, content.length & 255])]);
    const c = createCipheriv(this.suite.alg as 'aes-128-gcm', this.state.readKey, nonce, { authTagLength: 16 });
    c.setAAD(aad, { plaintextLength: content.length });
    const body = Buffer.concat([explicit, c.update(content), c.final(), c.getAuthTag()]);
    return Buffer.concat([Buffer.from([type, 3, 3, body.length >> 8, body.length & 255]), body]);
  }

  data(n: number): Buffer {
    return this.seal(DATA, randomBytes(n));
  }
}

/** The verdict after `records`, cut into pieces of `chunk` bytes (0: as whole records). */
function verdict(version: 12 | 13, state: TlsRecordState | null, records: Buffer[], chunk: number): boolean | null {
  const w = new CloseNotifyWatch(version, state);
  const all = Buffer.concat(records);
  if (chunk === 0) for (const r of records) w.push(r);
  else for (let i = 0; i < all.length; i += chunk) w.push(all.subarray(i, i + chunk));
  return w.verdict();
}

const CHUNKS = [0, 1, 3, 5, 7, 4096];

for (const suite of SUITES) {
  test(`TLS 1.3 ${suite.alg}: a close_notify at the end is the client's close; the last data, a cut record or nothing is not`, (t) => {
    for (const chunk of CHUNKS) {
      const c = new Client(suite);
      const records = [c.data(16384), c.data(16384), c.data(3)];
      const before = [...records];
      records.push(c.closeNotify());
      t.true(verdict(13, c.state, records, chunk), `close_notify, chunks of ${chunk}`);
      t.false(verdict(13, c.state, before, chunk), `3 bytes of data last, chunks of ${chunk}`);
      t.false(verdict(13, c.state, before.slice(0, 2), chunk), `a large record last, chunks of ${chunk}`);
      const cut = Buffer.concat(records);
      t.false(verdict(13, c.state, [cut.subarray(0, cut.length - 1)], chunk), `the close_notify cut by a byte, chunks of ${chunk}`);
      t.false(verdict(13, c.state, [cut.subarray(0, cut.length - 22)], chunk), `inside the close_notify's header, chunks of ${chunk}`);
    }
    t.false(verdict(13, new Client(suite).state, [], 0), 'no record at all');
  });

  test(`TLS 1.3 ${suite.alg}: after the client's KeyUpdates, a close_notify is still found, and data under the new keys is not one`, (t) => {
    for (const chunk of [0, 1, 7]) {
      const c = new Client(suite, 2);
      const records = [c.data(16384), c.data(10), c.keyUpdate(), c.data(16384), c.data(5), c.keyUpdate(), c.data(4)];
      const cut = [...records];
      records.push(c.closeNotify());
      t.true(verdict(13, c.state, records, chunk), `close_notify after two KeyUpdates, chunks of ${chunk}`);
      t.false(verdict(13, c.state, cut, chunk), `4 bytes of data after two KeyUpdates, chunks of ${chunk}`);
    }
  });

  test(`TLS 1.2 ${suite.alg}: a close_notify at the end is the client's close; user_canceled, data or a cut record is not`, (t) => {
    for (const chunk of CHUNKS) {
      const c = new Client12(suite);
      const head = [c.data(16384), c.data(3)];
      const k = c.seq;
      t.true(verdict(12, c.state, [...head, c.seal(ALERT, Buffer.from([1, 0]))], chunk), `close_notify, chunks of ${chunk}`);
      c.seq = k;
      t.false(verdict(12, c.state, [...head, c.seal(ALERT, Buffer.from([1, 90]))], chunk), `user_canceled, chunks of ${chunk}`);
      t.false(verdict(12, c.state, head, chunk), `3 bytes of data last, chunks of ${chunk}`);
      c.seq = k;
      const all = Buffer.concat([...head, c.seal(ALERT, Buffer.from([1, 0]))]);
      t.false(verdict(12, c.state, [all.subarray(0, all.length - 1)], chunk), `the close_notify cut by a byte, chunks of ${chunk}`);
    }
  });
}

test('TLS 1.2 without keys the gate knows (a CBC suite): an alert at the end counts by its type', (t) => {
  const c = new Client12(SUITES[0]);
  t.true(verdict(12, null, [c.data(100), c.seal(ALERT, Buffer.from([1, 0]))], 0));
  t.false(verdict(12, null, [c.data(100)], 0));
});

test('a close_notify padded (RFC 8446 5.4) is found; one padded past what the gate opens is not taken for one', (t) => {
  const c = new Client(SUITES[1]);
  t.true(verdict(13, c.state, [c.data(1000), c.closeNotify(200)], 0));
  const d = new Client(SUITES[1]);
  t.false(verdict(13, d.state, [d.data(1000), d.closeNotify(4000)], 0));
});

test('another alert, or a handshake message, at the end is not a close_notify', (t) => {
  const c = new Client(SUITES[0]);
  t.false(verdict(13, c.state, [c.data(100), c.seal(ALERT, Buffer.from([2, 40]))], 0), 'a fatal alert');
  const d = new Client(SUITES[0]);
  t.false(verdict(13, d.state, [d.data(100), d.seal(ALERT, Buffer.from([1, 90]))], 0), 'user_canceled');
  const e = new Client(SUITES[0]);
  t.false(verdict(13, e.state, [e.data(100), e.keyUpdate()], 0), 'a KeyUpdate last');
});

test('KeyUpdates after any number of small records are followed', (t) => {
  const c = new Client(SUITES[0]);
  const records: Buffer[] = [];
  for (let i = 0; i < 500; i++) records.push(c.data(8));
  records.push(c.keyUpdate());
  for (let i = 0; i < 100; i++) records.push(c.data(8));
  records.push(c.keyUpdate(), c.data(8));
  t.false(verdict(13, c.state, records, 0), 'data under the third keys');
  t.true(verdict(13, c.state, [...records, c.closeNotify()], 0), 'a close_notify under the third keys');
});

test('keys the watch cannot follow, or none: a small last record cannot be told (null), a large one is still not an alert', (t) => {
  // A KeyUpdate padded into a large record is not opened: the records after it are not under keys the watch has.
  const c = new Client(SUITES[2]);
  const records = [c.data(100), c.seal(HANDSHAKE, Buffer.from([24, 0, 0, 1, 0]), 1000)];
  const next = new Client(SUITES[2]);
  next.secret = label('sha256', c.secret, 'traffic upd', 32);
  next.key = label('sha256', next.secret, 'key', 32);
  next.iv = label('sha256', next.secret, 'iv', 12);
  records.push(next.closeNotify());
  t.is(verdict(13, c.state, records, 0), null);
  t.is(verdict(13, c.state, [...records, next.data(16384)], 0), false);
  // A record sealed with other keys.
  const other = new Client(SUITES[2]);
  t.is(verdict(13, c.state, [c.data(100), other.closeNotify()], 0), null);
  // No state (a suite the gate does not know, such as AES-CCM).
  t.is(verdict(13, null, [c.data(100), c.closeNotify()], 0), null);
  t.is(verdict(13, null, [c.data(16384)], 0), false);
});
