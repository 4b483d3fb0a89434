import type { ExecutionContext } from 'ava';
import { createCipheriv, createDecipheriv, createHmac, type CipherGCMTypes } from 'node:crypto';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { FtpsControl } from './tls';

/**
 * A TLS 1.3 data connection whose record layer is the test's own after the handshake.
 *
 * Node's TLS client runs the data connection's handshake (resuming the control session, as the
 * server requires) over a stream of ours, and is cut off the moment it has sent its Finished:
 * from then on the test writes records it seals itself straight onto the TCP socket (client
 * sequence numbers from 0, keys from the client's `keylog` event), and reads what the server
 * sends raw, to open it with the server's keys.
 */

export const CONTENT_APPLICATION_DATA = 23;
export const CONTENT_ALERT = 21;
export const CONTENT_HANDSHAKE = 22;
export const CLOSE_NOTIFY = Buffer.from([1, 0]);

// ---- TLS 1.3 record protection (RFC 8446 5.2, 5.3, 7.1, 7.2) --------------------------------

export type Aead = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

export interface Suite {
  name: string;
  aead: Aead;
  hash: 'sha256' | 'sha384';
  keyLen: number;
  hashLen: number;
}

export function suiteOf(standardName: string): Suite {
  const hash = standardName.endsWith('SHA384') ? 'sha384' : 'sha256';
  const aead: Aead = /CHACHA20/.test(standardName) ? 'chacha20-poly1305' : /AES_256/.test(standardName) ? 'aes-256-gcm' : 'aes-128-gcm';
  return { name: standardName, aead, hash, keyLen: aead === 'aes-128-gcm' ? 16 : 32, hashLen: hash === 'sha384' ? 48 : 32 };
}

/** HKDF-Expand-Label(secret, label, "", len), any len. */
export function expandLabel(hash: string, secret: Buffer, label: string, len: number): Buffer {
  const l = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([Buffer.from([len >> 8, len & 0xff, l.length]), l, Buffer.from([0])]);
  const out: Buffer[] = [];
  let prev = Buffer.alloc(0);
  for (let i = 1, n = 0; n < len; i++) {
    prev = createHmac(hash, secret).update(Buffer.concat([prev, info, Buffer.from([i])])).digest();
    out.push(prev);
    n += prev.length;
  }
  return Buffer.concat(out).subarray(0, len);
}

/** One direction's record protection state. */
export class Keys {
  readonly key: Buffer;
  readonly iv: Buffer;
  seq = 0n;

  constructor(
    readonly suite: Suite,
    readonly secret: Buffer,
  ) {
    this.key = expandLabel(suite.hash, secret, 'key', suite.keyLen);
    this.iv = expandLabel(suite.hash, secret, 'iv', 12);
  }

  /** The keys after a KeyUpdate: application_traffic_secret_N+1, sequence back to 0. */
  next(): Keys {
    return new Keys(this.suite, expandLabel(this.suite.hash, this.secret, 'traffic upd', this.suite.hashLen));
  }

  private nonce(): Buffer {
    const n = Buffer.from(this.iv);
    const s = Buffer.alloc(8);
    s.writeBigUInt64BE(this.seq);
    for (let i = 0; i < 8; i++) n[4 + i] ^= s[i];
    return n;
  }

  /** One TLSCiphertext: content, then its real type, then `padding` zeros, sealed. */
  seal(type: number, content: Buffer, padding = 0): Buffer {
    const inner = Buffer.concat([content, Buffer.from([type]), Buffer.alloc(padding)]);
    const len = inner.length + 16;
    const hdr = Buffer.from([CONTENT_APPLICATION_DATA, 3, 3, len >> 8, len & 0xff]);
    const c = createCipheriv(this.suite.aead as CipherGCMTypes, this.key, this.nonce(), { authTagLength: 16 });
    c.setAAD(hdr, { plaintextLength: inner.length });
    const ct = Buffer.concat([c.update(inner), c.final(), c.getAuthTag()]);
    this.seq++;
    return Buffer.concat([hdr, ct]);
  }

  /** Open one whole record (header included); throws when it does not authenticate. */
  open(record: Buffer): { type: number; content: Buffer } {
    const hdr = record.subarray(0, 5);
    const body = record.subarray(5);
    const d = createDecipheriv(this.suite.aead as CipherGCMTypes, this.key, this.nonce(), { authTagLength: 16 });
    d.setAAD(hdr, { plaintextLength: body.length - 16 });
    d.setAuthTag(body.subarray(body.length - 16));
    const inner = Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
    this.seq++;
    let i = inner.length - 1;
    while (i >= 0 && inner[i] === 0) i--;
    return { type: inner[i], content: inner.subarray(0, i) };
  }
}

/** Split a byte stream into whole records (header + body); the incomplete tail is returned apart. */
export function splitRecords(b: Buffer): { records: Buffer[]; rest: Buffer } {
  const records: Buffer[] = [];
  let o = 0;
  while (b.length - o >= 5) {
    const len = b.readUInt16BE(o + 3);
    if (b.length - o < 5 + len) break;
    records.push(b.subarray(o, o + 5 + len));
    o += 5 + len;
  }
  return { records, rest: b.subarray(o) };
}

// ---- a client whose record layer is ours after the handshake ---------------------------------

/**
 * Between Node's TLS client and the TCP socket during the handshake. It forwards Node's records
 * up to and including its first protected one (in TLS 1.3, the client's Finished: nothing else
 * is protected before it) and drops anything Node would write after it, so the socket carries
 * no client record under the application keys until the test writes its own.
 */
export class HandshakeOnly extends Duplex {
  private partial: Buffer = Buffer.alloc(0);
  /** Whole records Node wrote, by content type on the wire. */
  readonly written: number[] = [];
  /** Records Node wrote after its Finished (none reach the wire). */
  dropped = 0;
  private finishedSent = false;
  private detached = false;
  private onFinished: (() => void) | null = null;
  private readonly fromRaw = (d: Buffer): void => {
    this.push(d);
  };

  constructor(readonly raw: net.Socket) {
    super({ allowHalfOpen: true });
    raw.on('data', this.fromRaw);
    raw.on('end', () => {
      if (!this.detached) this.push(null);
    });
  }

  /** Resolves once the client's Finished is on the socket. */
  finished(): Promise<void> {
    if (this.finishedSent) return Promise.resolve();
    return new Promise((resolve) => (this.onFinished = resolve));
  }

  /** Node's TLS socket reads nothing more from the socket. */
  detach(): void {
    this.detached = true;
    this.raw.off('data', this.fromRaw);
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let b = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk;
    const forward: Buffer[] = [];
    while (b.length >= 5 && b.length >= 5 + b.readUInt16BE(3)) {
      const rec = b.subarray(0, 5 + b.readUInt16BE(3));
      b = b.subarray(rec.length);
      this.written.push(rec[0]);
      if (this.finishedSent) {
        this.dropped++;
        continue;
      }
      forward.push(rec);
      if (rec[0] === CONTENT_APPLICATION_DATA) this.finishedSent = true;
    }
    this.partial = Buffer.from(b);
    if (!forward.length) return cb();
    this.raw.write(Buffer.concat(forward), (err) => {
      cb(err);
      if (this.finishedSent && this.onFinished) this.onFinished();
    });
  }

  // Node's TLS socket never ends or destroys the TCP socket: the test does.
  override _final(cb: (err?: Error | null) => void): void {
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    cb(err);
  }
}

export interface RawData {
  raw: net.Socket;
  /** The client's write keys (CLIENT_TRAFFIC_SECRET_0, sequence 0). */
  out: Keys;
  /** The server's write keys (SERVER_TRAFFIC_SECRET_0, sequence 0). */
  in: Keys;
  gate: HandshakeOnly;
  tlsSocket: tls.TLSSocket;
  /** Everything the server sends on the data connection after the handshake. */
  received: Buffer[];
  /** Resolves when the server closed the data connection (FIN, reset, or close). */
  closed: Promise<void>;
  /** Write `b`; resolves when the socket took it (never rejects: a closed socket is a result too). */
  write(b: Buffer): Promise<void>;
}

/** A TLS data connection to `port` resuming the control session, handed over to the test after the handshake. */
export async function rawDataTls(t: ExecutionContext, c: FtpsControl, port: number, opts: tls.ConnectionOptions = {}): Promise<RawData> {
  const raw = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
  raw.setNoDelay(true);
  raw.on('error', () => {});
  t.teardown(() => raw.destroy());
  const gate = new HandshakeOnly(raw);
  // As FtpsControl.dataTls does: the latest session ticket of the control connection.
  const session = c.session ?? c.tlsSocket.getSession();
  if (!session) throw new Error('no TLS session to resume');
  const keylog = new Map<string, Buffer>();
  const s = tls.connect({ socket: gate as unknown as net.Socket, host: '127.0.0.1', rejectUnauthorized: false, session, ...opts });
  s.on('keylog', (line: Buffer) => {
    const p = line.toString('latin1').trim().split(' ');
    if (p.length >= 3) keylog.set(p[0], Buffer.from(p[2], 'hex'));
  });
  s.on('error', () => {});
  t.teardown(() => s.destroy());
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
    s.once('close', () => reject(new Error('connection closed during the TLS handshake')));
  });
  await gate.finished();
  gate.detach();
  const received: Buffer[] = [];
  raw.on('data', (d: Buffer) => received.push(d));
  const closed = new Promise<void>((resolve) => {
    raw.once('end', () => resolve());
    raw.once('close', () => resolve());
  });
  const suite = suiteOf((s.getCipher() as tls.CipherNameAndProtocol & { standardName: string }).standardName);
  const cs = keylog.get('CLIENT_TRAFFIC_SECRET_0');
  const ss = keylog.get('SERVER_TRAFFIC_SECRET_0');
  if (!cs || !ss) throw new Error(`no traffic secrets in the keylog (${[...keylog.keys()].join(', ')})`);
  t.is(s.getProtocol(), 'TLSv1.3');
  t.true(s.isSessionReused(), 'the data connection resumed the control session');
  return {
    raw,
    out: new Keys(suite, cs),
    in: new Keys(suite, ss),
    gate,
    tlsSocket: s,
    received,
    closed,
    write: (b) =>
      new Promise<void>((resolve) => {
        if (raw.destroyed || !raw.writable) return resolve();
        raw.write(b, () => resolve());
      }),
  };
}
