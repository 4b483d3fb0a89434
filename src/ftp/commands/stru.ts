import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const stru: CommandDescriptor = {
  verb: 'STRU',
  help: 'STRU <sp> F (set file structure; only File is supported).',
  login: true,
  arg: 'required',
  handle({ session, arg }) {
    const s = arg.trim().toUpperCase();
    if (s === 'F') session.reply(200, 'File transfer structure set to: F.');
    else if (s === 'R' || s === 'P') throw new FtpError(504, 'Unimplemented STRU type.');
    else throw new FtpError(501, 'Unrecognized STRU type.');
  },
};
