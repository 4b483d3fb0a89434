import { FtpError } from '../errors';
import { refuseWhileUploading } from '../quota';
import type { CommandDescriptor } from './types';

export const dele: CommandDescriptor = {
  verb: 'DELE',
  help: 'DELE <sp> file-name (delete file).',
  login: true,
  arg: 'required',
  perm: 'd',
  path: 'arg',
  async handle({ session, path }) {
    refuseWhileUploading(session, path);
    const fs = session.requireFs();
    const st = await fs.lstat(path);
    if (st.kind === 'dir') throw new FtpError(550, 'Is a directory; use RMD.');
    await fs.unlink(path);
    // The room it held is free for uploads at once (disk quota).
    if (st.kind === 'file') session.ctx.userLimits.adjust(session.user!, -st.size, -1);
    session.reply(250, 'File removed.');
  },
};
