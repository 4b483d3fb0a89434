import { changeDir } from './cwd';
import type { CommandDescriptor } from './types';

export const cdup: CommandDescriptor = {
  verb: 'CDUP',
  aliases: ['XCUP'],
  help: 'CDUP (go to parent directory).',
  login: true,
  arg: 'none',
  perm: 'e',
  path: () => '..',
  handle: ({ session, path }) => changeDir(session, path),
};
