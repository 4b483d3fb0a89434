import type { CommandDescriptor } from './types';

export const noop: CommandDescriptor = {
  verb: 'NOOP',
  help: 'NOOP (no operation).',
  login: false,
  arg: 'none',
  duringTransfer: true,
  handle({ session }) {
    session.reply(200, 'I successfully done nothin\'.');
  },
};
