import { createDecipheriv, createHmac } from 'node:crypto';
import type * as net from 'node:net';
import { Duplex } from 'node:stream';
import type * as tls from 'node:tls';
import { handleFd, type DataConnection } from './connection';
import { expandLabel, sealerFor, sealWrites, type NativeSeal } from './tls-seal';
import { MAX_RECORD_BODY, RecordReader, recordsFor } from './tls-open';

/**
 * FTPS data connections whose records the native engine can seal and open itself.
 *
 * Node runs the TLS handshake (certificates, session resumption, client certificates, every
 * check stays Node's), but over a `TlsGate` instead of the TCP socket: a stream in between that
 * hands Node the client's bytes one whole record at a time and stops at the record that
 * completes the handshake. At that point Node has read nothing that follows, so the
 * connection's state is known exactly: the traffic secrets (Node's `keylog` event), the cipher
 * suite, and how many records each side has sent under the current keys (the gate counts them
 * both ways). A binary transfer of a local file can then hand the socket's descriptor, that
 * state and the bytes held behind the handshake to the engine, whose I/O thread does what
 * kernel TLS would do (src/native/tlsrec.c). Anything else (a listing, TYPE A, another
 * filesystem, a suite the engine lacks) opens the gate, and Node's TLS socket carries the
 * connection as before.
 *
 * Node's TLS socket reports a peer's close_notify and a bare TCP FIN alike (both are 'end'),
 * so an open gate also reads the headers of the client's records as it passes them on, and
 * keeps the last one when it is small: whether that record was a close_notify tells an upload
 * that ended from one cut short (`endedWithCloseNotify`).
 */

/** What the engine needs to carry on a TLS connection (src/native/engine.c, tls_from_js). */
export interface TlsRecordState {
  version: 12 | 13;
  /** 0 AES-128-GCM, 1 AES-256-GCM, 2 ChaCha20-Poly1305. */
  aead: 0 | 1 | 2;
  /** 1 when the suite's hash is SHA-384. */
  sha384: 0 | 1;
  readKey: Buffer;
  readIv: Buffer;
  writeKey: Buffer;
  writeIv: Buffer;
  /** TLS 1.3: the traffic secrets, for a KeyUpdate. */
  readSecret?: Buffer;
  writeSecret?: Buffer;
  /** Records each side has already protected with these keys. */
  readSeq: number;
  writeSeq: number;
}

/** A connection handed to the engine: its descriptor, its state, and bytes read behind the handshake. */
export interface TlsTakeover {
  fd: number;
  state: TlsRecordState;
  early: Buffer;
}

/** The engine's way to take a gated connection over (TransferRequest.tlsRecords). */
export interface TlsHandover {
  /** Whether takeOver() would succeed: the handshake is done, the suite is one the engine has, nothing else read it. */
  readonly usable: boolean;
  /** Detach Node's TLS socket for good; null when not usable. */
  takeOver(): TlsTakeover | null;
  /** The engine moved nothing: give the connection back to Node's TLS socket. */
  giveBack(): void;
  /**
   * Once Node's TLS socket has ended: whether the client's last record was a close_notify
   * (true), or something else or cut in the middle (false); null when it cannot be told (the
   * gate was not open after the handshake, or a small last record it has no keys to open:
   * CloseNotifyWatch).
   */
  endedWithCloseNotify(): boolean | null;
}

const CHANGE_CIPHER_SPEC = 20;
const ALERT = 21;
const HANDSHAKE = 22;
const APPLICATION_DATA = 23;

/**
 * handshake: records fed to Node one at a time; held: the handshake done, nothing read past it;
 * open: Node's TLS socket reads the rest; records: the client's records are opened here
 * (openRecords); taken: the engine has the connection.
 */
type Mode = 'handshake' | 'held' | 'open' | 'records' | 'taken';

/** The largest record body the watch opens: a close_notify is 18 to 31 bytes, a KeyUpdate 22 (more with TLS 1.3 padding). */
const SMALL_BODY = 256;

/** What the last record said about the end. */
type Last = 'none' | 'close_notify' | 'other' | 'unknown';

/**
 * The client's records after the handshake, read as an open gate passes them to Node: their
 * headers are counted, and only small records are opened (with `node:crypto`, a copy of at most
 * SMALL_BODY bytes each), since a close_notify and a KeyUpdate are small. At the end it tells
 * whether the last record was a close_notify.
 *
 * - TLS 1.3 hides every record's type: a small one is opened with the client's keys, and a
 *   KeyUpdate (RFC 8446 4.6.3) moves them on for the records after it. A small record that does
 *   not open means the keys were lost (a KeyUpdate inside a large, padded record): from there on
 *   the verdict is "unknown".
 * - TLS 1.2 shows an alert's type in the clear; with an AEAD suite the alert is opened to tell a
 *   close_notify from another warning (user_canceled), otherwise its type alone counts.
 * - No keys (a suite the gate does not know, such as AES-CCM): a small last record is "unknown".
 */
export class CloseNotifyWatch {
  /** Whole records seen since the handshake. */
  count = 0;
  private last: Last = 'none';
  private readonly hdr = Buffer.alloc(5);
  private hdrFill = 0;
  /** Body bytes of the current record still to come; -1 while reading a header. */
  private left = -1;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private key: Buffer | null;
  private iv: Buffer | null;
  private secret: Buffer | null;
  /** The index of the first record under the current keys, less the sequence number it had. */
  private base: number;
  private lost = false;
  /** TLS 1.3: KeyUpdates in which the client asked for ours (update_requested). */
  updatesAsked = 0;
  /**
   * An alert other than close_notify came (a user_canceled, which a close_notify follows): the
   * client called the transfer off, so the end is no clean one whatever comes after it.
   */
  private alerted = false;

  /** `state`: the record state when the handshake ended (TlsGate.state()), or null when there is none. */
  constructor(
    private readonly version: 12 | 13,
    private readonly state: TlsRecordState | null,
  ) {
    this.key = state?.readKey ?? null;
    this.iv = state?.readIv ?? null;
    this.secret = state?.readSecret ?? null;
    this.base = -(state?.readSeq ?? 0);
  }

  /** Whether the bytes so far stop inside a record. */
  get partial(): boolean {
    return this.hdrFill > 0 || this.left >= 0;
  }

  /**
   * True: the last record was a close_notify. False: something else, a record cut short, none, or
   * an alert other than close_notify before it. Null: cannot be told.
   */
  verdict(): boolean | null {
    if (this.alerted || this.partial || this.last === 'none') return false;
    return this.last === 'close_notify' ? true : this.last === 'other' ? false : null;
  }

  push(d: Buffer): void {
    let i = 0;
    while (i < d.length) {
      if (this.left < 0) {
        const n = Math.min(5 - this.hdrFill, d.length - i);
        d.copy(this.hdr, this.hdrFill, i, i + n);
        this.hdrFill += n;
        i += n;
        if (this.hdrFill < 5) return;
        this.hdrFill = 0;
        this.left = this.hdr.readUInt16BE(3);
        this.body = this.left <= SMALL_BODY ? Buffer.allocUnsafeSlow(this.left) : null;
        this.bodyFill = 0;
      }
      const n = Math.min(this.left, d.length - i);
      if (this.body) d.copy(this.body, this.bodyFill, i, i + n);
      this.bodyFill += n;
      this.left -= n;
      i += n;
      if (this.left === 0) {
        const body = this.body;
        this.body = null;
        this.left = -1;
        this.last = body ? this.read(this.count, body) : 'other'; // an alert is never a large record
        this.count++;
      }
    }
  }

  private read(index: number, body: Buffer): Last {
    const type = this.hdr[0];
    if (this.version === 12) {
      if (type !== ALERT) return 'other';
      if (!this.state) return 'close_notify'; // a suite without AEAD: the type is what there is
      const alert = open12(this.state, index - this.base, this.hdr, body);
      if (!alert) return 'unknown';
      if (alert.length === 2 && alert[1] === 0) return 'close_notify';
      this.alerted = true;
      return 'other';
    }
    if (type !== APPLICATION_DATA) return 'other';
    if (this.lost || !this.key || !this.iv || !this.state) return 'unknown';
    const inner = open13(this.state.aead, this.key, this.iv, index - this.base, this.hdr, body);
    if (!inner) {
      this.lost = true;
      return 'unknown';
    }
    const t = innerType(inner);
    if (t.type === HANDSHAKE && t.len >= 4 && inner[0] === 24 && this.secret) {
      // A KeyUpdate: the next record is under the next keys.
      const hash = this.state.sha384 ? 'sha384' : 'sha256';
      this.secret = expandLabel(hash, this.secret, 'traffic upd', this.secret.length);
      this.key = expandLabel(hash, this.secret, 'key', this.key.length);
      this.iv = expandLabel(hash, this.secret, 'iv', 12);
      this.base = index + 1;
      if (t.len >= 5 && inner[4] === 1) this.updatesAsked++;
      return 'other';
    }
    if (t.type !== ALERT) return 'other';
    if (t.len === 2 && inner[1] === 0) return 'close_notify';
    this.alerted = true;
    return 'other';
  }
}

/** A TLS 1.3 inner plaintext's content type and content length (the padding stripped). */
function innerType(inner: Buffer): { type: number; len: number } {
  let end = inner.length;
  while (end > 0 && inner[end - 1] === 0) end--;
  return end === 0 ? { type: 0, len: 0 } : { type: inner[end - 1], len: end - 1 };
}

interface OutRecord {
  type: number;
  /** How many client records had been fed when this one was written. */
  at: number;
}

export class TlsGate extends Duplex implements TlsHandover {
  private mode: Mode = 'handshake';
  private held: Buffer = Buffer.alloc(0);
  private rawEnded = false;
  /** Client records fed to Node, by type, in order. */
  private readonly fedTypes: number[] = [];
  /** Index (1-based count) of the record whose feeding completed the handshake. */
  private secureAt = 0;
  private secure = false;
  private readonly out: OutRecord[] = [];
  private outPartial: Buffer = Buffer.alloc(0);
  private serverRandom: Buffer | null = null;
  private readonly keylog = new Map<string, string[]>();
  private tlsSocket: tls.TLSSocket | null = null;
  private cached: TlsRecordState | null | undefined = undefined;
  /** The client's records after the handshake, once the gate is open (null before, or when opened mid-handshake). */
  private watch: CloseNotifyWatch | null = null;
  private readonly onRawData = (d: Buffer): void => this.fromRaw(d);

  /** Node's TLS socket writes no more: the records of a download are sealed here (seal()). */
  private sealed = false;
  /** What seals them (and opens an upload's): the addon, or node:crypto (for the transfer log). */
  sealedBy: 'addon' | 'js' | null = null;
  /** An upload's records, opened here (openRecords). */
  private reader: RecordReader | null = null;

  /**
   * `handover`: whether the engine may take the records over; false keeps every byte with Node's
   * TLS socket. `sealing`: whether a download the engine does not carry has its records sealed
   * here (seal()) rather than by Node's TLS socket, and by what: the addon's sealer, or 'js'
   * (./tls-seal.ts); null: not.
   */
  constructor(
    readonly raw: net.Socket,
    private readonly handover = true,
    private readonly sealing: NativeSeal | 'js' | null = null,
  ) {
    super({ allowHalfOpen: true });
    // The client's FIN must not close the TCP socket under Node's TLS socket: what the gate
    // still holds for Node (a close_notify among it) would go with it. Node's TLS socket ends
    // the connection itself once it has read to the end (bind()), through _final.
    raw.allowHalfOpen = true;
    raw.on('data', this.onRawData);
    raw.on('end', () => {
      this.rawEnded = true;
      if (this.mode === 'handshake' || this.mode === 'open') this.push(null);
      else if (this.mode === 'records') this.reader?.end();
    });
    raw.on('error', (err) => this.destroy(err));
    raw.on('close', () => {
      if (this.mode !== 'taken') this.destroy();
    });
  }

  /** Watch `s`, the TLS socket made over this gate, for its handshake and its key material. */
  bind(s: tls.TLSSocket): void {
    this.tlsSocket = s;
    // A TLS socket takes allowHalfOpen from the stream under it, here the gate's (true). Over a
    // TCP socket it would end its side when the client's ends (its close_notify, then our FIN);
    // so it does here, or a finished upload would wait for the connection to be torn down.
    s.allowHalfOpen = false;
    s.on('keylog', (line: Buffer) => {
      const parts = line.toString('latin1').trim().split(' ');
      if (parts.length >= 3) this.keylog.set(parts[0], parts);
    });
    s.once('secure', () => {
      this.secure = true;
      this.secureAt = this.fedTypes.length;
    });
    this.raw.resume();
  }

  /** Open the gate: Node's TLS socket reads and writes the connection from now on. */
  open(): void {
    if (this.mode !== 'held' && this.mode !== 'handshake') return;
    // Opened mid-handshake (bytes that are not TLS as the gate reads it): Node answers them, and
    // the records that follow cannot be told apart.
    const protocol = this.secure ? this.tlsSocket?.getProtocol() : null;
    if (protocol === 'TLSv1.2' || protocol === 'TLSv1.3') this.watch = new CloseNotifyWatch(protocol === 'TLSv1.2' ? 12 : 13, this.state());
    this.mode = 'open';
    this.outPartial = Buffer.alloc(0);
    const rest = this.held;
    this.held = Buffer.alloc(0);
    if (rest.length) {
      this.watch?.push(rest);
      this.push(rest);
    }
    if (this.rawEnded) this.push(null);
    else this.raw.resume();
  }

  /**
   * For a download the engine does not carry: from now on the records of what is written to the
   * TLS socket are sealed here and written to the TCP socket (./tls-seal.ts), and the gate opens
   * for the client's records. False, and nothing done, unless the gate holds a finished handshake
   * whose state it knows (a suite with AES-GCM or ChaCha20-Poly1305).
   */
  seal(): boolean {
    if (!this.sealing || this.mode !== 'held' || !this.tlsSocket) return false;
    const state = this.state();
    if (!state) return false;
    let sealer;
    try {
      sealer = sealerFor(state, this.sealing === 'js' ? null : this.sealing);
    } catch {
      return false; // the addon refused the state: Node's TLS socket carries on
    }
    this.sealed = true;
    this.sealedBy = this.sealing === 'js' ? 'js' : 'addon';
    sealWrites(this.tlsSocket, this.raw, sealer, () => this.watch?.updatesAsked ?? 0);
    this.open();
    return true;
  }

  /**
   * For an upload the engine does not carry: from now on the client's records are opened here
   * and their plaintext pushed into the TLS socket (./tls-open.ts), and what the TLS socket
   * writes (the close_notify at the end, a KeyUpdate the client asks for) is sealed here; Node's
   * TLS sees no byte of the connection either way. The addon's only (./tls-open.ts, recordsFor).
   * False, and nothing done, on the same terms as seal() and without the addon.
   */
  openRecords(): boolean {
    if (!this.sealing || this.sealing === 'js' || this.mode !== 'held' || !this.tlsSocket) return false;
    const state = this.state();
    if (!state) return false;
    let records;
    try {
      records = recordsFor(state, this.sealing);
    } catch {
      return false; // the addon refused the state: Node's TLS socket carries on
    }
    this.sealed = true;
    this.sealedBy = 'addon';
    const reader = (this.reader = new RecordReader(this.tlsSocket, this.raw, records.opener, records.sealer));
    this.mode = 'records';
    const rest = this.held;
    this.held = Buffer.alloc(0);
    if (rest.length) reader.push(rest);
    if (this.rawEnded) reader.end();
    else this.raw.resume();
    return true;
  }

  get usable(): boolean {
    return this.handover && this.mode === 'held' && this.state() !== null && handleFd(this.raw) >= 0;
  }

  takeOver(): TlsTakeover | null {
    const state = this.usable ? this.state() : null;
    if (!state) return null;
    this.mode = 'taken';
    this.raw.off('data', this.onRawData);
    this.raw.pause();
    // A paused Socket still reads into its buffer up to its high-water mark: take those bytes,
    // then stop the reads (nothing runs between these lines, so nothing can come in between).
    const parts = this.held.length ? [this.held] : [];
    for (let c: Buffer | null; (c = this.raw.read() as Buffer | null) !== null; ) parts.push(c);
    const handle = (this.raw as unknown as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
    if (handle?.readStop) {
      handle.readStop();
      handle.reading = false;
    }
    this.held = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    return { fd: handleFd(this.raw), state, early: this.held };
  }

  giveBack(): void {
    if (this.mode !== 'taken') return;
    this.mode = 'held';
    this.raw.on('data', this.onRawData);
  }

  endedWithCloseNotify(): boolean | null {
    if (this.reader) return this.reader.endedWithCloseNotify();
    return this.watch ? this.watch.verdict() : null;
  }

  // ---- the client's bytes ----------------------------------------------------

  private fromRaw(d: Buffer): void {
    if (this.mode === 'records') {
      this.reader?.push(d);
      return;
    }
    if (this.mode === 'open') {
      this.watch?.push(d);
      if (!this.push(d)) this.raw.pause();
      return;
    }
    this.held = this.held.length ? Buffer.concat([this.held, d]) : d;
    this.feed();
  }

  /**
   * One whole record at a time until the handshake completes: Node must not read past it. A
   * record is fed only when Node took the one before (it reads a pushed record at once while
   * it reads at all); otherwise the next _read feeds on.
   */
  private feed(): void {
    while (this.mode === 'handshake' && !this.secure && !this.destroyed && this.readableLength === 0 && this.held.length >= 5) {
      const len = this.held.readUInt16BE(3);
      if (len > MAX_RECORD_BODY) {
        this.open(); // not TLS as the engine knows it: Node answers it
        return;
      }
      if (this.held.length < 5 + len) break;
      const rec = this.held.subarray(0, 5 + len);
      this.held = this.held.subarray(5 + len);
      this.fedTypes.push(rec[0]);
      this.push(rec);
    }
    if (this.secure && this.mode === 'handshake') {
      this.mode = 'held';
      this.raw.pause();
    }
  }

  override _read(): void {
    if (this.mode === 'open' && !this.rawEnded) this.raw.resume();
    // Called before a buffered record is handed on: feed the next one after it.
    else if (this.mode === 'handshake') process.nextTick(() => this.feed());
  }

  // ---- the server's bytes ----------------------------------------------------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.mode === 'taken' || this.sealed) {
      cb(); // Node's TLS state is stale: nothing of it may reach the wire
      return;
    }
    if (this.mode !== 'open') this.countOut(chunk);
    this.raw.write(chunk, cb);
  }

  /** What Node's TLS socket writes at once (its records of one flush) goes out in one writev. */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (this.mode === 'taken' || this.sealed) {
      cb();
      return;
    }
    this.raw.cork();
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i].chunk;
      if (this.mode !== 'open') this.countOut(c);
      if (i < chunks.length - 1) this.raw.write(c);
      else this.raw.write(c, cb);
    }
    this.raw.uncork();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.mode !== 'taken' && !this.sealed) this.raw.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.raw.destroy();
    cb(err);
  }

  private countOut(chunk: Buffer): void {
    let b = this.outPartial.length ? Buffer.concat([this.outPartial, chunk]) : chunk;
    while (b.length >= 5) {
      const len = b.readUInt16BE(3);
      if (b.length < 5 + len) break;
      if (b[0] === HANDSHAKE && b[5] === 2 && !this.serverRandom && len >= 38) this.serverRandom = Buffer.from(b.subarray(11, 43));
      this.out.push({ type: b[0], at: this.fedTypes.length });
      b = b.subarray(5 + len);
    }
    this.outPartial = Buffer.from(b);
  }

  // ---- the state ---------------------------------------------------------------

  /** The record state, once the handshake is done and the suite is one the engine has; else null. */
  state(): TlsRecordState | null {
    if (this.cached !== undefined) return this.cached;
    if (!this.secure || !this.tlsSocket) return null;
    this.cached = this.derive(this.tlsSocket);
    return this.cached;
  }

  private derive(s: tls.TLSSocket): TlsRecordState | null {
    if (this.outPartial.length) return null; // a record of ours only half written: cannot count
    // Node must have read nothing past the handshake (its 'secure' comes inside the push of the
    // record that completes it); had it read more, the engine would miss what Node decrypted.
    if (this.fedTypes.length !== this.secureAt) return null;
    const cipher = s.getCipher() as tls.CipherNameAndProtocol & { standardName?: string };
    const name = cipher?.standardName ?? '';
    const aead = /_AES_128_GCM_/.test(name) ? 0 : /_AES_256_GCM_/.test(name) ? 1 : /_CHACHA20_POLY1305_/.test(name) ? 2 : null;
    if (aead === null) return null;
    const sha384 = name.endsWith('SHA384') ? 1 : 0;
    const hash = sha384 ? 'sha384' : 'sha256';
    const klen = aead === 0 ? 16 : 32;
    const protocol = s.getProtocol();
    if (protocol === 'TLSv1.3') {
      const c = this.keylog.get('CLIENT_TRAFFIC_SECRET_0');
      const sv = this.keylog.get('SERVER_TRAFFIC_SECRET_0');
      if (!c || !sv) return null;
      const cs = Buffer.from(c[2], 'hex');
      const ss = Buffer.from(sv[2], 'hex');
      if (cs.length !== (sha384 ? 48 : 32) || ss.length !== cs.length) return null;
      return {
        version: 13,
        aead,
        sha384,
        readKey: expandLabel(hash, cs, 'key', klen),
        readIv: expandLabel(hash, cs, 'iv', 12),
        writeKey: expandLabel(hash, ss, 'key', klen),
        writeIv: expandLabel(hash, ss, 'iv', 12),
        readSecret: cs,
        writeSecret: ss,
        // Nothing the client sent after its Finished was fed; what the server sent after
        // reading it (session tickets) was sealed with the application keys.
        readSeq: 0,
        writeSeq: this.out.filter((r) => r.type === APPLICATION_DATA && r.at >= this.secureAt).length,
      };
    }
    if (protocol === 'TLSv1.2') {
      const line = this.keylog.get('CLIENT_RANDOM');
      if (!line || !this.serverRandom) return null;
      const clientRandom = Buffer.from(line[1], 'hex');
      const master = Buffer.from(line[2], 'hex');
      if (clientRandom.length !== 32 || master.length !== 48) return null;
      const ivlen = aead === 2 ? 12 : 4;
      const kb = prf12(hash, master, 'key expansion', Buffer.concat([this.serverRandom, clientRandom]), 2 * klen + 2 * ivlen);
      // Records after each side's ChangeCipherSpec are under the new keys (its Finished first).
      const cin = this.fedTypes.lastIndexOf(CHANGE_CIPHER_SPEC);
      const cout = findLastIndex(this.out, (r) => r.type === CHANGE_CIPHER_SPEC);
      if (cin < 0 || cout < 0) return null;
      return {
        version: 12,
        aead,
        sha384,
        readKey: kb.subarray(0, klen),
        writeKey: kb.subarray(klen, 2 * klen),
        readIv: kb.subarray(2 * klen, 2 * klen + ivlen),
        writeIv: kb.subarray(2 * klen + ivlen, 2 * klen + 2 * ivlen),
        readSeq: this.fedTypes.length - cin - 1,
        writeSeq: this.out.length - cout - 1,
      };
    }
    return null;
  }
}

/** Open one TLS 1.3 record (RFC 8446 5.2 and 5.3): its inner plaintext, or null when it does not authenticate. */
function open13(aead: 0 | 1 | 2, key: Buffer, iv: Buffer, seq: number, header: Buffer, body: Buffer): Buffer | null {
  if (body.length < 17 || seq < 0) return null;
  const nonce = Buffer.from(iv);
  nonce.writeUInt32BE((nonce.readUInt32BE(4) ^ Math.floor(seq / 0x100000000)) >>> 0, 4);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ (seq >>> 0)) >>> 0, 8);
  const algorithm = aead === 0 ? 'aes-128-gcm' : aead === 1 ? 'aes-256-gcm' : 'chacha20-poly1305';
  try {
    const d = createDecipheriv(algorithm as 'aes-128-gcm', key, nonce, { authTagLength: 16 });
    d.setAAD(header, { plaintextLength: body.length - 16 });
    d.setAuthTag(body.subarray(body.length - 16));
    return Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
  } catch {
    return null;
  }
}

/**
 * Open one TLS 1.2 AEAD record (RFC 5246 6.2.3.3; GCM's explicit nonce, RFC 5288; ChaCha20-Poly1305's
 * nonce, RFC 7905): its plaintext, or null when it does not authenticate.
 */
function open12(state: TlsRecordState, seq: number, header: Buffer, body: Buffer): Buffer | null {
  const gcm = state.aead !== 2;
  const explicit = gcm ? 8 : 0;
  if (body.length < explicit + 16 || seq < 0) return null;
  const len = body.length - explicit - 16;
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeUInt32BE(Math.floor(seq / 0x100000000), 0);
  seqBytes.writeUInt32BE(seq >>> 0, 4);
  let nonce: Buffer;
  if (gcm) {
    nonce = Buffer.concat([state.readIv.subarray(0, 4), body.subarray(0, 8)]);
  } else {
    nonce = Buffer.from(state.readIv);
    for (let i = 0; i < 8; i++) nonce[4 + i] ^= seqBytes[i];
  }
  const aad = Buffer.concat([seqBytes, header.subarray(0, 3), Buffer.from([len >> 8, len & 0xff])]);
  const algorithm = state.aead === 0 ? 'aes-128-gcm' : state.aead === 1 ? 'aes-256-gcm' : 'chacha20-poly1305';
  try {
    const d = createDecipheriv(algorithm as 'aes-128-gcm', state.readKey, nonce, { authTagLength: 16 });
    d.setAAD(aad, { plaintextLength: len });
    d.setAuthTag(body.subarray(body.length - 16));
    return Buffer.concat([d.update(body.subarray(explicit, body.length - 16)), d.final()]);
  } catch {
    return null;
  }
}

function findLastIndex<T>(a: readonly T[], f: (x: T) => boolean): number {
  for (let i = a.length - 1; i >= 0; i--) if (f(a[i])) return i;
  return -1;
}

/** TLS 1.2's PRF (RFC 5246 5): P_hash(secret, label + seed). */
function prf12(hash: string, secret: Buffer, label: string, seed: Buffer, len: number): Buffer {
  const s = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const out: Buffer[] = [];
  let a = s;
  let n = 0;
  while (n < len) {
    a = createHmac(hash, secret).update(a).digest();
    const p = createHmac(hash, secret).update(Buffer.concat([a, s])).digest();
    out.push(p);
    n += p.length;
  }
  return Buffer.concat(out).subarray(0, len);
}

/**
 * A gated FTPS data connection. Anything that asks for `socket` (a listing, the stream engine)
 * opens the gate first; the engine asks for `tlsRecords` instead and never touches `socket`.
 */
export class GatedTlsConnection implements DataConnection {
  readonly fd = -1;
  readonly tls = true;

  constructor(
    private readonly s: tls.TLSSocket,
    private readonly gate: TlsGate,
  ) {}

  get socket(): net.Socket {
    this.gate.open();
    return this.s;
  }

  /**
   * `socket` for a transfer: a download's records are sealed by the gate when it can
   * (TlsGate.seal), an upload's opened (TlsGate.openRecords).
   */
  socketFor(direction: 'send' | 'receive'): net.Socket {
    if (direction === 'send') this.gate.seal();
    else this.gate.openRecords();
    return this.socket;
  }

  get tlsRecords(): TlsHandover {
    return this.gate;
  }

  get sealedBy(): 'addon' | 'js' | null {
    return this.gate.sealedBy;
  }

  get tcpFd(): number {
    return handleFd(this.gate.raw);
  }

  get remoteAddress(): string | undefined {
    return this.gate.raw.remoteAddress;
  }

  destroy(): void {
    this.s.destroy();
    this.gate.raw.destroy();
  }
}
