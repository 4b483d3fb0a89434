import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loggedIn, retr, stor, type DataMode } from '../helpers/data-client';
import { transferRecords } from '../helpers/matrix';
import { PASS, USER, startServer } from '../helpers/server';

/**
 * TYPE A: LF → CRLF on RETR, CRLF → LF on STOR, a lone CR kept. The native
 * engine must decline these (they need conversion), so every row ends on streams
 * even with useSendfile on.
 */

/** RETR's conversion: every LF not already preceded by CR gets one. */
function toCrlf(b: Buffer): Buffer {
  return Buffer.from(b.toString('latin1').replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
}

/** STOR's conversion: CRLF → LF; any other CR is kept. */
function fromCrlf(b: Buffer): Buffer {
  return Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
}

/** Text with LF, CRLF and lone CR line ends, and a CRLF straddling every 64 KiB boundary. */
function mixedText(size: number): Buffer {
  const out = Buffer.alloc(size);
  const ends = ['\n', '\r\n', '\r', '\n\n', '\r\r\n'];
  let o = 0;
  let i = 0;
  while (o < size) {
    const line = `line ${i} ${'x'.repeat(i % 97)}${ends[i % ends.length]}`;
    o += out.write(line, o, 'latin1');
    i++;
  }
  for (let k = 65536; k + 1 < size; k += 65536) {
    out[k - 1] = 13;
    out[k] = 10;
  }
  return out;
}

const MODES: DataMode[] = ['passive', 'active'];

for (const mode of MODES) {
  test(`TYPE A RETR turns LF into CRLF and keeps a lone CR [${mode}]`, async (t) => {
    const s = await startServer(t);
    const body = Buffer.from('one\ntwo\r\nthree\rfour\n\nend', 'latin1');
    fs.writeFileSync(path.join(s.root, 'a.txt'), body);
    const c = await loggedIn(s.port, USER, PASS, '127.0.0.1', 'A');
    const out = await retr(c, mode, 'RETR a.txt');
    t.is(out.final?.code, 226, out.final?.text);
    t.is(out.data.toString('latin1'), 'one\r\ntwo\r\nthree\rfour\r\n\r\nend');
    const rec = transferRecords(s)[0];
    t.is(rec?.engine, 'stream', 'TYPE A never goes through the native engine');
    t.is(rec?.result, 'ok');
    c.close();
  });

  test(`TYPE A RETR of 1 MiB with line ends across read boundaries [${mode}]`, async (t) => {
    const s = await startServer(t);
    const body = mixedText(1024 * 1024 + 3);
    fs.writeFileSync(path.join(s.root, 'big.txt'), body);
    const c = await loggedIn(s.port, USER, PASS, '127.0.0.1', 'A');
    const out = await retr(c, mode, 'RETR big.txt');
    t.is(out.final?.code, 226, out.final?.text);
    t.true(out.data.equals(toCrlf(body)), 'converted output matches the reference conversion');
    c.close();
  });

  test(`TYPE A STOR turns CRLF into LF, also when CR and LF arrive in different segments [${mode}]`, async (t) => {
    const s = await startServer(t);
    const c = await loggedIn(s.port, USER, PASS, '127.0.0.1', 'A');
    const chunks = ['a\r\nb\r', '\nc\rd\r', '\n', 'lone\r', 'x\r\r', '\nend\r'].map((x) => Buffer.from(x, 'latin1'));
    const out = await stor(c, mode, 'STOR u.txt', chunks);
    t.is(out.final?.code, 226, out.final?.text);
    t.is(fs.readFileSync(path.join(s.root, 'u.txt'), 'latin1'), 'a\nb\nc\rd\nlone\rx\r\nend\r', 'CRLF → LF, lone CRs kept, a final CR kept');
    const rec = transferRecords(s)[0];
    t.is(rec?.engine, 'stream');
    t.is(rec?.result, 'ok');
    c.close();
  });

  test(`TYPE A STOR of 1 MiB with CRLF straddling every 64 KiB boundary [${mode}]`, async (t) => {
    const s = await startServer(t);
    const body = mixedText(1024 * 1024 + 5);
    const c = await loggedIn(s.port, USER, PASS, '127.0.0.1', 'A');
    // Uneven pieces, so CRLF pairs are split at many different places.
    const pieces: Buffer[] = [];
    for (let o = 0, k = 0; o < body.length; k++) {
      const n = Math.min(body.length - o, 4093 + ((k * 7919) % 70000));
      pieces.push(body.subarray(o, o + n));
      o += n;
    }
    const out = await stor(c, mode, 'STOR big.txt', pieces);
    t.is(out.final?.code, 226, out.final?.text);
    t.true(fs.readFileSync(path.join(s.root, 'big.txt')).equals(fromCrlf(body)), 'stored text matches the reference conversion');
    c.close();
  });
}

test('TYPE A round trip: upload of CRLF text, download gives it back as CRLF', async (t) => {
  const s = await startServer(t);
  const c = await loggedIn(s.port, USER, PASS, '127.0.0.1', 'A');
  const text = Buffer.from('alpha\r\nbeta\r\ngamma\r\n');
  t.is((await stor(c, 'passive', 'STOR r.txt', text)).final?.code, 226);
  t.is(fs.readFileSync(path.join(s.root, 'r.txt'), 'latin1'), 'alpha\nbeta\ngamma\n');
  const back = await retr(c, 'passive', 'RETR r.txt');
  t.true(back.data.equals(text));
  t.is((await c.cmd('TYPE I')).code, 200);
  const bin = await retr(c, 'passive', 'RETR r.txt');
  t.is(bin.data.toString('latin1'), 'alpha\nbeta\ngamma\n', 'TYPE I sends the bytes as stored');
  c.close();
});
