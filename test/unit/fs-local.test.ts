import test from 'ava';
import type { ExecutionContext } from 'ava';
import { promises as fsp, read, write } from 'node:fs';
import { promisify } from 'node:util';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalFileSystem } from '../../src/fs/local';
import { resolveFtpPath } from '../../src/fs/paths';
import { codeOf, fsContract, getFile, putFile } from '../helpers/fs-contract';

/** A temp dir holding `root/` (the jail) and `outside/` (a sibling with a secret). */
async function sandbox(t: ExecutionContext): Promise<{ base: string; root: string; outside: string }> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'ftpd-fs-'));
  t.teardown(() => fsp.rm(base, { recursive: true, force: true }));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  await fsp.mkdir(root);
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(outside, 'secret.txt'), 'SECRET');
  return { base, root, outside };
}

fsContract(test, 'local', async (t) => new LocalFileSystem((await sandbox(t)).root));

const JAIL = 'FTPD_ERR_JAIL';
const preadAsync = promisify(read);
const pwriteAsync = promisify(write);

async function exists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(
    () => true,
    () => false,
  );
}

test('local: client path forms that try to climb out stay inside the root', async (t) => {
  const { root } = await sandbox(t);
  const fs = new LocalFileSystem(root);
  await fsp.writeFile(path.join(root, 'in.txt'), 'IN');
  const attempts = [
    '../outside/secret.txt',
    '/../outside/secret.txt',
    '../../outside/secret.txt',
    '/../../..',
    '..\\outside\\secret.txt',
    '..\\..\\outside/secret.txt',
    '%2e%2e/outside/secret.txt',
    '%2e%2e%2foutside%2fsecret.txt',
    '.../outside/secret.txt',
  ];
  for (const arg of attempts) {
    const p = resolveFtpPath('/', arg);
    const real = await fs.resolve(p);
    t.true(real === root || real.startsWith(root + path.sep), `${arg} → ${real}`);
    t.not(await codeOf(t, fs.openRead(p, 0)), undefined, `${arg} must not open the secret`);
  }
  // The same strings handed straight to the filesystem, skipping resolveFtpPath.
  for (const raw of ['/../outside/secret.txt', '/../../outside/secret.txt', '/..\\outside\\secret.txt']) {
    t.is(await codeOf(t, fs.openRead(raw, 0)), 'ENOENT', raw);
  }
  t.is((await getFile(fs, resolveFtpPath('/', '../../in.txt'))).toString(), 'IN');
});

test('local: absolute paths map under the root, never to the real ones', async (t) => {
  const { root } = await sandbox(t);
  const fs = new LocalFileSystem(root);
  t.is(await codeOf(t, fs.openRead('/etc/passwd', 0)), 'ENOENT');
  t.is(await codeOf(t, fs.readdir('/etc')), 'ENOENT');
  t.is(await fs.resolve('/etc/passwd'), path.join(root, 'etc', 'passwd'));
  await fsp.mkdir(path.join(root, 'etc'));
  await fsp.writeFile(path.join(root, 'etc', 'passwd'), 'mine');
  t.is((await getFile(fs, '/etc/passwd')).toString(), 'mine');
  await putFile(fs, '/tmp-file', 'x');
  t.true(await exists(path.join(root, 'tmp-file')));
});

test('local: a symlink to a directory outside can be listed and deleted, never followed', async (t) => {
  const { root, outside } = await sandbox(t);
  await fsp.writeFile(path.join(root, 'a.txt'), 'A');
  await fsp.symlink(outside, path.join(root, 'evil'));
  await fsp.symlink('/etc', path.join(root, 'etc'));
  const fs = new LocalFileSystem(root);

  for (const link of ['/evil', '/etc']) {
    t.is(await codeOf(t, fs.stat(link)), JAIL);
    t.is(await codeOf(t, fs.readdir(link)), JAIL);
    t.is(await codeOf(t, fs.resolve(link)), JAIL);
    t.is(await codeOf(t, fs.resolve(`${link}/missing/deeper`)), JAIL);
    t.is(await codeOf(t, fs.chmod(link, 0o777)), JAIL);
    t.is(await codeOf(t, fs.setMtime(link, new Date(0))), JAIL);
    t.is((await fs.lstat(link)).kind, 'symlink');
  }
  t.is(await codeOf(t, fs.openRead('/evil/secret.txt', 0)), JAIL);
  t.is(await codeOf(t, fs.openRead('/etc/passwd', 0)), JAIL);
  t.is(await codeOf(t, fs.stat('/etc/passwd')), JAIL);
  t.is(await codeOf(t, fs.openWrite('/evil/new.txt', {})), JAIL);
  t.is(await codeOf(t, fs.openWrite('/evil/secret.txt', {})), JAIL);
  t.is(await codeOf(t, fs.openWrite('/evil/secret.txt', { append: true })), JAIL);
  t.is(await codeOf(t, fs.mkdir('/evil/d')), JAIL);
  t.is(await codeOf(t, fs.rename('/a.txt', '/evil/a.txt')), JAIL);
  t.is(await codeOf(t, fs.rename('/evil/secret.txt', '/stolen.txt')), JAIL);
  t.is(await codeOf(t, fs.unlink('/evil/secret.txt')), JAIL);
  t.is(await codeOf(t, fs.rmdir('/evil/x')), JAIL);
  t.is(await codeOf(t, fs.lstat('/evil/secret.txt')), JAIL);
  t.is(await codeOf(t, fs.setMtime('/evil/secret.txt', new Date(0))), JAIL);
  t.is(await codeOf(t, fs.chmod('/evil/secret.txt', 0o777)), JAIL);

  const listed = await fs.readdir('/');
  t.is(listed.find((e) => e.name === 'evil')?.stat.kind, 'symlink');
  t.is(await codeOf(t, fs.rmdir('/evil')), 'ENOTDIR');

  // Renaming the link moves the link; it is still not followed.
  await fs.rename('/evil', '/evil2');
  t.is(await codeOf(t, fs.stat('/evil2')), JAIL);
  await fs.unlink('/evil2');
  await fs.unlink('/etc');
  t.deepEqual((await fs.readdir('/')).map((e) => e.name), ['a.txt']);
  t.deepEqual(await fsp.readdir(outside), ['secret.txt']);
  t.is(await fsp.readFile(path.join(outside, 'secret.txt'), 'utf8'), 'SECRET');
});

test('local: a symlink to a file outside, and a relative one climbing out, are refused', async (t) => {
  const { root, outside } = await sandbox(t);
  await fsp.symlink(path.join(outside, 'secret.txt'), path.join(root, 'pw'));
  await fsp.mkdir(path.join(root, 'sub'));
  await fsp.symlink('../../outside', path.join(root, 'sub', 'up'));
  await fsp.symlink('..', path.join(root, 'parent'));
  const fs = new LocalFileSystem(root);
  t.is(await codeOf(t, fs.openRead('/pw', 0)), JAIL);
  t.is(await codeOf(t, fs.openWrite('/pw', {})), JAIL);
  t.is(await codeOf(t, fs.stat('/pw')), JAIL);
  t.is((await fs.lstat('/pw')).kind, 'symlink');
  t.is(await codeOf(t, fs.openRead('/sub/up/secret.txt', 0)), JAIL);
  t.is(await codeOf(t, fs.readdir('/parent')), JAIL);
  t.is(await codeOf(t, fs.openRead('/parent/outside/secret.txt', 0)), JAIL);
  t.is(await fsp.readFile(path.join(outside, 'secret.txt'), 'utf8'), 'SECRET');
});

test('local: a sibling whose name starts with the root\'s ("root-evil") is outside the jail', async (t) => {
  // The jail compares real paths as text: without the separator after the root, "<base>/root-evil"
  // would pass for a path inside "<base>/root".
  const { base, root } = await sandbox(t);
  const evil = path.join(base, 'root-evil');
  await fsp.mkdir(evil);
  await fsp.writeFile(path.join(evil, 'secret.txt'), 'SECRET');
  await fsp.symlink('../root-evil', path.join(root, 'link'));
  const fs = new LocalFileSystem(root);
  t.is(await codeOf(t, fs.resolve('/link')), JAIL);
  t.is(await codeOf(t, fs.resolve('/link/secret.txt')), JAIL);
  t.is(await codeOf(t, fs.resolve('/link/missing/deeper')), JAIL);
  t.is(await codeOf(t, fs.stat('/link')), JAIL);
  t.is(await codeOf(t, fs.stat('/link/secret.txt')), JAIL);
  t.is(await codeOf(t, fs.readdir('/link')), JAIL);
  t.is(await codeOf(t, fs.openRead('/link/secret.txt', 0)), JAIL);
  t.is(await codeOf(t, fs.openWrite('/link/new.txt', {})), JAIL);
  t.is(await codeOf(t, fs.openWrite('/link/secret.txt', {})), JAIL);
  t.is(await codeOf(t, fs.mkdir('/link/d')), JAIL);
  t.deepEqual(await fsp.readdir(evil), ['secret.txt'], 'nothing was created in root-evil');
  t.is(await fsp.readFile(path.join(evil, 'secret.txt'), 'utf8'), 'SECRET');
  t.is((await fs.lstat('/link')).kind, 'symlink');
});

test('local: symlinks that stay inside the root work normally', async (t) => {
  const { root } = await sandbox(t);
  await fsp.mkdir(path.join(root, 'real'));
  await fsp.writeFile(path.join(root, 'real', 'f.txt'), 'F');
  await fsp.symlink(path.join(root, 'real'), path.join(root, 'abs-link'));
  await fsp.symlink('real', path.join(root, 'rel-link'));
  await fsp.symlink('real/f.txt', path.join(root, 'file-link'));
  const fs = new LocalFileSystem(root);
  t.is((await fs.stat('/abs-link')).kind, 'dir');
  t.is((await fs.lstat('/abs-link')).kind, 'symlink');
  t.deepEqual((await fs.readdir('/rel-link')).map((e) => e.name), ['f.txt']);
  t.is((await getFile(fs, '/abs-link/f.txt')).toString(), 'F');
  t.is((await getFile(fs, '/file-link')).toString(), 'F');
  await putFile(fs, '/rel-link/g.txt', 'G');
  await fs.mkdir('/abs-link/sub');
  await fs.rename('/rel-link/g.txt', '/abs-link/sub/g.txt');
  t.is(await fsp.readFile(path.join(root, 'real', 'sub', 'g.txt'), 'utf8'), 'G');
  t.is(await fs.resolve('/rel-link/sub'), path.join(root, 'real', 'sub'));
  t.is((await fs.stat('/file-link')).unique, (await fs.stat('/real/f.txt')).unique);
});

test('local: dangling symlinks are followed to where they would create, and jailed there', async (t) => {
  const { root, outside } = await sandbox(t);
  await fsp.symlink(path.join(outside, 'planted.txt'), path.join(root, 'dang-out'));
  await fsp.symlink(path.join(outside, 'newdir', 'x'), path.join(root, 'dang-out-deep'));
  await fsp.symlink('target.txt', path.join(root, 'dang-in'));
  const fs = new LocalFileSystem(root);

  t.is(await codeOf(t, fs.openWrite('/dang-out', {})), JAIL);
  t.is(await codeOf(t, fs.openWrite('/dang-out', { append: true })), JAIL);
  t.is(await codeOf(t, fs.openWrite('/dang-out-deep', {})), JAIL);
  t.is(await codeOf(t, fs.stat('/dang-out')), JAIL);
  t.false(await exists(path.join(outside, 'planted.txt')));
  t.is((await fs.lstat('/dang-out')).kind, 'symlink');
  await fs.unlink('/dang-out');

  // One pointing inside the root behaves as the file it will become.
  t.is(await codeOf(t, fs.stat('/dang-in')), 'ENOENT');
  await putFile(fs, '/dang-in', 'created');
  t.is(await fsp.readFile(path.join(root, 'target.txt'), 'utf8'), 'created');
  t.is((await fs.stat('/dang-in')).size, 7);
});

test('local: an exclusive create gives a descriptor, and never goes through a link to outside the root', async (t) => {
  const { root, outside } = await sandbox(t);
  await fsp.symlink(path.join(outside, 'planted.txt'), path.join(root, 'dang-out'));
  await fsp.symlink('target.txt', path.join(root, 'dang-in'));
  const fs = new LocalFileSystem(root);

  const h = await fs.openWrite('/new', { exclusive: true });
  t.is(typeof h.fd, 'number', 'a local descriptor (what SITE CPTO copies into with copy_file_range)');
  await h.close();
  t.true(await exists(path.join(root, 'new')));
  t.is(await codeOf(t, fs.openWrite('/new', { exclusive: true })), 'EEXIST');
  t.is(await codeOf(t, fs.openWrite('/dang-out', { exclusive: true })), JAIL);
  t.false(await exists(path.join(outside, 'planted.txt')));
  // A dangling link inside the root is followed to the file it names, as without exclusive.
  await putFile(fs, '/dang-in', 'made', { exclusive: true });
  t.is(await fsp.readFile(path.join(root, 'target.txt'), 'utf8'), 'made');
  t.is(await codeOf(t, fs.openWrite('/dang-in', { exclusive: true })), 'EEXIST');
});

test('local: a symlink loop is an error, not a hang', async (t) => {
  const { root } = await sandbox(t);
  await fsp.symlink('loop-b', path.join(root, 'loop-a'));
  await fsp.symlink('loop-a', path.join(root, 'loop-b'));
  const fs = new LocalFileSystem(root);
  t.is(await codeOf(t, fs.stat('/loop-a')), 'ELOOP');
  t.is(await codeOf(t, fs.openWrite('/loop-a', {})), 'ELOOP');
  t.is((await fs.lstat('/loop-a')).kind, 'symlink');
});

test('local: the root may itself be reached through a symlink', async (t) => {
  const { base, root } = await sandbox(t);
  const alias = path.join(base, 'alias');
  await fsp.symlink(root, alias);
  await fsp.writeFile(path.join(root, 'f'), 'via alias');
  const fs = await LocalFileSystem.create(alias);
  t.is((await getFile(fs, '/f')).toString(), 'via alias');
  t.is(await fs.resolve('/f'), path.join(await fsp.realpath(root), 'f'));
  t.is(await codeOf(t, fs.rename('/', '/x')), 'EPERM');
});

test('local: create() refuses a missing root and a file; relative roots are refused', async (t) => {
  const { base, outside } = await sandbox(t);
  t.is(await codeOf(t, LocalFileSystem.create(path.join(base, 'nope'))), 'ENOENT');
  t.is(await codeOf(t, LocalFileSystem.create(path.join(outside, 'secret.txt'))), 'ENOTDIR');
  t.throws(() => new LocalFileSystem('relative/root'), { instanceOf: TypeError });
});

test('local: handles expose the real fd; streams never close it; close closes once', async (t) => {
  const { root } = await sandbox(t);
  const fs = new LocalFileSystem(root);
  await putFile(fs, '/f', '0123456789');
  const h = await fs.openRead('/f', 3);
  t.is(typeof h.fd, 'number');
  t.true((h.fd as number) >= 0);
  const chunks: Buffer[] = [];
  for await (const c of h.createReadStream()) chunks.push(c as Buffer);
  t.is(Buffer.concat(chunks).toString(), '3456789');
  t.true((h.fd as number) >= 0, 'the stream ending left the fd open');
  // The fd is usable with explicit positions, as the native engine uses it.
  const buf = Buffer.alloc(4);
  await preadAsync(h.fd as number, buf, 0, 4, 0);
  t.is(buf.toString(), '0123');
  await Promise.all([h.close(), h.close()]);
  await h.close();
  t.is(h.fd, -1);
});

test('local: append opens O_APPEND, so a write lands at the end whatever its offset', async (t) => {
  const { root } = await sandbox(t);
  const fs = new LocalFileSystem(root);
  await putFile(fs, '/f', 'abc');
  const h = await fs.openWrite('/f', { append: true });
  t.is(h.offset, 3, 'the offset is the size the open saw');
  // Another writer appended meanwhile: the handle's writes still go after it, not over it.
  await fsp.appendFile(path.join(root, 'f'), 'XY');
  await pwriteAsync(h.fd as number, Buffer.from('Z'), 0, 1, h.offset);
  await h.close();
  t.is(await fsp.readFile(path.join(root, 'f'), 'utf8'), 'abcXYZ');
});

test('local: unlink of a directory says EISDIR; mkdir of an existing dangling link says EEXIST', async (t) => {
  const { root } = await sandbox(t);
  await fsp.mkdir(path.join(root, 'd'));
  await fsp.symlink('nowhere', path.join(root, 'dl'));
  const fs = new LocalFileSystem(root);
  t.is(await codeOf(t, fs.unlink('/d')), 'EISDIR');
  t.is(await codeOf(t, fs.mkdir('/dl')), 'EEXIST');
});

test('local: FIFOs are refused without blocking', async (t) => {
  const { root } = await sandbox(t);
  const { execFile } = await import('node:child_process');
  const ok = await new Promise<boolean>((resolve) =>
    execFile('mkfifo', [path.join(root, 'fifo')], (err) => resolve(!err)),
  );
  if (!ok) {
    t.pass('mkfifo unavailable');
    return;
  }
  const fs = new LocalFileSystem(root);
  t.is((await fs.stat('/fifo')).kind, 'other');
  t.is(await codeOf(t, fs.openRead('/fifo', 0)), 'EPERM');
  t.is(await codeOf(t, fs.openWrite('/fifo', {})), 'EPERM');
});

test('local: readdir of 10,000 entries', async (t) => {
  const { root } = await sandbox(t);
  const dir = path.join(root, 'big');
  await fsp.mkdir(dir);
  const n = 10_000;
  for (let i = 0; i < n; i += 500) {
    await Promise.all(Array.from({ length: 500 }, (_, j) => fsp.writeFile(path.join(dir, `f${i + j}`), '')));
  }
  const fs = new LocalFileSystem(root);
  const list = await fs.readdir('/big');
  t.is(list.length, n);
  t.is(new Set(list.map((e) => e.name)).size, n);
  t.true(list.every((e) => e.stat.kind === 'file'));
});
