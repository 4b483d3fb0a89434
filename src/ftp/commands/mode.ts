import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const mode: CommandDescriptor = {
  verb: 'MODE',
  help: 'MODE <sp> S (set transfer mode; only Stream is supported).',
  login: true,
  arg: 'required',
  handle({ session, arg }) {
    const m = arg.trim().toUpperCase();
    if (m === 'S') session.reply(200, 'Transfer mode set to: S.');
    else if (m === 'B' || m === 'C' || m === 'Z') throw new FtpError(504, 'Unimplemented MODE type.');
    else throw new FtpError(501, 'Unrecognized MODE type.');
  },
};
