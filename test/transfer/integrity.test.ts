import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { loggedIn, nextEvent, prepareData, randomContent, retr, sha256, stor, fileDigest } from '../helpers/data-client';
import { MATRIX, engineProbe, transferRecords, type Row } from '../helpers/matrix';
import { PASS, USER, startServer, type TestServer } from '../helpers/server';
import type { TransferInfo } from '../../src';

/**
 * Integrity by sha256 for RETR, STOR, APPE and STOU at the edges of the
 * engines' buffers, run once per {engine} × {data mode} from one set of bodies.
 */
const SIZES = [0, 1, 65535, 65536, 65537, 1024 * 1024 + 1];
const BIG = 100 * 1024 * 1024;

function oneRecord(t: ExecutionContext, s: TestServer, verb: string, bytes: number): Record<string, unknown> | undefined {
  const recs = transferRecords(s);
  t.is(recs.length, 1, 'one transfer log record');
  const r = recs[0];
  t.is(r?.transfer, verb);
  t.is(r?.bytes, bytes, 'the record counts the file bytes');
  t.is(r?.result, 'ok');
  return r;
}

function checkEvent(t: ExecutionContext, info: TransferInfo, ftpPath: string, bytes: number): void {
  t.is(info.path, ftpPath);
  t.is(info.bytes, bytes);
  t.true(info.ok);
}

async function retrCase(t: ExecutionContext, row: Row, size: number): Promise<void> {
  const s = await startServer(t, { useSendfile: row.useSendfile });
  const body = randomContent(size);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const c = await loggedIn(s.port, USER, PASS);
  const sent = nextEvent<[string, TransferInfo]>(s.server, 'fileSent');
  const probe = engineProbe(row);
  const out = await retr(c, row.mode, 'RETR f.bin', { keep: false, timeoutMs: 60000 });
  t.true(out.first.code === 150 || out.first.code === 125, `preliminary reply: ${out.first.code} ${out.first.text}`);
  t.is(out.final?.code, 226, out.final?.text);
  t.is(out.digest.bytes, size);
  t.is(out.digest.sha256, sha256(body), 'downloaded bytes hash like the file');
  const rec = oneRecord(t, s, 'RETR', size);
  probe.check(t, rec);
  const [p, info] = await sent;
  t.is(p, '/f.bin');
  checkEvent(t, info, '/f.bin', size);
  t.is((await c.cmd('NOOP')).code, 200, 'the session still works');
  c.close();
}

async function storCase(t: ExecutionContext, row: Row, verb: 'STOR' | 'APPE' | 'STOU', size: number): Promise<void> {
  const s = await startServer(t, { useSendfile: row.useSendfile });
  const body = randomContent(size);
  const prefix = verb === 'APPE' ? randomContent(777) : Buffer.alloc(0);
  if (verb === 'APPE') fs.writeFileSync(path.join(s.root, 'f.bin'), prefix);
  const c = await loggedIn(s.port, USER, PASS);
  const received = nextEvent<[string, TransferInfo]>(s.server, 'fileReceived');
  const probe = engineProbe(row);
  const out = await stor(c, row.mode, verb === 'STOU' ? 'STOU up' : `${verb} f.bin`, body, { timeoutMs: 60000 });
  t.true(out.first.code === 150 || out.first.code === 125, `preliminary reply: ${out.first.code} ${out.first.text}`);
  t.is(out.final?.code, 226, out.final?.text);
  let name = 'f.bin';
  if (verb === 'STOU') {
    const m = /^FILE: (\S+)$/.exec(out.first.text);
    t.truthy(m, `STOU's 150 names the file: ${out.first.text}`);
    name = m?.[1] ?? '?';
    t.regex(name, /^up\./);
  }
  const onDisk = await fileDigest(path.join(s.root, name));
  t.is(onDisk.bytes, prefix.length + size);
  t.is(onDisk.sha256, sha256(Buffer.concat([prefix, body])), 'the stored file hashes like what was sent');
  const rec = oneRecord(t, s, verb, size);
  probe.check(t, rec);
  const [p, info] = await received;
  t.is(p, `/${name}`);
  checkEvent(t, info, `/${name}`, size);
  t.is((await c.cmd('NOOP')).code, 200, 'the session still works');
  c.close();
}

for (const row of MATRIX) {
  for (const size of SIZES) {
    row.test(`RETR of ${size} bytes arrives intact`, (t) => retrCase(t, row, size));
    row.test(`STOR of ${size} bytes is stored intact`, (t) => storCase(t, row, 'STOR', size));
    row.test(`APPE of ${size} bytes extends the file intact`, (t) => storCase(t, row, 'APPE', size));
    row.test(`STOU of ${size} bytes is stored intact under a unique name`, (t) => storCase(t, row, 'STOU', size));
  }
}

// 100 MiB once per data mode (native engine where it exists, else streams), plus once on streams over passive.
for (const row of MATRIX) {
  if (row.engine === 'native' || row.mode === 'passive') {
    row.test('RETR of 100 MiB arrives intact', (t) => retrCase(t, row, BIG));
    row.test('STOR of 100 MiB is stored intact', (t) => storCase(t, row, 'STOR', BIG));
  }
}

// The stream path reads a local file into two buffers it reuses: one being sent while the next is
// read. A client that reads slowly makes the socket hold a chunk for a while (a write that does not
// complete at once); a buffer reused before its write completed would send bytes of a later chunk.
for (const row of MATRIX.filter((r) => r.engine === 'stream')) {
  row.test('RETR read slowly by the client (the socket pushing back) arrives intact', async (t) => {
    const s = await startServer(t, { useSendfile: false });
    const body = randomContent(24 * 1024 * 1024 + 333);
    fs.writeFileSync(path.join(s.root, 'f.bin'), body);
    const c = await loggedIn(s.port, USER, PASS);
    const plan = await prepareData(c, row.mode);
    c.send('RETR f.bin\r\n');
    const first = await c.read();
    t.true(first?.code === 150 || first?.code === 125, JSON.stringify(first));
    const sock = await plan.socket();
    const parts: Buffer[] = [];
    sock.pause();
    await new Promise((r) => setTimeout(r, 300)); // the kernel's buffers fill; writes queue in Node
    await new Promise<void>((resolve, reject) => {
      sock.on('data', (d: Buffer) => {
        parts.push(d);
        sock.pause();
        setTimeout(() => sock.resume(), 1);
      });
      sock.on('end', resolve);
      sock.on('error', reject);
      sock.resume();
    });
    sock.destroy();
    t.is((await c.read(30000))?.code, 226);
    const got = Buffer.concat(parts);
    t.is(got.length, body.length);
    t.is(sha256(got), sha256(body), 'every chunk is the file\'s own bytes, in order');
    c.close();
  });
}
