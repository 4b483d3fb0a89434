import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const prot: CommandDescriptor = {
  verb: 'PROT',
  help: 'PROT <sp> [C|P] (set up data channel protection).',
  login: false,
  arg: 'required',
  state: (s) =>
    !s.secure ? 'PROT not allowed on an insecure control connection; use AUTH TLS first.' : !s.pbsz ? 'You must issue the PBSZ command prior to PROT.' : null,
  handle({ session, arg }) {
    const level = arg.trim().toUpperCase();
    if (level === 'P') {
      session.prot = 'P';
      session.reply(200, 'Protection set to Private.');
    } else if (level === 'C') {
      if (session.options.tlsDataRequired && !session.tlsExempt(session.user ?? session.pendingUser)) {
        throw new FtpError(534, 'PROT C refused: this server requires TLS on data connections.');
      }
      session.prot = 'C';
      session.reply(200, 'Protection set to Clear.');
    } else if (level === 'S' || level === 'E') {
      throw new FtpError(536, `PROT ${level} unsupported (use C or P).`);
    } else {
      throw new FtpError(504, 'Unrecognized PROT level; use C or P.');
    }
  },
};
