import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const type: CommandDescriptor = {
  verb: 'TYPE',
  help: 'TYPE <sp> [A | I | L 8] (set transfer type).',
  login: true,
  arg: 'required',
  handle({ session, arg }) {
    const t = arg.trim().toUpperCase().replace(/\s+/g, ' ');
    if (t === 'A' || t === 'A N') {
      session.type = 'A';
      session.reply(200, 'Type set to: ASCII.');
    } else if (t === 'I' || t === 'L 8' || t === 'L8') {
      session.type = 'I';
      session.reply(200, 'Type set to: Binary.');
    } else {
      throw new FtpError(504, 'Unsupported type.');
    }
  },
};
