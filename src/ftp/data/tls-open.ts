import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { TlsRecordState } from './tls-gate';
import { addonSealer, sealWrites, type NativeSeal, type Sealer } from './tls-seal';

/**
 * The client's records of an upload, opened here instead of by Node's TLS socket.
 *
 * Over the gate (./tls-gate.ts) Node's TLS socket reads through a JavaScript stream: every
 * chunk the TCP socket reads is handed to Node's native side, copied, decrypted into new
 * buffers, and pushed back to JavaScript. When an upload does not go through the engine (TYPE
 * A, another filesystem, `useSendfile: false`) but the addon is loaded, the gate knows the
 * connection's state as the engine would get it, so the records are opened here as the TCP
 * socket delivers them, by the addon (`tlsOpen`, Node's OpenSSL, src/native/engine.c), in
 * place: the plaintext is left where its ciphertext was, in the buffer the TCP socket read
 * into. It is pushed into the TLS socket as if Node had read it, so the transfer sees the same
 * socket, events and backpressure. Node's TLS socket then sees no byte either way: its writes
 * (the close_notify that ends the upload, and the KeyUpdate the client may ask for) are sealed
 * here too (./tls-seal.ts).
 *
 * Knowing every record also settles how the upload ended: a close_notify, or not (a bare FIN,
 * a record cut short), with no case left unknown.
 */

/** What opens an upload's records (the addon's, recordsFor). */
export interface Opener {
  /**
   * Open the whole records in buf[start, end), in order, handing each to `onRecord` with its
   * content type (23 data, 21 alert, 22 a TLS 1.3 KeyUpdate, whose next keys are already in
   * use) and its content. Stops after an alert. Returns where the records it opened end (the
   * rest is an incomplete record). Throws, once the records before it are handed over, on a
   * record that is too long or does not authenticate (code EBADMSG) or should not be there
   * (EPROTO), as the engine reports them.
   */
  open(buf: Buffer, start: number, end: number, onRecord: (type: number, content: Buffer) => void): number;
}

/** Uploads whose records ftpdlib opened (the addon) since the process started (for tests and metrics). */
export const openedUploads = { addon: 0 };

const ALERT = 21;
const HANDSHAKE = 22;
const APPLICATION_DATA = 23;
/** The largest record body a peer may send (RFC 5246 6.2.3; TLS 1.3 allows less: 2^14 + 256). */
export const MAX_RECORD_BODY = 16384 + 2048;
/** Records the addon opens per call at most (spans' room). */
const SPANS = 64;

function protocolError(message: string, code = 'EBADMSG'): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/**
 * A sealer and an opener on one connection's state, the addon's: one state for both directions.
 * The addon only: with `node:crypto` (a decipher object and a buffer per record) an upload went
 * slower than through Node's TLS socket over the gate (255 against 290 MB per CPU-second), so
 * without the addon Node's TLS socket keeps an upload's records.
 */
export function recordsFor(state: TlsRecordState, native: NativeSeal): { sealer: Sealer; opener: Opener } {
  const handle = native.tlsSealer(state);
  openedUploads.addon++;
  const spans = new Int32Array(1 + 3 * SPANS);
  return {
    sealer: addonSealer(native, handle, state.version),
    opener: {
      open(buf, start, end, onRecord) {
        let at = start;
        for (;;) {
          let failure: unknown = null;
          try {
            at = native.tlsOpen(handle, buf, at, end, spans);
          } catch (err) {
            failure = err; // the records before the bad one are opened all the same (spans)
          }
          const k = spans[0];
          for (let i = 0; i < k; i++) {
            const from = spans[2 + 3 * i];
            onRecord(spans[1 + 3 * i], buf.subarray(from, from + spans[3 + 3 * i]));
          }
          if (failure) throw failure;
          // Spans full: there may be more whole records; otherwise it stopped at an
          // incomplete record or after an alert.
          if (k < SPANS || spans[1 + 3 * (k - 1)] === ALERT) return at;
        }
      },
    },
  };
}

/** What became of the client's records (RecordReader.end). */
export type RecordsEnd = 'open' | 'close_notify' | 'cut';

/**
 * Reads the client's records for `s`, a TLS socket over a gate after its handshake: the TCP
 * socket's bytes go to `opener`, and the plaintext is pushed into `s` (the records' bytes are
 * kept only while one spans two reads). A close_notify ends `s`; any other alert (as on the
 * engine's path: user_canceled too, the client calling the upload off) or a record that does
 * not open destroys it. `s` pausing pauses `raw`. Its writes are sealed by `sealer`
 * (sealWrites), so that a KeyUpdate the client asks for is answered with ours.
 */
export class RecordReader {
  /** KeyUpdates in which the client asked for ours. */
  updatesAsked = 0;
  state: RecordsEnd = 'open';
  /** A record begun in an earlier read: its header until that is whole, then the whole record. */
  private carry: Buffer | null = null;
  private carryFill = 0;

  constructor(
    private readonly s: tls.TLSSocket,
    private readonly raw: net.Socket,
    private readonly opener: Opener,
    sealer: Sealer,
  ) {
    sealWrites(s, raw, sealer, () => this.updatesAsked);
    // Replaces the TLS socket's _read: it asks for more by letting the TCP socket read on.
    (s as unknown as { _read: () => void })._read = () => {
      if (this.state === 'open' && !raw.readableEnded) raw.resume();
    };
  }

  /** Bytes the TCP socket read. */
  push(d: Buffer): void {
    if (this.state !== 'open' || this.s.destroyed) return;
    try {
      this.take(d);
    } catch (err) {
      this.state = 'cut';
      this.s.destroy(err as Error);
    }
  }

  /** The TCP socket's FIN: without a close_notify before it, the client's data may be cut short. */
  end(): void {
    if (this.state !== 'open') return;
    this.state = 'cut';
    this.s.push(null);
  }

  /** True: a close_notify ended the client's records; false: a FIN came first (or an error). */
  endedWithCloseNotify(): boolean {
    return this.state === 'close_notify';
  }

  private take(d: Buffer): void {
    let off = 0;
    if (this.carry) {
      if (this.carryFill < 5) {
        const n = Math.min(5 - this.carryFill, d.length);
        d.copy(this.carry, this.carryFill, 0, n);
        this.carryFill += n;
        off = n;
        if (this.carryFill < 5) return;
        this.carry = this.whole(this.carry, 0);
      }
      const n = Math.min(this.carry.length - this.carryFill, d.length - off);
      d.copy(this.carry, this.carryFill, off, off + n);
      this.carryFill += n;
      off += n;
      if (this.carryFill < this.carry.length) return;
      const rec = this.carry;
      this.carry = null;
      this.carryFill = 0;
      this.opener.open(rec, 0, rec.length, this.onRecord);
      if (this.state !== 'open') return;
    }
    // The opener stops at an incomplete record, or after an alert, which ends the state.
    off = this.opener.open(d, off, d.length, this.onRecord);
    if (this.state !== 'open' || off === d.length) return;
    // The start of a record whose end is in the next reads.
    const at = off;
    const left = d.length - at;
    this.carry = left >= 5 ? this.whole(d, at) : Buffer.allocUnsafe(5);
    d.copy(this.carry, 0, at);
    this.carryFill = left;
  }

  /** A buffer for the whole record whose header is at b[at]. */
  private whole(b: Buffer, at: number): Buffer {
    const len = b.readUInt16BE(at + 3);
    if (b[at + 1] !== 3 || len > MAX_RECORD_BODY) throw protocolError('tlsOpen: not a TLS record');
    const r = Buffer.allocUnsafe(5 + len);
    b.copy(r, 0, at, at + 5);
    return r;
  }

  private readonly onRecord = (type: number, content: Buffer): void => {
    if (this.state !== 'open') return;
    if (type === APPLICATION_DATA) {
      if (content.length && !this.s.push(content)) this.raw.pause();
    } else if (type === HANDSHAKE) {
      if (content[4] === 1) this.updatesAsked++;
    } else if (content.length === 2 && content[1] === 0) {
      this.state = 'close_notify';
      this.s.push(null);
    } else {
      // The client gave up (the engine's ECONNRESET for an alert): no 226 follows, even should a
      // close_notify come next, as one does after a user_canceled (RFC 8446 6.1).
      throw protocolError(`TLS alert ${content.length === 2 ? content[1] : '?'} from the client`, 'ECONNRESET');
    }
  };
}
