import { FtpError } from '../errors';
import { ftpTime, parseFtpTime } from '../listing';
import { sanitizeLine } from '../parser';
import type { CommandDescriptor } from './types';

export const mfmt: CommandDescriptor = {
  verb: 'MFMT',
  help: 'MFMT <sp> YYYYMMDDHHMMSS <sp> path (set file modification time).',
  login: true,
  arg: 'required',
  perm: 'T',
  path: (arg) => {
    const i = arg.indexOf(' ');
    return i > 0 && i < arg.length - 1 ? arg.slice(i + 1) : null;
  },
  async handle({ session, arg, path }) {
    const time = parseFtpTime(arg.slice(0, arg.indexOf(' ')));
    if (!time) throw new FtpError(501, 'Invalid time format; expected YYYYMMDDHHMMSS.');
    const fs = session.requireFs();
    const st = await fs.stat(path);
    if (st.kind !== 'file') throw new FtpError(550, 'Not a regular file.');
    await fs.setMtime(path, time);
    session.reply(213, `Modify=${ftpTime(time)}; ${sanitizeLine(path)}`);
  },
};
