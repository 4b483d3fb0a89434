// Server-side copy of folders: SITE CPFR <folder> / SITE CPTO <new name> (src/ftp/commands/site/copy.ts),
// over a real control connection; every copied file is checked by SHA-256.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { MemoryFileSystem, VirtualAuthorizer, type CopyInfo } from '../../src';
import { MAX_TREE_ENTRIES } from '../../src/ftp/commands/site/copy';
import { LocalFileSystem } from '../../src/fs/local';
import { loggedIn, loginAs, trickling } from './_support';
import { nextEvent, randomContent, sha256 } from '../helpers/data-client';
import type { LineClient } from '../helpers/line-client';
import { eventually, startServer, type TestServer } from '../helpers/server';

async function copy(c: LineClient, from: string, to: string): Promise<{ cpfr: number; cpto: number; text: string }> {
  const a = await c.cmd(`SITE CPFR ${from}`);
  if (a.code !== 350) return { cpfr: a.code, cpto: 0, text: a.text };
  const b = await c.cmd(`SITE CPTO ${to}`);
  return { cpfr: a.code, cpto: b.code, text: b.text };
}

/** Every path below `dir`, folders with a trailing slash, sorted. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out.push(`${r}/`);
        walk(r);
      } else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/** src/ with files at three depths, an empty folder and a symlink. */
function makeTree(s: TestServer): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    'a.bin': randomContent(70_000),
    'sub/b.bin': randomContent(300_001),
    'sub/deeper/c.txt': Buffer.from('deep'),
  };
  for (const [rel, body] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(s.root, 'src', rel)), { recursive: true });
    fs.writeFileSync(path.join(s.root, 'src', rel), body);
  }
  fs.mkdirSync(path.join(s.root, 'src', 'empty'));
  fs.symlinkSync('a.bin', path.join(s.root, 'src', 'link'));
  return files;
}

for (const useSendfile of [true, false]) {
  const via = useSendfile ? 'copy_file_range' : 'stream';
  test(`SITE CPFR/CPTO of a folder copies the whole tree, empty folders included, and skips links (${via})`, async (t) => {
    const { s, c } = await loggedIn(t, { useSendfile });
    const files = makeTree(s);
    const event = nextEvent<[string, CopyInfo, unknown]>(s.server, 'fileCopied');
    const bytes = Object.values(files).reduce((n, b) => n + b.length, 0);

    const r = await copy(c, 'src', 'dst');
    t.deepEqual([r.cpfr, r.cpto], [350, 250]);
    t.is(r.text, `Copied 4 folders and 3 files, ${bytes} bytes. Skipped 1 (links and the like, or names no path can give).`);
    t.deepEqual(listing(path.join(s.root, 'dst')), ['a.bin', 'empty/', 'sub/', 'sub/b.bin', 'sub/deeper/', 'sub/deeper/c.txt']);
    for (const [rel, body] of Object.entries(files)) {
      t.is(sha256(fs.readFileSync(path.join(s.root, 'dst', rel))), sha256(body), rel);
      t.is(sha256(fs.readFileSync(path.join(s.root, 'src', rel))), sha256(body), `the source's ${rel} is untouched`);
    }
    t.true(fs.lstatSync(path.join(s.root, 'src', 'link')).isSymbolicLink());
    t.deepEqual(fs.readdirSync(s.root).sort(), ['dst', 'src'], 'no temporary folder is left');
    const [to, info] = await event;
    t.is(to, '/dst');
    t.like(info, { from: '/src', to: '/dst', bytes, via, files: 3, folders: 4, skipped: 1 });
    t.like(s.records.find((x) => x.msg === 'copy'), { from: '/src', to: '/dst', bytes, files: 3, folders: 4, skipped: 1 });
  });
}

test('SITE CPTO of a folder refuses a destination that exists, and a place inside the source itself, even through a link', async (t) => {
  const { s, c } = await loggedIn(t);
  makeTree(s);
  fs.writeFileSync(path.join(s.root, 'file'), 'x');
  fs.mkdirSync(path.join(s.root, 'there'));
  fs.symlinkSync('src', path.join(s.root, 'alias'));
  const before = listing(s.root);

  const exists = await copy(c, 'src', 'there');
  t.deepEqual([exists.cpto, exists.text], [553, 'Destination exists: a folder is copied to a new name.']);
  t.is((await copy(c, 'src', 'file')).cpto, 553);
  const inside = await copy(c, 'src', 'src/sub/again');
  t.deepEqual([inside.cpto, inside.text], [553, 'Cannot copy a folder into itself.']);
  t.is((await copy(c, 'src', 'src')).cpto, 553);
  t.is((await copy(c, 'src', 'alias/inner')).cpto, 553, 'inside the source through a symlinked folder');
  t.is((await copy(c, '/', 'all')).cpto, 553, 'the home into itself');
  t.deepEqual(listing(s.root), before, 'nothing was made');
  t.is((await c.cmd('NOOP')).code, 200);
});

test('SITE CPTO of a folder checks every permission before it makes anything: r on each file, m at the destination', async (t) => {
  const auth = new VirtualAuthorizer({ scrypt: { ln: 4, r: 8, p: 1 } });
  const s = await startServer(t, { authorizer: auth });
  makeTree(s);
  auth.addUser('u', 'pw', s.root, { perm: 'elradfmwMT' });
  // No r below /src/sub/deeper: c.txt there may not be read.
  auth.overridePerm('u', '/src/sub/deeper', 'el', true);
  auth.addUser('no-m', 'pw', s.root, { perm: 'elradfwMT' });
  const before = listing(s.root);

  const c = await loginAs(t, s, 'u', 'pw');
  const r = await copy(c, 'src', 'dst');
  t.deepEqual([r.cpfr, r.cpto, r.text], [350, 550, 'Not enough privileges.']);
  t.deepEqual(listing(s.root), before, 'nothing was made');
  t.is((await copy(c, 'src/sub/deeper', 'x')).cpfr, 550, 'nor may that folder be named as the source');

  const noM = await loginAs(t, s, 'no-m', 'pw');
  const m = await copy(noM, 'src', 'dst');
  t.deepEqual([m.cpfr, m.cpto], [350, 550]);
  t.deepEqual(listing(s.root), before);
});

test('SITE CPTO of a folder counts its files and bytes against the quota first: 552 and nothing made', async (t) => {
  const auth = new VirtualAuthorizer({ scrypt: { ln: 4, r: 8, p: 1 } });
  const s = await startServer(t, { authorizer: auth });
  makeTree(s); // 3 files
  auth.addUser('files', 'pw', s.root, { perm: 'elradfmwMT', limits: { quotaFiles: 5 } });
  auth.addUser('bytes', 'pw', s.root, { perm: 'elradfmwMT', limits: { quotaBytes: 700_000 } });
  const before = listing(s.root);

  const f = await loginAs(t, s, 'files', 'pw');
  const r = await copy(f, 'src', 'dst');
  t.deepEqual([r.cpto, r.text], [552, 'Quota exceeded.'], '3 files more than the 3 there do not fit in 5');
  t.deepEqual(listing(s.root), before);
  const b = await loginAs(t, s, 'bytes', 'pw');
  t.is((await copy(b, 'src', 'dst')).cpto, 552, 'twice 370,005 bytes do not fit in 700,000');
  t.deepEqual(listing(s.root), before);
  t.is((await copy(b, 'src/sub', 'sub-copy')).cpto, 250, 'its subfolder (300,005 bytes) fits');
  t.is((await copy(b, 'src/sub', 'sub-again')).cpto, 552, 'and the usage followed it');
});

test(`a folder of more than ${MAX_TREE_ENTRIES} entries is not copied (550), and nothing is made`, async (t) => {
  const files: Record<string, string> = {};
  for (let i = 0; i <= MAX_TREE_ENTRIES; i++) files[`/big/d${i % 10}/f${i}`] = '';
  const mem = new MemoryFileSystem({ files });
  const { c } = await loggedIn(t, { fileSystem: () => mem });
  const r = await copy(c, 'big', 'big2');
  t.deepEqual([r.cpto, r.text], [550, `Too many entries to copy (more than ${MAX_TREE_ENTRIES}).`]);
  t.deepEqual((await mem.readdir('/')).map((e) => e.name), ['big']);
});

test('a folder copy that runs out of room half way answers 452 and leaves nothing of itself behind', async (t) => {
  const body = (n: number): Buffer => randomContent(n);
  const mem = new MemoryFileSystem({
    files: { '/src/a': body(100_000), '/src/sub/b': body(100_000), '/src/sub/c': body(100_000), '/src/sub/d': body(100_000) },
    maxBytes: 600_000,
  });
  const { c } = await loggedIn(t, { fileSystem: () => mem });
  const r = await copy(c, 'src', 'dst');
  t.deepEqual([r.cpfr, r.cpto], [350, 452], r.text);
  t.deepEqual((await mem.readdir('/')).map((e) => e.name), ['src'], 'no temporary folder, no partial copy');
  t.is(mem.usedBytes, 400_000, 'every byte the copy wrote was given back');
  t.is((await c.cmd('NOOP')).code, 200);
});

test('ABOR during a folder copy stops it: 426 then 226, and the half-made copy is gone', async (t) => {
  // Files whose reads trickle (16 KiB every 20 ms), so the copy is still running when ABOR comes.
  const slow = trickling({ '/src/one': randomContent(64 * 1024), '/src/sub/two': randomContent(512 * 1024), '/src/sub/three': randomContent(512 * 1024) });
  const mem = slow.mem;
  const { c } = await loggedIn(t, { fileSystem: () => slow.fs });
  t.is((await c.cmd('SITE CPFR src')).code, 350);
  c.send('SITE CPTO dst\r\n');
  await eventually(() => slow.chunks() >= 6, 'the copy is past its first file');
  const stat = await c.cmd('STAT');
  t.regex(stat.lines.join('\n'), /Bytes copied: [1-9]/);
  c.send('ABOR\r\n');
  t.like(await c.read(), { code: 426, text: 'Copy aborted.' });
  t.like(await c.read(), { code: 226 });
  t.deepEqual((await mem.readdir('/')).map((e) => e.name), ['src'], 'no temporary folder, no partial copy');
  t.true(slow.chunks() < 68, `stopped after ${slow.chunks()} of 68 chunks`);
  t.is((await c.cmd('NOOP')).code, 200);
});

test('a file that grows after the folder was listed is copied at its listed size, the size the quota counted', async (t) => {
  const s = await startServer(t, {
    // A local filesystem whose listing of src/ is followed at once by an append to src/grow.bin,
    // between SITE CPTO's listing (and quota count) and its copy of that file.
    fileSystem: (_user, home) => {
      const lfs = new LocalFileSystem(home);
      const readdir = lfs.readdir.bind(lfs);
      lfs.readdir = async (p: string) => {
        const entries = await readdir(p);
        if (p === '/src') fs.appendFileSync(path.join(home, 'src', 'grow.bin'), randomContent(50_000));
        return entries;
      };
      return lfs;
    },
  });
  fs.mkdirSync(path.join(s.root, 'src'));
  const first = randomContent(100_000);
  fs.writeFileSync(path.join(s.root, 'src', 'grow.bin'), first);
  const c = await loginAs(t, s, 'demo', 'demo-password');
  const r = await copy(c, '/src', '/dst');
  t.is(r.cpto, 250);
  t.is(r.text, 'Copied 1 folder and 1 file, 100000 bytes.');
  t.is(sha256(fs.readFileSync(path.join(s.root, 'dst', 'grow.bin'))), sha256(first));
  t.is(fs.statSync(path.join(s.root, 'src', 'grow.bin')).size, 150_000, 'the source did grow');
});
