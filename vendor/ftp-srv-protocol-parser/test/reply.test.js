'use strict';

const test = require('ava');
const fc = require('fast-check');
const { formatReply, sanitizeLine, quotePath } = require('..');

test('a single-line reply is "CODE text\\r\\n"', (t) => {
  t.is(formatReply(226, 'Transfer complete.'), '226 Transfer complete.\r\n');
});

test('a one-element array is a single-line reply', (t) => {
  t.is(formatReply(200, ['Type set to I.']), '200 Type set to I.\r\n');
});

test('an array is a multi-line reply: CODE-first, body, CODE last', (t) => {
  t.is(formatReply(211, ['First', ' body', 'Last']), '211-First\r\n body\r\n211 Last\r\n');
  t.is(formatReply(214, ['a', 'b']), '214-a\r\n214 b\r\n');
});

test('a string with newlines is a multi-line reply, whatever the line break', (t) => {
  t.is(formatReply(211, 'First\n body\nLast'), '211-First\r\n body\r\n211 Last\r\n');
  t.is(formatReply(211, 'First\r\n body\rLast'), '211-First\r\n body\r\n211 Last\r\n');
});

test('a trailing line break does not add an empty last line', (t) => {
  t.is(formatReply(200, 'OK\n'), '200 OK\r\n');
  t.is(formatReply(211, ['a\n', 'b\r\n']), '211-a\r\n211 b\r\n');
});

test('a body line starting with a digit is indented so it cannot end the reply', (t) => {
  t.is(formatReply(211, ['Status', '226 not the end', 'x', 'End']), '211-Status\r\n 226 not the end\r\nx\r\n211 End\r\n');
});

test('first and last lines are not indented', (t) => {
  t.is(formatReply(211, ['1 first', '2 last']), '211-1 first\r\n211 2 last\r\n');
});

test('a CR or LF inside an array element becomes a line break, never raw', (t) => {
  t.is(formatReply(550, ['No such file: a\r\n226 ok']), '550-No such file: a\r\n550 226 ok\r\n');
  t.is(formatReply(211, ['x', 'y\rz', 'w']), '211-x\r\ny\r\nz\r\n211 w\r\n');
});

test('a client string cannot forge a reply line', (t) => {
  const evil = 'a\r\n226 Transfer complete.\r\n230 Login ok';
  const out = formatReply(550, `${evil}: No such file.`);
  const lines = out.split('\r\n');
  t.is(lines.pop(), '');
  t.true(lines.pop().startsWith('550 '));
  for (const line of lines) t.false(/^\d{3} /.test(line), line);
});

test('NUL and other controls become spaces; tab is kept', (t) => {
  t.is(formatReply(200, 'a\x00b\x1bc\td'), '200 a b c\td\r\n');
});

test('an empty text still gives a well-formed reply', (t) => {
  t.is(formatReply(200, ''), '200 \r\n');
  t.is(formatReply(200, []), '200 \r\n');
});

test('a code outside 100..599 is a programming error', (t) => {
  t.throws(() => formatReply(99, 'x'), { instanceOf: RangeError });
  t.throws(() => formatReply(600, 'x'), { instanceOf: RangeError });
  t.throws(() => formatReply(2.5, 'x'), { instanceOf: RangeError });
});

test('sanitizeLine replaces CR, LF, NUL and C0 controls but not tab', (t) => {
  t.is(sanitizeLine('a\rb\nc\x00d\x01e\x7ff\tg'), 'a b c d e f\tg');
  t.is(sanitizeLine('plain ü'), 'plain ü');
});

test('quotePath doubles quotes and sanitises, without adding the outer quotes', (t) => {
  t.is(quotePath('a"b'), 'a""b');
  t.is(quotePath('/x/"q"'), '/x/""q""');
  t.is(quotePath('/a\r\n257 "/evil"'), '/a  257 ""/evil""');
});

const anyText = fc.string({ unit: 'binary', maxLength: 40 });

test('property: every reply is well-formed and ends exactly once', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 100, max: 599 }),
      fc.oneof(anyText, fc.array(anyText, { maxLength: 6 })),
      (code, text) => {
        const out = formatReply(code, text);
        if (!out.endsWith('\r\n')) return false;
        const lines = out.slice(0, -2).split('\r\n');
        const last = lines.pop();
        if (!last.startsWith(`${code} `)) return false;
        if (lines.length > 0 && !lines[0].startsWith(`${code}-`)) return false;
        const all = [...lines, last];
        if (all.some((l) => /[\x00-\x08\x0a-\x1f\x7f]/.test(l))) return false;
        // No body line can be mistaken for the last line.
        return lines.slice(1).every((l) => !/^\d/.test(l));
      },
    ),
  );
  t.pass();
});

test('property: quotePath output has no controls and only paired quotes', (t) => {
  fc.assert(
    fc.property(anyText, (p) => {
      const q = quotePath(p);
      return !/[\x00-\x08\x0a-\x1f\x7f]/.test(q) && q.replace(/""/g, '').indexOf('"') === -1;
    }),
  );
  t.pass();
});
