import { quotePath } from '../parser';
import type { CommandDescriptor } from './types';

export const pwd: CommandDescriptor = {
  verb: 'PWD',
  aliases: ['XPWD'],
  help: 'PWD (get current working directory).',
  login: true,
  arg: 'none',
  handle({ session }) {
    session.reply(257, `"${quotePath(session.cwd)}" is the current directory.`);
  },
};
