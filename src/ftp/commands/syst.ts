import type { CommandDescriptor } from './types';

export const syst: CommandDescriptor = {
  verb: 'SYST',
  help: 'SYST (get operating system type).',
  login: false,
  arg: 'none',
  handle({ session }) {
    session.reply(215, 'UNIX Type: L8');
  },
};
