/**
 * The local disk as one system user sees it, jailed under that user's home.
 *
 * The same jail and the same answers as LocalFileSystem (see local.ts), with one
 * difference: every system call that names a path (realpath, stat, lstat,
 * readlink, readdir, mkdir, rmdir, unlink, rename, utimensat, chmod, open) is made
 * by the ftpdlib_unix addon on a libuv pool thread that has switched its own
 * filesystem credentials to the user's uid, gid and supplementary groups for that
 * one call (raw SYS_setfsuid/SYS_setfsgid/SYS_setgroups, which change the calling
 * thread only; see src/native/unix.c). So, with the server running as root:
 * - the kernel checks permissions as for the user: a file the user may not read
 *   cannot be RETR'd, a directory they may not write refuses MKD and STOR (EACCES,
 *   550), a path through a directory they may not search does not resolve;
 * - what the user creates belongs to the user (uid, and gid by the usual rules:
 *   the primary group, or the directory's group under a setgid directory), with
 *   modes 0666/0777 less the process umask;
 * - the process's own ids never change, and nothing else in it acts as the user.
 *
 * Descriptors from openRead/openWrite are ordinary descriptors, access having
 * been checked when they were opened, so the zero-copy engine and the streams use
 * them without any switch.
 *
 * The jail: paths are resolved (realpath as the user) and checked to be inside the
 * real home before acting, as LocalFileSystem does. A system user may also reach
 * the disk by other means (a shell, a cron job) and swap a directory for a symlink
 * between the check and the call; what they would reach is still only what their
 * own credentials open, so the race gains them nothing they do not already have.
 * The jail is a convenience here; the credentials are the boundary.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { ConfigError } from '../config/errors';
import { FsOp, errnoName, unixAddon, unixAddonReason, type Creds, type RawStat, type UnixAddon } from '../native/unix';
import { fsError } from './errors';
import { withPinned, withPinnedEntry } from './pin';
import { Jail, type JailOwner } from './jail';
import { kindOfMode } from './local';
import { ftpIsWithin } from './paths';
import type { DirEntry, FileHandle, FileStat, FileSystem, OpenWriteOptions } from './types';

const READ_HIGH_WATER_MARK = 256 * 1024;
const fdClose = promisify(fs.close);
const fdTruncate = promisify(fs.ftruncate);

/** The user a filesystem acts as. */
export interface FsUser {
  uid: number;
  gid: number;
  /** Supplementary groups (the primary one may be among them). */
  groups?: readonly number[];
}

function toFileStat(s: RawStat): FileStat {
  const [mode, size, mtimeMs, uid, gid, nlink, dev, ino] = s;
  return { kind: kindOfMode(mode), size, mtime: new Date(mtimeMs), mode, uid, gid, nlink, unique: `${dev.toString(16)}g${ino.toString(16)}` };
}

function isId(x: unknown): x is number {
  return Number.isInteger(x) && (x as number) >= 0 && (x as number) < 0xffffffff;
}

/**
 * A descriptor the addon opened. The handle owns it until close(); each stream gets a
 * duplicate of its own, which it closes itself when it ends or is destroyed (node's fd
 * streams close their descriptor on destroy whatever autoClose says), so no stream
 * can close the handle's descriptor, nor touch a recycled descriptor number. Streams
 * use explicit positions, never the descriptor's own.
 */
class AsUserFileHandle implements FileHandle {
  private readonly streams: Array<Readable | Writable> = [];
  private closing?: Promise<void>;
  private open = true;

  constructor(
    private readonly addon: UnixAddon,
    private readonly descriptor: number,
    readonly offset: number,
    readonly size?: number,
  ) {}

  /** The descriptor number, or -1 once the handle is closed. */
  get fd(): number {
    return this.open ? this.descriptor : -1;
  }

  private dup(): number {
    if (!this.open) throw fsError('EBADF', 'dup');
    const d = this.addon.dupSync(this.descriptor);
    if (d < 0) throw fsError(errnoName(d), 'dup');
    return d;
  }

  createReadStream(): Readable {
    const s = fs.createReadStream('', { fd: this.dup(), start: this.offset, autoClose: true, highWaterMark: READ_HIGH_WATER_MARK });
    this.streams.push(s);
    return s;
  }

  createWriteStream(): Writable {
    const s = fs.createWriteStream('', { fd: this.dup(), start: this.offset, autoClose: true });
    this.streams.push(s);
    return s;
  }

  /** Destroy the streams still open (their duplicates close with them), then close the descriptor, once. */
  close(): Promise<void> {
    if (!this.closing) {
      for (const s of this.streams) if (!s.destroyed) s.destroy();
      this.open = false;
      this.closing = fdClose(this.descriptor);
    }
    return this.closing;
  }
}


export class AsUserFileSystem implements FileSystem, JailOwner {
  private readonly creds: Creds;
  private readonly addon: UnixAddon;
  private readonly jail: Jail;

  /**
   * `root`: absolute path of an existing directory (the user's home), resolved as the
   * user on first use. `user`: whose credentials every operation uses. Needs the
   * ftpdlib_unix addon, and to act as anyone but itself, a process running as root.
   */
  constructor(
    readonly root: string,
    user: FsUser,
  ) {
    if (!nodePath.isAbsolute(root) || root.includes('\0')) throw new TypeError(`AsUserFileSystem root must be absolute: ${root}`);
    const addon = unixAddon();
    if (!addon) throw new ConfigError('fileSystem', `the ftpdlib_unix addon (${unixAddonReason()})`);
    if (typeof user !== 'object' || user === null || !isId(user.uid) || !isId(user.gid)) {
      throw new ConfigError('fileSystem.user', 'a { uid, gid, groups } of non-negative integer ids');
    }
    const groups = user.groups ?? [user.gid];
    if (!Array.isArray(groups) || !groups.every(isId)) throw new ConfigError('fileSystem.user.groups', 'an array of group ids');
    this.addon = addon;
    this.creds = Object.freeze([user.uid, user.gid, ...groups]);
    // The jail's system calls are made as the user too.
    this.jail = new Jail(
      root,
      {
        realpath: (local, ftpPath) => this.call<string>(FsOp.realpath, 'realpath', ftpPath, local),
        isSymlink: async (local, ftpPath) => kindOfMode((await this.call<RawStat>(FsOp.lstat, 'lstat', ftpPath, local))[0]) === 'symlink',
        readlink: (local, ftpPath) => this.call<string>(FsOp.readlink, 'readlink', ftpPath, local),
      },
      this,
    );
  }

  /** @internal The jail's root: the real path of `root`, resolved as the user. */
  resolveJailRoot(): Promise<string> {
    return this.call<string>(FsOp.realpath, 'realpath', '/', this.root);
  }

  /** The uid and gid this filesystem acts as. */
  get user(): { uid: number; gid: number; groups: number[] } {
    return { uid: this.creds[0], gid: this.creds[1], groups: this.creds.slice(2) };
  }

  /** One system call as the user; a negative answer becomes an errno-style error naming `ftpPath`. */
  private async call<T>(op: number, syscall: string, ftpPath: string, p1: string | null, p2: string | null = null, n1 = 0, n2 = 0): Promise<T> {
    const r = await this.addon.fsop(this.creds, op, p1, p2, n1, n2);
    if (typeof r === 'number' && r < 0) throw fsError(errnoName(r), syscall, ftpPath);
    return r as T;
  }

  async resolve(path: string): Promise<string> {
    return (await this.jail.follow(this.jail.clean(path, 'resolve'))).real;
  }

  async stat(path: string): Promise<FileStat> {
    const p = this.jail.clean(path, 'stat');
    const real = await this.jail.followExisting(p, 'stat');
    return toFileStat(await withPinned(real, false, p, (q) => this.call<RawStat>(FsOp.stat, 'stat', p, q)));
  }

  async lstat(path: string): Promise<FileStat> {
    const p = this.jail.clean(path, 'lstat');
    if (p === '/') return toFileStat(await this.call<RawStat>(FsOp.lstat, 'lstat', p, await this.jail.realRoot()));
    const real = await this.jail.entry(p, 'lstat');
    return toFileStat(await withPinnedEntry(real, p, (q) => this.call<RawStat>(FsOp.lstat, 'lstat', p, q)));
  }

  /** The entries with their lstat, read and stat'd as the user in one call. */
  async readdir(path: string): Promise<DirEntry[]> {
    const p = this.jail.clean(path, 'scandir');
    const dir = await this.jail.followExisting(p, 'scandir');
    const [names, stats] = await withPinned(dir, true, p, (q) => this.call<[string[], RawStat[]]>(FsOp.readdir, 'scandir', p, q));
    return names.map((name, i) => ({ name, stat: toFileStat(stats[i]) }));
  }

  async mkdir(path: string): Promise<void> {
    const p = this.jail.clean(path, 'mkdir');
    if (p === '/') throw fsError('EEXIST', 'mkdir', p);
    await withPinnedEntry(await this.jail.entry(p, 'mkdir'), p, (q) => this.call(FsOp.mkdir, 'mkdir', p, q, null, 0o777));
  }

  async rmdir(path: string): Promise<void> {
    const p = this.jail.clean(path, 'rmdir');
    if (p === '/') throw fsError('EPERM', 'rmdir', p);
    await withPinnedEntry(await this.jail.entry(p, 'rmdir'), p, (q) => this.call(FsOp.rmdir, 'rmdir', p, q));
  }

  /** A directory gives EISDIR (the addon turns unlink's EPERM/EACCES on one into it). */
  async unlink(path: string): Promise<void> {
    const p = this.jail.clean(path, 'unlink');
    if (p === '/') throw fsError('EPERM', 'unlink', p);
    await withPinnedEntry(await this.jail.entry(p, 'unlink'), p, (q) => this.call(FsOp.unlink, 'unlink', p, q));
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.jail.clean(from, 'rename');
    const dst = this.jail.clean(to, 'rename');
    if (src === '/' || dst === '/') throw fsError('EPERM', 'rename', src === '/' ? src : dst);
    if (dst !== src && ftpIsWithin(src, dst)) throw fsError('EINVAL', 'rename', dst);
    const [realSrc, realDst] = await Promise.all([this.jail.entry(src, 'rename'), this.jail.entry(dst, 'rename')]);
    await withPinnedEntry(realSrc, src, (a) => withPinnedEntry(realDst, dst, (b) => this.call(FsOp.rename, 'rename', src, a, b)));
  }

  /** Set the modification time, leaving the access time alone (only the owner may). */
  async setMtime(path: string, mtime: Date): Promise<void> {
    const p = this.jail.clean(path, 'utime');
    const ms = mtime instanceof Date ? mtime.getTime() : NaN;
    if (!Number.isFinite(ms)) throw fsError('EINVAL', 'utime', p);
    await withPinned(await this.jail.followExisting(p, 'utime'), false, p, (q) => this.call(FsOp.setMtime, 'utime', p, q, null, ms));
  }

  async chmod(path: string, mode: number): Promise<void> {
    const p = this.jail.clean(path, 'chmod');
    await withPinned(await this.jail.followExisting(p, 'chmod'), false, p, (q) => this.call(FsOp.chmod, 'chmod', p, q, null, mode & 0o777));
  }

  /**
   * Open for reading. Only regular files: the addon opens without blocking (a FIFO
   * cannot hold a pool thread), fstats, and refuses a directory with EISDIR and
   * anything else with EPERM, as LocalFileSystem does.
   */
  async openRead(path: string, offset: number): Promise<FileHandle> {
    const p = this.jail.clean(path, 'open');
    const real = await this.jail.followExisting(p, 'open');
    const [fd, st] = await withPinned(real, false, p, (q) => this.call<[number, RawStat]>(FsOp.open, 'open', p, q, null, fs.constants.O_RDONLY, 0));
    return new AsUserFileHandle(this.addon, fd, Math.max(0, offset || 0), st[1]);
  }

  /**
   * Open for writing (STOR, APPE, STOU, REST+STOR); APPE opens O_APPEND (as
   * LocalFileSystem.openWrite does), its handle's offset the size the open saw.
   * Same refusals as openRead.
   */
  async openWrite(path: string, options: OpenWriteOptions): Promise<FileHandle> {
    const p = this.jail.clean(path, 'open');
    if (p === '/') throw fsError('EISDIR', 'open', p);
    const loc = await this.jail.follow(p);
    const append = options.append === true;
    const offset = append ? 0 : Math.max(0, options.offset ?? 0);
    // O_NOFOLLOW: what was checked has no symlink at its end (see LocalFileSystem.openWrite).
    let flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW;
    if (options.exclusive) flags |= fs.constants.O_EXCL;
    else if (!append && offset === 0) flags |= fs.constants.O_TRUNC;
    if (append) flags |= fs.constants.O_APPEND;
    const [fd, st] = await withPinnedEntry(loc.real, p, (q) => this.call<[number, RawStat]>(FsOp.open, 'open', p, q, null, flags, 0o666));
    if (append) return new AsUserFileHandle(this.addon, fd, st[1]);
    if (offset > 0) {
      // REST n then STOR: the upload replaces everything from n on.
      try {
        await fdTruncate(fd, offset);
      } catch (err) {
        await fdClose(fd);
        throw err;
      }
    }
    return new AsUserFileHandle(this.addon, fd, offset);
  }
}
