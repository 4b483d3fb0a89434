import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { createHash } from 'node:crypto';
import { randomContent, settleSessionsOnTeardown, sha256 } from '../helpers/data-client';
import { PASS, USER, startServer } from '../helpers/server';

/** basic-ftp in-process: uploadFrom/downloadTo (streams and files), list over MLSD, ensureDir, rename, remove. */

test('basic-ftp uploads, downloads, lists with MLSD, ensureDir, rename, remove', async (t) => {
  const s = await startServer(t);
  settleSessionsOnTeardown(t, s.server);
  const client = new Client(20000);
  t.teardown(() => client.close());
  await client.access({ host: '127.0.0.1', port: s.port, user: USER, password: PASS });

  const body = randomContent(3 * 1024 * 1024 + 7);
  await client.ensureDir('/up/deep/er');
  t.is(await client.pwd(), '/up/deep/er', 'ensureDir leaves us in the new directory');
  await client.uploadFrom(Readable.from([body]), 'stream.bin');
  t.is(sha256(fs.readFileSync(path.join(s.root, 'up', 'deep', 'er', 'stream.bin'))), sha256(body));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-basic-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const localFile = path.join(dir, 'file.bin');
  fs.writeFileSync(localFile, body);
  await client.uploadFrom(localFile, '/file.bin');
  t.is(sha256(fs.readFileSync(path.join(s.root, 'file.bin'))), sha256(body));

  const h = createHash('sha256');
  await client.downloadTo(
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        cb();
      },
    }),
    '/up/deep/er/stream.bin',
  );
  t.is(h.digest('hex'), sha256(body), 'downloadTo a stream');
  const back = path.join(dir, 'back.bin');
  await client.downloadTo(back, '/file.bin');
  t.is(sha256(fs.readFileSync(back)), sha256(body), 'downloadTo a file');

  const list = await client.list('/');
  t.true(
    s.records.some((r) => r.msg === 'command' && r.cmd === 'MLSD' && r.code === 226),
    'basic-ftp listed with MLSD (FEAT advertises MLST)',
  );
  const byName = Object.fromEntries(list.map((e) => [e.name, e]));
  t.deepEqual(Object.keys(byName).sort(), ['file.bin', 'up']);
  t.is(byName['file.bin'].size, body.length);
  t.true(byName['file.bin'].isFile);
  t.true(byName.up.isDirectory);
  t.truthy(byName['file.bin'].modifiedAt, 'MLSD modify fact parsed');

  await client.rename('/file.bin', '/up/renamed.bin');
  t.false(fs.existsSync(path.join(s.root, 'file.bin')));
  t.is(sha256(fs.readFileSync(path.join(s.root, 'up', 'renamed.bin'))), sha256(body));
  await client.remove('/up/renamed.bin');
  t.false(fs.existsSync(path.join(s.root, 'up', 'renamed.bin')));
  t.is(await client.size('/up/deep/er/stream.bin'), body.length);
  await client.removeDir('/up');
  t.false(fs.existsSync(path.join(s.root, 'up')));
  client.close();
});

test('basic-ftp appendFrom and a resumed downloadTo (REST)', async (t) => {
  const s = await startServer(t);
  settleSessionsOnTeardown(t, s.server);
  const body = randomContent(1024 * 1024 + 1);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body.subarray(0, 500_000));
  const client = new Client(20000);
  t.teardown(() => client.close());
  await client.access({ host: '127.0.0.1', port: s.port, user: USER, password: PASS });
  await client.appendFrom(Readable.from([body.subarray(500_000)]), 'f.bin');
  t.is(sha256(fs.readFileSync(path.join(s.root, 'f.bin'))), sha256(body));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-basic-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const local = path.join(dir, 'f.bin');
  fs.writeFileSync(local, body.subarray(0, 123_456));
  await client.downloadTo(fs.createWriteStream(local, { flags: 'r+', start: 123_456 }), 'f.bin', 123_456);
  t.is(sha256(fs.readFileSync(local)), sha256(body), 'resumed download completes the file');
  client.close();
});
