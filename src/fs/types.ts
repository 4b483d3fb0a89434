import type { Readable, Writable } from 'node:stream';

/** What a directory entry or a path is. */
export type FileKind = 'file' | 'dir' | 'symlink' | 'other';

/** The facts FTP replies need about one path (LIST, MLSD, SIZE, MDTM, STAT). */
export interface FileStat {
  kind: FileKind;
  /** Size in bytes (numbers are exact up to 2^53, far past any real file). */
  size: number;
  /** Last modification time. */
  mtime: Date;
  /** Unix permission bits and file type bits, as fs.Stats.mode. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Stable identity for MLSD's `unique` fact (dev and ino for local files). */
  unique: string;
}

/** A directory entry with its stat (lstat: symlinks are reported as such). */
export interface DirEntry {
  name: string;
  stat: FileStat;
}

export interface OpenWriteOptions {
  /** Byte offset to start writing at (REST before STOR): the file is cut there, and the upload replaces everything after it. Ignored with append. */
  offset?: number;
  /** APPE: write at the end of the file, creating it if missing. */
  append?: boolean;
  /** STOU: fail with EEXIST if the file already exists. */
  exclusive?: boolean;
}

/**
 * An open file. Every implementation offers streams; a local file also
 * offers its descriptor, which is what makes the zero-copy engine possible.
 */
export interface FileHandle {
  /**
   * The file descriptor, for handles backed by a local file. Absent otherwise.
   * Use it with explicit offsets only, and stop using it before close(). An append
   * handle's may be open O_APPEND (the local filesystems' are): on Linux its writes
   * land at the file's end whatever offset they give.
   */
  readonly fd?: number;
  /** Offset the handle was opened at (REST), or where appending starts. */
  readonly offset: number;
  /** openRead: the file's size when it was opened (saves RETR a stat). */
  readonly size?: number;
  /** A stream of the file's bytes from `offset` to the end. Call once. */
  createReadStream(): Readable;
  /** A stream that writes from `offset` on (or at the end, for append). Call once. */
  createWriteStream(): Writable;
  /**
   * Close the handle; safe to call twice. Streams made from the handle that
   * are still open are destroyed, so wait for a write stream's 'finish'
   * before closing or its buffered bytes are lost.
   */
  close(): Promise<void>;
}

/**
 * The filesystem one session sees, rooted at the user's home.
 *
 * Every path argument is an absolute FTP path ("/", "/a/b"), already
 * normalised by fs/paths.ts: no "." or ".." segments, no backslashes,
 * no trailing slash. Implementations must never reach outside their root,
 * whatever the path or the symlinks on disk.
 *
 * Errors are thrown as Node-style errors with a string `code`
 * (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EACCES, EPERM, ENOSPC...),
 * which ftp/errors.ts maps to replies.
 */
export interface FileSystem {
  /**
   * Check that `path` resolves inside the root (following symlinks of the
   * existing part) and return a real path for logs and permission checks.
   * Throws an error with code FTPD_ERR_JAIL when it does not.
   */
  resolve(path: string): Promise<string>;
  stat(path: string): Promise<FileStat>;
  lstat(path: string): Promise<FileStat>;
  readdir(path: string): Promise<DirEntry[]>;
  /**
   * Optional, for listings that stream (LIST, NLST, MLSD): the entries of a directory in name
   * order, `batch` at a time. The promise settles once the names are read, so that a directory
   * that cannot be read fails before any 150; each batch's details are read as it is asked for.
   * Without it, listings call readdir() and send the entries from memory.
   */
  readdirStream?(path: string, batch: number): Promise<AsyncIterable<DirEntry[]>>;
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  setMtime(path: string, mtime: Date): Promise<void>;
  /** The permission bits (0o777) of `mode`; SITE CHMOD never passes setuid, setgid or sticky. */
  chmod(path: string, mode: number): Promise<void>;
  openRead(path: string, offset: number): Promise<FileHandle>;
  openWrite(path: string, options: OpenWriteOptions): Promise<FileHandle>;
  /**
   * Optional: check that the root can be served (exists, is a directory). Called at each
   * login; without it the server checks `stat('/')`. A filesystem may answer from a short
   * cache, since a login is the hottest path of a busy server.
   */
  checkRoot?(): Promise<void>;
}

/** Builds the filesystem for one logged-in session. */
export type FileSystemFactory = (user: string, home: string) => FileSystem | Promise<FileSystem>;
