import { randomBytes } from 'node:crypto';
import { copyHandle } from '../../../fs/copy';
import type { FileHandle } from '../../../fs/types';
import { ABORTED_BY_CLIENT, TransferAbort } from '../../data/transfer';
import { FtpError } from '../../errors';
import { existingTarget, startUpload } from '../../quota';
import type { ActiveTransfer, Session } from '../../session';
import type { SiteCommand } from './index';

/**
 * Server-side copy of one regular file, as proftpd's mod_copy spells it: SITE CPFR names the
 * source (350), the SITE CPTO right after it names the destination (250 when done). The
 * source needs the `r` permission, the destination `w`; the user's disk quota counts the
 * copy before a byte is written (552 when it does not fit).
 *
 * The bytes go to a hidden temporary file beside the destination, which is then renamed over
 * it: a copy that fails (a full disk, a vanished client) leaves the destination as it was and
 * no partial file behind. Local files are copied by the native addon with copy_file_range(2)
 * (src/fs/copy.ts); other filesystems through their streams.
 */

const enabled = (session: Session): boolean => session.ctx.options.siteCopy;

export const cpfr: SiteCommand = {
  name: 'CPFR',
  help: 'SITE CPFR <sp> path (copy: the source file).',
  enabled,
  async handle({ session, arg }) {
    session.copyFrom = null;
    if (!arg) throw new FtpError(501, 'Syntax: SITE CPFR <path>.');
    const path = session.resolvePath(arg);
    await session.requirePerm('r', path);
    const st = await session.requireFs().stat(path);
    if (st.kind !== 'file') throw new FtpError(550, 'Not a regular file: only files can be copied.');
    session.copyFrom = path;
    session.reply(350, 'File exists, ready for destination name (SITE CPTO).');
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
    await session.requirePerm('w', to);
    const fs = session.requireFs();
    // As RNTO: a destination that is a symlink leading out of the root is refused.
    await fs.resolve(to);
    const src = await fs.stat(from);
    if (src.kind !== 'file') throw new FtpError(550, 'Not a regular file: only files can be copied.');
    const existing = await existingTarget(fs, to);
    if (existing && existing.unique === src.unique) throw new FtpError(553, 'Source and destination are the same file.');

    const tmp = temporaryName(to);
    const quota = await startUpload(session, { path: to, existing, append: false, offset: 0 });
    const started = process.hrtime.bigint();
    let reader: FileHandle | null = null;
    let writer: FileHandle | null = null;
    let created = false;
    let renamed = false;
    // While it copies, the session answers ABOR, STAT, QUIT, NOOP and HELP at once, as during a
    // transfer: ABOR stops the copy at its next step (426, 226), STAT tells the bytes copied.
    const abort = new TransferAbort();
    const op: ActiveTransfer = { verb: 'SITE CPTO', path: to, direction: 'receive', started: Date.now(), bytes: 0, engine: null, abort };
    session.abortAnswered = false;
    session.transferAbort = abort;
    session.transfer = op;
    try {
      reader = await fs.openRead(from, 0);
      // The size the open saw is what is copied and counted (a file that grows meanwhile is copied as it was).
      const size = reader.size ?? src.size;
      if (quota && !quota.reserve(size)) throw new FtpError(552, 'Quota exceeded.');
      writer = await fs.openWrite(tmp, { exclusive: true });
      created = true;
      const native = session.ctx.copier;
      op.engine = native && reader.fd !== undefined && writer.fd !== undefined ? 'copy_file_range' : 'stream';
      const done = await copyHandle(reader, writer, size, {
        native,
        stop: () => session.isClosed || abort.aborted,
        onProgress: (bytes) => {
          op.bytes = bytes;
        },
      });
      await writer.close();
      writer = null;
      await fs.rename(tmp, to);
      renamed = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      session.log.info({ from, to, bytes: done.bytes, seconds: Math.round(seconds * 1e6) / 1e6, via: done.via }, 'copy');
      session.ctx.emitCopy(session, { from, to, bytes: done.bytes, seconds, via: done.via });
      session.reply(250, `Copied ${done.bytes} bytes.`);
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
      await reader?.close().catch(() => undefined);
      await writer?.close().catch(() => undefined);
      // Only a temporary file this copy made is removed (an exclusive open that failed made none).
      if (created && !renamed) await fs.unlink(tmp).catch(() => undefined);
      // Corrects the usage from what is at the destination now: the copy, or what was there before.
      await quota?.finish();
    }
  },
};

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
