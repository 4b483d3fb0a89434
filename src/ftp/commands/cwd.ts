import { FtpError } from '../errors';
import { quotePath } from '../parser';
import type { Session } from '../session';
import type { CommandDescriptor } from './types';

/** Change to `path` if it is a directory the user may enter. */
export async function changeDir(session: Session, path: string): Promise<void> {
  const st = await session.requireFs().stat(path);
  if (st.kind !== 'dir') throw new FtpError(550, 'Not a directory.');
  session.cwd = path;
  session.reply(250, `"${quotePath(path)}" is the current directory.`);
}

export const cwd: CommandDescriptor = {
  verb: 'CWD',
  aliases: ['XCWD'],
  help: 'CWD [<sp> dir-name] (change working directory).',
  login: true,
  arg: 'optional',
  perm: 'e',
  path: (arg) => (arg.length ? arg : '/'),
  handle: ({ session, path }) => changeDir(session, path),
};
