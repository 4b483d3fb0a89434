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
    await session.requireFs().lstat(path);
    session.renameFrom = path;
    session.reply(350, 'Ready for destination name.');
  },
};
