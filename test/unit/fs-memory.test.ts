import test from 'ava';
import { once } from 'node:events';
import { MemoryFileSystem } from '../../src/fs/memory';
import { codeOf, fsContract, getFile, putFile } from '../helpers/fs-contract';

fsContract(test, 'memory', async () => new MemoryFileSystem());

test('memory: initial files and directories', async (t) => {
  const fs = new MemoryFileSystem({
    files: { '/a.txt': 'content', 'deep/er/b.bin': Buffer.from([1, 2, 3]), '/empty/': '' },
  });
  t.is((await getFile(fs, '/a.txt')).toString(), 'content');
  t.deepEqual(await getFile(fs, '/deep/er/b.bin'), Buffer.from([1, 2, 3]));
  t.is((await fs.stat('/deep')).kind, 'dir');
  t.is((await fs.stat('/empty')).kind, 'dir');
  t.deepEqual((await fs.readdir('/')).map((e) => e.name).sort(), ['a.txt', 'deep', 'empty']);
  t.is(fs.usedBytes, 10);
});

test('memory: handles have no fd; owner is 0', async (t) => {
  const fs = new MemoryFileSystem({ files: { '/f': 'x' } });
  const h = await fs.openRead('/f', 0);
  t.is(h.fd, undefined);
  await h.close();
  const st = await fs.stat('/f');
  t.is(st.uid, 0);
  t.is(st.gid, 0);
});

test('memory: maxBytes refuses writes past the quota with ENOSPC and frees on unlink', async (t) => {
  const fs = new MemoryFileSystem({ maxBytes: 100 });
  await putFile(fs, '/a', Buffer.alloc(60));
  t.is(fs.usedBytes, 60);
  t.is(await codeOf(t, putFile(fs, '/b', Buffer.alloc(41))), 'ENOSPC');
  t.is((await fs.stat('/b')).size, 0, 'the refused chunk left nothing');
  await putFile(fs, '/b', Buffer.alloc(40));
  t.is(fs.usedBytes, 100);
  t.is(await codeOf(t, putFile(fs, '/a', Buffer.alloc(1), { append: true })), 'ENOSPC');
  await putFile(fs, '/a', Buffer.alloc(10)); // truncation frees space
  t.is(fs.usedBytes, 50);
  await fs.unlink('/b');
  t.is(fs.usedBytes, 10);
  await putFile(fs, '/c', Buffer.alloc(30));
  await fs.rename('/c', '/a'); // the replaced file is freed
  t.is(fs.usedBytes, 30);
  await putFile(fs, '/a', Buffer.alloc(5), { offset: 28 }); // grows by 3
  t.is(fs.usedBytes, 33);
});

test('memory: one instance shared by sessions; interleaved writes to one file land like pwrite', async (t) => {
  const fs = new MemoryFileSystem();
  const h1 = await fs.openWrite('/shared', {});
  const h2 = await fs.openWrite('/shared', { offset: 4 });
  const w1 = h1.createWriteStream();
  const w2 = h2.createWriteStream();
  w1.write('ab');
  w2.write('XY');
  w1.write('cd');
  w2.end('Z');
  w1.end();
  await Promise.all([once(w1, 'finish'), once(w2, 'finish')]);
  await Promise.all([h1.close(), h2.close()]);
  t.is((await getFile(fs, '/shared')).toString(), 'abcdXYZ');
});

test('memory: a reader sees bytes appended while it reads (current bytes, not a snapshot)', async (t) => {
  const fs = new MemoryFileSystem({ files: { '/log': 'one;' } });
  const r = await fs.openRead('/log', 0);
  const rs = r.createReadStream();
  await putFile(fs, '/log', 'two;', { append: true });
  const chunks: Buffer[] = [];
  for await (const c of rs) chunks.push(c as Buffer);
  await r.close();
  t.is(Buffer.concat(chunks).toString(), 'one;two;');
});

test('memory: writing after close fails with EBADF', async (t) => {
  const fs = new MemoryFileSystem();
  const h = await fs.openWrite('/f', {});
  const ws = h.createWriteStream();
  await h.close();
  t.true(ws.destroyed);
  const h2 = await fs.openWrite('/g', {});
  await h2.close();
  const ws2 = h2.createWriteStream();
  ws2.on('error', () => undefined);
  const err = await new Promise<NodeJS.ErrnoException | null | undefined>((resolve) => ws2.write('x', resolve));
  t.is(err?.code, 'EBADF');
});

test('memory: large files use pages; sparse reads are zeros', async (t) => {
  const fs = new MemoryFileSystem();
  await putFile(fs, '/s', 'end', { offset: 300_000 });
  const b = await getFile(fs, '/s');
  t.is(b.length, 300_003);
  t.true(b.subarray(0, 300_000).every((x) => x === 0));
  t.is(b.subarray(300_000).toString(), 'end');
});
