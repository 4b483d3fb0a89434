// The portable path (the one that checks, then names a path); the openat2 path resolves beneath
// the root in the same system call as the open, so no swap can get between them.
import './_portable-path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalFileSystem } from '../../src/fs/local';
import type { Jail, RealLocation } from '../../src/fs/jail';
import { pinning } from '../../src/fs/pin';
import { putFile } from '../helpers/fs-contract';

// The race an audit won over FTP: the jail checks a path, a component is swapped for a symlink
// leading out, then the system call follows it. Here the swap is made deterministically, right
// after the check, by wrapping the filesystem's jail; every operation must then refuse (or act on
// what it checked), and nothing outside the root may change.

async function sandbox(t: ExecutionContext): Promise<{ root: string; outside: string }> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'ftpd-pin-'));
  t.teardown(() => fsp.rm(base, { recursive: true, force: true }));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  await fsp.mkdir(root);
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(outside, 'f.txt'), 'OUTSIDE');
  await fsp.chmod(path.join(outside, 'f.txt'), 0o600);
  return { root, outside };
}

const code = (err: unknown): string => String((err as { code?: unknown }).code);

/** Run `swap` once, right after the jail's next check (follow or entry) returns; `swapped()` says whether it ran. */
function swapAfterCheck(lfs: LocalFileSystem, swap: () => Promise<void>): { swapped: () => boolean } {
  const jail = (lfs as unknown as { jail: Jail }).jail;
  let armed = true;
  const after = async <T>(v: T): Promise<T> => {
    if (armed) {
      armed = false;
      await swap();
    }
    return v;
  };
  const follow = jail.follow.bind(jail);
  const entry = jail.entry.bind(jail);
  jail.follow = async (p: string): Promise<RealLocation> => after(await follow(p));
  jail.entry = async (p: string, s: string): Promise<string> => after(await entry(p, s));
  return { swapped: () => !armed };
}

/** `root/d` is a folder at the check and a symlink to `outside` right after it. */
async function raced(t: ExecutionContext, withFile = true): Promise<{ lfs: LocalFileSystem; root: string; outside: string; swapped: () => boolean }> {
  const { root, outside } = await sandbox(t);
  await fsp.mkdir(path.join(root, 'd'));
  if (withFile) await fsp.writeFile(path.join(root, 'd', 'f.txt'), 'INSIDE');
  const lfs = new LocalFileSystem(root);
  const { swapped } = swapAfterCheck(lfs, async () => {
    await fsp.rename(path.join(root, 'd'), path.join(root, 'd-moved'));
    await fsp.symlink(outside, path.join(root, 'd'));
  });
  return { lfs, root, outside, swapped };
}

async function outsideUnchanged(t: ExecutionContext, outside: string): Promise<void> {
  t.deepEqual((await fsp.readdir(outside)).sort(), ['f.txt']);
  t.is(await fsp.readFile(path.join(outside, 'f.txt'), 'utf8'), 'OUTSIDE');
  const st = await fsp.stat(path.join(outside, 'f.txt'));
  t.is(st.mode & 0o7777, 0o600);
  t.true(Math.abs(st.mtimeMs - Date.now()) < 60_000, 'mtime not set back to 2001');
}

const refused = (code: string | undefined): boolean => code === 'FTPD_ERR_JAIL' || code === 'ENOENT';

test('pinning is available on this Linux machine (the tests below would prove nothing otherwise)', (t) => {
  t.is(pinning(), process.platform === 'linux');
});

test('a folder swapped for an outside symlink after the check: no write, create, delete, rename, chmod or mtime reaches outside', async (t) => {
  const ops: Array<[string, (lfs: LocalFileSystem) => Promise<unknown>]> = [
    ['STOR over a file', (lfs) => putFile(lfs, '/d/f.txt', 'PWNED')],
    ['STOR of a new file', (lfs) => putFile(lfs, '/d/new.txt', 'PWNED')],
    ['MKD', (lfs) => lfs.mkdir('/d/newdir')],
    ['DELE', (lfs) => lfs.unlink('/d/f.txt')],
    ['RNFR/RNTO out', (lfs) => lfs.rename('/d/f.txt', '/moved.txt')],
    ['SITE CHMOD', (lfs) => lfs.chmod('/d/f.txt', 0o666)],
    ['MFMT', (lfs) => lfs.setMtime('/d/f.txt', new Date('2001-01-01T00:00:00Z'))],
  ];
  for (const [name, op] of ops) {
    const { lfs, outside, swapped } = await raced(t);
    const got = await op(lfs).then(() => 'done', code);
    t.true(swapped(), `${name}: the swap came between the check and the call`);
    t.true(refused(got), `${name}: ${got}`);
    await outsideUnchanged(t, outside);
  }
});

test('a folder swapped for an outside symlink after the check: no read, listing or stat shows what is outside', async (t) => {
  {
    const { lfs, swapped } = await raced(t);
    t.true(refused(await lfs.openRead('/d/f.txt', 0).then(() => 'opened', code)), 'RETR');
    t.true(swapped());
  }
  {
    const { lfs, swapped } = await raced(t);
    const r = await lfs.readdir('/d').then((e) => e.map((x) => x.name).join(','), code);
    t.true(refused(r), `LIST: ${r}`);
    t.true(swapped());
  }
  {
    const { lfs, swapped } = await raced(t);
    const r = await lfs.lstat('/d/f.txt').then((st) => `size ${st.size}`, code);
    t.true(refused(r), `lstat: ${r}`);
    t.true(swapped());
  }
});

test('a new file is created through a dangling link inside the root, at the target the check saw even when the link is retargeted out', async (t) => {
  const { root, outside } = await sandbox(t);
  await fsp.mkdir(path.join(root, 'in'));
  await fsp.symlink('in/target.txt', path.join(root, 'link.txt'));
  const lfs = new LocalFileSystem(root);
  await putFile(lfs, '/link.txt', 'THROUGH');
  t.is(await fsp.readFile(path.join(root, 'in', 'target.txt'), 'utf8'), 'THROUGH');
  // The same upload, with the link retargeted out between the check and the open.
  await fsp.rm(path.join(root, 'in', 'target.txt'));
  const { swapped } = swapAfterCheck(lfs, async () => {
    await fsp.rm(path.join(root, 'link.txt'));
    await fsp.symlink(path.join(outside, 'planted.txt'), path.join(root, 'link.txt'));
  });
  const got = await putFile(lfs, '/link.txt', 'PWNED').then(() => 'done', code);
  t.true(swapped());
  // The open names the checked target through the pinned folder, not the link again: the
  // upload lands where the check said, and the outside is untouched.
  t.is(got, 'done');
  t.is(await fsp.readFile(path.join(root, 'in', 'target.txt'), 'utf8'), 'PWNED');
  await outsideUnchanged(t, outside);
});
