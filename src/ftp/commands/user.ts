import type { CommandDescriptor } from './types';

export const user: CommandDescriptor = {
  verb: 'USER',
  help: 'USER <sp> user-name (set username).',
  login: false,
  arg: 'required',
  state: (s) => (s.state === 'ready' ? 'Already logged in; use REIN to change user.' : null),
  handle({ session, arg }) {
    session.pendingUser = arg;
    session.state = 'pass';
    session.reply(331, 'Username ok, send password.');
  },
};
