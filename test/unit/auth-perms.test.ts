import test from 'ava';
import {
  effectivePerms,
  findOverride,
  normalizeFtpPath,
  validateOverrideDir,
  validatePerm,
  type PermOverride,
} from '../../src/auth/perms';

for (const [input, expected] of [
  ['elradfmwMT', 'elradfmwMT'],
  ['elr', 'elr'],
  ['', ''],
  ['eelrr', 'elr'],
  ['Tw', 'Tw'],
] as const) {
  test(`validatePerm accepts ${JSON.stringify(input)}`, (t) => {
    t.is(validatePerm(input, 'perm'), expected);
  });
}

for (const input of ['elx', 'E', 'el r', 'elé', 'm,w', 123, null, undefined, ['e']]) {
  test(`validatePerm refuses ${JSON.stringify(input) ?? 'undefined'} with a ConfigError naming the key`, (t) => {
    const err = t.throws(() => validatePerm(input, 'users[0].perm'));
    t.is((err as { code?: string }).code, 'FTPD_ERR_CONFIG');
    t.is((err as { key?: string }).key, 'users[0].perm');
  });
}

test('validatePerm names the bad letter in its message', (t) => {
  const err = t.throws(() => validatePerm('elrZ', 'perm'));
  t.true(err.message.includes('"Z"'));
});

for (const [input, expected] of [
  ['/', '/'],
  ['/uploads', '/uploads'],
  ['/uploads/', '/uploads'],
  ['//uploads//a/', '/uploads/a'],
  ['/a/./b/../c', '/a/c'],
  ['/../..', '/'],
  ['uploads', undefined],
  ['', undefined],
  ['/a\0b', undefined],
  [42, undefined],
] as const) {
  test(`normalizeFtpPath(${JSON.stringify(input)}) is ${JSON.stringify(expected)}`, (t) => {
    t.is(normalizeFtpPath(input), expected);
  });
}

test('validateOverrideDir refuses a relative directory with a ConfigError', (t) => {
  const err = t.throws(() => validateOverrideDir('uploads', 'users[0].overrides[0].path'));
  t.is((err as { code?: string }).code, 'FTPD_ERR_CONFIG');
  t.is((err as { key?: string }).key, 'users[0].overrides[0].path');
});

const ov = (directory: string, perm: string, recursive = false): PermOverride => ({ directory, perm, recursive });
const BASE = 'elr';

// [name, overrides, path, expected letters]
const table: Array<[string, PermOverride[], string | undefined, string]> = [
  ['no path gives the base letters', [ov('/', 'elradfmwMT', true)], undefined, BASE],
  ['no override gives the base letters', [], '/a/b', BASE],
  // Recursive.
  ['recursive: the directory itself', [ov('/uploads', 'elrw', true)], '/uploads', 'elrw'],
  ['recursive: a file directly in it', [ov('/uploads', 'elrw', true)], '/uploads/a.txt', 'elrw'],
  ['recursive: deep below it', [ov('/uploads', 'elrw', true)], '/uploads/x/y/z.txt', 'elrw'],
  ['recursive: the parent is untouched', [ov('/uploads', 'elrw', true)], '/', BASE],
  ['recursive on /: everything', [ov('/', 'elrm', true)], '/a/b/c', 'elrm'],
  ['recursive on /: the root itself', [ov('/', 'elrm', true)], '/', 'elrm'],
  // Non-recursive.
  ['non-recursive: the directory itself', [ov('/uploads', 'elrw')], '/uploads', 'elrw'],
  ['non-recursive: a file directly in it', [ov('/uploads', 'elrw')], '/uploads/a.txt', 'elrw'],
  ['non-recursive: a subdirectory name directly in it', [ov('/uploads', 'elrd')], '/uploads/sub', 'elrd'],
  ['non-recursive: not below a subdirectory', [ov('/uploads', 'elrw')], '/uploads/sub/a.txt', BASE],
  ['non-recursive on /: entries in the root', [ov('/', 'elrw')], '/a.txt', 'elrw'],
  ['non-recursive on /: not deeper', [ov('/', 'elrw')], '/a/b.txt', BASE],
  // Siblings that share a prefix never match.
  ['sibling /uploads is not under /up (recursive)', [ov('/up', 'elrw', true)], '/uploads', BASE],
  ['sibling /uploads/a is not under /up (recursive)', [ov('/up', 'elrw', true)], '/uploads/a', BASE],
  ['sibling /up is not under /uploads (recursive)', [ov('/uploads', 'elrw', true)], '/up', BASE],
  ['sibling /uploads is not in /up (non-recursive)', [ov('/up', 'elrw')], '/uploads', BASE],
  ['sibling /up2/a is not in /up (non-recursive)', [ov('/up', 'elrw')], '/up2/a', BASE],
  // Most specific wins, whatever the declaration order.
  ['deeper recursive beats shallower recursive', [ov('/a', 'elrw', true), ov('/a/b', 'e', true)], '/a/b/c', 'e'],
  ['deeper recursive beats shallower (reverse order)', [ov('/a/b', 'e', true), ov('/a', 'elrw', true)], '/a/b/c', 'e'],
  ['shallower applies outside the deeper', [ov('/a', 'elrw', true), ov('/a/b', 'e', true)], '/a/c', 'elrw'],
  ['non-recursive child beats recursive parent', [ov('/a', 'elrw', true), ov('/a/b', 'elrd')], '/a/b/f', 'elrd'],
  [
    'recursive parent applies where the non-recursive child does not',
    [ov('/a', 'elrw', true), ov('/a/b', 'elrd')],
    '/a/b/c/f',
    'elrw',
  ],
  ['an override can take letters away', [ov('/ro', '', true)], '/ro/f', ''],
  // Paths are normalised before matching.
  ['trailing slash on the path', [ov('/uploads', 'elrw')], '/uploads/', 'elrw'],
  ['dot-dot cannot escape an override by spelling', [ov('/ro', 'e', true)], '/x/../ro/f', 'e'],
  ['case matters', [ov('/Uploads', 'elrw', true)], '/uploads/a', BASE],
  // A relative path gets nothing (fail closed).
  ['relative path', [ov('/uploads', 'elrw', true)], 'uploads/a', ''],
];

for (const [name, overrides, path, expected] of table) {
  test(`effectivePerms: ${name}`, (t) => {
    t.is(effectivePerms(BASE, overrides, path), expected);
  });
}

test('findOverride returns the most specific applicable override', (t) => {
  const overrides = [ov('/', 'e', true), ov('/a', 'el', true), ov('/a/b', 'elr')];
  t.is(findOverride(overrides, '/a/b/f')?.directory, '/a/b');
  t.is(findOverride(overrides, '/a/b/c/f')?.directory, '/a');
  t.is(findOverride(overrides, '/z')?.directory, '/');
  t.is(findOverride([ov('/a', 'e')], '/b'), undefined);
});
