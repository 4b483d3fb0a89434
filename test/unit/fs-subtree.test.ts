import test from 'ava';
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
