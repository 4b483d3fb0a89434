// The addon's lstatMany: a listing's batch of names stat'ed in one pool job (the directory opened
// once, fstatat per name). Its answers must be what fs.lstat gives, name by name, since
// LocalFileSystem uses it for LIST, NLST, MLSD, STAT, quota walks and folder copies.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lstatMany, lstatManyCount } from '../../src/native/index';
import { LocalFileSystem } from '../../src/fs/local';
import { openFds } from '../helpers/server';

function scratch(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-lstat-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('lstatMany gives fs.lstat figures for files, folders, links, FIFOs and a name that is not UTF-8, and ENOENT per missing name', async (t) => {
  const dir = scratch(t);
  fs.writeFileSync(path.join(dir, 'file.txt'), 'x'.repeat(1234));
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.symlinkSync('/etc/passwd', path.join(dir, 'link'));
  fs.symlinkSync('nowhere', path.join(dir, 'dangling'));
  fs.utimesSync(path.join(dir, 'file.txt'), 1_000_000, 1_700_000_000.123456);
  const latin1 = Buffer.from('caf\xe9', 'latin1');
  fs.writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), latin1]), 'ab');
  require('node:child_process').execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  const names: Array<string | Buffer> = ['file.txt', 'sub', 'link', 'dangling', 'fifo', latin1, 'gone'];
  const got = await lstatMany!(dir, names);
  t.is(got.length, names.length);
  for (let i = 0; i < names.length - 1; i++) {
    const st = fs.lstatSync(typeof names[i] === 'string' ? path.join(dir, names[i] as string) : Buffer.concat([Buffer.from(`${dir}/`), names[i] as Buffer]));
    const g = got[i];
    if (typeof g === 'string') {
      t.fail(`${String(names[i])}: ${g}`);
      continue;
    }
    t.deepEqual(
      [g.mode, g.size, g.mtimeMs, g.uid, g.gid, g.nlink, g.dev, g.ino],
      [st.mode, st.size, st.mtimeMs, st.uid, st.gid, st.nlink, st.dev, st.ino],
      String(names[i]),
    );
  }
  t.is(got[names.length - 1], 'ENOENT');
});

test('lstatMany refuses names with / or NUL and more than 4096 names (RangeError), rejects a folder it cannot open, and leaves no descriptor', async (t) => {
  const dir = scratch(t);
  fs.writeFileSync(path.join(dir, 'a'), '');
  const before = openFds();
  await t.throwsAsync(lstatMany!(dir, ['../a']), { instanceOf: RangeError });
  await t.throwsAsync(lstatMany!(dir, ['a\0b']), { instanceOf: RangeError });
  await t.throwsAsync(lstatMany!(dir, [Buffer.from('x/y')]), { instanceOf: RangeError });
  await t.throwsAsync(lstatMany!(dir, ['']), { instanceOf: RangeError });
  await t.throwsAsync(lstatMany!(dir, Array.from({ length: 4097 }, () => 'a')), { instanceOf: RangeError });
  await t.throwsAsync(lstatMany!(path.join(dir, 'missing'), ['a']), { code: 'ENOENT' });
  await t.throwsAsync(lstatMany!(path.join(dir, 'a'), ['a']), { code: 'ENOTDIR' });
  t.deepEqual(await lstatMany!(dir, []), []);
  for (let i = 0; i < 50; i++) await lstatMany!(dir, ['a', 'b']);
  t.is(openFds(), before);
});

test.serial('LocalFileSystem lists the same entries and figures with lstatMany and with fs.lstat per name (1,002 entries; one removed between the names and its batch is left out)', async (t) => {
  const root = scratch(t);
  fs.mkdirSync(path.join(root, 'big'));
  for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(root, 'big', `f${i}`), 'y'.repeat(i));
  fs.mkdirSync(path.join(root, 'big', 'dir'));
  fs.symlinkSync('f1', path.join(root, 'big', 'ln'));
  const lfs = new LocalFileSystem(root);
  const jobs = lstatManyCount();
  const batched = await lfs.readdir('/big');
  t.is(batched.length, 1002);
  t.is(lstatManyCount() - jobs, 4, 'four jobs of up to 256 names: the batched path was taken');
  // The same figures as fs.lstat, entry by entry.
  for (const e of batched) {
    const st = fs.lstatSync(path.join(root, 'big', e.name));
    t.is(e.stat.size, st.size, e.name);
    t.is(e.stat.mode, st.mode, e.name);
    t.is(e.stat.mtime.getTime(), st.mtime.getTime(), e.name);
    t.is(e.stat.unique, `${st.dev.toString(16)}g${st.ino.toString(16)}`, e.name);
  }
  // Streamed, in batches: the names are read first, and one removed before its batch is left out.
  const batches = await lfs.readdirStream('/big', 256);
  fs.rmSync(path.join(root, 'big', 'f999'));
  const streamed: string[] = [];
  for await (const b of batches) streamed.push(...b.map((e) => e.name));
  t.is(streamed.length, 1001);
  t.false(streamed.includes('f999'));
  t.deepEqual(new Set(streamed), new Set(batched.map((e) => e.name).filter((n) => n !== 'f999')));
});
