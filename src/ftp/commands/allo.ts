import type { CommandDescriptor } from './types';

export const allo: CommandDescriptor = {
  verb: 'ALLO',
  help: 'ALLO <sp> bytes (noop; allocate storage).',
  login: true,
  arg: 'optional',
  handle({ session }) {
    session.reply(202, 'No storage allocation necessary.');
  },
};
