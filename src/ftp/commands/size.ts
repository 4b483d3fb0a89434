import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const size: CommandDescriptor = {
  verb: 'SIZE',
  help: 'SIZE <sp> file-name (get file size).',
  login: true,
  arg: 'required',
  perm: 'l',
  path: 'arg',
  async handle({ session, path }) {
    // The size on the wire in ASCII mode is unknown without reading the file (pyftpdlib refuses too).
    if (session.type === 'A') throw new FtpError(550, 'SIZE not allowed in ASCII mode.');
    const st = await session.requireFs().stat(path);
    if (st.kind !== 'file') throw new FtpError(550, 'Not a regular file.');
    session.reply(213, String(st.size));
  },
};
