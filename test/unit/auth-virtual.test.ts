import crypto from 'node:crypto';
import test from 'ava';
import { AuthenticationFailedError, VirtualAuthorizer, fromConfig, hashPassword } from '../../src/auth';

const FAST = { ln: 4, r: 8, p: 1 };
const CLIENT = { address: '127.0.0.1', port: 40000 };
const fast = (opts: { allowPlaintextPasswords?: boolean } = {}): VirtualAuthorizer =>
  new VirtualAuthorizer({ ...opts, scrypt: FAST });

function configError(t: { throws: (fn: () => unknown) => unknown; is: (a: unknown, b: unknown) => void }, fn: () => unknown, key: string): void {
  const err = t.throws(fn) as { code?: string; key?: string };
  t.is(err?.code, 'FTPD_ERR_CONFIG');
  t.is(err?.key, key);
}

async function refused(t: { throwsAsync: (p: Promise<unknown>) => Promise<unknown>; is: (a: unknown, b: unknown) => void }, p: Promise<unknown>): Promise<void> {
  const err = (await t.throwsAsync(p)) as { code?: string };
  t.is(err?.code, 'FTPD_ERR_AUTH');
}

// Serial tests run before the concurrent ones, so patching crypto.scrypt here sees no other test's calls.
test.serial('an unknown user costs one scrypt of the same cost as a wrong password', async (t) => {
  const a = fast();
  a.addUser('alice', 'pw', '/srv/ftp');
  await a.validateAuthentication('alice', 'pw', CLIENT);
  const calls: number[] = [];
  const original = crypto.scrypt;
  (crypto as { scrypt: unknown }).scrypt = (...args: unknown[]) => {
    calls.push((args[3] as { N: number }).N);
    return (original as (...a: unknown[]) => void)(...args);
  };
  try {
    await refused(t, a.validateAuthentication('alice', 'wrong', CLIENT));
    await refused(t, a.validateAuthentication('mallory', 'wrong', CLIENT));
  } finally {
    (crypto as { scrypt: unknown }).scrypt = original;
  }
  t.deepEqual(calls, [2 ** FAST.ln, 2 ** FAST.ln]);
});

test('the README demo: addUser then log in at once, at the default cost', async (t) => {
  const a = new VirtualAuthorizer();
  a.addUser('demo', 'demo', '/srv/ftp', { perm: 'elradfmwMT' });
  await t.notThrowsAsync(a.validateAuthentication('demo', 'demo', CLIENT));
  await refused(t, a.validateAuthentication('demo', 'Demo', CLIENT));
  t.is(a.getHomeDir('demo'), '/srv/ftp');
  t.is(a.getPerms('demo'), 'elradfmwMT');
});

test('wrong password and unknown user are both AuthenticationFailedError', async (t) => {
  const a = fast();
  a.addUser('bob', 'hunter2', '/home/bob');
  for (const [user, pass] of [
    ['bob', 'hunter3'],
    ['bob', ''],
    ['nobody', 'hunter2'],
    ['', ''],
  ]) {
    const err = await t.throwsAsync(a.validateAuthentication(user, pass, CLIENT));
    t.true(err instanceof AuthenticationFailedError);
    t.is((err as { code?: string }).code, 'FTPD_ERR_AUTH');
  }
  await t.notThrowsAsync(a.validateAuthentication('bob', 'hunter2', CLIENT));
});

test('user names are case-sensitive', async (t) => {
  const a = fast();
  a.addUser('Bob', 'pw', '/home/bob');
  await t.notThrowsAsync(a.validateAuthentication('Bob', 'pw', CLIENT));
  await refused(t, a.validateAuthentication('bob', 'pw', CLIENT));
  t.false(a.hasUser('bob'));
});

test('a stored $scrypt$ hash is used as is', async (t) => {
  const a = fast();
  a.addUser('carol', await hashPassword('s3cret', FAST), '/home/carol');
  await t.notThrowsAsync(a.validateAuthentication('carol', 's3cret', CLIENT));
  await refused(t, a.validateAuthentication('carol', 'wrong', CLIENT));
});

test('a hash given as the password is not accepted as the literal password', async (t) => {
  const a = fast();
  const stored = await hashPassword('real', FAST);
  a.addUser('dave', stored, '/home/dave');
  await refused(t, a.validateAuthentication('dave', stored, CLIENT));
});

test('plain text allowed: kept and compared; wrong and unknown refused', async (t) => {
  const a = new VirtualAuthorizer({ allowPlaintextPasswords: true });
  a.addUser('erin', 'plain', '/home/erin');
  a.addUser('frank', await hashPassword('hashed', FAST), '/home/frank');
  await t.notThrowsAsync(a.validateAuthentication('erin', 'plain', CLIENT));
  await refused(t, a.validateAuthentication('erin', 'plain2', CLIENT));
  await refused(t, a.validateAuthentication('erin', 'plai', CLIENT));
  await refused(t, a.validateAuthentication('erin', '', CLIENT));
  await refused(t, a.validateAuthentication('zed', 'plain', CLIENT));
  await t.notThrowsAsync(a.validateAuthentication('frank', 'hashed', CLIENT));
  await refused(t, a.validateAuthentication('frank', 'plain', CLIENT));
});

test('plain text not allowed: hashed when added, and it still logs in', async (t) => {
  const a = fast();
  a.addUser('gina', 'plain', '/home/gina');
  await t.notThrowsAsync(a.validateAuthentication('gina', 'plain', CLIENT));
  await refused(t, a.validateAuthentication('gina', 'plain ', CLIENT));
});

test('an empty plain-text password is a password like any other', async (t) => {
  const a = fast();
  a.addUser('hal', '', '/home/hal');
  await t.notThrowsAsync(a.validateAuthentication('hal', '', CLIENT));
  await refused(t, a.validateAuthentication('hal', 'x', CLIENT));
});

test('anonymous logs in with any password, read-only by default', async (t) => {
  const a = fast();
  a.addAnonymous('/srv/pub');
  for (const pass of ['', 'guest@example.com', 'anything']) {
    await t.notThrowsAsync(a.validateAuthentication('anonymous', pass, CLIENT));
  }
  t.is(a.getPerms('anonymous'), 'elr');
  t.true(a.hasPerm('anonymous', 'r', '/file'));
  t.false(a.hasPerm('anonymous', 'w', '/file'));
  await refused(t, a.validateAuthentication('Anonymous', '', CLIENT));
});

test('anonymous write letters are granted only when given explicitly', async (t) => {
  const a = fast();
  a.addAnonymous('/srv/pub', { perm: 'elrw', msgLogin: 'Welcome, stranger.' });
  t.true(a.hasPerm('anonymous', 'w', '/incoming/f'));
  t.is(a.getMsgLogin('anonymous'), 'Welcome, stranger.');
  configError(t, () => a.addAnonymous('/srv/pub'), 'users.anonymous.name');
});

test('without addAnonymous, anonymous is refused', async (t) => {
  const a = fast();
  a.addUser('ivy', 'pw', '/home/ivy');
  await refused(t, a.validateAuthentication('anonymous', '', CLIENT));
});

test('messages and defaults', (t) => {
  const a = fast();
  a.addUser('jo', 'pw', '/home/jo');
  a.addUser('kim', 'pw', '/home/kim', { msgLogin: 'Hi kim.', msgQuit: 'Bye kim.' });
  t.is(a.getMsgLogin('jo'), 'Login successful.');
  t.is(a.getMsgQuit('jo'), 'Goodbye.');
  t.is(a.getMsgLogin('kim'), 'Hi kim.');
  t.is(a.getMsgQuit('kim'), 'Bye kim.');
  t.is(a.getPerms('jo'), 'elr');
});

test('unknown users get neutral answers; getHomeDir refuses', (t) => {
  const a = fast();
  t.is(a.getPerms('ghost'), '');
  t.false(a.hasPerm('ghost', 'r'));
  t.is(a.getMsgQuit('ghost'), 'Goodbye.');
  const err = t.throws(() => a.getHomeDir('ghost')) as { code?: string };
  t.is(err.code, 'FTPD_ERR_AUTH');
});

test('removeUser and hasUser', async (t) => {
  const a = fast();
  a.addUser('leo', 'pw', '/home/leo');
  t.true(a.hasUser('leo'));
  t.true(a.removeUser('leo'));
  t.false(a.hasUser('leo'));
  t.false(a.removeUser('leo'));
  await refused(t, a.validateAuthentication('leo', 'pw', CLIENT));
  a.addUser('leo', 'pw2', '/home/leo');
  await t.notThrowsAsync(a.validateAuthentication('leo', 'pw2', CLIENT));
});

const badUsers: Array<[string, (a: VirtualAuthorizer) => void, string]> = [
  ['empty name', (a) => a.addUser('', 'pw', '/h'), 'users.name'],
  ['name with CR', (a) => a.addUser('a\r', 'pw', '/h'), 'users.a\r.name'],
  ['relative home', (a) => a.addUser('u', 'pw', 'home/u'), 'users.u.home'],
  ['empty home', (a) => a.addUser('u', 'pw', ''), 'users.u.home'],
  ['unknown perm letter', (a) => a.addUser('u', 'pw', '/h', { perm: 'elrx' }), 'users.u.perm'],
  ['lower-case t', (a) => a.addUser('u', 'pw', '/h', { perm: 'elrt' }), 'users.u.perm'],
  ['non-string msgLogin', (a) => a.addUser('u', 'pw', '/h', { msgLogin: 1 as unknown as string }), 'users.u.msgLogin'],
  ['non-string password', (a) => a.addUser('u', null as unknown as string, '/h'), 'users.u.password'],
  ['malformed $scrypt$ hash', (a) => a.addUser('u', '$scrypt$ln=4,r=8,p=1$zz', '/h'), 'users.u.password'],
  ['out-of-bounds $scrypt$ hash', (a) => a.addUser('u', `$scrypt$ln=30,r=8,p=1$${'A'.repeat(22)}$${'A'.repeat(43)}`, '/h'), 'users.u.password'],
  ['bcrypt hash', (a) => a.addUser('u', '$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01', '/h'), 'users.u.password'],
  [
    'duplicate user',
    (a) => {
      a.addUser('u', 'pw', '/h');
      a.addUser('u', 'pw', '/h');
    },
    'users.u.name',
  ],
  ['override for an unknown user', (a) => a.overridePerm('nobody', '/up', 'elrw'), 'users.nobody.name'],
  [
    'override with a relative directory',
    (a) => {
      a.addUser('u', 'pw', '/h');
      a.overridePerm('u', 'uploads', 'elrw');
    },
    'users.u.path',
  ],
  [
    'override with a bad letter',
    (a) => {
      a.addUser('u', 'pw', '/h');
      a.overridePerm('u', '/uploads', 'elrW');
    },
    'users.u.perm',
  ],
];

for (const [name, fn, key] of badUsers) {
  test(`ConfigError: ${name}`, (t) => {
    configError(t, () => fn(fast()), key);
  });
}

test('bad scrypt options in the constructor are a ConfigError', (t) => {
  configError(t, () => new VirtualAuthorizer({ scrypt: { ln: 40 } } as never), 'scrypt');
});

test('hasPerm: base letters, overrides, and nonsense letters', (t) => {
  const a = fast();
  a.addUser('mia', 'pw', '/home/mia', { perm: 'elr' });
  a.overridePerm('mia', '/uploads', 'elrwm', true);
  a.overridePerm('mia', '/drop', 'elw');
  a.overridePerm('mia', '/uploads/locked', 'el');

  const cases: Array<[string, string, string | undefined, boolean]> = [
    ['r', 'base, no path', undefined, true],
    ['w', 'base, no path', undefined, false],
    ['w', 'root', '/', false],
    ['w', 'recursive: the directory', '/uploads', true],
    ['w', 'recursive: deep', '/uploads/a/b/c.bin', true],
    ['m', 'recursive: new dir deep', '/uploads/a/new', true],
    ['w', 'most specific (non-recursive) wins', '/uploads/locked/f', false],
    ['w', 'recursive parent below the non-recursive child', '/uploads/locked/sub/f', true],
    ['w', 'non-recursive: file in it', '/drop/f', true],
    ['r', 'non-recursive override replaces the base letters', '/drop/f', false],
    ['w', 'non-recursive: not below a subdirectory', '/drop/sub/f', false],
    ['w', 'sibling with a common prefix', '/uploads2/f', false],
    ['w', 'sibling with a common prefix (shorter)', '/drops', false],
    ['w', 'relative path fails closed', 'uploads/f', false],
    ['r', 'relative path fails closed', 'f', false],
  ];
  for (const [letter, name, path, expected] of cases) {
    t.is(a.hasPerm('mia', letter as 'r', path), expected, `${letter} on ${path}: ${name}`);
  }
  for (const letter of ['', 'x', 'el', 'R']) {
    t.false(a.hasPerm('mia', letter as 'r', '/uploads/f'), `letter ${JSON.stringify(letter)}`);
  }
});

test('overridePerm on the same directory replaces the earlier one', (t) => {
  const a = fast();
  a.addUser('ned', 'pw', '/home/ned');
  a.overridePerm('ned', '/up', 'elrw', true);
  a.overridePerm('ned', '/up/', 'elr');
  t.false(a.hasPerm('ned', 'w', '/up/f'));
  t.true(a.hasPerm('ned', 'r', '/up/f'));
  // No longer recursive: below /up/a the base letters apply again.
  t.false(a.hasPerm('ned', 'w', '/up/a/f'));
  t.true(a.hasPerm('ned', 'r', '/up/a/f'));
});

test('fromConfig builds users, overrides and anonymous', async (t) => {
  const a = fromConfig(
    [
      {
        name: 'olga',
        password: await hashPassword('pw', FAST),
        home: '/home/olga',
        perm: 'elr',
        msgQuit: 'Bye.',
        overrides: [
          { path: '/in', perm: 'elrw', recursive: true },
          { path: '/out', perm: 'el' },
        ],
      },
      { name: 'anonymous', home: '/srv/pub' },
      { name: 'pete', password: 'plain', home: '/home/pete' },
    ],
    { scrypt: FAST },
  );
  await t.notThrowsAsync(a.validateAuthentication('olga', 'pw', CLIENT));
  await t.notThrowsAsync(a.validateAuthentication('anonymous', 'x', CLIENT));
  await t.notThrowsAsync(a.validateAuthentication('pete', 'plain', CLIENT));
  t.true(a.hasPerm('olga', 'w', '/in/a/b'));
  t.false(a.hasPerm('olga', 'r', '/out/f'));
  t.true(a.hasPerm('olga', 'r', '/other'));
  t.is(a.getMsgQuit('olga'), 'Bye.');
  t.is(a.getPerms('anonymous'), 'elr');
});

test('fromConfig: anonymous with a non-empty password is an ordinary user', async (t) => {
  const a = fromConfig([{ name: 'anonymous', password: 'secret', home: '/srv/pub' }], { scrypt: FAST });
  await refused(t, a.validateAuthentication('anonymous', '', CLIENT));
  await t.notThrowsAsync(a.validateAuthentication('anonymous', 'secret', CLIENT));
});

const badConfigs: Array<[string, unknown, string]> = [
  ['not an array', { name: 'x' }, 'users'],
  ['entry not an object', ['x'], 'users[0]'],
  ['missing name', [{ password: 'p', home: '/h' }], 'users[0].name'],
  ['bad perm in the second user', [{ name: 'a', password: 'p', home: '/h' }, { name: 'b', password: 'p', home: '/h', perm: 'elrq' }], 'users[1].perm'],
  ['duplicate', [{ name: 'a', password: 'p', home: '/h' }, { name: 'a', password: 'p', home: '/h' }], 'users[1].name'],
  ['relative home', [{ name: 'a', password: 'p', home: 'h' }], 'users[0].home'],
  ['missing password', [{ name: 'a', home: '/h' }], 'users[0].password'],
  ['overrides not an array', [{ name: 'a', password: 'p', home: '/h', overrides: {} }], 'users[0].overrides'],
  ['override path relative', [{ name: 'a', password: 'p', home: '/h', overrides: [{ path: 'in', perm: 'e' }] }], 'users[0].overrides[0].path'],
  ['override bad perm', [{ name: 'a', password: 'p', home: '/h', overrides: [{ path: '/in', perm: 'e!' }] }], 'users[0].overrides[0].perm'],
  ['override recursive not boolean', [{ name: 'a', password: 'p', home: '/h', overrides: [{ path: '/in', perm: 'e', recursive: 'yes' }] }], 'users[0].overrides[0].recursive'],
];

for (const [name, users, key] of badConfigs) {
  test(`fromConfig ConfigError: ${name}`, (t) => {
    configError(t, () => fromConfig(users as never, { scrypt: FAST }), key);
  });
}
