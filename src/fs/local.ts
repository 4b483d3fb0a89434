import * as nodeFs from 'node:fs';
import { constants as C, promises as fsp, createReadStream, createWriteStream, ftruncate } from 'node:fs';
import type { Stats } from 'node:fs';
import * as nodePath from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { JailError, fsError } from './errors';
import { FdWriteSink } from './fd-sink';
import { Jail, type JailOwner, type JailProbe } from './jail';
import { ftpIsWithin } from './paths';
import { pin, withPinned, withPinnedEntry } from './pin';
import type { DirEntry, FileHandle, FileKind, FileStat, FileSystem, OpenWriteOptions } from './types';
import type { JailedFs, JailedStat } from '../native';

/** How many lstat calls readdir keeps in flight at once. */
const READDIR_CONCURRENCY = 64;
/** File read chunks on the stream path. */
const READ_HIGH_WATER_MARK = 1024 * 1024;
/**
 * Bytes a file write stream buffers before it asks the socket feeding it to wait.
 * Uploads arrive in 64 KiB reads; with the default 16 KiB every chunk paused the
 * socket. With room for them, the chunks that arrive while one write runs go out
 * together in the next (writev): far fewer pool round trips per upload.
 */
const WRITE_HIGH_WATER_MARK = 1024 * 1024;

/** Kind of an entry from its mode bits. */
export function kindOfMode(mode: number): FileKind {
  switch (mode & C.S_IFMT) {
    case C.S_IFREG:
      return 'file';
    case C.S_IFDIR:
      return 'dir';
    case C.S_IFLNK:
      return 'symlink';
    default:
      return 'other';
  }
}

/**
 * The entries of the directory at `dir` (a real or pinned path), each with its lstat; names are
 * read first, then lstat'ed READDIR_CONCURRENCY at a time.
 */
/**
 * The names in the directory at `dir`: strings, and the bytes of a name that is not UTF-8 (which
 * decodes to U+FFFD, so only its bytes can name it). Read as strings first: names read as bytes
 * cost about 4 times the memory (a Buffer each: 59 MB against 16 MB of RSS for 100,000 names)
 * and 2.5 times the time, so the bytes are read only when some name shows a U+FFFD.
 */
async function namesAt(dir: string): Promise<Array<string | Buffer>> {
  const names = await fsp.readdir(dir);
  if (!names.some((n) => n.includes('\uFFFD'))) return names;
  const raw = await fsp.readdir(dir, { encoding: 'buffer' });
  return raw.map((b) => {
    const s = b.toString('utf8');
    return s.includes('\uFFFD') ? b : s;
  });
}

const nameText = (n: string | Buffer): string => (typeof n === 'string' ? n : n.toString('utf8'));

/** The path of entry `n` in the directory `dir` (a string, or bytes for a name that is not UTF-8). */
function entryPath(dir: string, n: string | Buffer): string | Buffer {
  return typeof n === 'string' ? `${dir}/${n}` : Buffer.concat([Buffer.from(`${dir}/`), n]);
}

/** Names per lstatMany call (one pool job), and such calls in flight at once for a long readdir. */
const LSTAT_CHUNK = 256;
const LSTAT_JOBS = 2;

/**
 * The entries named `names` in the directory `dir`, in that order. A name that is not UTF-8
 * (latin1 "caf\xe9", made by another program) is lstat'ed by its bytes: by its decoded name
 * (U+FFFD) it was found missing and silently left out of listings, quota walks and folder
 * copies. It is listed (with U+FFFD), though no FTP path names it. A name removed since it was
 * read is simply gone.
 *
 * `batched` (a local filesystem, and the addon loaded): LSTAT_CHUNK names a pool job
 * (`lstatMany`: the directory opened once, fstatat per name), else READDIR_CONCURRENCY
 * fs.lstat calls at a time. On a network filesystem one job's stats would run one after another,
 * where separate calls overlap their round trips.
 */
async function entriesAt(dir: string, names: Array<string | Buffer>, batched: boolean): Promise<DirEntry[]> {
  const many = batched ? lstatManyOp() : null;
  if (many) {
    const out: DirEntry[] = [];
    const chunks: Array<Array<string | Buffer>> = [];
    for (let i = 0; i < names.length; i += LSTAT_CHUNK) chunks.push(names.slice(i, i + LSTAT_CHUNK));
    const answers: Array<Array<JailedStat | string>> = new Array(chunks.length);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      // After a failure no further job starts: the pin of `dir` is released as the error goes up.
      while (next < chunks.length && !failed) {
        const i = next++;
        try {
          answers[i] = await many(dir, chunks[i]);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LSTAT_JOBS, chunks.length) }, worker));
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c];
      const got = answers[c];
      for (let i = 0; i < chunk.length; i++) {
        const st = got[i];
        if (typeof st === 'string') {
          if (st === 'ENOENT') continue;
          throw Object.assign(new Error(`${st}: lstat`), { code: st, syscall: 'lstat' });
        }
        out.push({ name: nameText(chunk[i]), stat: jailedFileStat(st) });
      }
    }
    return out;
  }
  const out: Array<DirEntry | undefined> = new Array(names.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const i = next++;
      const n = names[i];
      try {
        out[i] = { name: nameText(n), stat: toFileStat(await fsp.lstat(entryPath(dir, n))) };
      } catch (err) {
        if (errCode(err) !== 'ENOENT') throw err;
      }
    }
  };
  const workers: Array<Promise<void>> = [];
  for (let w = 0; w < Math.min(READDIR_CONCURRENCY, names.length); w++) workers.push(worker());
  await Promise.all(workers);
  return out.filter((e): e is DirEntry => e !== undefined);
}

// Names only: every entry needs an lstat for size and mtime anyway, so the dirent types of
// withFileTypes would add nothing.
const readdirAt = async (dir: string, batched: boolean): Promise<DirEntry[]> => entriesAt(dir, await namesAt(dir), batched);

/** The FileStat of an fs.Stats. */
export function toFileStat(st: Stats): FileStat {
  return {
    kind: kindOfMode(st.mode),
    size: st.size,
    mtime: st.mtime,
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    nlink: st.nlink,
    unique: `${st.dev.toString(16)}g${st.ino.toString(16)}`,
  };
}

/** The native addon module, loaded on first use (null when it cannot load): its jailed operations (openat2) and lstatMany. */
let nativeOps: Partial<typeof import('../native')> | null | undefined;
function loadNative(): Partial<typeof import('../native')> | null {
  if (nativeOps === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      nativeOps = require('../native') as typeof import('../native');
    } catch {
      nativeOps = null;
    }
  }
  return nativeOps;
}
const jailedFs = (): JailedFs | null => loadNative()?.jailedFs ?? null;
/** The addon's lstatMany, loaded on first use; null without it. */
const lstatManyOp = (): typeof import('../native').lstatMany => loadNative()?.lstatMany ?? null;

/** The FileStat of what a jailed operation reached (the same figures toFileStat takes from fs.Stats). */
function jailedFileStat(st: JailedStat): FileStat {
  return {
    kind: kindOfMode(st.mode),
    size: st.size,
    mtime: new Date(Math.round(st.mtimeMs)),
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    nlink: st.nlink,
    unique: `${st.dev.toString(16)}g${st.ino.toString(16)}`,
  };
}

/** Where a path really is, and whether something exists there. */

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * A handle on a local file. Streams are made from the node FileHandle (so a
 * pending read or write can never land on a recycled fd number after close),
 * with explicit positions: the fd's own file position is never used.
 */
class LocalFileHandle implements FileHandle {
  private readonly streams: Array<Readable | Writable> = [];
  private closing?: Promise<void>;

  constructor(
    private readonly fh: fsp.FileHandle,
    readonly offset: number,
    readonly size?: number,
  ) {}

  /** The descriptor number, or -1 once the handle is closed. */
  get fd(): number {
    return this.fh.fd;
  }

  createReadStream(): Readable {
    const s = this.fh.createReadStream({ start: this.offset, autoClose: false, highWaterMark: READ_HIGH_WATER_MARK });
    this.streams.push(s);
    return s;
  }

  createWriteStream(): Writable {
    const s = this.fh.createWriteStream({ start: this.offset, autoClose: false, highWaterMark: WRITE_HIGH_WATER_MARK });
    this.streams.push(s);
    return s;
  }

  /**
   * Close the descriptor, once. Any stream made from this handle that is
   * still open is destroyed first (node keeps the descriptor open while a
   * stream holds it); wait for a write stream's 'finish' before closing,
   * or its buffered bytes are dropped.
   */
  close(): Promise<void> {
    if (!this.closing) {
      for (const s of this.streams) if (!s.destroyed) s.destroy();
      this.closing = this.fh.close();
    }
    return this.closing;
  }
}

/**
 * The fs methods read streams on a raw descriptor use. A destroyed fs stream closes
 * its descriptor whatever autoClose says; with these it leaves it to the handle.
 */
const keepOpen = (_fd: number, cb: (err?: NodeJS.ErrnoException | null) => void): void => process.nextTick(cb);
const KEEP_FD_READ = { read: nodeFs.read, close: keepOpen };

function closeInline(fd: number): Promise<void> {
  try {
    nodeFs.closeSync(fd);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * A handle on a descriptor opened by the jailed native open. Same contract as
 * LocalFileHandle: streams use explicit positions and never close the
 * descriptor; close() waits until every stream made from it has settled (an fs
 * stream's 'close' comes only after its last read or write returned), so no
 * pending I/O can land on a recycled descriptor number, then closes it once.
 */
class FdFileHandle implements FileHandle {
  private readonly streams: Array<Readable | Writable> = [];
  private closing?: Promise<void>;

  constructor(
    private descriptor: number,
    private readonly ops: JailedFs,
    readonly offset: number,
    readonly size?: number,
    /** A read-only descriptor on a local filesystem: close(2) on the event loop (LOCAL_FS). */
    private readonly inlineClose = false,
    /** Opened O_APPEND (APPE): every write lands at the end, so only one may be in flight. */
    private readonly append = false,
  ) {}

  /** The descriptor number, or -1 once close() was called. */
  get fd(): number {
    return this.descriptor;
  }

  createReadStream(): Readable {
    const s = createReadStream('', { fd: this.descriptor, start: this.offset, autoClose: false, highWaterMark: READ_HIGH_WATER_MARK, fs: KEEP_FD_READ });
    this.streams.push(s);
    return s;
  }

  createWriteStream(): Writable {
    // Several positional writes in flight while the socket keeps being read (./fd-sink.ts). On an
    // O_APPEND descriptor a write lands where the file ends when it runs, so two in flight could
    // land out of order: one at a time there.
    const s = new FdWriteSink(this.descriptor, this.offset, undefined, undefined, this.append ? 1 : undefined);
    this.streams.push(s);
    return s;
  }

  close(): Promise<void> {
    if (!this.closing) {
      const fd = this.descriptor;
      this.descriptor = -1;
      const pending = this.streams.filter((s) => !s.closed);
      for (const s of pending) if (!s.destroyed) s.destroy();
      const closeFd = (): Promise<void> => (this.inlineClose ? closeInline(fd) : this.ops.close(fd));
      this.closing = pending.length
        ? Promise.all(pending.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())))).then(closeFd)
        : closeFd();
    }
    return this.closing;
  }
}

/**
 * The local disk, jailed under one root directory.
 *
 * FTP path "/x/y" maps to `<root>/x/y`. Before acting, the real location is
 * checked to be the root or under it:
 * - operations that follow the path (stat, readdir, open, chmod, setMtime,
 *   resolve; the parent of mkdir and of rename's target) realpath it, or,
 *   for a path that does not exist yet, its deepest existing ancestor, and
 *   follow a dangling symlink in the missing part to where it would create;
 * - operations on the entry itself (lstat, unlink, rmdir, rename's source)
 *   check only the parent's real path, so a symlink that points out of the
 *   root can be listed, renamed and deleted, but never followed.
 *
 * The operation then acts on the checked real path, not on the FTP path
 * again. What remains is the race with a local user who swaps a directory
 * for a symlink between the check and the syscall; FTP clients cannot make
 * symlinks, so they cannot win it.
 *
 * Paths are re-normalised on entry (cheap string work), so even a caller
 * that skipped fs/paths.ts cannot climb out with "..". A path containing a
 * NUL byte is refused with code FTPD_ERR_BADNAME.
 */
/**
 * What a session needs to know of its root before serving it: the real path, whether it is
 * a directory, and whether it is on a local filesystem (LOCAL_FS).
 */
interface RootInfo {
  real: string;
  isDir: boolean;
  /** A local disk or memory filesystem (LOCAL_FS). */
  local: boolean;
}

/**
 * Filesystems (statfs f_type, from linux/magic.h) on which some file operations can run on
 * the event loop without ever waiting on a disk or a network:
 * - close(2) of a read-only descriptor does no I/O: downloads close their file at once, which
 *   saves a thread-pool round trip per file (two thread wake-ups, a completion, a promise);
 * - a lookup answered from the kernel's caches (openat2 RESOLVE_CACHED, see the addon's
 *   fsopCached), then fstat or a read-only open of the regular file it found, do no I/O
 *   either: RETR's open and SIZE/MDTM/MLST's stat skip the pool when the path is cached.
 * Anywhere else (NFS, FUSE, SMB, where a close, an open or a getattr may wait on a server)
 * these go to the thread pool, as every write does.
 */
const LOCAL_FS = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0x858458f6, // ramfs
  0xf2f52010, // f2fs
  0x2fc12fc1, // zfs
  0x794c7630, // overlayfs (containers; its layers are local)
  0xca451a4e, // bcachefs
  0x3153464a, // jfs
]);

/**
 * Every session of a user makes its own LocalFileSystem, and each would realpath and stat
 * the same home at login. Sessions share the answer for a moment instead: a home that is
 * moved, re-linked or removed is seen within ROOT_CACHE_MS. Bounded, so many homes cannot grow it.
 */
const ROOT_CACHE_MS = 2000;
const ROOT_CACHE_MAX = 1024;
const rootCache = new Map<string, { info: Promise<RootInfo>; at: number }>();

function rootInfoShared(root: string): Promise<RootInfo> {
  const now = Date.now();
  const hit = rootCache.get(root);
  if (hit && now - hit.at < ROOT_CACHE_MS) return hit.info;
  const info = fsp.realpath(root).then(async (real) => {
    const [st, sfs] = await Promise.all([fsp.stat(real), fsp.statfs(real).catch(() => null)]);
    return { real, isDir: st.isDirectory(), local: sfs !== null && LOCAL_FS.has(Number(sfs.type)) };
  });
  if (rootCache.size >= ROOT_CACHE_MAX) rootCache.clear();
  rootCache.set(root, { info, at: now });
  info.catch(() => rootCache.delete(root));
  return info;
}

/** The jail's system calls, made by the server itself. */
const LOCAL_PROBE: JailProbe = {
  realpath: (local) => fsp.realpath(local),
  isSymlink: async (local) => (await fsp.lstat(local)).isSymbolicLink(),
  readlink: (local) => fsp.readlink(local),
};

export class LocalFileSystem implements FileSystem, JailOwner {
  private readonly jail: Jail;
  private info?: Promise<RootInfo>;

  /** `root` must be an absolute path to an existing directory; it is realpath'd on first use. */
  constructor(readonly root: string) {
    if (!nodePath.isAbsolute(root)) throw new TypeError(`LocalFileSystem root must be absolute: ${root}`);
    this.jail = new Jail(root, LOCAL_PROBE, this);
  }

  /** @internal The jail's root: the real path of `root`. */
  async resolveJailRoot(): Promise<string> {
    return (await this.rootInfo()).real;
  }

  /** The root's facts, once per filesystem (a failure is retried on the next call). */
  private rootInfo(): Promise<RootInfo> {
    if (!this.info) {
      this.info = rootInfoShared(this.root);
      this.info.catch(() => {
        this.info = undefined;
      });
    }
    return this.info;
  }

  /**
   * A filesystem of the same class jailed at `folder` (an FTP path inside this one), for
   * SubtreeFileSystem: made with `new this.constructor(join(root, folder))`. A subclass whose
   * constructor takes more than the root overrides this.
   */
  subtree(folder: string): LocalFileSystem {
    const Kind = this.constructor as new (root: string) => LocalFileSystem;
    const root = nodePath.join(this.root, folder);
    const made = new Kind(root);
    // A subclass whose constructor takes something else would be jailed elsewhere (at the whole
    // store): refuse rather than widen the jail.
    if (!(made instanceof LocalFileSystem) || made.root !== root) {
      throw new TypeError(`${Kind.name}'s constructor does not take the root: override subtree(folder) to make one jailed at ${root}`);
    }
    return made;
  }

  /** Build a filesystem and check its root now (exists, is a directory). */
  static async create(root: string): Promise<LocalFileSystem> {
    const lfs = new LocalFileSystem(root);
    await lfs.checkRoot();
    return lfs;
  }

  /** The root exists and is a directory (answered from a cache shared by sessions for 2 s). */
  async checkRoot(): Promise<void> {
    if (!(await this.rootInfo()).isDir) throw fsError('ENOTDIR', 'stat', '/');
  }

  async resolve(path: string): Promise<string> {
    return (await this.jail.follow(this.jail.clean(path, 'resolve'))).real;
  }

  async stat(path: string): Promise<FileStat> {
    const p = this.jail.clean(path, 'stat');
    const ops = jailedFs();
    // The root itself is one stat of the cached real root either way.
    if (ops && p !== '/') {
      const info = await this.rootInfo();
      // Answered from the kernel's caches on the spot when it can (local filesystems only)...
      const c = info.local ? ops.statCached(info.real, p.slice(1)) : null;
      if (c) return jailedFileStat(c.stat);
      // ...else realpath + stat in one pool round trip.
      const r = await ops.stat(info.real, p.slice(1));
      if (r && 'stat' in r) return jailedFileStat(r.stat);
      if (r) throw fsError(r.code, 'stat', p);
    }
    return toFileStat(await withPinned(await this.jail.followExisting(p, 'stat'), false, p, (q) => fsp.stat(q)));
  }

  async lstat(path: string): Promise<FileStat> {
    const p = this.jail.clean(path, 'lstat');
    if (p === '/') return toFileStat(await fsp.lstat(await this.jail.realRoot()));
    return toFileStat(await withPinnedEntry(await this.jail.entry(p, 'lstat'), p, (q) => fsp.lstat(q)));
  }

  async readdir(path: string): Promise<DirEntry[]> {
    const p = this.jail.clean(path, 'scandir');
    const local = (await this.rootInfo()).local;
    return withPinned(await this.jail.followExisting(p, 'scandir'), true, p, (dir) => readdirAt(dir, local));
  }

  /**
   * The names are read (see namesAt) and sorted now; the lstat of each entry is made
   * a batch at a time, through a pin of the directory taken when the first batch is asked for and
   * released when the listing ends or is abandoned (ABOR, a data connection that never came: then
   * the iteration never starts and no pin is taken). A 100,000-entry listing holds its names
   * (about 10 MB) and one batch, not every entry's stat and line at once.
   */
  async readdirStream(path: string, batch: number): Promise<AsyncIterable<DirEntry[]>> {
    const p = this.jail.clean(path, 'scandir');
    const dir = await this.jail.followExisting(p, 'scandir');
    const local = (await this.rootInfo()).local;
    // A folder that can be read but not searched (r without x) gives its names but no entry's
    // stat: that is found here, before the 150, with one lstat, and refused as readdir refuses it.
    const names = await withPinned(dir, true, p, async (d) => {
      const got = await namesAt(d);
      if (got.length > 0) await entriesAt(d, got.slice(0, 1), local);
      return got;
    });
    const text = nameText;
    names.sort((a, b) => {
      const x = text(a);
      const y = text(b);
      return x < y ? -1 : x > y ? 1 : 0;
    });
    const size = Math.max(1, Math.floor(batch));
    return (async function* batches(): AsyncGenerator<DirEntry[]> {
      const pinned = await pin(dir, true, p);
      try {
        for (let i = 0; i < names.length; i += size) yield await entriesAt(pinned.path, names.slice(i, i + size), local);
      } finally {
        pinned.release();
      }
    })();
  }

  async mkdir(path: string): Promise<void> {
    const p = this.jail.clean(path, 'mkdir');
    if (p === '/') throw fsError('EEXIST', 'mkdir', p);
    await withPinnedEntry(await this.jail.entry(p, 'mkdir'), p, (q) => fsp.mkdir(q));
  }

  async rmdir(path: string): Promise<void> {
    const p = this.jail.clean(path, 'rmdir');
    if (p === '/') throw fsError('EPERM', 'rmdir', p);
    await withPinnedEntry(await this.jail.entry(p, 'rmdir'), p, (q) => fsp.rmdir(q));
  }

  async unlink(path: string): Promise<void> {
    const p = this.jail.clean(path, 'unlink');
    if (p === '/') throw fsError('EPERM', 'unlink', p);
    await withPinnedEntry(await this.jail.entry(p, 'unlink'), p, async (real) => {
      try {
        await fsp.unlink(real);
      } catch (err) {
        // POSIX lets unlink(dir) fail with EPERM; Linux says EISDIR. Say EISDIR everywhere.
        if (errCode(err) === 'EPERM' || errCode(err) === 'EACCES') {
          const st = await fsp.lstat(real).catch(() => undefined);
          if (st?.isDirectory()) throw fsError('EISDIR', 'unlink', p);
        }
        throw err;
      }
    });
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.jail.clean(from, 'rename');
    const dst = this.jail.clean(to, 'rename');
    if (src === '/' || dst === '/') throw fsError('EPERM', 'rename', src === '/' ? src : dst);
    if (dst !== src && ftpIsWithin(src, dst)) throw fsError('EINVAL', 'rename', dst);
    const [realSrc, realDst] = await Promise.all([this.jail.entry(src, 'rename'), this.jail.entry(dst, 'rename')]);
    await withPinnedEntry(realSrc, src, (a) => withPinnedEntry(realDst, dst, (b) => fsp.rename(a, b)));
  }

  async setMtime(path: string, mtime: Date): Promise<void> {
    const p = this.jail.clean(path, 'utime');
    await withPinned(await this.jail.followExisting(p, 'utime'), false, p, async (real) => {
      const st = await fsp.stat(real);
      await fsp.utimes(real, st.atime, mtime);
    });
  }

  /** Permission bits only: an FTP user never sets setuid, setgid or sticky (vsftpd masks them too). */
  async chmod(path: string, mode: number): Promise<void> {
    const p = this.jail.clean(path, 'chmod');
    await withPinned(await this.jail.followExisting(p, 'chmod'), false, p, (q) => fsp.chmod(q, mode & 0o777));
  }
  /**
   * Open for reading. Only regular files: a directory gives EISDIR, anything
   * else (FIFO, device, socket) EPERM, checked with a stat before the open
   * so a FIFO can never block a libuv thread in open(2).
   */
  async openRead(path: string, offset: number): Promise<FileHandle> {
    const p = this.jail.clean(path, 'open');
    const ops = jailedFs();
    if (ops && p !== '/') {
      // One pool round trip: resolved beneath the root, checked regular, opened.
      const info = await this.rootInfo();
      const c = info.local ? ops.openReadCached(info.real, p.slice(1)) : null;
      if (c) return new FdFileHandle(c.fd, ops, offset, c.stat.size, true);
      const r = await ops.openRead(info.real, p.slice(1));
      if (r && 'fd' in r) return new FdFileHandle(r.fd, ops, offset, r.stat.size, info.local);
    }
    return withPinned(await this.jail.followExisting(p, 'open'), false, p, async (real) => {
      const st = await fsp.stat(real);
      if (st.isDirectory()) throw fsError('EISDIR', 'open', p);
      if (!st.isFile()) throw fsError('EPERM', 'open', p);
      const fh = await fsp.open(real, C.O_RDONLY);
      return new LocalFileHandle(fh, offset, st.size);
    });
  }

  /**
   * Open for writing (STOR, APPE, STOU, REST+STOR). APPE opens O_APPEND, so that
   * every write lands at the file's end as it is then, and two uploads appending
   * to one file at once (or a local process appending meanwhile) do not overwrite
   * each other; `offset` of the handle is the size the open saw. (splice(2) refuses
   * O_APPEND, so the engine receives APPE by copy.) An existing non-regular file is
   * refused as in openRead (EISDIR or EPERM).
   */
  async openWrite(path: string, options: OpenWriteOptions): Promise<FileHandle> {
    const p = this.jail.clean(path, 'open');
    if (p === '/') throw fsError('EISDIR', 'open', p);
    const append = options.append === true;
    const offset = append ? 0 : Math.max(0, options.offset ?? 0);
    const ops = jailedFs();
    const exclusive = options.exclusive === true;
    // An exclusive create (STOU, SITE CPTO's temporary files) there too: one openat2 that makes
    // the file or finds something there, which the portable path below then answers EEXIST for.
    if (ops && !(exclusive && append)) {
      const r = await ops.openWrite(await this.jail.realRoot(), p.slice(1), !append && offset === 0 && !exclusive, exclusive, append);
      if (r && 'fd' in r) {
        if (append) return new FdFileHandle(r.fd, ops, r.stat.size, undefined, false, true);
        if (offset > 0) {
          try {
            await new Promise<void>((resolve, reject) => ftruncate(r.fd, offset, (err) => (err ? reject(err) : resolve())));
          } catch (err) {
            await ops.close(r.fd);
            throw err;
          }
        }
        return new FdFileHandle(r.fd, ops, offset);
      }
    }
    const loc = await this.jail.follow(p);
    // O_NOFOLLOW: loc.real has no symlink in it as checked (a dangling link was followed to its
    // target), so one there now was swapped in since; ELOOP then, never a write through it.
    let flags = C.O_WRONLY | C.O_CREAT | C.O_NOFOLLOW;
    if (options.exclusive) flags |= C.O_EXCL;
    else if (!append && offset === 0) flags |= C.O_TRUNC;
    if (append) flags |= C.O_APPEND;
    const fh = await withPinnedEntry(loc.real, p, async (real) => {
      if (loc.exists && !options.exclusive) {
        const st = await fsp.stat(real);
        if (st.isDirectory()) throw fsError('EISDIR', 'open', p);
        if (!st.isFile()) throw fsError('EPERM', 'open', p);
      }
      try {
        return await fsp.open(real, flags, 0o666);
      } catch (err) {
        if (errCode(err) === 'ELOOP') throw new JailError(p);
        throw err;
      }
    });
    if (!append) {
      // REST n then STOR: the upload replaces everything from n on, so a shorter
      // upload cannot leave the old file's tail behind it.
      if (offset > 0) {
        try {
          await fh.truncate(offset);
        } catch (err) {
          await fh.close();
          throw err;
        }
      }
      return new LocalFileHandle(fh, offset);
    }
    try {
      const { size } = await fh.stat();
      return new LocalFileHandle(fh, size);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }
}
