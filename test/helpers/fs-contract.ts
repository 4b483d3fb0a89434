/**
 * One set of test bodies for every FileSystem implementation: each test
 * file calls fsContract() with a factory, so local and memory are held to
 * the same semantics and error codes and stay interchangeable.
 */
import type { ExecutionContext, TestFn } from 'ava';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { FileSystem, OpenWriteOptions } from '../../src/fs/types';

export type FsFactory = (t: ExecutionContext) => Promise<FileSystem>;

/** Write `data` through openWrite and a write stream; returns the handle's offset. */
export async function putFile(
  fs: FileSystem,
  path: string,
  data: string | Buffer,
  options: OpenWriteOptions = {},
): Promise<number> {
  const h = await fs.openWrite(path, options);
  try {
    await pipeline(Readable.from([Buffer.from(data)]), h.createWriteStream());
  } finally {
    await h.close();
  }
  return h.offset;
}

/** Read a whole file (from `offset`) through openRead and a read stream. */
export async function getFile(fs: FileSystem, path: string, offset = 0): Promise<Buffer> {
  const h = await fs.openRead(path, offset);
  try {
    const chunks: Buffer[] = [];
    for await (const c of h.createReadStream()) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  } finally {
    await h.close();
  }
}

/** The `code` a promise rejects with (fails the test if it resolves). */
export async function codeOf(t: ExecutionContext, p: Promise<unknown>): Promise<string | undefined> {
  const err = await t.throwsAsync(p);
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function names(entries: Array<{ name: string }>): string[] {
  return entries.map((e) => e.name).sort();
}

export function fsContract(test: TestFn, label: string, make: FsFactory): void {
  const it = (title: string, body: (t: ExecutionContext, fs: FileSystem) => Promise<void>): void => {
    test(`${label}: ${title}`, async (t) => body(t, await make(t)));
  };

  it('root is an empty directory; a missing path is ENOENT', async (t, fs) => {
    t.is((await fs.stat('/')).kind, 'dir');
    t.is((await fs.lstat('/')).kind, 'dir');
    t.deepEqual(await fs.readdir('/'), []);
    t.is(await codeOf(t, fs.stat('/nope')), 'ENOENT');
    t.is(await codeOf(t, fs.lstat('/nope')), 'ENOENT');
    t.is(await codeOf(t, fs.stat('/nope/deeper')), 'ENOENT');
  });

  it('write then read back; stat reports a file with its size and a fresh mtime', async (t, fs) => {
    const before = Date.now() - 2000;
    t.is(await putFile(fs, '/a.txt', 'hello'), 0);
    t.is((await getFile(fs, '/a.txt')).toString(), 'hello');
    const st = await fs.stat('/a.txt');
    t.is(st.kind, 'file');
    t.is(st.size, 5);
    t.is(st.nlink, 1);
    t.true(st.mtime.getTime() >= before && st.mtime.getTime() <= Date.now() + 2000);
    t.is(st.mode & 0o170000, 0o100000);
    t.is(typeof st.uid, 'number');
  });

  it('an empty file, and 1 MiB + 1 bytes, round-trip exactly', async (t, fs) => {
    await putFile(fs, '/empty', Buffer.alloc(0));
    t.is((await fs.stat('/empty')).size, 0);
    t.is((await getFile(fs, '/empty')).length, 0);
    const big = Buffer.alloc((1 << 20) + 1);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
    await putFile(fs, '/big.bin', big);
    t.is((await fs.stat('/big.bin')).size, big.length);
    t.is(sha(await getFile(fs, '/big.bin')), sha(big));
    t.is(sha(await getFile(fs, '/big.bin', 70_000)), sha(big.subarray(70_000)));
  });

  it('openWrite without offset truncates an existing file', async (t, fs) => {
    await putFile(fs, '/f', 'a long first version');
    await putFile(fs, '/f', 'short');
    t.is((await getFile(fs, '/f')).toString(), 'short');
    t.is((await fs.stat('/f')).size, 5);
  });

  it('openWrite at an offset (REST + STOR) keeps the prefix and replaces everything after it', async (t, fs) => {
    await putFile(fs, '/f', '0123456789');
    t.is(await putFile(fs, '/f', 'AB', { offset: 4 }), 4);
    t.is((await getFile(fs, '/f')).toString(), '0123AB', 'a shorter upload leaves no stale tail');
    t.is(await putFile(fs, '/f', 'XYZ', { offset: 5 }), 5);
    t.is((await getFile(fs, '/f')).toString(), '0123AXYZ');
  });

  it('openWrite past the end leaves a zero-filled gap', async (t, fs) => {
    await putFile(fs, '/f', 'ab');
    await putFile(fs, '/f', 'z', { offset: 5 });
    t.deepEqual(await getFile(fs, '/f'), Buffer.from([0x61, 0x62, 0, 0, 0, 0x7a]));
    await putFile(fs, '/new', 'q', { offset: 3 });
    t.deepEqual(await getFile(fs, '/new'), Buffer.from([0, 0, 0, 0x71]));
  });

  it('append starts at the current size, and creates a missing file', async (t, fs) => {
    await putFile(fs, '/f', 'abc');
    t.is(await putFile(fs, '/f', 'def', { append: true }), 3);
    t.is((await getFile(fs, '/f')).toString(), 'abcdef');
    t.is(await putFile(fs, '/f', 'g', { append: true, offset: 1 }), 6, 'offset is ignored with append');
    t.is((await getFile(fs, '/f')).toString(), 'abcdefg');
    t.is(await putFile(fs, '/g', 'new', { append: true }), 0);
    t.is((await getFile(fs, '/g')).toString(), 'new');
  });

  it('two appends open at once both land whole, neither over the other (APPE from two sessions)', async (t, fs) => {
    await putFile(fs, '/log', 'head|');
    const a = await fs.openWrite('/log', { append: true });
    const b = await fs.openWrite('/log', { append: true });
    t.is(a.offset, 5);
    t.is(b.offset, 5, 'both opened at the same size');
    // Interleaved writes, each stream in its own order.
    const wa = a.createWriteStream();
    const wb = b.createWriteStream();
    const write = (w: NodeJS.WritableStream, s: string): Promise<void> => new Promise((resolve, reject) => w.write(s, (err) => (err ? reject(err) : resolve())));
    for (let i = 0; i < 4; i++) {
      await write(wa, `a${i}|`);
      await write(wb, `b${i}|`);
    }
    await Promise.all([wa, wb].map((w) => new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())))));
    await a.close();
    await b.close();
    const got = (await getFile(fs, '/log')).toString();
    t.is(got.length, 5 + 8 * 3, 'every byte of both');
    t.true(got.startsWith('head|'));
    const parts = got.slice(5).split('|').filter(Boolean);
    t.deepEqual(parts.filter((p) => p.startsWith('a')), ['a0', 'a1', 'a2', 'a3'], 'the first upload whole and in order');
    t.deepEqual(parts.filter((p) => p.startsWith('b')), ['b0', 'b1', 'b2', 'b3'], 'the second too');
  });

  it('exclusive creates a missing file and refuses an existing one with EEXIST', async (t, fs) => {
    await putFile(fs, '/u', 'one', { exclusive: true });
    t.is(await codeOf(t, fs.openWrite('/u', { exclusive: true })), 'EEXIST');
    t.is((await getFile(fs, '/u')).toString(), 'one');
    await fs.mkdir('/d');
    t.is(await codeOf(t, fs.openWrite('/d', { exclusive: true })), 'EEXIST');
  });

  it('open refuses directories with EISDIR, missing files with ENOENT', async (t, fs) => {
    await fs.mkdir('/d');
    t.is(await codeOf(t, fs.openRead('/d', 0)), 'EISDIR');
    t.is(await codeOf(t, fs.openRead('/', 0)), 'EISDIR');
    t.is(await codeOf(t, fs.openWrite('/d', {})), 'EISDIR');
    t.is(await codeOf(t, fs.openWrite('/d', { append: true })), 'EISDIR');
    t.is(await codeOf(t, fs.openWrite('/', {})), 'EISDIR');
    t.is(await codeOf(t, fs.openRead('/missing', 0)), 'ENOENT');
    t.is(await codeOf(t, fs.openWrite('/nodir/f', {})), 'ENOENT');
    await putFile(fs, '/file', 'x');
    t.is(await codeOf(t, fs.openWrite('/file/f', {})), 'ENOTDIR');
    t.is(await codeOf(t, fs.openRead('/file/f', 0)), 'ENOTDIR');
    t.deepEqual(names(await fs.readdir('/')), ['d', 'file']);
  });

  it('openRead at an offset reads the tail; at or past the end reads nothing', async (t, fs) => {
    await putFile(fs, '/f', 'hello world');
    const h = await fs.openRead('/f', 6);
    t.is(h.offset, 6);
    await h.close();
    t.is((await getFile(fs, '/f', 6)).toString(), 'world');
    t.is((await getFile(fs, '/f', 11)).length, 0);
    t.is((await getFile(fs, '/f', 100)).length, 0);
  });

  it('two read handles on one file are independent (positions are explicit)', async (t, fs) => {
    await putFile(fs, '/f', 'abcdefgh');
    const [a, b] = await Promise.all([getFile(fs, '/f', 2), getFile(fs, '/f', 5)]);
    t.is(a.toString(), 'cdefgh');
    t.is(b.toString(), 'fgh');
  });

  it('close is safe twice, and after an unconsumed stream', async (t, fs) => {
    await putFile(fs, '/f', 'abc');
    const r = await fs.openRead('/f', 0);
    r.createReadStream();
    await r.close();
    await r.close();
    const w = await fs.openWrite('/g', {});
    const ws = w.createWriteStream();
    await new Promise<void>((resolve, reject) => ws.write('x', (e) => (e ? reject(e) : resolve())));
    await w.close();
    await w.close();
    t.pass();
  });

  it('a broken upload leaves what arrived', async (t, fs) => {
    const h = await fs.openWrite('/partial', {});
    const ws = h.createWriteStream();
    await new Promise<void>((resolve, reject) => ws.write(Buffer.from('first part;'), (e) => (e ? reject(e) : resolve())));
    const closed = new Promise((resolve) => ws.on('close', resolve));
    ws.on('error', () => undefined);
    ws.destroy(new Error('connection reset'));
    await closed;
    await h.close();
    t.is((await getFile(fs, '/partial')).toString(), 'first part;');
  });

  it('parallel uploads of distinct files do not mix', async (t, fs) => {
    const files = Array.from({ length: 12 }, (_, i) => ({
      path: `/p${i}`,
      data: Buffer.alloc(100_000 + i * 997, String.fromCharCode(97 + i)),
    }));
    await Promise.all(files.map((f) => putFile(fs, f.path, f.data)));
    for (const f of files) t.is(sha(await getFile(fs, f.path)), sha(f.data));
  });

  it('mkdir: creates; EEXIST for anything existing; ENOENT/ENOTDIR for a bad parent', async (t, fs) => {
    await fs.mkdir('/d');
    t.is((await fs.stat('/d')).kind, 'dir');
    t.is(await codeOf(t, fs.mkdir('/d')), 'EEXIST');
    t.is(await codeOf(t, fs.mkdir('/')), 'EEXIST');
    await putFile(fs, '/f', 'x');
    t.is(await codeOf(t, fs.mkdir('/f')), 'EEXIST');
    t.is(await codeOf(t, fs.mkdir('/a/b')), 'ENOENT');
    t.is(await codeOf(t, fs.mkdir('/f/b')), 'ENOTDIR');
    await fs.mkdir('/d/e');
    t.deepEqual(names(await fs.readdir('/d')), ['e']);
  });

  it('readdir lists entries with their lstat; ENOTDIR for a file, ENOENT for nothing', async (t, fs) => {
    await fs.mkdir('/d');
    await fs.mkdir('/d/sub');
    await putFile(fs, '/d/one', '1');
    await putFile(fs, '/d/three', '333');
    const list = await fs.readdir('/d');
    t.deepEqual(names(list), ['one', 'sub', 'three']);
    const by = new Map(list.map((e) => [e.name, e.stat]));
    t.is(by.get('one')?.kind, 'file');
    t.is(by.get('three')?.size, 3);
    t.is(by.get('sub')?.kind, 'dir');
    t.is(await codeOf(t, fs.readdir('/d/one')), 'ENOTDIR');
    t.is(await codeOf(t, fs.readdir('/nope')), 'ENOENT');
    t.deepEqual(await fs.readdir('/d/sub'), []);
  });

  it('a directory with subdirectories counts them in nlink', async (t, fs) => {
    await fs.mkdir('/d');
    t.is((await fs.stat('/d')).nlink, 2);
    await fs.mkdir('/d/a');
    await fs.mkdir('/d/b');
    await putFile(fs, '/d/f', 'x');
    t.is((await fs.stat('/d')).nlink, 4);
  });

  it('rmdir: empty only; ENOTEMPTY, ENOTDIR, ENOENT; the root is EPERM', async (t, fs) => {
    await fs.mkdir('/d');
    await fs.mkdir('/d/e');
    await putFile(fs, '/f', 'x');
    t.is(await codeOf(t, fs.rmdir('/d')), 'ENOTEMPTY');
    t.is(await codeOf(t, fs.rmdir('/f')), 'ENOTDIR');
    t.is(await codeOf(t, fs.rmdir('/nope')), 'ENOENT');
    t.is(await codeOf(t, fs.rmdir('/')), 'EPERM');
    await fs.rmdir('/d/e');
    await fs.rmdir('/d');
    t.deepEqual(names(await fs.readdir('/')), ['f']);
  });

  it('unlink: files only; EISDIR for a directory, ENOENT; the root is EPERM', async (t, fs) => {
    await fs.mkdir('/d');
    await putFile(fs, '/f', 'x');
    t.is(await codeOf(t, fs.unlink('/d')), 'EISDIR');
    t.is(await codeOf(t, fs.unlink('/nope')), 'ENOENT');
    t.is(await codeOf(t, fs.unlink('/')), 'EPERM');
    await fs.unlink('/f');
    t.deepEqual(names(await fs.readdir('/')), ['d']);
  });

  it('an unlinked file stays readable through a handle opened before', async (t, fs) => {
    await putFile(fs, '/f', 'still here');
    const h = await fs.openRead('/f', 0);
    await fs.unlink('/f');
    const chunks: Buffer[] = [];
    for await (const c of h.createReadStream()) chunks.push(c as Buffer);
    await h.close();
    t.is(Buffer.concat(chunks).toString(), 'still here');
  });

  it('rename moves files and whole directories', async (t, fs) => {
    await fs.mkdir('/d');
    await fs.mkdir('/d/e');
    await putFile(fs, '/d/e/f', 'deep');
    await putFile(fs, '/x', 'x');
    const before = await fs.stat('/x');
    await fs.rename('/x', '/d/y');
    t.is((await getFile(fs, '/d/y')).toString(), 'x');
    t.is((await fs.stat('/d/y')).unique, before.unique, 'same file, not a copy');
    t.is(await codeOf(t, fs.stat('/x')), 'ENOENT');
    await fs.rename('/d', '/moved');
    t.is((await getFile(fs, '/moved/e/f')).toString(), 'deep');
    t.deepEqual(names(await fs.readdir('/')), ['moved']);
    await fs.rename('/moved/y', '/moved/y');
    t.is((await getFile(fs, '/moved/y')).toString(), 'x');
  });

  it('rename replaces a file and an empty directory, like rename(2)', async (t, fs) => {
    await putFile(fs, '/a', 'A');
    await putFile(fs, '/b', 'B');
    await fs.rename('/a', '/b');
    t.is((await getFile(fs, '/b')).toString(), 'A');
    t.deepEqual(names(await fs.readdir('/')), ['b']);
    await fs.mkdir('/d1');
    await putFile(fs, '/d1/in', '1');
    await fs.mkdir('/d2');
    await fs.rename('/d1', '/d2');
    t.is((await getFile(fs, '/d2/in')).toString(), '1');
  });

  it('rename refusals: root EPERM, into itself EINVAL, ENOENT, EISDIR, ENOTDIR, ENOTEMPTY', async (t, fs) => {
    await fs.mkdir('/d');
    await fs.mkdir('/full');
    await putFile(fs, '/full/x', 'x');
    await putFile(fs, '/f', 'f');
    t.is(await codeOf(t, fs.rename('/', '/r')), 'EPERM');
    t.is(await codeOf(t, fs.rename('/d', '/')), 'EPERM');
    t.is(await codeOf(t, fs.rename('/d', '/d/sub')), 'EINVAL');
    t.is(await codeOf(t, fs.rename('/d', '/d/a/b')), 'EINVAL');
    t.is(await codeOf(t, fs.rename('/nope', '/x')), 'ENOENT');
    t.is(await codeOf(t, fs.rename('/f', '/nodir/x')), 'ENOENT');
    t.is(await codeOf(t, fs.rename('/f', '/d')), 'EISDIR');
    t.is(await codeOf(t, fs.rename('/d', '/f')), 'ENOTDIR');
    t.is(await codeOf(t, fs.rename('/d', '/full')), 'ENOTEMPTY');
    t.deepEqual(names(await fs.readdir('/')), ['d', 'f', 'full']);
    // "/dx" is not inside "/d"
    await fs.rename('/d', '/dx');
    t.is((await fs.stat('/dx')).kind, 'dir');
  });

  it('setMtime sets the modification time of files and directories', async (t, fs) => {
    await putFile(fs, '/f', 'x');
    await fs.mkdir('/d');
    const when = new Date('2001-02-03T04:05:06Z');
    await fs.setMtime('/f', when);
    await fs.setMtime('/d', when);
    t.is((await fs.stat('/f')).mtime.getTime(), when.getTime());
    t.is((await fs.stat('/d')).mtime.getTime(), when.getTime());
    t.is(await codeOf(t, fs.setMtime('/nope', when)), 'ENOENT');
  });

  it('chmod changes the permission bits only', async (t, fs) => {
    await putFile(fs, '/f', 'x');
    await fs.mkdir('/d');
    await fs.chmod('/f', 0o640);
    t.is((await fs.stat('/f')).mode & 0o7777, 0o640);
    t.is((await fs.stat('/f')).kind, 'file');
    await fs.chmod('/f', 0o170604); // type bits in the argument are ignored
    t.is((await fs.stat('/f')).mode & 0o7777, 0o604);
    t.is((await fs.stat('/f')).kind, 'file');
    await fs.chmod('/d', 0o750);
    t.is((await fs.stat('/d')).mode & 0o7777, 0o750);
    t.is((await fs.stat('/d')).kind, 'dir');
    t.is(await codeOf(t, fs.chmod('/nope', 0o600)), 'ENOENT');
  });

  it('unique is stable for a path and distinct between entries', async (t, fs) => {
    await putFile(fs, '/a', 'a');
    await putFile(fs, '/b', 'b');
    await fs.mkdir('/d');
    const [a1, a2, b, d] = await Promise.all([fs.stat('/a'), fs.lstat('/a'), fs.stat('/b'), fs.stat('/d')]);
    t.is(a1.unique, a2.unique);
    t.is(new Set([a1.unique, b.unique, d.unique]).size, 3);
    const listed = await fs.readdir('/');
    t.is(listed.find((e) => e.name === 'a')?.stat.unique, a1.unique);
  });

  it('names are taken literally: spaces, dots, percent signs, unicode', async (t, fs) => {
    const odd = [' lead', 'trail ', ' ', '...', '. ', '%2e%2e', 'caf\u00e9 \u65e5\u672c'];
    for (const n of odd) await putFile(fs, `/${n}`, n);
    t.deepEqual(names(await fs.readdir('/')), [...odd].sort());
    for (const n of odd) t.is((await getFile(fs, `/${n}`)).toString(), n);
  });

  it('a NUL byte in a path is refused with FTPD_ERR_BADNAME', async (t, fs) => {
    t.is(await codeOf(t, fs.stat('/a\0b')), 'FTPD_ERR_BADNAME');
    t.is(await codeOf(t, fs.openWrite('/a\0b', {})), 'FTPD_ERR_BADNAME');
    t.is(await codeOf(t, fs.mkdir('/\0')), 'FTPD_ERR_BADNAME');
    t.is(await codeOf(t, fs.rename('/x', '/y\0')), 'FTPD_ERR_BADNAME');
    t.is(await codeOf(t, fs.resolve('/\0')), 'FTPD_ERR_BADNAME');
  });

  it('a path that skipped normalisation still cannot climb above the root', async (t, fs) => {
    await putFile(fs, '/inside', 'in');
    t.is((await getFile(fs, '/../../inside')).toString(), 'in');
    t.is((await getFile(fs, '/a/../../../inside')).toString(), 'in');
    t.is(await codeOf(t, fs.stat('/../../etc/passwd')), 'ENOENT');
    t.deepEqual(names(await fs.readdir('/..')), ['inside']);
  });

  it('resolve accepts existing and missing paths inside the root', async (t, fs) => {
    await fs.mkdir('/d');
    t.is(typeof (await fs.resolve('/')), 'string');
    t.is(typeof (await fs.resolve('/d')), 'string');
    t.is(typeof (await fs.resolve('/d/not/yet')), 'string');
  });

  it('a directory of 3000 entries lists completely', async (t, fs) => {
    await fs.mkdir('/many');
    const n = 3000;
    for (let i = 0; i < n; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => putFile(fs, `/many/f${i + j}`, '')));
    }
    const list = await fs.readdir('/many');
    t.is(list.length, n);
    t.true(list.every((e) => e.stat.kind === 'file' && e.stat.size === 0));
  });
}
