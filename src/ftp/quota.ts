/**
 * Disk quotas for STOR, APPE and STOU (UserLimits.quotaBytes, quotaFiles).
 *
 * Before the 150: an upload that would add a file when the user is at quotaFiles, or that has no
 * byte left to write (at quotaBytes, counting what a STOR over an existing file frees), gets 552.
 * During the transfer the file handle has a byte budget shared with the user's other uploads:
 * the bytes that fit are written and kept, like on a disk that fills up, and the transfer ends
 * with 552. Earlier files are never touched. Afterwards the file's real size corrects the usage.
 */
import type { FileHandle, FileStat, FileSystem } from '../fs/types';
import { withWriteBudget } from '../fs/write-budget';
import { FtpError } from './errors';
import type { Session } from './session';
import type { DiskUsage } from './user-limits';

export interface UploadQuota {
  /** The handle to transfer into: budgeted when the user has a byte quota. */
  wrap(handle: FileHandle): FileHandle;
  /** All or nothing: count `bytes` more against the byte quota, or answer false when they do not fit (SITE CPTO). */
  reserve(bytes: number): boolean;
  /** After the transfer (or a failed open): correct the usage from the file's size on disk. */
  finish(): Promise<void>;
  /** The file was not opened and is not ours (STOU's EEXIST): undo the reservation without looking at it. */
  cancel(): void;
}

export interface UploadTarget {
  path: string;
  /** What is at `path` now (null: the upload creates the file). */
  existing: FileStat | null;
  /** APPE: bytes are added after the existing ones. */
  append: boolean;
  /** REST offset of a STOR: the file is cut there. */
  offset: number;
}

/** 450 when one of the session user's counted uploads writes `path` (or below it): see UserLimitTracker.uploadingAt. */
export function refuseWhileUploading(session: Session, path: string): void {
  if (session.user !== null && session.ctx.userLimits.uploadingAt(session.user, path)) {
    throw new FtpError(450, 'An upload to this file is running; try again when it ends.');
  }
}

/** What is at an upload's or a copy's destination now: its stat, or null when nothing is there; a directory is 550. */
export async function existingTarget(fs: FileSystem, path: string): Promise<FileStat | null> {
  let existing: FileStat | null = null;
  try {
    existing = await fs.stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing?.kind === 'dir') throw new FtpError(550, 'Is a directory.');
  return existing;
}

/** The user's quotas and live disk usage, or null when the user has none. Throws 451 when the usage cannot be measured. */
async function quotaState(
  session: Session,
): Promise<{ user: string; quotaBytes: number; quotaFiles: number; usage: DiskUsage } | null> {
  const user = session.user;
  const quotaBytes = session.limits?.quotaBytes ?? 0;
  const quotaFiles = session.limits?.quotaFiles ?? 0;
  if (user === null || (quotaBytes <= 0 && quotaFiles <= 0)) return null;
  const tracker = session.ctx.userLimits;
  try {
    const usage = await tracker.usage(user, session.requireFs());
    return { user, quotaBytes, quotaFiles, usage };
  } catch (err) {
    session.log.error({ err }, 'disk usage could not be measured');
    throw new FtpError(451, 'Could not check the disk quota.');
  }
}

/** The upload's quota bookkeeping, or null when the user has no quota. Throws 552 when it cannot start. */
export async function startUpload(session: Session, target: UploadTarget): Promise<UploadQuota | null> {
  const q = await quotaState(session);
  if (!q) return null;
  const { user, quotaBytes, quotaFiles, usage } = q;
  const fs = session.requireFs();
  const tracker = session.ctx.userLimits;
  // From here to the reservation below nothing awaits: concurrent uploads see each other's.
  const creates = target.existing === null;
  const before = target.existing?.size ?? 0;
  const freed = target.append ? 0 : Math.max(0, before - target.offset);
  if (quotaFiles > 0 && creates && usage.files >= quotaFiles) throw new FtpError(552, 'Quota exceeded.');
  if (quotaBytes > 0 && usage.bytes - freed >= quotaBytes) throw new FtpError(552, 'Quota exceeded.');
  const endUpload = tracker.beginUpload(user, target.path);
  // The open creates the file and cuts it at the offset: count both now.
  usage.files += creates ? 1 : 0;
  usage.bytes = Math.max(0, usage.bytes - freed);
  /** What the usage now counts for this file. */
  let counted = target.append ? before : Math.min(before, target.offset);
  let finished = false;
  return {
    wrap(handle) {
      if (quotaBytes <= 0) return handle;
      return withWriteBudget(handle, (wanted) => {
        const granted = Math.min(wanted, Math.max(0, quotaBytes - usage.bytes));
        usage.bytes += granted;
        counted += granted;
        return granted;
      });
    },
    reserve(bytes) {
      if (quotaBytes > 0 && usage.bytes + bytes > quotaBytes) return false;
      usage.bytes += bytes;
      counted += bytes;
      return true;
    },
    async finish() {
      if (finished) return;
      finished = true;
      let size = 0;
      let exists = false;
      try {
        const st = await fs.stat(target.path);
        exists = st.kind === 'file';
        size = exists ? st.size : 0;
      } catch {
        // Gone (a failed open, or removed meanwhile): it holds nothing.
      }
      usage.bytes = Math.max(0, usage.bytes + size - counted);
      if (creates && !exists) usage.files = Math.max(0, usage.files - 1);
      endUpload();
    },
    cancel() {
      if (finished) return;
      finished = true;
      usage.bytes += freed;
      if (creates) usage.files = Math.max(0, usage.files - 1);
      endUpload();
    },
  };
}

/** A directory copy's quota: what it counted, given back if the copy does not stay. */
export interface TreeQuota {
  /** The copy failed and left nothing: take its files and bytes off the usage again. */
  cancel(): void;
  /** The copy stayed: keep them counted. */
  keep(): void;
}

/**
 * Count a directory copy of `files` files and `bytes` bytes in all before anything is written
 * (SITE CPTO of a directory), or 552 when they do not fit; null when the user has no quota.
 */
export async function reserveTree(session: Session, files: number, bytes: number): Promise<TreeQuota | null> {
  const q = await quotaState(session);
  if (!q) return null;
  const { user, quotaBytes, quotaFiles, usage } = q;
  const tracker = session.ctx.userLimits;
  if (quotaFiles > 0 && usage.files + files > quotaFiles) throw new FtpError(552, 'Quota exceeded.');
  if (quotaBytes > 0 && usage.bytes + bytes > quotaBytes) throw new FtpError(552, 'Quota exceeded.');
  const endUpload = tracker.beginUpload(user);
  usage.files += files;
  usage.bytes += bytes;
  let done = false;
  return {
    cancel() {
      if (done) return;
      done = true;
      usage.files = Math.max(0, usage.files - files);
      usage.bytes = Math.max(0, usage.bytes - bytes);
      endUpload();
    },
    keep() {
      if (done) return;
      done = true;
      endUpload();
    },
  };
}
