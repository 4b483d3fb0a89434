import test from 'ava';
import { ftpBasename, ftpDirname, ftpIsWithin, ftpJoin, resolveFtpPath } from '../../src/fs/paths';

const cases: Array<[cwd: string, arg: string, want: string]> = [
  ['/', '', '/'],
  ['/a/b', '', '/a/b'],
  ['/a', 'b', '/a/b'],
  ['/a', 'b/c/', '/a/b/c'],
  ['/a', '/x', '/x'],
  ['/a', '/', '/'],
  ['/a', '.', '/a'],
  ['/a', './b/./c/.', '/a/b/c'],
  ['/a/b', '..', '/a'],
  ['/a/b', '../..', '/'],
  ['/a/b', '../../../../..', '/'],
  ['/', '../', '/'],
  ['/', '/../..', '/'],
  ['/a', '/../../etc/passwd', '/etc/passwd'],
  ['/a', '../../../etc/passwd', '/etc/passwd'],
  ['/a/b', '..\\..\\', '/'],
  ['/a/b', '..\\..\\..\\x', '/x'],
  ['/a', '\\x\\y', '/x/y'],
  ['/a', 'b\\c', '/a/b/c'],
  ['/a', '//x///y//', '/x/y'],
  ['/a', 'b//c', '/a/b/c'],
  ['/a', '%2e%2e/x', '/a/%2e%2e/x'],
  ['/a', '%2e%2e%2f%2e%2e', '/a/%2e%2e%2f%2e%2e'],
  ['/a', ' b ', '/a/ b '],
  ['/a', ' ', '/a/ '],
  ['/a', ' /..', '/a'],
  ['/a', '. ', '/a/. '],
  ['/a', '...', '/a/...'],
  ['/a', '..x', '/a/..x'],
  ['/a', 'x/../../y', '/y'],
  ['/a/b/c', '../x/./../y', '/a/b/y'],
  ['/', 'caf\u00e9/\u65e5\u672c', '/caf\u00e9/\u65e5\u672c'],
  // A cwd that somehow is not normal is normalised too.
  ['/a//b/', 'c', '/a/b/c'],
  ['', 'x', '/x'],
];

for (const [cwd, arg, want] of cases) {
  test(`resolveFtpPath(${JSON.stringify(cwd)}, ${JSON.stringify(arg)}) = ${JSON.stringify(want)}`, (t) => {
    t.is(resolveFtpPath(cwd, arg), want);
  });
}

test('resolveFtpPath output is always absolute, normal and idempotent', (t) => {
  const parts = ['', '.', '..', 'a', ' ', '/', '\\', '//', 'b c', '%2e'];
  for (const x of parts) {
    for (const y of parts) {
      for (const z of parts) {
        const out = resolveFtpPath('/p/q', x + y + z);
        t.true(out.startsWith('/'));
        t.false(out.includes('\\'));
        t.false(out.includes('//'));
        t.false(out.length > 1 && out.endsWith('/'));
        t.false(out.split('/').some((s) => s === '.' || s === '..'));
        t.is(resolveFtpPath('/', out), out);
        t.is(resolveFtpPath('/elsewhere', out), out);
      }
    }
  }
});

test('ftpBasename / ftpDirname / ftpJoin', (t) => {
  t.is(ftpBasename('/a/b'), 'b');
  t.is(ftpBasename('/a'), 'a');
  t.is(ftpBasename('/'), '');
  t.is(ftpBasename('/a/ b '), ' b ');
  t.is(ftpDirname('/a/b'), '/a');
  t.is(ftpDirname('/a'), '/');
  t.is(ftpDirname('/'), '/');
  t.is(ftpJoin('/', 'x'), '/x');
  t.is(ftpJoin('/a', 'x'), '/a/x');
  t.is(ftpJoin(ftpDirname('/a/b'), ftpBasename('/a/b')), '/a/b');
});

test('ftpIsWithin matches whole segments only', (t) => {
  t.true(ftpIsWithin('/', '/x'));
  t.true(ftpIsWithin('/a', '/a'));
  t.true(ftpIsWithin('/a', '/a/b'));
  t.false(ftpIsWithin('/a', '/ab'));
  t.false(ftpIsWithin('/a/b', '/a'));
});
