import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalFileSystem } from '../../src/fs/local';
import { MemoryFileSystem } from '../../src/fs/memory';
import { SubtreeFileSystem } from '../../src/fs/subtree';
import { codeOf, fsContract, getFile, putFile } from '../helpers/fs-contract';

// A view of one folder of a shared filesystem behaves like a filesystem of its own.
fsContract(test, 'subtree', async () => {
  const shared = new MemoryFileSystem();
  await shared.mkdir('/home');
  await shared.mkdir('/home/alice');
  return new SubtreeFileSystem(shared, '/home/alice');
});

test('subtree: two homes in one shared filesystem do not see each other', async (t) => {
  const shared = new MemoryFileSystem({ files: { '/alice/': '', '/bob/': '', '/secret.txt': 'root only' } });
  const alice = new SubtreeFileSystem(shared, '/alice');
  const bob = new SubtreeFileSystem(shared, '/bob');
  await putFile(alice, '/a.txt', 'from alice');
  t.deepEqual((await bob.readdir('/')).map((e) => e.name), []);
  t.deepEqual((await alice.readdir('/')).map((e) => e.name), ['a.txt']);
  t.is((await getFile(shared, '/alice/a.txt')).toString(), 'from alice');
  // Paths that try to climb stay inside the view.
  t.is(await codeOf(t, bob.stat('/../alice/a.txt')), 'ENOENT');
  t.is(await codeOf(t, bob.openRead('../../secret.txt', 0)), 'ENOENT');
  t.is(await codeOf(t, bob.stat('..\\..\\secret.txt')), 'ENOENT');
  t.is((await bob.stat('/..')).kind, 'dir', '/.. is the view root');
});

test('subtree: the view root cannot be removed or renamed; NUL is refused', async (t) => {
  const shared = new MemoryFileSystem({ files: { '/alice/': '' } });
  const alice = new SubtreeFileSystem(shared, '/alice');
  t.is(await codeOf(t, alice.rmdir('/')), 'EPERM');
  t.is(await codeOf(t, alice.rename('/', '/x')), 'EPERM');
  t.is(await codeOf(t, alice.rmdir('/..')), 'EPERM');
  t.is(await codeOf(t, alice.stat('/a\0b')), 'FTPD_ERR_BADNAME');
  t.is((await shared.stat('/alice')).kind, 'dir');
});

test('subtree over a LocalFileSystem: a symlink in one home never leads into another home', async (t) => {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpd-store-'));
  t.teardown(() => fs.rmSync(store, { recursive: true, force: true }));
  fs.mkdirSync(path.join(store, 'users', 'alice', 'sub'), { recursive: true });
  fs.mkdirSync(path.join(store, 'users', 'bob'), { recursive: true });
  fs.writeFileSync(path.join(store, 'users', 'bob', 'private.txt'), 'BOB ONLY');
  // An innocent relative link: inside alice's home while it sits in sub/...
  fs.symlinkSync('..', path.join(store, 'users', 'alice', 'sub', 'up'));
  const shared = new LocalFileSystem(store);
  const alice = new SubtreeFileSystem(shared, '/users/alice');
  t.is((await alice.stat('/sub/up')).kind, 'dir');
  // ...and leading to /users once alice moves it up a level.
  await alice.rename('/sub/up', '/link');
  t.is(await codeOf(t, alice.readdir('/link')), 'FTPD_ERR_JAIL');
  t.is(await codeOf(t, alice.openRead('/link/bob/private.txt', 0)), 'FTPD_ERR_JAIL');
  t.is(await codeOf(t, putFile(alice, '/link/bob/from-alice.txt', 'x')), 'FTPD_ERR_JAIL');
  t.deepEqual(fs.readdirSync(path.join(store, 'users', 'bob')), ['private.txt']);
  // The view still works as a filesystem of its own, on the shared store's disk.
  await putFile(alice, '/a.txt', 'from alice');
  t.is(fs.readFileSync(path.join(store, 'users', 'alice', 'a.txt'), 'utf8'), 'from alice');
  t.is((await getFile(alice, '/a.txt')).toString(), 'from alice');
});

test('subtree over a subclass of LocalFileSystem: the view keeps the subclass (its overrides still apply), jailed at the folder', async (t) => {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpd-store-'));
  t.teardown(() => fs.rmSync(store, { recursive: true, force: true }));
  fs.mkdirSync(path.join(store, 'users', 'alice'), { recursive: true });
  const removed: string[] = [];
  // An embedder's store that records deletions (an audit trail, a trash folder...).
  class Audited extends LocalFileSystem {
    override async unlink(p: string): Promise<void> {
      removed.push(p);
      await super.unlink(p);
    }
  }
  const alice = new SubtreeFileSystem(new Audited(store), '/users/alice');
  await putFile(alice, '/a.txt', 'x');
  await alice.unlink('/a.txt');
  t.deepEqual(removed, ['/a.txt'], 'the override ran, with the path of the view');
  t.false(fs.existsSync(path.join(store, 'users', 'alice', 'a.txt')));
  fs.symlinkSync('..', path.join(store, 'users', 'alice', 'up'));
  t.is(await codeOf(t, alice.readdir('/up')), 'FTPD_ERR_JAIL', 'jailed at the folder, not at the store');
});

test('subtree over a subclass whose constructor does not take the root: refused (it would have been jailed at the whole store)', (t) => {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpd-store-'));
  t.teardown(() => fs.rmSync(store, { recursive: true, force: true }));
  fs.mkdirSync(path.join(store, 'alice'));
  class Fixed extends LocalFileSystem {
    constructor() {
      super(store);
    }
  }
  t.throws(() => new SubtreeFileSystem(new Fixed(), '/alice'), { instanceOf: TypeError, message: /override subtree/ });
});
