// The gate's reading of how a TLS 1.3 upload ended (src/ftp/data/tls-gate.ts): records sealed
// here as a client would (RFC 8446 5.2), fed in chunks of every size, then the verdict. The
// wire tests (test/tls/upload-truncation.test.ts) cover real clients; these cover what they
// cannot make on demand: a KeyUpdate, padding, many small records.
import test from 'ava';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { RecordTail, endsWithCloseNotify13, type TlsRecordState } from '../../src/ftp/data/tls-gate';

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

/** Feed `records` to a RecordTail cut into pieces of `chunk` bytes (0: as whole records). */
function tailOf(records: Buffer[], chunk: number): RecordTail {
  const t = new RecordTail();
  const all = Buffer.concat(records);
  if (chunk === 0) for (const r of records) t.push(r);
  else for (let i = 0; i < all.length; i += chunk) t.push(all.subarray(i, i + chunk));
  return t;
}

const CHUNKS = [0, 1, 3, 5, 7, 4096];

for (const suite of SUITES) {
  test(`${suite.alg}: a close_notify at the end is the client's close; the last data, a cut record or nothing is not`, (t) => {
    for (const chunk of CHUNKS) {
      const c = new Client(suite);
      const records = [c.data(16384), c.data(16384), c.data(3)];
      const before = [...records];
      records.push(c.closeNotify());
      t.true(endsWithCloseNotify13(c.state, tailOf(records, chunk)), `close_notify, chunks of ${chunk}`);
      t.false(endsWithCloseNotify13(c.state, tailOf(before, chunk)), `3 bytes of data last, chunks of ${chunk}`);
      t.false(endsWithCloseNotify13(c.state, tailOf([...before.slice(0, 2)], chunk)), `a large record last, chunks of ${chunk}`);
      const cut = Buffer.concat(records);
      t.false(endsWithCloseNotify13(c.state, tailOf([cut.subarray(0, cut.length - 1)], chunk)), `the close_notify cut by a byte, chunks of ${chunk}`);
      t.false(endsWithCloseNotify13(c.state, tailOf([cut.subarray(0, cut.length - 22)], chunk)), `inside the close_notify's header, chunks of ${chunk}`);
    }
    t.false(endsWithCloseNotify13(new Client(suite).state, new RecordTail()), 'no record at all');
  });

  test(`${suite.alg}: after the client's KeyUpdates, a close_notify is still found, and data under the new keys is not one`, (t) => {
    for (const chunk of [0, 1, 7]) {
      const c = new Client(suite, 2);
      const records = [c.data(16384), c.data(10), c.keyUpdate(), c.data(16384), c.data(5), c.keyUpdate(), c.data(4)];
      const cut = [...records];
      records.push(c.closeNotify());
      t.true(endsWithCloseNotify13(c.state, tailOf(records, chunk)), `close_notify after two KeyUpdates, chunks of ${chunk}`);
      t.false(endsWithCloseNotify13(c.state, tailOf(cut, chunk)), `4 bytes of data after two KeyUpdates, chunks of ${chunk}`);
    }
  });
}

test('a close_notify padded (RFC 8446 5.4) is found; one padded past what the gate keeps is not taken for one', (t) => {
  const c = new Client(SUITES[1]);
  const head = [c.data(1000)];
  t.true(endsWithCloseNotify13(c.state, tailOf([...head, c.closeNotify(200)], 0)));
  const d = new Client(SUITES[1]);
  t.false(endsWithCloseNotify13(d.state, tailOf([d.data(1000), d.closeNotify(4000)], 0)));
});

test('another alert, or a handshake message, at the end is not a close_notify', (t) => {
  const c = new Client(SUITES[0]);
  t.false(endsWithCloseNotify13(c.state, tailOf([c.data(100), c.seal(ALERT, Buffer.from([2, 40]))], 0)), 'a fatal alert');
  const d = new Client(SUITES[0]);
  t.false(endsWithCloseNotify13(d.state, tailOf([d.data(100), d.seal(ALERT, Buffer.from([1, 90]))], 0)), 'user_canceled');
  const e = new Client(SUITES[0]);
  t.false(endsWithCloseNotify13(e.state, tailOf([e.data(100), e.keyUpdate()], 0)), 'a KeyUpdate last');
});

test('a last record that does not open (not under any key the gate can follow) cannot be told: null', (t) => {
  const c = new Client(SUITES[2]);
  const other = new Client(SUITES[2]);
  t.is(endsWithCloseNotify13(c.state, tailOf([c.data(100), other.closeNotify()], 0)), null);
});

test('a KeyUpdate behind more small records than the gate keeps: the verdict is null, not a guess', (t) => {
  const c = new Client(SUITES[0]);
  const records: Buffer[] = [];
  for (let i = 0; i < 70; i++) records.push(c.data(8));
  records.push(c.keyUpdate(), c.closeNotify());
  t.is(endsWithCloseNotify13(c.state, tailOf(records, 0)), null);
  // Without a KeyUpdate the last record opens with the keys of the handshake, however many came before.
  const d = new Client(SUITES[0]);
  const plain: Buffer[] = [];
  for (let i = 0; i < 70; i++) plain.push(d.data(8));
  t.true(endsWithCloseNotify13(d.state, tailOf([...plain, d.closeNotify()], 0)));
  t.false(endsWithCloseNotify13(d.state, tailOf(plain, 0)));
});
