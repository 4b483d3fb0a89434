import test from 'ava';
import {
  DEFAULT_SCRYPT,
  hashPassword,
  isPasswordHash,
  parsePasswordHash,
  verifyPassword,
} from '../../src/auth/password';

const FAST = { ln: 4, r: 8, p: 1 };
const FORMAT = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

test('a default-cost hash has the documented format and verifies', async (t) => {
  const stored = await hashPassword('correct horse');
  const m = FORMAT.exec(stored);
  t.truthy(m, stored);
  t.deepEqual([Number(m![1]), Number(m![2]), Number(m![3])], [DEFAULT_SCRYPT.ln, DEFAULT_SCRYPT.r, DEFAULT_SCRYPT.p]);
  t.deepEqual([DEFAULT_SCRYPT.ln, DEFAULT_SCRYPT.r, DEFAULT_SCRYPT.p], [14, 8, 1]);
  t.is(Buffer.from(m![4], 'base64').length, 16);
  t.is(Buffer.from(m![5], 'base64').length, 32);
  t.true(isPasswordHash(stored));
  t.true(await verifyPassword('correct horse', stored));
  t.false(await verifyPassword('correct horsE', stored));
});

test('hashing does not block the event loop', async (t) => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  try {
    await hashPassword('x', { ln: 15 });
  } finally {
    clearInterval(timer);
  }
  t.true(ticks > 0);
});

test('round trip at low cost, wrong password refused', async (t) => {
  const stored = await hashPassword('s3cret', FAST);
  t.true(await verifyPassword('s3cret', stored));
  t.false(await verifyPassword('s3cret ', stored));
  t.false(await verifyPassword('', stored));
});

test('empty and non-ASCII passwords round-trip', async (t) => {
  const empty = await hashPassword('', FAST);
  t.true(await verifyPassword('', empty));
  t.false(await verifyPassword(' ', empty));
  const uni = await hashPassword('pässwörd-密码', FAST);
  t.true(await verifyPassword('pässwörd-密码', uni));
  t.false(await verifyPassword('passwörd-密码', uni));
});

test('two hashes of one password differ (random salt) and both verify', async (t) => {
  const [a, b] = await Promise.all([hashPassword('same', FAST), hashPassword('same', FAST)]);
  t.not(a, b);
  t.true(await verifyPassword('same', a));
  t.true(await verifyPassword('same', b));
});

test('padded base64 is accepted when read', async (t) => {
  const stored = await hashPassword('pad', FAST);
  const [, , params, salt, key] = stored.split('$');
  const padded = `$scrypt$${params}$${Buffer.from(salt, 'base64').toString('base64')}$${Buffer.from(key, 'base64').toString('base64')}`;
  t.not(padded, stored);
  t.true(await verifyPassword('pad', padded));
});

test('a non-string password never verifies', async (t) => {
  const stored = await hashPassword('x', FAST);
  t.false(await verifyPassword(undefined as unknown as string, stored));
});

test('tampered hashes do not verify', async (t) => {
  const stored = await hashPassword('tamper', FAST);
  const [, , params, salt, key] = stored.split('$');
  const flip = (b64: string): string => {
    const buf = Buffer.from(b64, 'base64');
    buf[0] ^= 1;
    return buf.toString('base64').replace(/=+$/, '');
  };
  const variants = [
    `$scrypt$${params}$${salt}$${flip(key)}`,
    `$scrypt$${params}$${flip(salt)}$${key}`,
    `$scrypt$ln=5,r=8,p=1$${salt}$${key}`,
    `$scrypt$ln=4,r=7,p=1$${salt}$${key}`,
    `$scrypt$ln=4,r=8,p=2$${salt}$${key}`,
  ];
  for (const v of variants) {
    t.true(isPasswordHash(v), v);
    t.false(await verifyPassword('tamper', v), v);
  }
});

const SALT = Buffer.alloc(16, 1).toString('base64').replace(/=+$/, '');
const KEY = Buffer.alloc(32, 2).toString('base64').replace(/=+$/, '');

const malformed: Array<[string, unknown]> = [
  ['empty', ''],
  ['plain text', 'password'],
  ['prefix only', '$scrypt$'],
  ['other scheme', `$2b$10$${SALT}${KEY}`],
  ['missing key', `$scrypt$ln=4,r=8,p=1$${SALT}`],
  ['extra field', `$scrypt$ln=4,r=8,p=1$${SALT}$${KEY}$`],
  ['params out of order', `$scrypt$r=8,ln=4,p=1$${SALT}$${KEY}`],
  ['params with spaces', `$scrypt$ln=4, r=8, p=1$${SALT}$${KEY}`],
  ['ln = 0', `$scrypt$ln=0,r=8,p=1$${SALT}$${KEY}`],
  ['ln = 21', `$scrypt$ln=21,r=8,p=1$${SALT}$${KEY}`],
  ['r = 0', `$scrypt$ln=4,r=0,p=1$${SALT}$${KEY}`],
  ['r = 33', `$scrypt$ln=4,r=33,p=1$${SALT}$${KEY}`],
  ['p = 17', `$scrypt$ln=4,r=8,p=17$${SALT}$${KEY}`],
  ['over the memory bound', `$scrypt$ln=20,r=16,p=1$${SALT}$${KEY}`],
  ['huge ln', `$scrypt$ln=99999999,r=8,p=1$${SALT}$${KEY}`],
  ['negative p', `$scrypt$ln=4,r=8,p=-1$${SALT}$${KEY}`],
  ['salt not base64', `$scrypt$ln=4,r=8,p=1$${SALT.slice(0, -2)}!!$${KEY}`],
  ['salt too short', `$scrypt$ln=4,r=8,p=1$AAAA$${KEY}`],
  ['key too short', `$scrypt$ln=4,r=8,p=1$${SALT}$AAAAAAAA`],
  ['key not canonical base64', `$scrypt$ln=4,r=8,p=1$${SALT}$${KEY.slice(0, -1)}B`],
  ['empty salt', `$scrypt$ln=4,r=8,p=1$$${KEY}`],
  ['not a string', 42],
  ['null', null],
];

for (const [name, stored] of malformed) {
  test(`malformed stored hash (${name}) gives false without throwing`, async (t) => {
    t.false(isPasswordHash(stored));
    t.false(parsePasswordHash(stored).ok);
    t.false(await verifyPassword('anything', stored as string));
  });
}

test('the bounds themselves are accepted', (t) => {
  t.true(isPasswordHash(`$scrypt$ln=20,r=8,p=16$${SALT}$${KEY}`));
  t.true(isPasswordHash(`$scrypt$ln=1,r=1,p=1$${SALT}$${KEY}`));
  t.true(isPasswordHash(`$scrypt$ln=15,r=32,p=1$${SALT}$${KEY}`));
});

for (const opts of [{ ln: 0 }, { ln: 21 }, { r: 33 }, { p: 0 }, { p: 1.5 }, { ln: 20, r: 32 }]) {
  test(`hashPassword refuses cost ${JSON.stringify(opts)} with a ConfigError`, async (t) => {
    const err = await t.throwsAsync(hashPassword('x', opts));
    t.is((err as { code?: string }).code, 'FTPD_ERR_CONFIG');
  });
}
