/**
 * Permission letters and per-directory overrides.
 *
 * An override is declared on an FTP path inside the user's root ("/uploads"). It applies:
 * - to the directory itself;
 * - if recursive, to everything below it;
 * - if not recursive, to the entries directly in it: a path P is "directly in D" when
 *   dirname(P) === D.
 *
 * Two differences from pyftpdlib's DummyAuthorizer, both deliberate:
 * - pyftpdlib's non-recursive rule also requires that P is not a directory, which needs a
 *   filesystem call. hasPerm here decides from the path alone, so a non-recursive override on
 *   D also covers the names of subdirectories directly in D (MKD /D/sub, RMD /D/sub, RNFR
 *   /D/sub), but never anything below them (/D/sub/file falls back to the next rule).
 * - When several overrides apply, the most specific one (the longest directory) wins.
 *   pyftpdlib takes the first one in insertion order, which makes the outcome depend on the
 *   order the overrides were declared in.
 */
import * as posix from 'node:path/posix';
import { ConfigError } from '../config/errors';
import { ALL_PERMS, type PermLetter } from './types';

/** One per-directory override, as stored by an authorizer. */
export interface PermOverride {
  /** Normalised absolute FTP path, no trailing slash ("/" for the root). */
  readonly directory: string;
  /** Validated permission letters. */
  readonly perm: string;
  readonly recursive: boolean;
}

/** Whether `x` is exactly one of the letters in `elradfmwMT`. */
export function isPermLetter(x: unknown): x is PermLetter {
  return typeof x === 'string' && x.length === 1 && ALL_PERMS.includes(x);
}

/**
 * Check a permission string and return its letters without duplicates, in the order given.
 * An unknown letter (or a value that is not a string) throws ConfigError naming `key`.
 */
export function validatePerm(perm: unknown, key: string): string {
  if (typeof perm !== 'string') {
    throw new ConfigError(key, `a string of permission letters from "${ALL_PERMS}"`);
  }
  let out = '';
  for (const ch of perm) {
    if (!isPermLetter(ch)) {
      throw new ConfigError(key, `unknown permission letter ${JSON.stringify(ch)} (allowed: "${ALL_PERMS}")`);
    }
    if (!out.includes(ch)) out += ch;
  }
  return out;
}

/**
 * Normalise an absolute FTP path: collapse "//", "." and "..", drop a trailing slash.
 * Returns undefined when the path is not a string or not absolute.
 */
export function normalizeFtpPath(p: unknown): string | undefined {
  if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0')) return undefined;
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** Normalise an override's directory, or throw ConfigError naming `key`. */
export function validateOverrideDir(dir: unknown, key: string): string {
  const n = normalizeFtpPath(dir);
  if (n === undefined) {
    throw new ConfigError(key, 'an absolute FTP path inside the user\'s root, such as "/uploads"');
  }
  return n;
}

/** Whether `o` applies to `path` (a normalised absolute FTP path). */
export function overrideApplies(o: PermOverride, path: string): boolean {
  const dir = o.directory;
  if (path === dir) return true;
  if (o.recursive) {
    return dir === '/' ? path.startsWith('/') : path.startsWith(dir + '/');
  }
  return posix.dirname(path) === dir;
}

/**
 * Whether an override is set on a folder strictly inside `path` (a normalised absolute FTP path).
 * Moving `path` would carry that folder out from under its override, to where other letters
 * apply: the server refuses RNFR of such a folder.
 */
export function overridesBelow(overrides: readonly PermOverride[], path: string): boolean {
  const p = normalizeFtpPath(path);
  if (p === undefined) return true;
  const prefix = p === '/' ? '/' : `${p}/`;
  return overrides.some((o) => o.directory !== p && o.directory.startsWith(prefix));
}

/** The most specific override that applies to `path`, if any. */
export function findOverride(overrides: readonly PermOverride[], path: string): PermOverride | undefined {
  let best: PermOverride | undefined;
  for (const o of overrides) {
    if (overrideApplies(o, path) && (best === undefined || o.directory.length > best.directory.length)) {
      best = o;
    }
  }
  return best;
}

/**
 * The letters in force on `path`: the most specific applicable override's, else `base`.
 * Without a path, `base`. A path that is not absolute gets no letters at all (fail closed):
 * callers must pass FTP paths already resolved against the session's cwd.
 */
export function effectivePerms(base: string, overrides: readonly PermOverride[], path?: string): string {
  if (path === undefined) return base;
  const p = normalizeFtpPath(path);
  if (p === undefined) return '';
  return findOverride(overrides, p)?.perm ?? base;
}
