'use strict';

// Control-connection framing: bytes in, command or error events out.
// One pass over the bytes. Runs of ordinary bytes are located with
// Buffer#indexOf (memchr); a whole line inside one chunk is decoded in place,
// a partial one is copied into a buffer of at most maxLineLength bytes. Only
// the special bytes (LF, CR, NUL, IAC) and Telnet sequences go byte by byte.
// Errors (too long, NUL, stray CR) are reported when the line's LF arrives,
// so the client gets one reply per line, in order; the excess is not kept.

const { isUtf8 } = require('buffer');

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;
const SP = 0x20;
const IAC = 0xff;
const SB = 0xfa;
const SE = 0xf0;
const WILL = 0xfb; // WILL, WONT, DO, DONT are 0xfb..0xfe

// Telnet parser states.
const T_DATA = 0; // ordinary data
const T_IAC = 1; // after IAC
const T_OPT = 2; // after IAC WILL/WONT/DO/DONT: the option byte follows
const T_SB = 3; // inside IAC SB ... IAC SE
const T_SB_IAC = 4; // after IAC inside a subnegotiation

const TOO_LONG = { code: 500, reason: 'Line too long.' };
const STRAY_CR = { code: 501, reason: 'Syntax error: stray CR in command line.' };
const HAS_NUL = { code: 501, reason: 'Syntax error: NUL byte in command line.' };
const BAD_VERB = { code: 500, reason: 'Syntax error.' };
const BAD_UTF8 = { code: 501, reason: 'Syntax error: command line is not valid UTF-8.' };
const UNENDED_SB = { code: 501, reason: 'Syntax error: Telnet subnegotiation without IAC SE.' };

const DEFAULT_MAX = 8192;
const INITIAL_CAPACITY = 256;
const EMPTY = Buffer.alloc(0);

function errorEvent(e) {
  return { type: 'error', code: e.code, reason: e.reason };
}

function checkEncoding(value, name) {
  if (value !== 'utf8' && value !== 'latin1') {
    throw new TypeError(`${name} must be 'utf8' or 'latin1'`);
  }
}

class CommandFramer {
  constructor(options = {}) {
    const max = options.maxLineLength === undefined ? DEFAULT_MAX : options.maxLineLength;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError('maxLineLength must be a positive integer');
    }
    const encoding = options.encoding === undefined ? 'utf8' : options.encoding;
    checkEncoding(encoding, 'encoding');
    const fallback = options.fallbackEncoding === undefined ? 'latin1' : options.fallbackEncoding;
    if (fallback !== null && fallback !== 'latin1') {
      throw new TypeError("fallbackEncoding must be 'latin1' or null");
    }
    this._max = max;
    this._encoding = encoding;
    this._fallback = fallback;
    // The line buffer holds only lines that span chunks (or need Telnet removal): whole lines
    // are decoded in place. It is allocated when first needed, so a connection that only ever
    // sends whole lines (nearly all clients) never has one, then grows by doubling up to
    // maxLineLength and never beyond.
    this._buf = EMPTY;
    this.reset();
  }

  /** Bytes currently held for an incomplete line (Telnet sequences already removed). */
  get buffered() {
    return this._len;
  }

  setEncoding(encoding) {
    checkEncoding(encoding, 'encoding');
    this._encoding = encoding;
  }

  /** Forget any partial line and Telnet state (for example after AUTH TLS). */
  reset() {
    this._len = 0; // bytes of the current line in _buf
    this._bad = null; // error of the current line; its bytes are being discarded
    this._tel = T_DATA;
    this._cr = false; // a CR was seen, the next data byte decides
    this._lastCR = false; // the last byte processed was that CR
  }

  push(chunk) {
    const events = [];
    let buf;
    if (Buffer.isBuffer(chunk)) buf = chunk;
    else if (chunk instanceof Uint8Array) buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    else if (typeof chunk === 'string') buf = Buffer.from(chunk, 'latin1');
    else return events;
    this._scan(buf, events);
    return events;
  }

  _scan(chunk, events) {
    const n = chunk.length;
    // Next position of each special byte at or after i (n when none), cached
    // so that each byte value is searched for at most once per occurrence.
    let nextLF = -1;
    let nextCR = -1;
    let nextNUL = -1;
    let nextIAC = -1;
    let i = 0;
    while (i < n) {
      const b = chunk[i];
      if (this._tel !== T_DATA || b === IAC) {
        this._telnet(b, events);
        i++;
      } else if (this._cr || b === LF || b === CR || b === NUL) {
        this._data(b, events);
        i++;
      } else if (this._bad !== null) {
        // Discarding a refused line: only LF and IAC still matter.
        if (nextLF < i) nextLF = indexOr(chunk, LF, i, n);
        if (nextIAC < i) nextIAC = indexOr(chunk, IAC, i, n);
        this._lastCR = false;
        i = Math.min(nextLF, nextIAC);
      } else {
        // A run of ordinary bytes up to the next special byte.
        if (nextLF < i) nextLF = indexOr(chunk, LF, i, n);
        if (nextCR < i) nextCR = indexOr(chunk, CR, i, n);
        if (nextNUL < i) nextNUL = indexOr(chunk, NUL, i, n);
        if (nextIAC < i) nextIAC = indexOr(chunk, IAC, i, n);
        const stop = Math.min(nextLF, nextCR, nextNUL, nextIAC);
        this._lastCR = false;
        if (this._len === 0 && stop < n && stop - i <= this._max && (stop === nextLF || (stop === nextCR && chunk[stop + 1] === LF))) {
          // The common case, a whole line inside this chunk: decode in place.
          events.push(this._decode(chunk, i, stop));
          i = stop === nextLF ? stop + 1 : stop + 2;
        } else {
          this._append(chunk, i, stop);
          i = stop;
        }
      }
    }
    // ftplib sends ABOR\r\n as urgent data; without SO_OOBINLINE Linux drops
    // the LF, so a chunk ending in CR after "ABOR" completes the line now. If
    // the LF does arrive later it ends an empty line, and empty lines are
    // ignored: it is swallowed without any extra state.
    if (this._cr && this._lastCR && this._bad === null && this._isAbor()) {
      this._cr = false;
      this._lastCR = false;
      this._endLine(events);
    }
  }

  _telnet(b, events) {
    this._lastCR = false;
    switch (this._tel) {
      case T_DATA: // b is IAC
        this._tel = T_IAC;
        break;
      case T_IAC:
        if (b === IAC) {
          this._tel = T_DATA;
          this._data(IAC, events); // IAC IAC is a literal 0xFF data byte
        } else if (b >= WILL) {
          this._tel = T_OPT;
        } else if (b === SB) {
          this._tel = T_SB;
        } else {
          this._tel = T_DATA; // IP, DM, AO, AYT, NOP, ...: removed
        }
        break;
      case T_OPT:
        this._tel = T_DATA;
        break;
      case T_SB:
        if (b === IAC) this._tel = T_SB_IAC;
        else if (b === LF) this._unendedSubnegotiation(events);
        break;
      default: // T_SB_IAC
        if (b === LF) this._unendedSubnegotiation(events);
        else this._tel = b === SE ? T_DATA : T_SB;
    }
  }

  // FTP negotiates no Telnet option, so no client sends IAC SB, and a subnegotiation's body
  // holding LF is taken as one never ended: the whole line is refused at that LF, and the
  // bytes after it frame the next line. Without this the session ignored every later command
  // until its idle timeout. The line is refused, not run without its tail: "DELE a\xff\xfab.txt"
  // must not delete "a".
  _unendedSubnegotiation(events) {
    this._tel = T_DATA;
    this._cr = false;
    this._refuse(UNENDED_SB);
    this._endLine(events);
  }

  // One data byte (after Telnet removal) on the slow path.
  _data(b, events) {
    this._lastCR = false;
    if (this._cr) {
      this._cr = false;
      if (b === LF) {
        this._endLine(events);
        return;
      }
      this._refuse(STRAY_CR); // never a line break: "RETR a\rDELE b" is one bad line
    }
    if (b === LF) {
      this._endLine(events);
    } else if (b === CR) {
      this._cr = true;
      this._lastCR = true;
    } else if (b === NUL) {
      this._refuse(HAS_NUL);
    } else if (this._bad === null) {
      if (this._len >= this._max) {
        this._refuse(TOO_LONG);
      } else {
        this._reserve(this._len + 1);
        this._buf[this._len++] = b;
      }
    }
  }

  _append(src, start, end) {
    if (this._bad !== null) return;
    const total = this._len + (end - start);
    if (total > this._max) {
      this._refuse(TOO_LONG);
      return;
    }
    this._reserve(total);
    src.copy(this._buf, this._len, start, end);
    this._len = total;
  }

  _reserve(size) {
    if (size <= this._buf.length) return;
    let cap = Math.max(this._buf.length * 2, INITIAL_CAPACITY);
    while (cap < size) cap *= 2;
    const next = Buffer.allocUnsafe(Math.min(cap, this._max));
    this._buf.copy(next, 0, 0, this._len);
    this._buf = next;
  }

  // The first error of a line wins; its remaining bytes are dropped up to LF.
  _refuse(error) {
    if (this._bad === null) this._bad = error;
    this._len = 0;
  }

  _isAbor() {
    const buf = this._buf;
    let s = 0;
    let e = this._len;
    while (s < e && (buf[s] === SP || buf[s] === 0x09)) s++;
    while (e > s && (buf[e - 1] === SP || buf[e - 1] === 0x09)) e--;
    return (
      e - s === 4 &&
      (buf[s] | 0x20) === 0x61 &&
      (buf[s + 1] | 0x20) === 0x62 &&
      (buf[s + 2] | 0x20) === 0x6f &&
      (buf[s + 3] | 0x20) === 0x72
    );
  }

  _endLine(events) {
    const bad = this._bad;
    const len = this._len;
    this._bad = null;
    this._len = 0;
    if (bad !== null) events.push(errorEvent(bad));
    else if (len > 0) events.push(this._decode(this._buf, 0, len));
  }

  // Decode the line buf[start, end) (non-empty, terminator excluded).
  _decode(buf, start, end) {
    // Verb: printable ASCII up to the first space.
    let v = start;
    while (v < end && buf[v] !== SP) {
      const c = buf[v];
      if (c < 0x21 || c > 0x7e) return errorEvent(BAD_VERB);
      v++;
    }
    if (v === start) return errorEvent(BAD_VERB);
    let line;
    if (this._encoding === 'latin1') {
      line = buf.toString('latin1', start, end);
    } else {
      line = buf.toString('utf8', start, end);
      // Only a line holding U+FFFD can be invalid UTF-8; check those exactly.
      if (line.includes('\ufffd') && !isUtf8(buf.subarray(start, end))) {
        if (this._fallback === null) return errorEvent(BAD_UTF8);
        line = buf.toString('latin1', start, end);
      }
    }
    // The verb is ASCII, so its byte length is also the string offset of the space.
    const verbLength = v - start;
    const verb = line.slice(0, verbLength).toUpperCase();
    const arg = v < end ? line.slice(verbLength + 1) : '';
    return { type: 'command', verb, arg, line };
  }
}

function indexOr(buf, byte, from, n) {
  const at = buf.indexOf(byte, from);
  return at === -1 ? n : at;
}

module.exports = { CommandFramer };
