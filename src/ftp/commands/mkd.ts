import { quotePath } from '../parser';
import type { CommandDescriptor } from './types';

export const mkd: CommandDescriptor = {
  verb: 'MKD',
  aliases: ['XMKD'],
  help: 'MKD <sp> path (create directory).',
  login: true,
  arg: 'required',
  perm: 'm',
  path: 'arg',
  async handle({ session, path }) {
    await session.requireFs().mkdir(path);
    session.reply(257, `"${quotePath(path)}" directory created.`);
  },
};
