import { FtpError } from '../errors';
import { refuseWhileUploading } from '../quota';
import type { CommandDescriptor } from './types';

export const rnfr: CommandDescriptor = {
  verb: 'RNFR',
  help: 'RNFR <sp> file-name (rename (source name)).',
  login: true,
  arg: 'required',
  perm: 'f',
  path: 'arg',
  async handle({ session, path }) {
    session.renameFrom = null;
    if (path === '/') throw new FtpError(550, "Can't rename home directory.");
    refuseWhileUploading(session, path);
    const st = await session.requireFs().lstat(path);
    // A folder holding per-directory overrides stays where they are: moved, what is below it
    // would leave them (renaming /a frees /a/private of its letters).
    if (st.kind === 'dir' && (await session.ctx.options.authorizer.overridesBelow?.(session.user!, path))) {
      throw new FtpError(550, "Can't rename a folder holding per-folder permissions.");
    }
    session.renameFrom = path;
    session.reply(350, 'Ready for destination name.');
  },
};
