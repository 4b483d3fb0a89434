import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { JailError, fsError } from './errors';

/**
 * Pinning a checked real path, so that the system call made after the jail's check acts on what
 * the check saw.
 *
 * The jail checks a path by its real location (realpath), and the operation then names that real
 * path again. Between the two, a component can be swapped for a symlink: an FTP client can do it
 * itself with RNFR/RNTO of a symlink that already exists in its tree (or of a relative link such
 * as `sub/up -> ..`, which points out once moved up a level), and a STOR racing that rename then
 * created files outside the root (an audit won the race in under a second). So the operation no
 * longer names the real path: it opens it first with O_PATH | O_NOFOLLOW (no side effect, whatever
 * it is), reads back where the descriptor really is (`/proc/self/fd/N`, which the kernel keeps up
 * to date), refuses it unless that is the checked path, and then names `/proc/self/fd/N/<name>`
 * (or `/proc/self/fd/N` itself). The kernel resolves that magic link to the pinned directory or
 * file, so a swap after the pin changes nothing; a swap before it fails the read-back, with ELOOP
 * or ESTALE.
 *
 * Linux only (O_PATH and /proc); elsewhere, or with /proc not mounted, `pinning()` is false and
 * the callers name the real path as before.
 */

const O_PATH = 0o10000000;
const { O_NOFOLLOW, O_DIRECTORY } = fs.constants;

let works: boolean | undefined;

/** Whether paths can be pinned here: Linux with /proc mounted (checked once). */
export function pinning(): boolean {
  if (works === undefined) {
    works = false;
    if (process.platform === 'linux' && process.env.FTPDLIB_NO_PIN !== '1') {
      try {
        const fd = fs.openSync('/', O_PATH | O_DIRECTORY);
        try {
          works = fs.readlinkSync(`/proc/self/fd/${fd}`) === '/';
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        works = false;
      }
    }
  }
  return works;
}

function open(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function readlink(path: string): Promise<string> {
  return new Promise((resolve, reject) => fs.readlink(path, (err, target) => (err ? reject(err) : resolve(target))));
}

function fstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
}

function isSymlink(path: string): Promise<boolean> {
  return new Promise((resolve) => fs.lstat(path, (err, st) => resolve(!err && st.isSymbolicLink())));
}

function close(fd: number): void {
  fs.close(fd, () => {});
}

/** A pinned path: `path` names what was checked until `release()`. */
export interface Pin {
  readonly path: string;
  release(): void;
}

/**
 * Pin `real` (a real path the jail has checked, with no symlink in it). `dir`: it must be a
 * directory; otherwise it must not be a symlink (a file or a directory). `ftpPath` names it in
 * errors. Without pinning here, the pin is `real` itself.
 */
export async function pin(real: string, dir: boolean, ftpPath: string): Promise<Pin> {
  if (!pinning()) return { path: real, release: () => {} };
  let fd: number;
  try {
    fd = await open(real, O_PATH | O_NOFOLLOW | (dir ? O_DIRECTORY : 0));
  } catch (err) {
    // A symlink swapped in for the last segment: O_NOFOLLOW says ELOOP, or ENOTDIR with
    // O_DIRECTORY, which a plain file there says too.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new JailError(ftpPath);
    if (dir && code === 'ENOTDIR' && (await isSymlink(real))) throw new JailError(ftpPath);
    throw err;
  }
  try {
    const pinned = `/proc/self/fd/${fd}`;
    // Where the descriptor really is: a component swapped for a symlink before the open moved it.
    const at = await readlink(pinned);
    if (at !== real) {
      if (at.endsWith(' (deleted)')) throw fsError('ENOENT', 'open', ftpPath);
      throw new JailError(ftpPath);
    }
    if (!dir && (await fstat(fd)).isSymbolicLink()) throw new JailError(ftpPath);
    let released = false;
    return {
      path: pinned,
      release: () => {
        if (released) return;
        released = true;
        close(fd);
      },
    };
  } catch (err) {
    close(fd);
    throw err;
  }
}

/** Run `use` with a pin of `real` (see pin), released when `use` settles. */
export async function withPinned<T>(real: string, dir: boolean, ftpPath: string, use: (pinned: string) => Promise<T>): Promise<T> {
  const p = await pin(real, dir, ftpPath);
  try {
    return await use(p.path);
  } finally {
    p.release();
  }
}

/** Pin the parent of `real` and run `use` with the pinned path of the entry itself (not followed). */
export function withPinnedEntry<T>(real: string, ftpPath: string, use: (pinned: string) => Promise<T>): Promise<T> {
  if (!pinning()) return use(real);
  const parent = nodePath.dirname(real);
  const name = nodePath.basename(real);
  return withPinned(parent, true, ftpPath, (p) => use(`${p}/${name}`));
}
