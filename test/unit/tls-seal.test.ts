import test, { type ExecutionContext } from 'ava';
import { createDecipheriv, randomBytes, type CipherGCMTypes } from 'node:crypto';
import type { TlsRecordState } from '../../src/ftp/data/tls-gate';
import { MAX_PLAIN, RecordSealer, sealerFor, type Sealer } from '../../src/ftp/data/tls-seal';
import { tlsSeal } from '../../src/native';
import { CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_HANDSHAKE, Keys, expandLabel, splitRecords, suiteOf } from '../helpers/tls-records';

/**
 * The records of a download that ftpdlib seals itself (src/ftp/data/tls-seal.ts): the addon's
 * sealer and the node:crypto one make the same bytes, and those bytes open, with keys the test
 * derives on its own, to the plaintext in order: 16 KiB records at most, a KeyUpdate before the
 * data when one was asked (the data after it under the next keys), a close_notify last.
 */

interface Case {
  name: string;
  version: 12 | 13;
  aead: 0 | 1 | 2;
  sha384: 0 | 1;
}

const CASES: Case[] = [
  { name: 'TLS 1.3 AES-128-GCM', version: 13, aead: 0, sha384: 0 },
  { name: 'TLS 1.3 AES-256-GCM', version: 13, aead: 1, sha384: 1 },
  { name: 'TLS 1.3 ChaCha20-Poly1305', version: 13, aead: 2, sha384: 0 },
  { name: 'TLS 1.2 AES-128-GCM', version: 12, aead: 0, sha384: 0 },
  { name: 'TLS 1.2 AES-256-GCM', version: 12, aead: 1, sha384: 1 },
  { name: 'TLS 1.2 ChaCha20-Poly1305', version: 12, aead: 2, sha384: 0 },
];

const STANDARD = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
const ALGORITHM = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'] as const;

/** A state as the gate derives it: TLS 1.3 keys from a traffic secret, TLS 1.2 key and IV (GCM: a 4-byte salt) as they come. */
function stateOf(c: Case, writeSeq: number): TlsRecordState {
  const klen = c.aead === 0 ? 16 : 32;
  if (c.version === 13) {
    const suite = suiteOf(STANDARD[c.aead]);
    const ws = randomBytes(suite.hashLen);
    const rs = randomBytes(suite.hashLen);
    return {
      version: 13,
      aead: c.aead,
      sha384: c.sha384,
      readKey: expandLabel(suite.hash, rs, 'key', klen),
      readIv: expandLabel(suite.hash, rs, 'iv', 12),
      writeKey: expandLabel(suite.hash, ws, 'key', klen),
      writeIv: expandLabel(suite.hash, ws, 'iv', 12),
      readSecret: rs,
      writeSecret: ws,
      readSeq: 0,
      writeSeq,
    };
  }
  const ivlen = c.aead === 2 ? 12 : 4;
  return { version: 12, aead: c.aead, sha384: c.sha384, readKey: randomBytes(klen), readIv: randomBytes(ivlen), writeKey: randomBytes(klen), writeIv: randomBytes(ivlen), readSeq: 0, writeSeq };
}

/** The test's own reader of the server's records (RFC 8446 5.2; RFC 5246 6.2.3.3, RFC 5288, RFC 7905). */
class Reader {
  private keys13: Keys | null = null;
  private seq: bigint;

  constructor(
    private readonly st: TlsRecordState,
    seq: number,
  ) {
    this.seq = BigInt(seq);
    if (st.version === 13) {
      this.keys13 = new Keys(suiteOf(STANDARD[st.aead]), st.writeSecret!);
      this.keys13.seq = this.seq;
    }
  }

  open(t: ExecutionContext, rec: Buffer): { type: number; content: Buffer } {
    if (this.keys13) {
      t.is(rec[0], CONTENT_APPLICATION_DATA, 'TLS 1.3 records show application data outside');
      const r = this.keys13.open(rec);
      if (r.type === CONTENT_HANDSHAKE && r.content[0] === 24) this.keys13 = this.keys13.next(); // a KeyUpdate
      return r;
    }
    const type = rec[0];
    const body = rec.subarray(5);
    const gcm = this.st.aead !== 2;
    const explicit = gcm ? 8 : 0;
    const len = body.length - explicit - 16;
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(this.seq++);
    let nonce: Buffer;
    if (gcm) {
      t.true(body.subarray(0, 8).equals(seq), "GCM's explicit nonce is the sequence number");
      nonce = Buffer.concat([this.st.writeIv, body.subarray(0, 8)]);
    } else {
      nonce = Buffer.from(this.st.writeIv);
      for (let i = 0; i < 8; i++) nonce[4 + i] ^= seq[i];
    }
    const d = createDecipheriv(ALGORITHM[this.st.aead] as CipherGCMTypes, this.st.writeKey, nonce, { authTagLength: 16 });
    d.setAAD(Buffer.concat([seq, Buffer.from([type, 3, 3, len >> 8, len & 0xff])]), { plaintextLength: len });
    d.setAuthTag(body.subarray(body.length - 16));
    return { type, content: Buffer.concat([d.update(body.subarray(explicit, body.length - 16)), d.final()]) };
  }
}

/**
 * Chunk shapes: a record across two chunks, an empty chunk, a chunk of exactly one record, a
 * 1-byte tail completing a record; then a chunk that completes a record begun before it and
 * leaves a tail of its own.
 */
function chunks(): Buffer[] {
  return [20000, 5, 16384, 0, 100, 16379, 1, 10000, 20000].map((n) => randomBytes(n));
}

function seal(s: Sealer, parts: Buffer[], keyUpdate: boolean, closeNotify: boolean): Buffer {
  const total = parts.reduce((n, b) => n + b.length, 0);
  const out = Buffer.alloc(RecordSealer.room(total, 2));
  return out.subarray(0, s.seal(parts, out, keyUpdate, closeNotify));
}

test('the addon can seal records here (its sealer is what FTPS downloads off the engine use)', (t) => {
  t.truthy(tlsSeal, 'src/native exports tlsSeal where the addon reaches OpenSSL');
});

for (const c of CASES) {
  test(`${c.name}: the addon and node:crypto seal the same records, call after call`, (t) => {
    const st = stateOf(c, 7);
    const js = sealerFor(st, null);
    const native = sealerFor(st, tlsSeal);
    t.true(js instanceof RecordSealer);
    t.false(native instanceof RecordSealer);
    for (const [ku, cn] of [
      [false, false],
      [c.version === 13, false],
      [false, false],
      [false, true],
    ] as const) {
      const parts = chunks();
      const a = seal(js, parts, ku, cn);
      const b = seal(native, parts, ku, cn);
      t.true(a.length > 0);
      t.true(a.equals(b), `keyUpdate ${ku}, closeNotify ${cn}: ${a.length} bytes against ${b.length}`);
    }
    t.is(seal(js, [], false, false).length, 0, 'nothing to seal: no record');
    t.is(seal(native, [Buffer.alloc(0)], false, false).length, 0);
  });

  test(`${c.name}: the records open in order to the data, at most 16 KiB each, KeyUpdate first when asked, close_notify last`, (t) => {
    const st = stateOf(c, 3);
    const native = sealerFor(st, tlsSeal);
    const reader = new Reader(st, 3);
    const first = chunks();
    const second = [randomBytes(3 * MAX_PLAIN + 17)];
    // A KeyUpdate asked for under TLS 1.2 (which has none) adds nothing.
    const wire = Buffer.concat([seal(native, first, true, false), seal(native, second, false, true)]);
    const { records, rest } = splitRecords(wire);
    t.is(rest.length, 0, 'whole records only');
    const opened = records.map((r) => reader.open(t, r));
    if (c.version === 13) {
      const ku = opened.shift();
      t.is(ku?.type, CONTENT_HANDSHAKE);
      t.is(ku?.content.toString('hex'), '1800000100', 'KeyUpdate, update_not_requested');
    }
    const last = opened.pop();
    t.is(last?.type, CONTENT_ALERT);
    t.is(last?.content.toString('hex'), '0100', 'close_notify');
    t.true(
      opened.every((r) => r.type === CONTENT_APPLICATION_DATA && r.content.length > 0 && r.content.length <= MAX_PLAIN),
      'application data records of 1 to 16384 bytes',
    );
    t.true(Buffer.concat(opened.map((r) => r.content)).equals(Buffer.concat([...first, ...second])), 'the data, in order');
    // Full records wherever the data allowed: a record across two chunks is put together.
    t.is(opened.length, Math.ceil(Buffer.concat(first).length / MAX_PLAIN) + 4);
    t.false(opened.some((r) => r.type === CONTENT_HANDSHAKE), 'no KeyUpdate but the one asked for (TLS 1.3)');
  });
}

test('the addon refuses an output buffer without room, and uses no sequence number doing so', (t) => {
  const st = stateOf(CASES[1], 0);
  const native = sealerFor(st, tlsSeal);
  const data = randomBytes(40000);
  t.throws(() => native.seal([data], Buffer.alloc(40000), false, true), { instanceOf: RangeError, message: /no room/ });
  const wire = seal(native, [data], false, true);
  const reader = new Reader(st, 0);
  const opened = splitRecords(wire).records.map((r) => reader.open(t, r));
  t.true(Buffer.concat(opened.slice(0, -1).map((r) => r.content)).equals(data), 'the records after the refusal start at sequence 0');
  t.throws(() => tlsSeal!.tlsSeal({}, [data], Buffer.alloc(50000), 0, 0), { instanceOf: TypeError }, 'only what tlsSealer made is a sealer');
  t.throws(() => tlsSeal!.tlsSealer({ version: 13 } as unknown as TlsRecordState), { instanceOf: RangeError });
});
