import * as fs from 'node:fs';
import * as path from 'node:path';
import { getSystemErrorName } from 'node:util';
import { findPackageRoot } from './index';

/**
 * The loader of the system-user addon (src/native/unix.c, built as
 * src/native/build/Release/ftpdlib_unix.node by `npm run build:native` where
 * libcrypt's header is installed). Found from the package root like the engine,
 * so src/ (ts-node) and dist/ behave alike. Unlike the engine it has no
 * fallback: the UnixAuthorizer and AsUserFileSystem refuse to start without it,
 * with `unixAddonReason` in their ConfigError.
 */

/** A passwd entry with its shadow entry (null when there is none) and its groups. */
export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  /** The passwd file's password field: usually "x" (see shadow). */
  passwdField: string;
  /** Every group the user is in, the primary one included (getgrouplist). */
  groups: number[];
  shadow: ShadowEntry | null;
}

/** Shadow fields as getspnam gives them: days since 1970-01-01, -1 for an empty field. */
export interface ShadowEntry {
  hash: string;
  lastChange: number;
  min: number;
  max: number;
  warn: number;
  inactive: number;
  expire: number;
}

/** Filesystem credentials to act with: [uid, gid, ...supplementary groups]. */
export type Creds = readonly number[];

/** Operation numbers of fsop (unix.c's FS_* enum). */
export const FsOp = {
  realpath: 0,
  stat: 1,
  lstat: 2,
  readlink: 3,
  readdir: 4,
  mkdir: 5,
  rmdir: 6,
  unlink: 7,
  rename: 8,
  setMtime: 9,
  chmod: 10,
  open: 11,
  ftruncate: 12,
  whoami: 13,
} as const;

/** stat as unix.c reports it: mode, size, mtimeMs, uid, gid, nlink, dev, ino. */
export type RawStat = [number, number, number, number, number, number, number, number];

export interface UnixAddon {
  lookup(name: string): Promise<SystemUser | null | number>;
  lookupSync(name: string): SystemUser | null | number;
  verify(password: string | Buffer, hash: string): Promise<boolean>;
  crypt(password: string | Buffer, setting: string): Promise<string | number>;
  /** Apache's apr1 MD5-crypt on a pool thread; absent from an addon built before it. */
  apr1?(password: string | Buffer, salt: string): Promise<string | number>;
  gensaltSync(prefix: string | null, count: number): string | null;
  fsop(creds: Creds, op: number, p1: string | null, p2: string | null, n1: number, n2: number): Promise<unknown>;
  dupSync(fd: number): number;
}

const ADDON_FILE = path.join('src', 'native', 'build', 'Release', 'ftpdlib_unix.node');

function load(): { addon: UnixAddon | null; reason: string } {
  if (process.platform !== 'linux') return { addon: null, reason: `system users need Linux (this is ${process.platform})` };
  const root = findPackageRoot(__dirname);
  if (!root) return { addon: null, reason: 'package root (package.json named ftpdlib) not found' };
  const file = path.join(root, ADDON_FILE);
  if (!fs.existsSync(file)) {
    return { addon: null, reason: `not built (${file} missing; install libcrypt-dev and run npm run build:native)` };
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { addon: require(file) as UnixAddon, reason: `loaded from ${file}` };
  } catch (err) {
    return { addon: null, reason: `failed to load ${file}: ${(err as Error).message}` };
  }
}

let loaded: { addon: UnixAddon | null; reason: string } | undefined;

/** The addon, loaded on first use (importing ftpdlib does not load libcrypt), or null. */
export function unixAddon(): UnixAddon | null {
  loaded ??= load();
  return loaded.addon;
}

/** Why the addon is or is not available. */
export function unixAddonReason(): string {
  loaded ??= load();
  return loaded.reason;
}

/** The errno name of a negative errno from the addon ("EACCES"), or EIO for one node does not know. */
export function errnoName(negErrno: number): string {
  try {
    return getSystemErrorName(negErrno < 0 ? negErrno : -negErrno);
  } catch {
    return 'EIO';
  }
}
