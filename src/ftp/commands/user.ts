import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const user: CommandDescriptor = {
  verb: 'USER',
  help: 'USER <sp> user-name (set username).',
  login: false,
  arg: 'required',
  state: (s) => (s.state === 'ready' ? 'Already logged in; use REIN to change user.' : null),
  handle({ session, arg }) {
    if (session.options.tlsControlRequired && !session.secure && !session.tlsExempt(arg)) {
      throw new FtpError(534, 'Policy requires SSL/TLS on the control connection: use AUTH TLS.');
    }
    session.pendingUser = arg;
    session.state = 'pass';
    session.reply(331, 'Username ok, send password.');
  },
};
