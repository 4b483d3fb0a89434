import { sortedBatches } from './batches';
import { fsError } from './errors';
import { LocalFileSystem } from './local';
import { resolveFtpPath } from './paths';
import type { DirEntry, FileHandle, FileStat, FileSystem, OpenWriteOptions } from './types';

/**
 * One folder of another FileSystem, seen as a root: per-user homes inside one shared
 * filesystem (a LocalFileSystem, a MemoryFileSystem, or a store of your own), with
 * `fileSystem: (user, home) => new SubtreeFileSystem(shared, home)`.
 *
 * Paths arrive normalised ("/", "/a/b", no ".."), so prefixing the folder can never climb
 * out of it. The folder itself cannot be removed or renamed through its view (EPERM), as
 * a local root cannot.
 */
export class SubtreeFileSystem implements FileSystem {
  private readonly base: string;
  private readonly inner: FileSystem;

  /**
   * `folder` is a path inside `inner` ("/home/alice"); it must exist before a session logs in.
   * Over a LocalFileSystem the view is a LocalFileSystem jailed at the folder itself: prefixing
   * alone left the jail at the shared store, so a symlink in one user's folder (a relative
   * `sub/up -> ..` moved up a level by RNFR/RNTO is enough) led into the other users' folders.
   * A subclass of LocalFileSystem stays that subclass (`LocalFileSystem.subtree`).
   */
  constructor(inner: FileSystem, folder: string) {
    if (folder.includes('\0')) throw fsError('FTPD_ERR_BADNAME', 'subtree', folder);
    const base = resolveFtpPath('/', folder);
    if (inner instanceof LocalFileSystem && base !== '/') {
      this.inner = inner.subtree(base);
      this.base = '/';
    } else {
      this.inner = inner;
      this.base = base;
    }
  }

  /** The inner path of a path of this view. */
  private map(path: string, syscall: string): string {
    if (path.includes('\0')) throw fsError('FTPD_ERR_BADNAME', syscall, path);
    const p = resolveFtpPath('/', path);
    if (p === '/') return this.base;
    return this.base === '/' ? p : this.base + p;
  }

  /** Like map, refusing this view's root (remove, rename). */
  private mapEntry(path: string, syscall: string): string {
    if (resolveFtpPath('/', path) === '/') throw fsError('EPERM', syscall, '/');
    return this.map(path, syscall);
  }

  async resolve(path: string): Promise<string> {
    return this.inner.resolve(this.map(path, 'resolve'));
  }

  async stat(path: string): Promise<FileStat> {
    return this.inner.stat(this.map(path, 'stat'));
  }

  async lstat(path: string): Promise<FileStat> {
    return this.inner.lstat(this.map(path, 'lstat'));
  }

  async readdir(path: string): Promise<DirEntry[]> {
    return this.inner.readdir(this.map(path, 'readdir'));
  }

  readdirStream(path: string, batch: number): Promise<AsyncIterable<DirEntry[]>> {
    const inner = this.inner;
    // An inner filesystem without it: readdir's way, as a listing of it would take.
    if (!inner.readdirStream) return inner.readdir(this.map(path, 'readdir')).then((entries) => sortedBatches(entries, batch));
    return inner.readdirStream(this.map(path, 'readdir'), batch);
  }

  async mkdir(path: string): Promise<void> {
    return this.inner.mkdir(this.map(path, 'mkdir'));
  }

  async rmdir(path: string): Promise<void> {
    return this.inner.rmdir(this.mapEntry(path, 'rmdir'));
  }

  async unlink(path: string): Promise<void> {
    return this.inner.unlink(this.mapEntry(path, 'unlink'));
  }

  async rename(from: string, to: string): Promise<void> {
    return this.inner.rename(this.mapEntry(from, 'rename'), this.mapEntry(to, 'rename'));
  }

  async setMtime(path: string, mtime: Date): Promise<void> {
    return this.inner.setMtime(this.map(path, 'utimes'), mtime);
  }

  async chmod(path: string, mode: number): Promise<void> {
    return this.inner.chmod(this.map(path, 'chmod'), mode);
  }

  async openRead(path: string, offset: number): Promise<FileHandle> {
    return this.inner.openRead(this.map(path, 'open'), offset);
  }

  async openWrite(path: string, options: OpenWriteOptions): Promise<FileHandle> {
    return this.inner.openWrite(this.map(path, 'open'), options);
  }
}
