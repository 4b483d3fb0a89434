import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import bcrypt from 'bcryptjs';
import { ConfigError, HtpasswdAuthorizer, apr1Crypt, type AuthLogger } from '../../src/auth';
import { ConfigFileError, buildAuthorizer, loadConfigFile } from '../../src/config/file';
import { bcryptChecks, nativeBcrypt } from '../../src/auth/bcrypt';
import { apr1Checks, parseHtpasswdHash } from '../../src/auth/htpasswd';
import { unixAddon, unixAddonReason } from '../../src/native/unix';
import { LIMITED_LIMITS, READER_MSG, READER_PERM, UPLOADS_OVERRIDE, WRITER_PERM, registerLoginSuite } from './login-suite';

const CLIENT = { address: '127.0.0.1', port: 40000 };

function openssl(args: string[]): string {
  try {
    return execFileSync('openssl', args, { encoding: 'utf8' }).trim();
  } catch (err) {
    throw new Error(`openssl ${args.join(' ')} failed (is the openssl command installed?): ${(err as Error).message}`);
  }
}

function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-htpasswd-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Replace the file the way editors and htpasswd do: write a new one, rename it over. */
function replaceFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function recordingLogger(): AuthLogger & { records: Array<{ level: string; fields: Record<string, unknown>; msg?: string }> } {
  const records: Array<{ level: string; fields: Record<string, unknown>; msg?: string }> = [];
  const at = (level: string) => (fields: object, msg?: string) => records.push({ level, fields: fields as Record<string, unknown>, msg });
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** An authorizer over `text`, closed at teardown. */
function make(t: ExecutionContext, text: string, extra: Partial<ConstructorParameters<typeof HtpasswdAuthorizer>[0]> = {}) {
  const dir = tempDir(t);
  const file = path.join(dir, '.htpasswd');
  fs.writeFileSync(file, text);
  const a = new HtpasswdAuthorizer({ file, defaultHome: () => dir, reloadDelay: 0.02, ...extra });
  t.teardown(() => a.close());
  return { a, file, dir };
}

/** Resolve at the first 'reload' after which `ready()` holds (a stray earlier reload is skipped). */
async function reloadedUntil(a: HtpasswdAuthorizer, ready: () => Promise<boolean>): Promise<void> {
  const signal = AbortSignal.timeout(5000);
  for (;;) {
    await once(a, 'reload', { signal });
    if (await ready()) return;
  }
}

const sha = (pw: string): string => `{SHA}${createHash('sha1').update(pw).digest('base64')}`;

async function accepts(a: HtpasswdAuthorizer, user: string, pw: string): Promise<boolean> {
  try {
    await a.validateAuthentication(user, pw, CLIENT);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code !== 'FTPD_ERR_AUTH') throw err;
    return false;
  }
}

registerLoginSuite(test, 'htpasswd', async (t, homes) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'users.htpasswd');
  // reader: bcrypt as htpasswd -B writes it ($2y$); writer: apr1 (htpasswd -m).
  const readerHash = bcrypt.hashSync('reader-pw', 4).replace(/^\$2b\$/, '$2y$');
  fs.writeFileSync(
    file,
    `# test users\nreader:${readerHash}\nwriter:${apr1Crypt('writer-pw', 'w1s2a3l4')}\nlimited:${sha('limited-pw')}\n`,
  );
  const a = new HtpasswdAuthorizer({
    file,
    users: {
      reader: { home: homes.reader, perm: READER_PERM, msgLogin: READER_MSG, overrides: [UPLOADS_OVERRIDE] },
      limited: { home: homes.limited, perm: READER_PERM, limits: LIMITED_LIMITS },
    },
    // writer has no entry in users: home and letters come from the defaults.
    defaultHome: (user) => (user === 'writer' ? homes.writer : '/nonexistent'),
    defaultPerm: WRITER_PERM,
  });
  t.teardown(() => a.close());
  return {
    authorizer: a,
    reader: { name: 'reader', password: 'reader-pw' },
    writer: { name: 'writer', password: 'writer-pw' },
    limited: { name: 'limited', password: 'limited-pw' },
  };
});

test('apr1Crypt gives what openssl passwd -apr1 gives', (t) => {
  const cases: Array<[string, string]> = [
    ['secret', 'abc'],
    ['', 'emptypw1'],
    ['x'.repeat(40), 's'],
    ['pässwörd ✓', '12345678'],
    ['sixteen-chars-pw', 'ab.cd/ef'],
    ['long salt is cut', '0123456789'],
  ];
  for (const [pw, salt] of cases) {
    t.is(apr1Crypt(pw, salt), openssl(['passwd', '-apr1', '-salt', salt, pw]), `${JSON.stringify(pw)} / ${salt}`);
  }
});

/** Whether the system-user addon must be there: in CI (.ci/run installs libcrypt-dev) or when asked. */
const NATIVE_REQUIRED = process.env.CI === 'true' || process.env.FTPDLIB_NATIVE_REQUIRED === '1';

/** Without the system-user addon: a failure where it is required, else a note (the JS paths are tested then). */
function withoutAddon(t: ExecutionContext): void {
  const why = `the system-user addon is not built (install libcrypt-dev, npm run build:native): ${unixAddonReason()}`;
  if (NATIVE_REQUIRED) t.fail(why);
  else {
    t.log(`not run: ${why}`);
    t.pass();
  }
}

test('apr1 on a pool thread (the system-user addon, src/native/md5crypt.c) gives what apr1Crypt gives', async (t) => {
  const addon = unixAddon();
  if (!addon?.apr1) {
    withoutAddon(t);
    return;
  }
  const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const pick = (n: number): string => Array.from({ length: n }, () => ITOA64[randomInt(64)]).join('');
  // Lengths around MD5's 64-byte blocks and the 16-byte steps of the length loop; UTF-8; a NUL.
  const cases: Array<[string, string]> = [
    ['', 'a'],
    ['secret', 'abc'],
    ['pässwörd ✓', '12345678'],
    ['with\0nul', 'nulsalt'],
    ['日本語のパスワード', 'Zq9.x/Yw'],
    // Salts of 8 bytes that are not 8 characters (openssl passwd -apr1 -salt takes them).
    ['pw', 'üüüü'],
    ['pw', 'a b'],
  ];
  for (const len of [1, 15, 16, 17, 31, 32, 47, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200, 1000]) {
    cases.push([pick(len), pick(1 + randomInt(8))]);
  }
  for (let i = 0; i < 40; i++) cases.push([randomBytes(randomInt(90)).toString('latin1'), pick(1 + randomInt(8))]);
  for (const [pw, salt] of cases) {
    t.is(await addon.apr1(pw, salt), apr1Crypt(pw, salt), `${JSON.stringify(pw)} / ${salt}`);
  }
  t.is(await addon.apr1('x', ''), -22, 'an empty salt: EINVAL');
  t.is(await addon.apr1('x', 'abcdefghijkl'), apr1Crypt('x', 'abcdefgh'), 'a salt is cut at 8 bytes, as Apache cuts it');
  t.is(await addon.apr1('x', 'abc$def'), apr1Crypt('x', 'abc'), 'and ends at a $');
});

test.serial('apr1 and bcrypt users are checked on the pool (libcrypt, md5crypt.c); FTPDLIB_NATIVE_APR1=0 and FTPDLIB_NATIVE_BCRYPT=0 keep them on the event loop', async (t) => {
  // bcrypt of cost 6: dearer than apr1 on either path, so neither user is padded with a dummy check.
  const { a } = make(t, `apr:${apr1Crypt('apr-pw', 'Zq9.x/Yw')}\nbc:${bcrypt.hashSync('bc-pw', 6).replace(/^\$2b\$/, '$2y$')}\n`);
  const counts = (): number[] => [apr1Checks.native, apr1Checks.js, bcryptChecks.libcrypt, bcryptChecks.bcryptjs];
  const delta = async (fn: () => Promise<void>): Promise<number[]> => {
    const before = counts();
    await fn();
    return counts().map((n, i) => n - before[i]);
  };
  const logins = async (): Promise<void> => {
    t.true(await accepts(a, 'apr', 'apr-pw'));
    t.false(await accepts(a, 'apr', 'apr-pW'));
    t.true(await accepts(a, 'bc', 'bc-pw'));
    t.false(await accepts(a, 'bc', 'bc-pW'));
  };
  const native = unixAddon()?.apr1 !== undefined && (await nativeBcrypt()) !== null;
  if (!native) withoutAddon(t);
  t.deepEqual(await delta(logins), native ? [2, 0, 2, 0] : [0, 2, 0, 2], native ? 'native: apr1 and bcrypt off the loop' : 'no addon: in JS');
  process.env.FTPDLIB_NATIVE_APR1 = '0';
  process.env.FTPDLIB_NATIVE_BCRYPT = '0';
  try {
    t.deepEqual(await delta(logins), [0, 2, 0, 2], 'forced to JS: the same answers');
  } finally {
    delete process.env.FTPDLIB_NATIVE_APR1;
    delete process.env.FTPDLIB_NATIVE_BCRYPT;
  }
  // A password holding a NUL would end a C string early: bcryptjs takes it whole.
  t.false(await accepts(a, 'bc', 'bc-pw\0tail'));
  t.deepEqual(await delta(async () => void (await accepts(a, 'bc', 'bc-pw\0'))), [0, 0, 0, 1]);
});

test.serial('a bcrypt password of 600 bytes logs in on both paths (bcrypt reads 72 bytes; libcrypt refuses 512 and more whole)', async (t) => {
  const long = `ü${'p'.repeat(600)}`;
  const { a } = make(t, `long:${bcrypt.hashSync(long, 4)}\n`);
  for (const js of [false, true]) {
    if (js) process.env.FTPDLIB_NATIVE_BCRYPT = '0';
    try {
      t.true(await accepts(a, 'long', long), `the right one (${js ? 'bcryptjs' : 'default path'})`);
      t.true(await accepts(a, 'long', `${long}more`), 'bytes past the 72nd do not count, on either path');
      t.false(await accepts(a, 'long', `ü${'q'.repeat(600)}`), 'a wrong one');
    } finally {
      delete process.env.FTPDLIB_NATIVE_BCRYPT;
    }
  }
});

test('libcrypt checks bcrypt as bcryptjs does: $2a$, $2b$, $2y$; UTF-8; the 72-byte cut', async (t) => {
  const addon = await nativeBcrypt();
  if (!addon) {
    withoutAddon(t);
    return;
  }
  const passwords = ['p', 'pässwörd ✓', 'x'.repeat(71), 'y'.repeat(72), 'z'.repeat(100), '日本語'.repeat(30)];
  for (const pw of passwords) {
    const h = bcrypt.hashSync(pw, 4);
    for (const prefix of ['$2a$', '$2b$', '$2y$']) {
      const hash = prefix + h.slice(4);
      t.true(await addon.verify(pw, hash), `${prefix} ${JSON.stringify(pw.slice(0, 20))}`);
      t.false(await addon.verify(`${pw.slice(0, 5)}!${pw.slice(6)}`, hash), `${prefix} a wrong one`);
      // Past 72 bytes nothing counts, for both (so this is true for the long ones only).
      t.is(await addon.verify(`${pw}tail`, hash), bcrypt.compareSync(`${pw}tail`, hash), `${prefix} the cut`);
    }
  }
});

test('an apr1 salt may be any 8 bytes but `$` (openssl takes non-ASCII ones); longer or with a NUL it is refused', async (t) => {
  const { a } = make(t, [
    `u8:${openssl(['passwd', '-apr1', '-salt', 'üüüü', 'u8-pw'])}`,
    `sp:${openssl(['passwd', '-apr1', '-salt', 'a b', 'sp-pw'])}`,
    `long:$apr1$üüüüü$${'a'.repeat(22)}`,
    `nul:$apr1$ab\0cd$${'a'.repeat(22)}`,
  ].join('\n') + '\n');
  t.true(await accepts(a, 'u8', 'u8-pw'));
  t.false(await accepts(a, 'u8', 'u8-pW'));
  t.true(await accepts(a, 'sp', 'sp-pw'));
  t.is(parseHtpasswdHash(`$apr1$üüüüü$${'a'.repeat(22)}`).scheme, 'refused', '10 bytes');
  t.is(parseHtpasswdHash(`$apr1$ab\0cd$${'a'.repeat(22)}`).scheme, 'refused', 'a NUL');
  t.is(parseHtpasswdHash(`$apr1$üüüü$${'a'.repeat(22)}`).scheme, 'apr1', '8 bytes');
});

test('each hash scheme logs in; plain text, DES, unknown schemes and absurd costs are refused and logged', async (t) => {
  const bc = bcrypt.hashSync('bcrypt-pw', 4);
  const log = recordingLogger();
  const lines = [
    `b2y:${bc.replace(/^\$2b\$/, '$2y$')}`,
    `b2a:${bc.replace(/^\$2b\$/, '$2a$')}`,
    `b2b:${bc}`,
    `apr:${openssl(['passwd', '-apr1', '-salt', 'Zq9.x/Yw', 'apr-pw'])}`,
    `sha:${sha('sha-pw')}`,
    'plain:plain-pw',
    'des:rl0uE4YXwLBMI',
    `md5crypt:${openssl(['passwd', '-1', '-salt', 'abcdefgh', 'md5-pw'])}`,
    `huge:${bc.replace(/^\$2b\$04\$/, '$2y$31$')}`,
    `extra:${sha('extra-pw')}:a comment field`,
  ];
  const { a } = make(t, lines.join('\r\n') + '\r\n', { logger: log });
  for (const u of ['b2y', 'b2a', 'b2b']) {
    t.true(await accepts(a, u, 'bcrypt-pw'), u);
    t.false(await accepts(a, u, 'bcrypt-pX'), u);
  }
  t.true(await accepts(a, 'apr', 'apr-pw'));
  t.false(await accepts(a, 'apr', 'apr-pW'));
  t.true(await accepts(a, 'sha', 'sha-pw'));
  t.false(await accepts(a, 'sha', 'sha-p'));
  t.true(await accepts(a, 'extra', 'extra-pw'));
  t.false(await accepts(a, 'plain', 'plain-pw'));
  t.false(await accepts(a, 'plain', ''));
  t.false(await accepts(a, 'des', 'whatever'));
  t.false(await accepts(a, 'md5crypt', 'md5-pw'));
  t.false(await accepts(a, 'huge', 'bcrypt-pw'));
  const refused = log.records.filter((r) => r.level === 'warn').map((r) => r.fields.user);
  t.deepEqual(refused.sort(), ['des', 'huge', 'md5crypt', 'plain']);
  t.true(a.hasUser('plain'));
  t.false(a.hasUser('nobody'));
});

// Serial: it patches bcryptjs.compare, which no concurrent test must call meanwhile.
test.serial('an unknown user, a refused entry and a wrong password each cost one bcrypt of the file’s cost', async (t) => {
  const lines = ['a', 'b', 'c'].map((u) => `${u}:${bcrypt.hashSync('pw', 5)}`);
  const { a } = make(t, [...lines, `s:${sha('pw')}`, 'p:plain'].join('\n'));
  // bcryptjs is spied on: the check is kept off libcrypt here (its cost is not visible from JS).
  process.env.FTPDLIB_NATIVE_BCRYPT = '0';
  t.teardown(() => {
    delete process.env.FTPDLIB_NATIVE_BCRYPT;
  });
  const lib = require('bcryptjs') as { compare: (pw: string, hash: string) => Promise<boolean> };
  const original = lib.compare;
  const costs: number[] = [];
  lib.compare = (pw, hash) => {
    costs.push(bcrypt.getRounds(hash));
    return original(pw, hash);
  };
  try {
    t.false(await accepts(a, 'a', 'wrong'));
    t.false(await accepts(a, 'mallory', 'wrong'));
    t.false(await accepts(a, 'p', 'plain'));
  } finally {
    lib.compare = original;
  }
  t.deepEqual(costs, [5, 5, 5]);
});

test('a file replaced by rename is reloaded (reload event), and an in-place rewrite too', async (t) => {
  const { a, file } = make(t, `alice:${sha('old')}\n`);
  t.true(await accepts(a, 'alice', 'old'));

  const sizes: number[] = [];
  a.on('reload', (info: { users: number }) => sizes.push(info.users));
  let reloaded = reloadedUntil(a, () => accepts(a, 'alice', 'new'));
  replaceFile(file, `alice:${sha('new')}\nbob:${apr1Crypt('bob-pw', 'bobsalt')}\n`);
  await reloaded;
  t.is(sizes[sizes.length - 1], 2);
  t.false(await accepts(a, 'alice', 'old'));
  t.true(await accepts(a, 'alice', 'new'));
  t.true(await accepts(a, 'bob', 'bob-pw'));

  // The first rename left the original inode behind: the new file must be watched too.
  reloaded = reloadedUntil(a, () => accepts(a, 'alice', 'newer'));
  fs.writeFileSync(file, `alice:${sha('newer')}\n`);
  await reloaded;
  t.is(a.size, 1);
  t.false(await accepts(a, 'bob', 'bob-pw'));
});

test('a malformed file keeps the previous table and logs; fixing it reloads', async (t) => {
  const log = recordingLogger();
  const { a, file } = make(t, `alice:${sha('pw')}\n`, { logger: log });
  const failed = once(a, 'reloadFailed', { signal: AbortSignal.timeout(5000) });
  replaceFile(file, `alice:${sha('other')}\nthis line has no colon\n`);
  const [err] = await failed;
  t.is((err as { code?: string }).code, 'FTPD_ERR_HTPASSWD');
  t.true(await accepts(a, 'alice', 'pw'));
  t.false(await accepts(a, 'alice', 'other'));
  t.true(log.records.some((r) => r.level === 'error' && r.fields.err === err));

  const reloaded = reloadedUntil(a, () => accepts(a, 'alice', 'other'));
  replaceFile(file, `alice:${sha('other')}\n`);
  await reloaded;
  t.pass();
});

test('reload() on demand: true when the new table is in force, false (old kept) for a bad or missing file', async (t) => {
  const { a, file } = make(t, `alice:${sha('pw')}\n`, { watch: false });
  fs.writeFileSync(file, `alice:${sha('pw2')}\n`);
  t.true(await a.reload());
  t.true(await accepts(a, 'alice', 'pw2'));
  fs.writeFileSync(file, `alice:${sha('x')}\nalice:${sha('y')}\n`);
  t.false(await a.reload(), 'a user named twice is malformed');
  fs.rmSync(file);
  t.false(await a.reload());
  t.true(await accepts(a, 'alice', 'pw2'));
});

test('options are checked: a missing or malformed file at start, a relative home, a bad letter', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'h');
  const keyOf = (fn: () => unknown): unknown => (t.throws(fn) as { key?: string }).key;
  t.is(keyOf(() => new HtpasswdAuthorizer({ file })), 'file');
  fs.writeFileSync(file, ':nouser\n');
  t.is(keyOf(() => new HtpasswdAuthorizer({ file, watch: false })), 'file');
  fs.writeFileSync(file, '');
  t.is(keyOf(() => new HtpasswdAuthorizer({ file, watch: false, users: { u: { home: 'rel' } } })), 'users.u.home');
  t.is(keyOf(() => new HtpasswdAuthorizer({ file, watch: false, users: { u: { home: '/h', perm: 'rwx' } } })), 'users.u.perm');
  t.is(keyOf(() => new HtpasswdAuthorizer({ file, watch: false, defaultPerm: 'z' })), 'defaultPerm');
});

test('a user in the file without a home cannot log in, and the getters answer for configured users only', async (t) => {
  const { a } = make(t, `homeless:${sha('pw')}\nhere:${sha('pw')}\n`, {
    defaultHome: undefined,
    users: { here: { home: '/srv/here', perm: 'elrw', overrides: [{ path: '/ro/', perm: 'el', recursive: true }] } },
  });
  t.false(await accepts(a, 'homeless', 'pw'));
  t.true(await accepts(a, 'here', 'pw'));
  t.is(a.getHomeDir('here'), '/srv/here');
  t.is(a.getPerms('here'), 'elrw');
  t.true(a.hasPerm('here', 'w', '/x'));
  t.false(a.hasPerm('here', 'w', '/ro/deep/x'));
  t.is(a.getPerms('homeless'), '');
  t.throws(() => a.getHomeDir('homeless'), { instanceOf: Error, message: /Unknown user/ });
});

test('limits: a user\'s own, else defaultLimits (also for users only in the file); checked like virtual users\' limits', (t) => {
  const { a } = make(t, `own:${sha('pw')}\nlisted:${sha('pw')}\nfileonly:${sha('pw')}\n`, {
    users: {
      own: { home: '/srv/own', limits: { maxSessions: 1, writeLimit: 0, quotaFiles: 10 } },
      listed: { home: '/srv/listed' },
    },
    defaultLimits: { maxSessions: 4, quotaBytes: 1000 },
  });
  // 0 means no limit and is dropped; a user's limits replace the defaults as a whole.
  t.deepEqual(a.getLimits('own'), { maxSessions: 1, quotaFiles: 10 });
  t.deepEqual(a.getLimits('listed'), { maxSessions: 4, quotaBytes: 1000 });
  t.deepEqual(a.getLimits('fileonly'), { maxSessions: 4, quotaBytes: 1000 }, 'home from defaultHome, limits from defaultLimits');
  t.deepEqual(a.getLimits('nobody'), {});

  const file = path.join(tempDir(t), 'h');
  fs.writeFileSync(file, '');
  const keyOf = (opts: Partial<ConstructorParameters<typeof HtpasswdAuthorizer>[0]>): unknown =>
    (t.throws(() => new HtpasswdAuthorizer({ file, watch: false, ...opts } as never), { instanceOf: ConfigError }) as ConfigError).key;
  t.is(keyOf({ users: { u: { home: '/h', limits: { maxSessions: -1 } } } }), 'users.u.limits.maxSessions');
  t.is(keyOf({ users: { u: { home: '/h', limits: { quota: 1 } as never } } }), 'users.u.limits.quota');
  t.is(keyOf({ defaultLimits: { readLimit: 1.5 } }), 'defaultLimits.readLimit');
  t.is(keyOf({ defaultLimits: [] as never }), 'defaultLimits');
});

test('limits in the config file: users.<name>.limits and defaultLimits; a bad value names its line', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'users.htpasswd'), `alice:${sha('pw')}\nbob:${sha('pw')}\n`);
  const file = path.join(dir, 'f.yaml');
  const yaml = (aliceLimits: string, defaults: string): string =>
    'authorizer:\n' +
    '  type: htpasswd\n' +
    '  file: users.htpasswd\n' +
    '  watch: false\n' +
    '  users:\n' +
    '    alice:\n' +
    `      home: ${dir}\n` +
    '      limits:\n' +
    aliceLimits +
    `  defaultHome: ${dir}\n` +
    '  defaultLimits:\n' +
    defaults;
  fs.writeFileSync(file, yaml('        maxSessions: 2\n        quotaBytes: 1048576\n', '        maxSessions: 7\n'));
  const built = buildAuthorizer(loadConfigFile(file), undefined, { watch: false });
  t.teardown(() => built.close());
  t.deepEqual(built.authorizer.getLimits?.('alice'), { maxSessions: 2, quotaBytes: 1048576 });
  t.deepEqual(built.authorizer.getLimits?.('bob'), { maxSessions: 7 });

  fs.writeFileSync(file, yaml('        maxSessions: -2\n', '        maxSessions: 7\n'));
  let err = t.throws(() => loadConfigFile(file), { instanceOf: ConfigFileError }) as ConfigFileError;
  t.is(err.issues.length, 1, JSON.stringify(err.issues));
  t.is(err.issues[0].path, 'authorizer.users.alice.limits.maxSessions');
  t.is(err.issues[0].line, 9);

  fs.writeFileSync(file, yaml('        maxSessions: 2\n', '        sessions: 7\n'));
  err = t.throws(() => loadConfigFile(file), { instanceOf: ConfigFileError }) as ConfigFileError;
  t.is(err.issues.length, 1, JSON.stringify(err.issues));
  t.is(err.issues[0].path, 'authorizer.defaultLimits.sessions');
  t.is(err.issues[0].line, 12);
});

test.serial('a user of a cheaper scheme than the file\'s most common one costs the same bcrypt work as an unknown name; a costlier one is not padded', async (t) => {
  const b = (pw: string, cost = 4): string => bcrypt.hashSync(pw, cost);
  const sha = (pw: string): string => `{SHA}${createHash('sha1').update(pw).digest('base64')}`;
  const { a } = make(t, `alice:${b('a')}\nbob:${b('b')}\ncarol:${b('c')}\nold:${sha('o')}\nslow:${b('s', 5)}\n`);
  const checks = async (user: string, pw: string): Promise<number> => {
    const before = bcryptChecks.libcrypt + bcryptChecks.bcryptjs;
    await a.validateAuthentication(user, pw).catch(() => undefined);
    return bcryptChecks.libcrypt + bcryptChecks.bcryptjs - before;
  };
  // On libcrypt (the default where the system-user addon is built), then on bcryptjs.
  for (const js of [false, true]) {
    if (js) process.env.FTPDLIB_NATIVE_BCRYPT = '0';
    try {
      const on = js || !(await nativeBcrypt()) ? 'bcryptjs' : 'libcrypt';
      const before = bcryptChecks[on];
      t.is(await checks('nosuchuser', 'x'), 1, 'an unknown name: the dummy bcrypt check');
      t.is(await checks('alice', 'wrong'), 1, 'a bcrypt user: its own');
      t.is(await checks('old', 'wrong'), 1, 'the SHA-1 user: its own SHA-1 check, and the dummy bcrypt one');
      t.is(await checks('old', 'o'), 1);
      await t.notThrowsAsync(a.validateAuthentication('old', 'o'));
      t.is(await checks('slow', 'wrong'), 1, 'a costlier bcrypt user: its own check only');
      await t.notThrowsAsync(a.validateAuthentication('slow', 's'));
      t.is(bcryptChecks[on] - before, 7, `all on ${on}`);
    } finally {
      delete process.env.FTPDLIB_NATIVE_BCRYPT;
    }
  }
});
