import type { CommandDescriptor } from './types';

export const quit: CommandDescriptor = {
  verb: 'QUIT',
  help: 'QUIT (quit current session).',
  login: false,
  arg: 'optional',
  duringTransfer: true,
  async handle({ session }) {
    await session.quit();
  },
};
