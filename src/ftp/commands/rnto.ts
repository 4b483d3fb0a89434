import { FtpError } from '../errors';
import { refuseWhileUploading } from '../quota';
import type { CommandDescriptor } from './types';

export const rnto: CommandDescriptor = {
  verb: 'RNTO',
  help: 'RNTO <sp> file-name (rename (destination name)).',
  login: true,
  arg: 'required',
  state: (s) => (s.renameFrom === null ? 'Bad sequence of commands: use RNFR first.' : null),
  perm: 'f',
  path: 'arg',
  async handle({ session, path }) {
    const from = session.renameFrom!;
    session.renameFrom = null;
    if (path === '/') throw new FtpError(553, "Can't overwrite home directory.");
    refuseWhileUploading(session, from);
    refuseWhileUploading(session, path);
    const fs = session.requireFs();
    // As pyftpdlib: a destination that is a symlink leading out of the root is refused,
    // rather than silently replacing the link.
    await fs.resolve(path);
    // A folder moved to where a per-directory override lies below the destination would put its
    // contents under that override's letters (RNFR keeps overrides from being moved away).
    const overridesBelow = session.ctx.options.authorizer.overridesBelow;
    if (overridesBelow && (await fs.lstat(from)).kind === 'dir' && (await overridesBelow.call(session.ctx.options.authorizer, session.user!, path))) {
      throw new FtpError(553, "Can't move a folder over per-folder permissions.");
    }
    // A file the rename replaces no longer counts against a disk quota.
    const quota = (session.limits?.quotaBytes ?? 0) > 0 || (session.limits?.quotaFiles ?? 0) > 0;
    const replaced = quota ? await fs.lstat(path).catch(() => null) : null;
    await fs.rename(from, path);
    if (replaced?.kind === 'file' && from !== path) session.ctx.userLimits.adjust(session.user!, -replaced.size, -1);
    session.reply(250, 'Renaming ok.');
  },
};
