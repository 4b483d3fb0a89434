'use strict';

// Reply formatting (RFC 959 4.2). Text never reaches the wire with a raw CR,
// LF or other C0 control: line breaks in the text become reply lines, the
// remaining controls become spaces.

// C0 controls except tab, plus DEL.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f]/g;
const BREAK = /\r\n|\r|\n/;

/** Replace CR, LF, NUL and the other C0 controls (tab excepted) with a space. */
function sanitizeLine(text) {
  const s = typeof text === 'string' ? text : String(text);
  return CONTROL.test(s) ? s.replace(CONTROLS, ' ') : s;
}

/** The path for a 257 reply, without the surrounding quotes: sanitised, '"' doubled. */
function quotePath(path) {
  return sanitizeLine(path).replace(/"/g, '""');
}

function checkCode(code) {
  if (!Number.isInteger(code) || code < 100 || code > 599) {
    throw new RangeError(`reply code must be an integer from 100 to 599, got ${code}`);
  }
}

// Split text into reply lines: every CRLF, CR or LF is a line break, and a
// break at the very end of a string or array item ends it (no empty line).
function toLines(text) {
  const parts = [];
  const items = typeof text === 'string' ? [text] : Array.from(text, String);
  for (const item of items) {
    const split = item.split(BREAK);
    if (split.length > 1 && split[split.length - 1] === '') split.pop();
    for (const line of split) parts.push(sanitizeLine(line));
  }
  return parts;
}

/**
 * "CODE text\r\n", or for several lines "CODE-first\r\n...\r\nCODE last\r\n".
 * A body line starting with a digit is indented by one space so that no
 * client takes it for the last line.
 */
function formatReply(code, text) {
  checkCode(code);
  if (typeof text === 'string' && !CONTROL.test(text)) return `${code} ${text}\r\n`;
  const lines = toLines(text == null ? '' : text);
  if (lines.length === 0) return `${code} \r\n`;
  const last = lines.length - 1;
  if (last === 0) return `${code} ${lines[0]}\r\n`;
  let out = `${code}-${lines[0]}\r\n`;
  for (let i = 1; i < last; i++) {
    const line = lines[i];
    const c = line.charCodeAt(0);
    out += (c >= 0x30 && c <= 0x39 ? ' ' : '') + line + '\r\n';
  }
  return out + `${code} ${lines[last]}\r\n`;
}

module.exports = { formatReply, sanitizeLine, quotePath };
