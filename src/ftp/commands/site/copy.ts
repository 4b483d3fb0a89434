import { randomBytes } from 'node:crypto';
import { copyAborted, copyHandle, type CopyPath } from '../../../fs/copy';
import { ftpJoin } from '../../../fs/paths';
import type { FileHandle, FileSystem, FileStat } from '../../../fs/types';
import { ABORTED_BY_CLIENT, TransferAbort } from '../../data/transfer';
import { FtpError } from '../../errors';
import { existingTarget, refuseWhileUploading, reserveTree, startUpload } from '../../quota';
import type { ActiveTransfer, Session } from '../../session';
import type { SiteCommand } from './index';

/**
 * Server-side copy, as proftpd's mod_copy spells it: SITE CPFR names the source (350), the
 * SITE CPTO right after it names the destination (250 when done). A regular file needs the `r`
 * permission and its destination `w`; a folder is copied whole, with everything below it (`l`
 * on each folder and `r` on each file read, `m` on each folder and `w` on each file made). The
 * user's disk quota counts the copy before a byte is written (552 when it does not fit).
 *
 * The bytes go to a hidden temporary file or folder beside the destination, which is then
 * renamed over it: a copy that fails (a full disk, a vanished client, ABOR) leaves the
 * destination as it was and nothing partial behind. Local files are copied by the native addon
 * with copy_file_range(2) (src/fs/copy.ts); other filesystems through their streams.
 */

/** Most entries (files, folders, and the links and others it skips) one folder copy takes on. */
export const MAX_TREE_ENTRIES = 10_000;
/**
 * Files of one folder copy in flight at once. Each native step holds a libuv pool thread (four
 * by default) for at most one 32 MiB step, so other sessions' opens still find two free.
 * Measured (src/native/bench/RESULTS.md): 1,000 files of 64 KiB in 0.52–0.67 s with 2 against
 * 0.74–0.79 s with 1, 8 of 32 MiB in 0.067 against 0.11 s; 3 and 4 were no faster.
 */
export const COPY_PARALLEL = 2;

const enabled = (session: Session): boolean => session.ctx.options.siteCopy;

export const cpfr: SiteCommand = {
  name: 'CPFR',
  help: 'SITE CPFR <sp> path (copy: the source file or folder).',
  enabled,
  async handle({ session, arg }) {
    session.copyFrom = null;
    if (!arg) throw new FtpError(501, 'Syntax: SITE CPFR <path>.');
    const path = session.resolvePath(arg);
    await session.requirePerm('r', path);
    const st = await session.requireFs().stat(path);
    if (st.kind !== 'file' && st.kind !== 'dir') throw new FtpError(550, 'Not a regular file or folder: only those can be copied.');
    session.copyFrom = path;
    session.reply(350, `${st.kind === 'dir' ? 'Folder' : 'File'} exists, ready for destination name (SITE CPTO).`);
  },
};

export const cpto: SiteCommand = {
  name: 'CPTO',
  help: 'SITE CPTO <sp> path (copy: the destination; after SITE CPFR).',
  enabled,
  async handle({ session, arg }) {
    const from = session.copyFrom;
    session.copyFrom = null;
    if (from === null) throw new FtpError(503, 'Bad sequence of commands: use SITE CPFR first.');
    if (!arg) throw new FtpError(501, 'Syntax: SITE CPTO <path>.');
    const to = session.resolvePath(arg);
    if (to === '/') throw new FtpError(553, "Can't overwrite home directory.");
    refuseWhileUploading(session, to);
    const fs = session.requireFs();
    const src = await fs.stat(from);
    if (src.kind === 'dir') return copyFolder(session, fs, from, to);
    if (src.kind !== 'file') throw new FtpError(550, 'Not a regular file or folder: only those can be copied.');
    await session.requirePerm('w', to);
    // As RNTO: a destination that is a symlink leading out of the root is refused.
    await fs.resolve(to);
    const existing = await existingTarget(fs, to);
    if (existing && existing.unique === src.unique) throw new FtpError(553, 'Source and destination are the same file.');

    const tmp = temporaryName(to);
    const quota = await startUpload(session, { path: to, existing, append: false, offset: 0 });
    const started = process.hrtime.bigint();
    await running(session, from, to, async (op, stop) => {
      let created = false;
      let renamed = false;
      try {
        const done = await copyFile(session, fs, from, tmp, stop, {
          opened: (size) => {
            if (quota && !quota.reserve(size)) throw new FtpError(552, 'Quota exceeded.');
          },
          made: () => (created = true),
          via: (how) => (op.engine = how),
          progress: (bytes) => (op.bytes = bytes),
        });
        await fs.rename(tmp, to);
        renamed = true;
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        session.log.info({ from, to, bytes: done.bytes, seconds: Math.round(seconds * 1e6) / 1e6, via: done.via }, 'copy');
        session.ctx.emitCopy(session, { from, to, bytes: done.bytes, seconds, via: done.via });
        session.reply(250, `Copied ${done.bytes} bytes.`);
      } finally {
        // Only a temporary file this copy made is removed (an exclusive open that failed made none).
        if (created && !renamed) await fs.unlink(tmp).catch(() => undefined);
        // Corrects the usage from what is at the destination now: the copy, or what was there before.
        await quota?.finish();
      }
    });
  },
};

/**
 * Run a copy as the session's running operation: while it runs, ABOR, STAT, QUIT, NOOP and HELP
 * are answered at once, as during a transfer. STAT shows `op`; ABOR makes `stop()` true, and the
 * copy, stopped at its next step, is answered 426 then 226 once `body` has cleaned up.
 */
async function running(
  session: Session,
  from: string,
  to: string,
  body: (op: ActiveTransfer, stop: () => boolean) => Promise<void>,
): Promise<void> {
  const abort = new TransferAbort();
  const op: ActiveTransfer = { verb: 'SITE CPTO', path: to, direction: 'receive', started: Date.now(), bytes: 0, engine: null, abort };
  session.abortAnswered = false;
  session.transferAbort = abort;
  session.transfer = op;
  try {
    await body(op, () => session.isClosed || abort.aborted);
  } catch (err) {
    // The reply says why in short; the log keeps which copy it was.
    session.log.info({ from, to, code: (err as { code?: string }).code, bytes: op.bytes }, 'copy failed');
    if (abort.reason !== ABORTED_BY_CLIENT || session.isClosed) throw err;
    session.abortAnswered = true;
    session.reply(426, 'Copy aborted.');
    session.reply(226, 'ABOR command successful.');
  } finally {
    session.transfer = null;
    session.transferAbort = null;
    // An ABOR that came too late to stop the copy gets its 225 after the 250 (Session.execute).
    if (abort.reason === ABORTED_BY_CLIENT && !session.abortAnswered) session.abortOwed = true;
  }
}

/** What copyFile tells its caller as it goes. */
interface CopyHooks {
  /** The source is open and this many bytes will be copied; the destination is not made yet (a quota check may throw). */
  opened?(size: number): void;
  /** The destination exists now (it is the copy's to remove if the copy fails). */
  made(): void;
  /** How the bytes move, once known. */
  via(how: CopyPath): void;
  /** Bytes of this file copied so far. */
  progress(bytes: number): void;
}

/**
 * Copy the file `from` to a new file `to` (an exclusive open), at most `limit` bytes (a folder
 * copy's files: the size its quota counted when it listed them).
 */
async function copyFile(
  session: Session,
  fs: FileSystem,
  from: string,
  to: string,
  stop: () => boolean,
  hooks: CopyHooks,
  limit = Infinity,
): Promise<{ bytes: number; via: CopyPath }> {
  let reader: FileHandle | null = null;
  let writer: FileHandle | null = null;
  try {
    reader = await fs.openRead(from, 0);
    // The size the open saw is what is copied (a file that grows meanwhile is copied as it was).
    const size = Math.min(reader.size ?? (await fs.stat(from)).size, limit);
    hooks.opened?.(size);
    writer = await fs.openWrite(to, { exclusive: true });
    hooks.made();
    const native = session.ctx.copier;
    hooks.via(native && reader.fd !== undefined && writer.fd !== undefined ? 'copy_file_range' : 'stream');
    const done = await copyHandle(reader, writer, size, { native, stop, onProgress: hooks.progress });
    await writer.close();
    writer = null;
    return done;
  } finally {
    await reader?.close().catch(() => undefined);
    await writer?.close().catch(() => undefined);
  }
}

/** What a folder copy takes on: folders (parents first) and files, relative to the source. */
interface Tree {
  folders: string[];
  files: Array<{ rel: string; size: number }>;
  bytes: number;
  /** Entries neither file nor folder (symlinks, devices, sockets): not copied. */
  skipped: number;
}

/**
 * SITE CPTO of a folder: the whole tree below it is listed and its permissions checked first,
 * then the quota counts it, then it is built in a hidden temporary folder renamed to `to` at the
 * end. The destination must not exist. Symlinks and other special entries are skipped (a link
 * is never followed, so nothing outside the root or outside the source is read), and counted
 * in the reply.
 */
async function copyFolder(session: Session, fs: FileSystem, from: string, to: string): Promise<void> {
  await session.requirePerm('m', to);
  if (to === from || to.startsWith(`${from === '/' ? '' : from}/`)) throw new FtpError(553, 'Cannot copy a folder into itself.');
  const slash = to.lastIndexOf('/');
  const parent = to.slice(0, slash) || '/';
  // Also through symlinked folders: the destination's real place must not be below the source's.
  const realFrom = await fs.resolve(from);
  const realTo = `${await fs.resolve(parent)}/${to.slice(slash + 1)}`;
  if (realTo.startsWith(`${realFrom.replace(/\/$/, '')}/`)) throw new FtpError(553, 'Cannot copy a folder into itself.');
  const there: FileStat | null = await fs.lstat(to).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (there) throw new FtpError(553, 'Destination exists: a folder is copied to a new name.');

  const tree = await listTree(session, fs, from, to);
  const quota = await reserveTree(session, tree.files.length, tree.bytes);
  const tmp = temporaryName(to);
  const started = process.hrtime.bigint();
  await running(session, from, to, async (op, stop) => {
    const madeFolders: string[] = [];
    const madeFiles: string[] = [];
    let renamed = false;
    try {
      for (const rel of tree.folders) {
        if (stop()) throw copyAborted();
        const dir = rel ? `${tmp}/${rel}` : tmp;
        await fs.mkdir(dir);
        madeFolders.push(dir);
      }
      let copied = 0;
      let via: CopyPath = session.ctx.copier ? 'copy_file_range' : 'stream';
      // COPY_PARALLEL files at a time; the first failure stops the others, and all have ended
      // before anything is cleaned up.
      let next = 0;
      let failed = false;
      let firstError: unknown = null;
      const halt = (): boolean => failed || stop();
      const worker = async (): Promise<void> => {
        while (next < tree.files.length) {
          if (halt()) throw copyAborted();
          const f = tree.files[next++];
          const dst = `${tmp}/${f.rel}`;
          let seen = 0;
          const done = await copyFile(session, fs, ftpJoin(from, f.rel), dst, halt, {
            made: () => madeFiles.push(dst),
            via: (how) => (op.engine = how),
            progress: (bytes) => {
              op.bytes += bytes - seen;
              seen = bytes;
            },
            // Grown since it was listed: the quota counted the listed size, so that is what is copied.
          }, f.size);
          copied += done.bytes;
          // One word for the whole copy: the slowest way any of its files went.
          if (done.via === 'stream' || (done.via === 'read/write' && via !== 'stream')) via = done.via;
        }
      };
      await Promise.all(
        Array.from({ length: Math.min(COPY_PARALLEL, tree.files.length) }, () =>
          worker().catch((err: unknown) => {
            // The first failure is the copy's; the others are the workers it stopped.
            if (!failed) firstError = err;
            failed = true;
          }),
        ),
      );
      if (failed) throw firstError;
      await fs.rename(tmp, to);
      renamed = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const files = tree.files.length;
      const folders = tree.folders.length;
      session.log.info({ from, to, bytes: copied, seconds: Math.round(seconds * 1e6) / 1e6, via, files, folders, skipped: tree.skipped }, 'copy');
      session.ctx.emitCopy(session, { from, to, bytes: copied, seconds, via, files, folders, skipped: tree.skipped });
      const skipped = tree.skipped > 0 ? ` Skipped ${tree.skipped} (links and the like, or names no path can give).` : '';
      session.reply(250, `Copied ${folders} folder${folders === 1 ? '' : 's'} and ${files} file${files === 1 ? '' : 's'}, ${copied} bytes.${skipped}`);
    } finally {
      if (!renamed) {
        // What this copy made, and nothing else: its files, then its folders deepest first.
        for (const f of madeFiles.reverse()) await fs.unlink(f).catch(() => undefined);
        for (const d of madeFolders.reverse()) await fs.rmdir(d).catch(() => undefined);
        quota?.cancel();
      } else {
        quota?.keep();
      }
    }
  });
}

/** List the tree below `from`, checking `l` on each folder and `r` on each file read, and `m`/`w` at the destination. */
async function listTree(session: Session, fs: FileSystem, from: string, to: string): Promise<Tree> {
  const tree: Tree = { folders: [''], files: [], bytes: 0, skipped: 0 };
  let entries = 0;
  for (let i = 0; i < tree.folders.length; i++) {
    const rel = tree.folders[i];
    const dir = rel ? ftpJoin(from, rel) : from;
    await session.requirePerm('l', dir);
    if (rel) await session.requirePerm('m', ftpJoin(to, rel));
    for (const e of await fs.readdir(dir)) {
      if (++entries > MAX_TREE_ENTRIES) throw new FtpError(550, `Too many entries to copy (more than ${MAX_TREE_ENTRIES}).`);
      const r = rel ? `${rel}/${e.name}` : e.name;
      // A name no FTP path can name (a backslash, which is a separator here; bytes that are not
      // UTF-8, listed as U+FFFD) is skipped and counted: a path built from it would check one
      // entry's permissions and read another.
      if (e.name.includes('\\') || e.name.includes('\uFFFD')) {
        tree.skipped++;
        continue;
      }
      if (e.stat.kind === 'dir') {
        tree.folders.push(r);
      } else if (e.stat.kind === 'file') {
        await session.requirePerm('r', ftpJoin(from, r));
        await session.requirePerm('w', ftpJoin(to, r));
        tree.files.push({ rel: r, size: e.stat.size });
        tree.bytes += e.stat.size;
      } else {
        tree.skipped++;
      }
    }
  }
  return tree;
}

/**
 * A hidden name beside `to`, unlikely to exist (the open is exclusive anyway). The destination's
 * own name is cut to 200 bytes of UTF-8, whole characters, so that the temporary name stays
 * within NAME_MAX (255 bytes) whenever the destination's does.
 */
function temporaryName(to: string): string {
  const slash = to.lastIndexOf('/');
  let name = '';
  for (const ch of to.slice(slash + 1)) {
    if (Buffer.byteLength(name + ch) > 200) break;
    name += ch;
  }
  return `${to.slice(0, slash + 1)}.${name}.copy-${randomBytes(6).toString('hex')}`;
}
