import { constants as C } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { fsError } from './errors';
import { ftpBasename, ftpDirname, ftpIsWithin, resolveFtpPath } from './paths';
import type { DirEntry, FileHandle, FileStat, FileSystem, OpenWriteOptions } from './types';

/** File contents live in pages of this size, so growth never copies the whole file. */
const PAGE = 64 * 1024;
const READ_CHUNK = 64 * 1024;
const FILE_MODE = C.S_IFREG | 0o644;
const DIR_MODE = C.S_IFDIR | 0o755;

interface MemFile {
  kind: 'file';
  ino: number;
  mode: number;
  mtime: Date;
  size: number;
  /** Page i holds bytes [i*PAGE, i*PAGE + pages[i].length); missing or short pages read as zeros. */
  pages: Buffer[];
  /** False once unlinked or replaced: open handles keep working, the quota no longer counts it. */
  linked: boolean;
}

interface MemDir {
  kind: 'dir';
  ino: number;
  mode: number;
  mtime: Date;
  children: Map<string, MemNode>;
  subdirs: number;
}

type MemNode = MemFile | MemDir;

export interface MemoryFileSystemOptions {
  /**
   * Initial content: FTP path → file content. Parent directories are made
   * as needed; a key ending in "/" makes an empty directory (its value is ignored).
   */
  files?: Record<string, string | Buffer>;
  /** Total bytes of file content allowed; a write past it fails with ENOSPC. */
  maxBytes?: number;
}

/**
 * A filesystem held in memory: directories and regular files, no symlinks,
 * owned by uid/gid 0, mode bits stored but not enforced.
 *
 * One instance may serve many sessions at once. Every operation inspects
 * and changes the tree in one synchronous step, so interleaved sessions see
 * each change whole; a write stream applies each chunk as it arrives (a
 * broken upload leaves what arrived, like a disk), at explicit positions,
 * like pwrite. A read stream reads the file's current bytes chunk by
 * chunk, not a snapshot: it sees bytes a concurrent writer has added by
 * the time it gets there, and ends at the size the file has then.
 * An unlinked or replaced file stays readable and writable through handles
 * already open, as on POSIX.
 *
 * Handles have no `fd`, so transfers always take the stream path.
 */
export class MemoryFileSystem implements FileSystem {
  private readonly root: MemDir;
  private nextIno = 1;
  private used = 0;
  readonly maxBytes: number;

  constructor(options: MemoryFileSystemOptions = {}) {
    this.maxBytes = options.maxBytes ?? Infinity;
    if (!(this.maxBytes >= 0)) throw new RangeError(`maxBytes must be a number >= 0: ${options.maxBytes}`);
    this.root = this.newDir();
    for (const [key, content] of Object.entries(options.files ?? {})) this.seed(key, content);
  }

  /** Bytes of file content currently stored (what maxBytes limits). */
  get usedBytes(): number {
    return this.used;
  }

  private newDir(): MemDir {
    return { kind: 'dir', ino: this.nextIno++, mode: DIR_MODE, mtime: new Date(), children: new Map(), subdirs: 0 };
  }

  private newFile(): MemFile {
    return { kind: 'file', ino: this.nextIno++, mode: FILE_MODE, mtime: new Date(), size: 0, pages: [], linked: true };
  }

  private seed(key: string, content: string | Buffer): void {
    const p = resolveFtpPath('/', key);
    const segs = p === '/' ? [] : p.slice(1).split('/');
    const isDir = key.endsWith('/') || key.endsWith('\\');
    let dir = this.root;
    for (let i = 0; i < segs.length; i++) {
      const last = i === segs.length - 1;
      const existing = dir.children.get(segs[i]);
      if (last && !isDir) {
        if (existing) throw fsError('EEXIST', 'open', p);
        const f = this.newFile();
        this.link(dir, segs[i], f);
        this.writeAt(f, typeof content === 'string' ? Buffer.from(content) : content, 0, p);
        return;
      }
      if (existing && existing.kind !== 'dir') throw fsError('ENOTDIR', 'mkdir', p);
      let next = existing;
      if (!next) {
        next = this.newDir();
        this.link(dir, segs[i], next);
      }
      dir = next;
    }
  }

  // ---- tree helpers (all synchronous) ----

  private clean(path: string, syscall: string): string {
    if (path.includes('\0')) throw fsError('FTPD_ERR_BADNAME', syscall, path);
    return resolveFtpPath('/', path);
  }

  /** The node at a normalised path, with POSIX errors for missing or non-directory parts. */
  private lookup(p: string, syscall: string): MemNode {
    let node: MemNode = this.root;
    if (p === '/') return node;
    let start = 1;
    while (start <= p.length) {
      let end = p.indexOf('/', start);
      if (end === -1) end = p.length;
      if (node.kind !== 'dir') throw fsError('ENOTDIR', syscall, p);
      const child: MemNode | undefined = node.children.get(p.slice(start, end));
      if (!child) throw fsError('ENOENT', syscall, p);
      node = child;
      start = end + 1;
    }
    return node;
  }

  private lookupDir(p: string, syscall: string): MemDir {
    const node = this.lookup(p, syscall);
    if (node.kind !== 'dir') throw fsError('ENOTDIR', syscall, p);
    return node;
  }

  /** Parent directory and name of a normalised path other than "/". */
  private parentOf(p: string, syscall: string): { dir: MemDir; name: string } {
    return { dir: this.lookupDir(ftpDirname(p), syscall), name: ftpBasename(p) };
  }

  private link(dir: MemDir, name: string, node: MemNode): void {
    dir.children.set(name, node);
    if (node.kind === 'dir') dir.subdirs++;
    else if (!node.linked) {
      node.linked = true;
      this.used += node.size;
    }
    dir.mtime = new Date();
  }

  private unlinkNode(dir: MemDir, name: string, node: MemNode): void {
    dir.children.delete(name);
    if (node.kind === 'dir') dir.subdirs--;
    else if (node.linked) {
      node.linked = false;
      this.used -= node.size;
    }
    dir.mtime = new Date();
  }

  private toStat(node: MemNode): FileStat {
    return {
      kind: node.kind,
      size: node.kind === 'file' ? node.size : 0,
      mtime: node.mtime,
      mode: node.mode,
      uid: 0,
      gid: 0,
      nlink: node.kind === 'dir' ? 2 + node.subdirs : 1,
      unique: `m${node.ino.toString(16)}`,
    };
  }

  /** Grow or shrink a file's logical size, keeping the quota count. */
  private setSize(f: MemFile, size: number, path: string): void {
    const delta = size - f.size;
    if (delta > 0 && this.used + delta > this.maxBytes) throw fsError('ENOSPC', 'write', path);
    if (f.linked) this.used += delta;
    f.size = size;
  }

  /** Cut a file to `n` bytes (n <= size); bytes past n are dropped, so later growth reads zeros there. */
  private truncate(f: MemFile, n = 0): void {
    if (n >= f.size) return;
    if (f.linked) this.used -= f.size - n;
    f.size = n;
    const keep = Math.ceil(n / PAGE);
    f.pages.length = Math.min(f.pages.length, keep);
    const last = keep - 1;
    const page = f.pages[last];
    if (page && page.length > n - last * PAGE) f.pages[last] = page.subarray(0, n - last * PAGE);
    f.mtime = new Date();
  }

  /** pwrite: copy `data` into the file at `pos` (a gap before it reads as zeros). */
  private writeAt(f: MemFile, data: Buffer, pos: number, path: string): void {
    const end = pos + data.length;
    if (end > f.size) this.setSize(f, end, path);
    let src = 0;
    while (src < data.length) {
      const abs = pos + src;
      const pi = Math.floor(abs / PAGE);
      const po = abs - pi * PAGE;
      const n = Math.min(PAGE - po, data.length - src);
      let page = f.pages[pi];
      if (!page || page.length < po + n) {
        // Grow pages geometrically up to PAGE, so small files stay small.
        const want = Math.min(PAGE, Math.max(po + n, (page?.length ?? 0) * 2));
        const grown = Buffer.alloc(want);
        if (page) page.copy(grown);
        page = grown;
        f.pages[pi] = page;
      }
      data.copy(page, po, src, src + n);
      src += n;
    }
    f.mtime = new Date();
  }

  /** pread: a fresh copy of up to `max` bytes at `pos` (empty at or past the end). */
  private readAt(f: MemFile, pos: number, max: number): Buffer {
    const end = Math.min(f.size, pos + max);
    if (end <= pos) return Buffer.alloc(0);
    const out = Buffer.alloc(end - pos);
    let dst = 0;
    while (dst < out.length) {
      const abs = pos + dst;
      const pi = Math.floor(abs / PAGE);
      const po = abs - pi * PAGE;
      const n = Math.min(PAGE - po, out.length - dst);
      const page = f.pages[pi];
      if (page && po < page.length) page.copy(out, dst, po, Math.min(page.length, po + n));
      dst += n;
    }
    return out;
  }

  // ---- FileSystem ----

  async resolve(path: string): Promise<string> {
    return this.clean(path, 'resolve');
  }

  async stat(path: string): Promise<FileStat> {
    return this.toStat(this.lookup(this.clean(path, 'stat'), 'stat'));
  }

  async lstat(path: string): Promise<FileStat> {
    return this.toStat(this.lookup(this.clean(path, 'lstat'), 'lstat'));
  }

  async readdir(path: string): Promise<DirEntry[]> {
    const dir = this.lookupDir(this.clean(path, 'scandir'), 'scandir');
    const out: DirEntry[] = [];
    for (const [name, node] of dir.children) out.push({ name, stat: this.toStat(node) });
    return out;
  }

  async mkdir(path: string): Promise<void> {
    const p = this.clean(path, 'mkdir');
    if (p === '/') throw fsError('EEXIST', 'mkdir', p);
    const { dir, name } = this.parentOf(p, 'mkdir');
    if (dir.children.has(name)) throw fsError('EEXIST', 'mkdir', p);
    this.link(dir, name, this.newDir());
  }

  async rmdir(path: string): Promise<void> {
    const p = this.clean(path, 'rmdir');
    if (p === '/') throw fsError('EPERM', 'rmdir', p);
    const { dir, name } = this.parentOf(p, 'rmdir');
    const node = dir.children.get(name);
    if (!node) throw fsError('ENOENT', 'rmdir', p);
    if (node.kind !== 'dir') throw fsError('ENOTDIR', 'rmdir', p);
    if (node.children.size > 0) throw fsError('ENOTEMPTY', 'rmdir', p);
    this.unlinkNode(dir, name, node);
  }

  async unlink(path: string): Promise<void> {
    const p = this.clean(path, 'unlink');
    if (p === '/') throw fsError('EPERM', 'unlink', p);
    const { dir, name } = this.parentOf(p, 'unlink');
    const node = dir.children.get(name);
    if (!node) throw fsError('ENOENT', 'unlink', p);
    if (node.kind === 'dir') throw fsError('EISDIR', 'unlink', p);
    this.unlinkNode(dir, name, node);
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.clean(from, 'rename');
    const dst = this.clean(to, 'rename');
    if (src === '/' || dst === '/') throw fsError('EPERM', 'rename', src === '/' ? src : dst);
    if (dst !== src && ftpIsWithin(src, dst)) throw fsError('EINVAL', 'rename', dst);
    const s = this.parentOf(src, 'rename');
    const node = s.dir.children.get(s.name);
    if (!node) throw fsError('ENOENT', 'rename', src);
    const d = this.parentOf(dst, 'rename');
    const target = d.dir.children.get(d.name);
    if (target === node) return; // same entry: rename(2) does nothing
    if (target) {
      if (node.kind === 'dir' && target.kind !== 'dir') throw fsError('ENOTDIR', 'rename', dst);
      if (node.kind !== 'dir' && target.kind === 'dir') throw fsError('EISDIR', 'rename', dst);
      if (target.kind === 'dir' && target.children.size > 0) throw fsError('ENOTEMPTY', 'rename', dst);
      this.unlinkNode(d.dir, d.name, target);
    }
    this.unlinkNode(s.dir, s.name, node);
    this.link(d.dir, d.name, node);
  }

  async setMtime(path: string, mtime: Date): Promise<void> {
    this.lookup(this.clean(path, 'utime'), 'utime').mtime = new Date(mtime.getTime());
  }

  async chmod(path: string, mode: number): Promise<void> {
    const node = this.lookup(this.clean(path, 'chmod'), 'chmod');
    node.mode = (node.mode & C.S_IFMT) | (mode & 0o777);
  }

  async openRead(path: string, offset: number): Promise<FileHandle> {
    const p = this.clean(path, 'open');
    const node = this.lookup(p, 'open');
    if (node.kind === 'dir') throw fsError('EISDIR', 'open', p);
    return new MemoryFileHandle(this, node, Math.max(0, offset), p, node.size);
  }

  async openWrite(path: string, options: OpenWriteOptions): Promise<FileHandle> {
    const p = this.clean(path, 'open');
    if (p === '/') throw fsError('EISDIR', 'open', p);
    const { dir, name } = this.parentOf(p, 'open');
    const existing = dir.children.get(name);
    if (existing && options.exclusive) throw fsError('EEXIST', 'open', p);
    if (existing?.kind === 'dir') throw fsError('EISDIR', 'open', p);
    let file = existing;
    if (!file) {
      file = this.newFile();
      this.link(dir, name, file);
    }
    let offset = Math.max(0, options.offset ?? 0);
    if (options.append) offset = file.size;
    // REST n then STOR replaces everything from n on (offset 0: the whole file).
    else if (offset < file.size) this.truncate(file, offset);
    return new MemoryFileHandle(this, file, offset, p, undefined, options.append === true);
  }

  /** @internal Used by handles. */
  _write(f: MemFile, data: Buffer, pos: number, path: string): void {
    this.writeAt(f, data, pos, path);
  }

  /** @internal Used by handles. */
  _read(f: MemFile, pos: number, max: number): Buffer {
    return this.readAt(f, pos, max);
  }
}

class MemoryFileHandle implements FileHandle {
  private closed = false;
  private readonly streams: Array<Readable | Writable> = [];

  constructor(
    private readonly mfs: MemoryFileSystem,
    private readonly file: MemFile,
    readonly offset: number,
    private readonly path: string,
    readonly size?: number,
    /** APPE: each write lands at the file's end as it is then (as O_APPEND does), not at `offset`. */
    private readonly append = false,
  ) {}

  createReadStream(): Readable {
    let pos = this.offset;
    const s = new Readable({
      highWaterMark: READ_CHUNK,
      read: () => {
        if (this.closed) {
          s.destroy(fsError('EBADF', 'read', this.path));
          return;
        }
        const chunk = this.mfs._read(this.file, pos, READ_CHUNK);
        if (chunk.length === 0) {
          s.push(null);
          return;
        }
        pos += chunk.length;
        s.push(chunk);
      },
    });
    this.streams.push(s);
    return s;
  }

  createWriteStream(): Writable {
    let pos = this.offset;
    const s = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (this.closed) {
          cb(fsError('EBADF', 'write', this.path));
          return;
        }
        if (this.append) pos = this.file.size;
        try {
          this.mfs._write(this.file, chunk, pos, this.path);
        } catch (err) {
          cb(err as Error);
          return;
        }
        pos += chunk.length;
        cb();
      },
    });
    this.streams.push(s);
    return s;
  }

  /** Close; streams still open are destroyed (wait for a write stream's 'finish' first). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams) if (!s.destroyed) s.destroy();
  }
}
