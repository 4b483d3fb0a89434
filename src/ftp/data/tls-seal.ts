import { createCipheriv, createHmac } from 'node:crypto';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { TlsRecordState } from './tls-gate';

/**
 * The server's records of a download, sealed here instead of by Node's TLS socket.
 *
 * Over the gate (./tls-gate.ts) Node's TLS socket writes through a JavaScript stream, and Node
 * copies every flush of records into a new buffer on its way there (its JSStream): a megabyte
 * of fresh memory per megabyte sent, returned only when V8 next collects, so in a built server
 * the pages were faulted in anew over and over, and a download went at 150 MB/s where the same
 * TLS socket over the TCP socket went at 1,000. When a download does not go through the engine
 * (a listing, TYPE A, another filesystem, `useSendfile: false`, no addon), the gate knows the
 * connection's state as the engine would get it, so the records are made here into one reused
 * buffer and written to the TCP socket directly: by the addon (`tlsSeal`, with Node's OpenSSL,
 * src/native/engine.c) when it is loaded, else with `node:crypto` (slower: a cipher object and
 * a new buffer per record). Node's TLS socket still reads the client's records (its alerts, its
 * close_notify); what it would write from then on is dropped, its sequence numbers being behind
 * ours.
 */

/** The addon's record functions (src/native/engine.c: js_tls_sealer, js_tls_seal, js_tls_open). */
export interface NativeSeal {
  tlsSealer(state: TlsRecordState): object;
  /** flags 1: a KeyUpdate first; 2: a close_notify last. Returns where the records end. */
  tlsSeal(sealer: object, chunks: Buffer[], out: Buffer, at: number, flags: number): number;
  /**
   * Open the whole records of buf[start, end) in place with the state's read keys (the
   * client's records of an upload, ./tls-open.ts): spans[0] the records opened, then type,
   * offset and length of each. Returns where the records opened end. Throws on a record that is
   * too long or does not authenticate (code EBADMSG) or should not be there (EPROTO), spans
   * then holding the records opened before it.
   */
  tlsOpen(sealer: object, buf: Buffer, start: number, end: number, spans: Int32Array): number;
}

/** What seals a download's records: the addon's or RecordSealer. */
export interface Sealer {
  readonly version: 12 | 13;
  /**
   * `chunks` as application data records into `out` from 0, after a KeyUpdate (TLS 1.3, the
   * write keys moving on) when `keyUpdate`, and before a close_notify when `closeNotify`.
   * `out` has room(total, 2) bytes at least. Returns where the records end.
   */
  seal(chunks: Buffer[], out: Buffer, keyUpdate: boolean, closeNotify: boolean): number;
}

/** Downloads whose records ftpdlib sealed since the process started, by sealer (for tests and metrics). */
export const sealedDownloads = { addon: 0, js: 0 };

/** A sealer for `state`: the addon's when given, else RecordSealer. */
export function sealerFor(state: TlsRecordState, native: NativeSeal | null): Sealer {
  if (!native) {
    sealedDownloads.js++;
    return new RecordSealer(state);
  }
  sealedDownloads.addon++;
  return addonSealer(native, native.tlsSealer(state), state.version);
}

/** The addon's sealer on `handle`, a state made by tlsSealer (which ./tls-open.ts opens records with too). */
export function addonSealer(native: NativeSeal, handle: object, version: 12 | 13): Sealer {
  return {
    version,
    seal: (chunks, out, keyUpdate, closeNotify) => native.tlsSeal(handle, chunks, out, 0, (keyUpdate ? 1 : 0) | (closeNotify ? 2 : 0)),
  };
}

const ALERT = 21;
const HANDSHAKE = 22;
const APPLICATION_DATA = 23;
/** The most plaintext a record carries (RFC 8446 5.1, RFC 5246 6.2.1). */
export const MAX_PLAIN = 16384;
const TAG = 16;
/**
 * What RecordSealer.room allows per record: its overhead (at most 29: header, TLS 1.2 GCM's
 * explicit nonce, tag; TLS 1.3's inner type is less than the nonce) and a small record's
 * content (a KeyUpdate's 5 bytes), with some to spare.
 */
const ROOM_PER_RECORD = 64;

const CLOSE_NOTIFY = Buffer.from([1, 0]);
/** A KeyUpdate that does not ask for the peer's (RFC 8446 4.6.3). */
const KEY_UPDATE = Buffer.from([24, 0, 0, 1, 0]);
const INNER_TYPE = [Buffer.from([ALERT]), Buffer.from([HANDSHAKE]), Buffer.from([APPLICATION_DATA])];

/** Seals records with a connection's write keys, from the sequence number the gate counted, with `node:crypto`. */
export class RecordSealer implements Sealer {
  private key: Buffer;
  private iv: Buffer;
  private secret: Buffer | null;
  private seq: number;
  private readonly algorithm: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';
  private readonly nonce = Buffer.alloc(12);
  /** TLS 1.2's additional data: sequence number, type, version, length. */
  private readonly aad12 = Buffer.alloc(13);

  constructor(private readonly state: TlsRecordState) {
    this.key = Buffer.from(state.writeKey);
    this.iv = Buffer.from(state.writeIv);
    this.secret = state.writeSecret ? Buffer.from(state.writeSecret) : null;
    this.seq = state.writeSeq;
    this.algorithm = state.aead === 0 ? 'aes-128-gcm' : state.aead === 1 ? 'aes-256-gcm' : 'chacha20-poly1305';
  }

  get version(): 12 | 13 {
    return this.state.version;
  }

  /**
   * Room enough for sealing `plain` bytes of application data with `extra` small records
   * besides: ROOM_PER_RECORD for each record (the addon asks for its TLSREC_OVERHEAD + 8, 38).
   */
  static room(plain: number, extra: number): number {
    return plain + (Math.ceil(plain / MAX_PLAIN) + extra) * ROOM_PER_RECORD;
  }

  /** Seal `chunks` as application data records of up to MAX_PLAIN bytes into `out` from `at`; returns where they end. */
  data(chunks: readonly Buffer[], out: Buffer, at: number): number {
    let left = 0;
    for (const c of chunks) left += c.length;
    let ci = 0;
    let co = 0;
    while (left > 0) {
      const len = Math.min(MAX_PLAIN, left);
      at = this.record(APPLICATION_DATA, len, out, at, (cipher, p) => {
        // The record's plaintext, taken across the chunks' boundaries.
        for (let need = len; need > 0; ) {
          while (co === chunks[ci].length) {
            ci++;
            co = 0;
          }
          const c = chunks[ci];
          const n = Math.min(need, c.length - co);
          p += cipher.update(co === 0 && n === c.length ? c : c.subarray(co, co + n)).copy(out, p);
          co += n;
          need -= n;
        }
        return p;
      });
      left -= len;
    }
    return at;
  }

  seal(chunks: Buffer[], out: Buffer, keyUpdate: boolean, closeNotify: boolean): number {
    let at = keyUpdate ? this.keyUpdate(out, 0) : 0;
    at = this.data(chunks, out, at);
    return closeNotify ? this.closeNotify(out, at) : at;
  }

  /** The close_notify alert. */
  closeNotify(out: Buffer, at: number): number {
    return this.record(ALERT, CLOSE_NOTIFY.length, out, at, (cipher, p) => p + cipher.update(CLOSE_NOTIFY).copy(out, p));
  }

  /** TLS 1.3: a KeyUpdate under the current keys, then the next keys for what follows (RFC 8446 7.2). */
  keyUpdate(out: Buffer, at: number): number {
    if (this.state.version !== 13 || !this.secret) return at;
    at = this.record(HANDSHAKE, KEY_UPDATE.length, out, at, (cipher, p) => p + cipher.update(KEY_UPDATE).copy(out, p));
    const hash = this.state.sha384 ? 'sha384' : 'sha256';
    this.secret = expandLabel(hash, this.secret, 'traffic upd', this.secret.length);
    this.key = expandLabel(hash, this.secret, 'key', this.key.length);
    this.iv = expandLabel(hash, this.secret, 'iv', 12);
    this.seq = 0;
    return at;
  }

  /**
   * One record of `type` with `len` bytes of plaintext, which `feed` passes through the cipher
   * (writing what it returns into `out` from the offset it is given, and returning the end).
   * TLS 1.3: RFC 8446 5.2 (the type inside, the outer type application data, the header as
   * additional data). TLS 1.2: RFC 5246 6.2.3.3, GCM's explicit nonce (RFC 5288, the sequence
   * number, as OpenSSL sends it) and ChaCha20-Poly1305's nonce (RFC 7905).
   */
  private record(type: number, len: number, out: Buffer, at: number, feed: (cipher: ReturnType<typeof createCipheriv>, p: number) => number): number {
    const v13 = this.state.version === 13;
    const explicit = !v13 && this.state.aead !== 2 ? 8 : 0;
    const body = explicit + len + (v13 ? 1 : 0) + TAG;
    out[at] = v13 ? APPLICATION_DATA : type;
    out[at + 1] = 3;
    out[at + 2] = 3;
    out.writeUInt16BE(body, at + 3);
    const hi = Math.floor(this.seq / 0x100000000);
    const lo = this.seq >>> 0;
    if (explicit) {
      this.iv.copy(this.nonce, 0, 0, 4);
      this.nonce.writeUInt32BE(hi, 4);
      this.nonce.writeUInt32BE(lo, 8);
      this.nonce.copy(out, at + 5, 4, 12);
    } else {
      this.iv.copy(this.nonce);
      this.nonce.writeUInt32BE((this.nonce.readUInt32BE(4) ^ hi) >>> 0, 4);
      this.nonce.writeUInt32BE((this.nonce.readUInt32BE(8) ^ lo) >>> 0, 8);
    }
    const cipher = createCipheriv(this.algorithm as 'aes-128-gcm', this.key, this.nonce, { authTagLength: TAG });
    if (v13) {
      cipher.setAAD(out.subarray(at, at + 5));
    } else {
      const a = this.aad12;
      a.writeUInt32BE(hi, 0);
      a.writeUInt32BE(lo, 4);
      a[8] = type;
      a[9] = 3;
      a[10] = 3;
      a.writeUInt16BE(len, 11);
      cipher.setAAD(a);
    }
    let p = feed(cipher, at + 5 + explicit);
    if (v13) p += cipher.update(INNER_TYPE[type - ALERT]).copy(out, p);
    p += cipher.final().copy(out, p);
    p += cipher.getAuthTag().copy(out, p);
    this.seq++;
    return p;
  }
}

/**
 * From now on what is written to `s` (a TLS socket over a gate, after its handshake) is sealed
 * by `sealer` and written to `raw`, the TCP socket; ending `s` sends the close_notify and a FIN.
 * `asked` says how many KeyUpdates the client has asked ours with: one goes before the next
 * records.
 *
 * Replaces the socket's _write, _writev and _final (the Writable's own hooks) on this one
 * object, so that everything else the transfer uses (its events, backpressure, `end()`,
 * `destroy()`) stays the TLS socket's. Records are sealed into one buffer, reused: the stream
 * hands over the next chunk only once the TCP socket took the last.
 */
export function sealWrites(s: tls.TLSSocket, raw: net.Socket, sealer: Sealer, asked: () => number): void {
  let out: Buffer | null = null;
  let answered = 0;
  const flush = (chunks: Buffer[], end: boolean, cb: (err?: Error | null) => void): void => {
    let plain = 0;
    for (const c of chunks) plain += c.length;
    const need = RecordSealer.room(plain, 2);
    if (!out || out.length < need) out = Buffer.allocUnsafeSlow(need);
    const now = sealer.version === 13 ? asked() : 0;
    let at: number;
    try {
      at = sealer.seal(chunks, out, now > answered, end); // one KeyUpdate answers every request so far
    } catch (err) {
      return cb(err as Error);
    }
    answered = now;
    if (at === 0) return cb();
    raw.write(out.subarray(0, at), cb);
  };
  // A net.Socket does not decode strings before _write (decodeStrings: false).
  const bytes = (chunk: Buffer | string, enc: BufferEncoding): Buffer => (typeof chunk === 'string' ? Buffer.from(chunk, enc) : chunk);
  const w = s as unknown as {
    _write: (chunk: Buffer | string, enc: BufferEncoding, cb: (err?: Error | null) => void) => void;
    _writev: (chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>, cb: (err?: Error | null) => void) => void;
    _final: (cb: (err?: Error | null) => void) => void;
  };
  w._write = (chunk, enc, cb) => flush([bytes(chunk, enc)], false, cb);
  w._writev = (chunks, cb) =>
    flush(
      chunks.map((c) => bytes(c.chunk, c.encoding)),
      false,
      cb,
    );
  w._final = (cb) =>
    flush([], true, (err) => {
      if (err) return cb(err);
      // Done once the FIN is out (the TCP socket's 'finish'), as Node's TLS socket is; a TCP
      // socket that fails first (the client's reset) fails the end, and so the download.
      raw.end((e?: Error | null) => cb(e ?? null));
    });
}

/** HKDF-Expand-Label(secret, label, "", len), RFC 8446 7.1 (len at most the hash's size). */
export function expandLabel(hash: string, secret: Buffer, label: string, len: number): Buffer {
  const l = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([Buffer.from([len >> 8, len & 0xff, l.length]), l, Buffer.from([0, 1])]);
  return createHmac(hash, secret).update(info).digest().subarray(0, len);
}
