import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileDigest, loggedIn, randomContent, retr, sha256, stor } from '../helpers/data-client';
import { MATRIX, engineProbe, transferRecords } from '../helpers/matrix';
import { explain, run } from '../helpers/run';
import { PASS, USER, startServer } from '../helpers/server';

/** REST with RETR, STOR and APPE; curl's -C - both ways; offsets past 4 GiB. */

const SIZE = 300_001;

for (const row of MATRIX) {
  row.test('REST + RETR at 0, in the middle and at the end; past the end is 554', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    const body = randomContent(SIZE);
    fs.writeFileSync(path.join(s.root, 'f.bin'), body);
    const c = await loggedIn(s.port, USER, PASS);
    for (const offset of [0, 1, 65536, 123_457, SIZE - 1, SIZE]) {
      const r = await c.cmd(`REST ${offset}`);
      t.is(r.code, 350, r.text);
      const out = await retr(c, row.mode, 'RETR f.bin');
      t.is(out.final?.code, 226, `REST ${offset}: ${out.final?.text}`);
      t.is(out.digest.bytes, SIZE - offset, `REST ${offset}: only the tail is sent`);
      t.is(out.digest.sha256, sha256(body.subarray(offset)), `REST ${offset}: the tail is intact`);
    }
    const recs = transferRecords(s);
    t.deepEqual(
      recs.map((r) => r.bytes),
      [0, 1, 65536, 123_457, SIZE - 1, SIZE].map((o) => SIZE - o),
      'each record counts the bytes actually sent',
    );
    t.is((await c.cmd(`REST ${SIZE + 1}`)).code, 350);
    const beyond = await retr(c, row.mode, 'RETR f.bin');
    t.is(beyond.first.code, 554, `REST past the end: ${beyond.first.code} ${beyond.first.text}`);
    // The refused REST was consumed: the next RETR starts at 0.
    const full = await retr(c, row.mode, 'RETR f.bin');
    t.is(full.final?.code, 226);
    t.is(full.digest.sha256, sha256(body), 'a REST is used by one command only');
    c.close();
  });

  row.test('REST + STOR keeps the content before the offset and replaces the rest', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    const old = randomContent(SIZE);
    const file = path.join(s.root, 'f.bin');
    const c = await loggedIn(s.port, USER, PASS);
    // A longer tail than the old one (the usual resume), then a shorter one.
    for (const [offset, n] of [
      [100_000, 250_000],
      [200_000, 1000],
    ] as const) {
      fs.writeFileSync(file, old);
      const fresh = randomContent(n);
      t.is((await c.cmd(`REST ${offset}`)).code, 350);
      const probe = engineProbe(row);
      const before = transferRecords(s).length;
      const out = await stor(c, row.mode, 'STOR f.bin', fresh);
      t.is(out.final?.code, 226, out.final?.text);
      const expected = Buffer.concat([old.subarray(0, offset), fresh]);
      const got = fs.readFileSync(file);
      t.is(got.length, expected.length, `REST ${offset} + STOR of ${n} bytes: file is offset + upload long`);
      t.true(got.equals(expected), `REST ${offset} + STOR of ${n} bytes: head kept, rest replaced`);
      const rec = transferRecords(s)[before];
      t.is(rec?.bytes, n);
      probe.check(t, rec);
    }
    c.close();
  });

  row.test('REST + APPE appends at the end and consumes the REST', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    const old = randomContent(SIZE);
    const file = path.join(s.root, 'f.bin');
    fs.writeFileSync(file, old);
    const c = await loggedIn(s.port, USER, PASS);
    const more = randomContent(65537);
    t.is((await c.cmd(`REST ${SIZE}`)).code, 350);
    const out = await stor(c, row.mode, 'APPE f.bin', more);
    t.is(out.final?.code, 226, out.final?.text);
    t.is((await fileDigest(file)).sha256, sha256(Buffer.concat([old, more])));
    // The REST did not leak into the next transfer.
    const back = await retr(c, row.mode, 'RETR f.bin');
    t.is(back.digest.bytes, SIZE + more.length);
    c.close();
  });

  row.test('REST past 4 GiB on a sparse 4.5 GiB file sends only the tail', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    const size = 4.5 * 1024 ** 3;
    const file = path.join(s.root, 'huge.bin');
    const marker = randomContent(1000);
    const fd = fs.openSync(file, 'w');
    try {
      fs.ftruncateSync(fd, size);
      fs.writeSync(fd, marker, 0, marker.length, size - 1000);
    } finally {
      fs.closeSync(fd);
    }
    const c = await loggedIn(s.port, USER, PASS);
    const sz = await c.cmd('SIZE huge.bin');
    t.is(sz.code, 213);
    t.is(sz.text, String(size), 'SIZE is exact past 2^32');
    const offset = size - 3000;
    t.true(offset > 2 ** 32);
    t.is((await c.cmd(`REST ${offset}`)).code, 350);
    const probe = engineProbe(row);
    const out = await retr(c, row.mode, 'RETR huge.bin');
    t.is(out.final?.code, 226, out.final?.text);
    t.is(out.digest.bytes, 3000);
    t.true(out.data.subarray(0, 2000).equals(Buffer.alloc(2000)), 'the hole reads as zeros');
    t.true(out.data.subarray(2000).equals(marker), 'the marker near the end arrives intact');
    const rec = transferRecords(s)[0];
    t.is(rec?.bytes, 3000);
    probe.check(t, rec);
    c.close();
  });
}

test('REST in TYPE A is refused (501) and a bad offset is 501', async (t) => {
  const s = await startServer(t);
  const c = await loggedIn(s.port, USER, PASS, '127.0.0.1', 'A');
  t.is((await c.cmd('REST 10')).code, 501);
  t.is((await c.cmd('TYPE I')).code, 200);
  t.is((await c.cmd('REST abc')).code, 501);
  t.is((await c.cmd('REST -1')).code, 501);
  c.close();
});

test('curl -C - resumes a partial download', async (t) => {
  const s = await startServer(t);
  const body = randomContent(2 * 1024 * 1024 + 17);
  fs.writeFileSync(path.join(s.root, 'd.bin'), body);
  const local = path.join(fs.mkdtempSync(path.join(s.root, '..', 'curl-')), 'd.bin');
  t.teardown(() => fs.rmSync(path.dirname(local), { recursive: true, force: true }));
  fs.writeFileSync(local, body.subarray(0, 777_777));
  const r = await run('curl', ['-sS', '--fail', '-C', '-', '-o', local, `${s.url}/d.bin`]);
  t.is(r.code, 0, explain(r));
  t.is((await fileDigest(local)).sha256, sha256(body));
  const rec = transferRecords(s)[0];
  t.is(rec?.bytes, body.length - 777_777, 'only the missing tail was sent');
});

test('curl -C - resumes a partial upload', async (t) => {
  const s = await startServer(t);
  const body = randomContent(2 * 1024 * 1024 + 17);
  fs.writeFileSync(path.join(s.root, 'u.bin'), body.subarray(0, 1_000_003));
  const dir = fs.mkdtempSync(path.join(s.root, '..', 'curl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const local = path.join(dir, 'u.bin');
  fs.writeFileSync(local, body);
  const r = await run('curl', ['-sS', '--fail', '-C', '-', '-T', local, `${s.url}/u.bin`]);
  t.is(r.code, 0, explain(r));
  t.is((await fileDigest(path.join(s.root, 'u.bin'))).sha256, sha256(body));
  const rec = transferRecords(s)[0];
  t.is(rec?.bytes, body.length - 1_000_003, 'only the missing tail was uploaded');
});
