import { receiveFile } from './stor';
import type { CommandDescriptor } from './types';

export const appe: CommandDescriptor = {
  verb: 'APPE',
  help: 'APPE <sp> file-name (append data to file).',
  login: true,
  arg: 'required',
  perm: 'a',
  path: 'arg',
  transfer: true,
  handle: ({ session, path }) => receiveFile(session, 'APPE', path, { append: true }, 'Ok to send data.'),
};
