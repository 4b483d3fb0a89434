'use strict';

const test = require('ava');
const { CommandFramer } = require('..');

const bytes = (s) => Buffer.from(s, 'latin1');
const cmd = (verb, arg, line) => ({ type: 'command', verb, arg, line });

// Feed each string as one chunk; return all events.
function feed(framer, ...chunks) {
  return chunks.flatMap((c) => framer.push(typeof c === 'string' ? bytes(c) : c));
}
function frame(input, options) {
  return feed(new CommandFramer(options), input);
}
function byteByByte(input, options) {
  const f = new CommandFramer(options);
  const buf = bytes(input);
  const events = [];
  for (let i = 0; i < buf.length; i++) events.push(...f.push(buf.subarray(i, i + 1)));
  return events;
}
// Same events for the whole input and for every two-way split of it.
function assertSplitInvariant(t, input, expected, options) {
  const buf = bytes(input);
  t.deepEqual(frame(buf, options), expected, 'whole');
  t.deepEqual(byteByByte(input, options), expected, 'byte by byte');
  for (let i = 1; i < buf.length; i++) {
    t.deepEqual(feed(new CommandFramer(options), buf.subarray(0, i), buf.subarray(i)), expected, `split at ${i}`);
  }
}

// --- line terminators and framing ---

test('a CRLF-terminated line yields one command', (t) => {
  t.deepEqual(frame('USER bob\r\n'), [cmd('USER', 'bob', 'USER bob')]);
});

test('a bare LF terminates a line too', (t) => {
  t.deepEqual(frame('NOOP\nPWD\n'), [cmd('NOOP', '', 'NOOP'), cmd('PWD', '', 'PWD')]);
});

test('three commands in one chunk come out in order', (t) => {
  const events = frame('USER a\r\nPASS b\r\nSYST\r\n');
  t.deepEqual(events.map((e) => e.verb), ['USER', 'PASS', 'SYST']);
});

test('a command split across chunks is completed only by its terminator', (t) => {
  const f = new CommandFramer();
  t.deepEqual(feed(f, 'RE', 'TR fi'), []);
  t.is(f.buffered, 7);
  t.deepEqual(feed(f, 'le\r'), []);
  t.deepEqual(feed(f, '\n'), [cmd('RETR', 'file', 'RETR file')]);
  t.is(f.buffered, 0);
});

test('splitting anywhere gives the same commands', (t) => {
  assertSplitInvariant(t, 'USER a\r\nCWD /x y\nQUIT\r\n', [
    cmd('USER', 'a', 'USER a'),
    cmd('CWD', '/x y', 'CWD /x y'),
    cmd('QUIT', '', 'QUIT'),
  ]);
});

test('empty lines are ignored', (t) => {
  t.deepEqual(frame('\r\n\r\n\nNOOP\r\n\r\n'), [cmd('NOOP', '', 'NOOP')]);
});

test('push accepts a plain Uint8Array', (t) => {
  const f = new CommandFramer();
  t.deepEqual(f.push(new Uint8Array([0x4e, 0x4f, 0x4f, 0x50, 0x0d, 0x0a])), [cmd('NOOP', '', 'NOOP')]);
});

test('push reads a string as latin1 bytes and ignores values that are not bytes', (t) => {
  const f = new CommandFramer();
  t.deepEqual(f.push('CWD \xe9\r\n'), [cmd('CWD', '\u00e9', 'CWD \u00e9')]);
  t.deepEqual(f.push(42), []);
  t.deepEqual(f.push(undefined), []);
});

test('reset() forgets a partial line', (t) => {
  const f = new CommandFramer();
  feed(f, 'DELE secret');
  f.reset();
  t.is(f.buffered, 0);
  t.deepEqual(feed(f, 'PWD\r\n'), [cmd('PWD', '', 'PWD')]);
});

test('bad options are refused at construction', (t) => {
  t.throws(() => new CommandFramer({ maxLineLength: 0 }), { instanceOf: RangeError });
  t.throws(() => new CommandFramer({ maxLineLength: 1.5 }), { instanceOf: RangeError });
  t.throws(() => new CommandFramer({ encoding: 'ascii' }), { instanceOf: TypeError });
  t.throws(() => new CommandFramer({ fallbackEncoding: 'utf8' }), { instanceOf: TypeError });
  t.throws(() => new CommandFramer().setEncoding('utf16le'), { instanceOf: TypeError });
});

// --- verb and argument ---

test('the verb is upper-cased; the argument is everything after the first space, verbatim', (t) => {
  t.deepEqual(frame('retr  name with spaces  \r\n'), [
    cmd('RETR', ' name with spaces  ', 'retr  name with spaces  '),
  ]);
});

test('no space means an empty argument; a trailing space means an empty argument too', (t) => {
  t.deepEqual(frame('RETR\r\nRETR \r\n'), [cmd('RETR', '', 'RETR'), cmd('RETR', '', 'RETR ')]);
});

test('a tab is part of the argument, not a separator', (t) => {
  t.deepEqual(frame('STOR a\tb\r\n'), [cmd('STOR', 'a\tb', 'STOR a\tb')]);
});

test('an unknown but printable verb still yields a command', (t) => {
  t.deepEqual(frame('XYZZY-42 x\r\n'), [cmd('XYZZY-42', 'x', 'XYZZY-42 x')]);
});

test('a verb with non-ASCII or control bytes is a 500 syntax error', (t) => {
  for (const line of ['R\u00e9TR x', 'RE\x01TR x', 'RETR\tx', 'NO\x7fOP', ' NOOP', '   ']) {
    t.deepEqual(frame(`${line}\r\nNOOP\r\n`), [{ type: 'error', code: 500, reason: 'Syntax error.' }, cmd('NOOP', '', 'NOOP')], JSON.stringify(line));
  }
  // UTF-8 bytes in the verb, too.
  const utf8Verb = Buffer.concat([Buffer.from('LIST\u00e9 x', 'utf8'), bytes('\r\n')]);
  t.is(frame(utf8Verb)[0].code, 500);
});

// --- line length ---

test('a line of exactly maxLineLength bytes is accepted', (t) => {
  const line = 'STOR ' + 'a'.repeat(11);
  t.deepEqual(frame(`${line}\r\n`, { maxLineLength: 16 }), [cmd('STOR', 'a'.repeat(11), line)]);
});

test('one byte more is one 500 at the end of the line, then framing goes on', (t) => {
  const line = 'STOR ' + 'a'.repeat(12);
  assertSplitInvariant(
    t,
    `${line}\r\nNOOP\r\n`,
    [{ type: 'error', code: 500, reason: 'Line too long.' }, cmd('NOOP', '', 'NOOP')],
    { maxLineLength: 16 },
  );
});

test('the 500 is emitted when the long line ends, not when the limit is crossed', (t) => {
  const f = new CommandFramer({ maxLineLength: 16 });
  t.deepEqual(feed(f, 'x'.repeat(100)), []);
  t.is(f.buffered, 0, 'the excess is discarded, not buffered');
  t.deepEqual(feed(f, 'y'.repeat(100), '\r\n'), [{ type: 'error', code: 500, reason: 'Line too long.' }]);
  t.deepEqual(feed(f, 'PWD\r\n'), [cmd('PWD', '', 'PWD')]);
});

test('a 16 MB line without LF never makes the framer hold more than maxLineLength', (t) => {
  const f = new CommandFramer();
  const block = Buffer.alloc(64 * 1024, 0x41);
  let most = 0;
  for (let i = 0; i < 256; i++) {
    t.deepEqual(f.push(block), []);
    most = Math.max(most, f.buffered, f._buf.length);
  }
  t.true(most <= 8192);
  t.deepEqual(feed(f, '\r\nNOOP\r\n'), [{ type: 'error', code: 500, reason: 'Line too long.' }, cmd('NOOP', '', 'NOOP')]);
});

test('the limit counts bytes after Telnet removal, terminator excluded', (t) => {
  const nops = '\xff\xf1'.repeat(50);
  t.deepEqual(frame(`NO${nops}OP\r\n`, { maxLineLength: 4 }), [cmd('NOOP', '', 'NOOP')]);
  // IAC IAC is one data byte.
  t.deepEqual(frame('A b\xff\xff\r\n', { maxLineLength: 4, encoding: 'latin1' }), [cmd('A', 'b\xff', 'A b\xff')]);
  t.deepEqual(frame('A b\xff\xffc\r\n', { maxLineLength: 4, encoding: 'latin1' }), [{ type: 'error', code: 500, reason: 'Line too long.' }]);
  const f = new CommandFramer({ maxLineLength: 4, encoding: 'latin1' });
  t.deepEqual(feed(f, 'A b\xff\xff'), []);
  t.is(f.buffered, 4);
  t.deepEqual(feed(f, '\xff\xff'), []);
  t.is(f.buffered, 0, 'a fifth byte, even an escaped 0xFF, is over the limit');
  t.deepEqual(feed(f, '\r\n'), [{ type: 'error', code: 500, reason: 'Line too long.' }]);
});

// --- Telnet ---

test('IAC IAC is a literal 0xFF byte', (t) => {
  t.deepEqual(frame('STOR a\xff\xffb\r\n', { encoding: 'latin1' }), [cmd('STOR', 'a\xffb', 'STOR a\xffb')]);
});

test('IAC WILL/WONT/DO/DONT <option> is removed', (t) => {
  assertSplitInvariant(t, 'NO\xff\xfb\x01O\xff\xfc\x03P\xff\xfd\x18\xff\xfe\x1f\r\n', [cmd('NOOP', '', 'NOOP')]);
});

test('the option byte of a negotiation is not data, even when it is LF or CR', (t) => {
  assertSplitInvariant(t, 'NO\xff\xfd\nOP\xff\xfb\r\r\n', [cmd('NOOP', '', 'NOOP')]);
});

test('IAC IP IAC DM ABOR yields ABOR', (t) => {
  assertSplitInvariant(t, '\xff\xf4\xff\xf2ABOR\r\n', [cmd('ABOR', '', 'ABOR')]);
});

test('other two-byte commands (AO, AYT, NOP, GA, EL) are removed', (t) => {
  assertSplitInvariant(t, '\xff\xf5P\xff\xf6W\xff\xf1\xff\xf9D\xff\xf8\r\n', [cmd('PWD', '', 'PWD')]);
});

test('a subnegotiation IAC SB ... IAC SE is removed, IAC IAC inside included', (t) => {
  assertSplitInvariant(t, 'SY\xff\xfa\x18\x00\rxx\xff\xffyy\xff\xf0ST\r\n', [cmd('SYST', '', 'SYST')]);
});

test('a subnegotiation not ended before LF refuses its whole line (501), and the next line is framed as usual', (t) => {
  const refused = { type: 'error', code: 501, reason: 'Syntax error: Telnet subnegotiation without IAC SE.' };
  assertSplitInvariant(t, 'DELE a\xff\xfab.txt\r\nNOOP\r\n', [refused, cmd('NOOP', '', 'NOOP')]);
  assertSplitInvariant(t, 'DELE a\xff\xfab\xff\r\nNOOP\r\n', [refused, cmd('NOOP', '', 'NOOP')]);
  assertSplitInvariant(t, '\xff\xfa\x18\nPWD\r\n', [refused, cmd('PWD', '', 'PWD')]);
});

// --- ABOR sent as urgent data (LF lost) ---

test('ABOR CR at the end of the received bytes completes ABOR; a later LF is swallowed', (t) => {
  const f = new CommandFramer();
  t.deepEqual(feed(f, 'ABOR\r'), [cmd('ABOR', '', 'ABOR')]);
  t.deepEqual(feed(f, '\n'), [], 'the LF does not make an empty line or a second event');
  t.deepEqual(feed(f, 'NOOP\r\n'), [cmd('NOOP', '', 'NOOP')]);
});

test('ABOR CR whose LF never arrives: the next command is framed normally', (t) => {
  const f = new CommandFramer();
  t.deepEqual(feed(f, '\xff\xf4\xff\xf2abor\r'), [cmd('ABOR', '', 'abor')]);
  t.deepEqual(feed(f, 'NOOP\r\n'), [cmd('NOOP', '', 'NOOP')]);
  t.is(f.buffered, 0);
});

test('ABOR CR followed by a Telnet command and then the LF still swallows the LF', (t) => {
  const f = new CommandFramer();
  t.deepEqual(feed(f, 'ABOR\r'), [cmd('ABOR', '', 'ABOR')]);
  t.deepEqual(feed(f, '\xff\xf1\nSTAT\r\n'), [cmd('STAT', '', 'STAT')]);
});

test('ABOR CRLF in one chunk, or split after the CR, gives one ABOR', (t) => {
  assertSplitInvariant(t, 'ABOR\r\nNOOP\r\n', [cmd('ABOR', '', 'ABOR'), cmd('NOOP', '', 'NOOP')]);
});

test('the early completion is for ABOR only', (t) => {
  const f = new CommandFramer();
  t.deepEqual(feed(f, 'NOOP\r'), []);
  t.deepEqual(feed(f, 'XABOR\r'), [], 'the NOOP CR followed by X is a stray CR');
  t.deepEqual(feed(f, '\n'), [{ type: 'error', code: 501, reason: 'Syntax error: stray CR in command line.' }]);
  t.deepEqual(feed(new CommandFramer(), 'ABORT\r'), []);
  t.deepEqual(feed(new CommandFramer(), 'ABOR x\r'), []);
});

test('a CR that is a Telnet option byte does not trigger the ABOR rule', (t) => {
  const f = new CommandFramer();
  t.deepEqual(feed(f, 'ABOR\xff\xfd\r'), []);
  t.deepEqual(feed(f, '\r\n'), [cmd('ABOR', '', 'ABOR')]);
});

test('the ABOR rule needs the CR to be the last byte received', (t) => {
  const f = new CommandFramer();
  t.deepEqual(feed(f, 'ABOR\r\xff\xf1'), [], 'a Telnet NOP came after the CR');
  t.deepEqual(feed(f, '\n'), [cmd('ABOR', '', 'ABOR')]);
});

// --- stray CR and NUL ---

test('a CR followed by anything but LF refuses the whole line with 501', (t) => {
  assertSplitInvariant(t, 'RETR a\rDELE b\r\nNOOP\r\n', [
    { type: 'error', code: 501, reason: 'Syntax error: stray CR in command line.' },
    cmd('NOOP', '', 'NOOP'),
  ]);
});

test('a stray CR split from the next command across chunks is still one bad line', (t) => {
  const f = new CommandFramer();
  t.deepEqual(feed(f, 'RETR a\r'), []);
  t.deepEqual(feed(f, 'DELE b\r\n'), [{ type: 'error', code: 501, reason: 'Syntax error: stray CR in command line.' }]);
});

test('CR CR LF is a stray CR', (t) => {
  t.deepEqual(frame('NOOP\r\r\n').map((e) => e.code), [501]);
});

test('a NUL byte refuses the line with 501 and framing goes on', (t) => {
  assertSplitInvariant(t, 'RETR a\x00b\r\nPWD\r\n', [
    { type: 'error', code: 501, reason: 'Syntax error: NUL byte in command line.' },
    cmd('PWD', '', 'PWD'),
  ]);
});

test('the first error of a line is the one reported', (t) => {
  const long = 'x'.repeat(20);
  t.deepEqual(frame(`A\x00${long}\r\n${long}\x00\r\n`, { maxLineLength: 8 }).map((e) => e.code), [501, 500]);
});

// --- decoding ---

test('lines are decoded as UTF-8 by default', (t) => {
  const input = Buffer.concat([Buffer.from('RETR файл ü.txt', 'utf8'), bytes('\r\n')]);
  t.deepEqual(frame(input), [cmd('RETR', 'файл ü.txt', 'RETR файл ü.txt')]);
});

test('a U+FFFD sent by the client is kept as UTF-8', (t) => {
  const input = Buffer.concat([Buffer.from('RETR \ufffd', 'utf8'), bytes('\r\n')]);
  t.deepEqual(frame(input), [cmd('RETR', '\ufffd', 'RETR \ufffd')]);
});

test('invalid UTF-8 falls back to latin1', (t) => {
  t.deepEqual(frame('RETR caf\xe9\r\n'), [cmd('RETR', 'caf\u00e9', 'RETR caf\u00e9')]);
});

test('invalid UTF-8 with fallbackEncoding null is a 501', (t) => {
  t.deepEqual(frame('RETR caf\xe9\r\nNOOP\r\n', { fallbackEncoding: null }), [
    { type: 'error', code: 501, reason: 'Syntax error: command line is not valid UTF-8.' },
    cmd('NOOP', '', 'NOOP'),
  ]);
});

test('setEncoding switches the decoding of lines not yet completed', (t) => {
  const f = new CommandFramer();
  const utf8 = Buffer.from('CWD é', 'utf8');
  t.deepEqual(f.push(Buffer.concat([utf8, bytes('\r\n')])), [cmd('CWD', 'é', 'CWD é')]);
  f.push(utf8);
  f.setEncoding('latin1');
  t.deepEqual(feed(f, '\r\n'), [cmd('CWD', '\u00c3\u00a9', 'CWD \u00c3\u00a9')]);
  f.setEncoding('utf8');
  t.deepEqual(f.push(Buffer.concat([utf8, bytes('\r\n')])), [cmd('CWD', 'é', 'CWD é')]);
});

test('encoding: latin1 as an option', (t) => {
  const utf8 = Buffer.concat([Buffer.from('CWD é', 'utf8'), bytes('\r\n')]);
  t.deepEqual(frame(utf8, { encoding: 'latin1' }), [cmd('CWD', '\u00c3\u00a9', 'CWD \u00c3\u00a9')]);
});
