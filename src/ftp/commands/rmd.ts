import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const rmd: CommandDescriptor = {
  verb: 'RMD',
  aliases: ['XRMD'],
  help: 'RMD <sp> dir-name (remove directory).',
  login: true,
  arg: 'required',
  perm: 'd',
  path: 'arg',
  async handle({ session, path }) {
    if (path === '/') throw new FtpError(550, "Can't remove root directory.");
    const fs = session.requireFs();
    const st = await fs.lstat(path);
    if (st.kind !== 'dir') throw new FtpError(550, 'Not a directory.');
    await fs.rmdir(path);
    session.reply(250, 'Directory removed.');
  },
};
