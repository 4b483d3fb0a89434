import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const rest: CommandDescriptor = {
  verb: 'REST',
  help: 'REST <sp> offset (set file offset).',
  login: true,
  arg: 'required',
  handle({ session, arg }) {
    if (!/^\d{1,16}$/.test(arg.trim())) throw new FtpError(501, 'Invalid parameter: expected a byte offset.');
    const n = Number(arg.trim());
    if (!Number.isSafeInteger(n)) throw new FtpError(501, 'Invalid parameter: offset too large.');
    if (session.type === 'A') throw new FtpError(501, 'Resuming transfers not allowed in ASCII mode.');
    session.restOffset = n;
    session.reply(350, `Restarting at position ${n}.`);
  },
};
