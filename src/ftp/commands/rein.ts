import type { CommandDescriptor } from './types';

export const rein: CommandDescriptor = {
  verb: 'REIN',
  help: 'REIN (flush account).',
  login: false,
  arg: 'none',
  handle({ session }) {
    session.logout();
    session.reply(220, 'Ready for new user.');
  },
};
