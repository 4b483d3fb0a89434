import { mlsxLine } from '../listing';
import { safeName } from './list';
import type { CommandDescriptor } from './types';

export const mlst: CommandDescriptor = {
  verb: 'MLST',
  help: 'MLST [<sp> path] (show information about path).',
  login: true,
  arg: 'optional',
  perm: 'l',
  path: 'arg-or-cwd',
  async handle({ session, path }) {
    const st = await session.requireFs().stat(path);
    const line = mlsxLine(safeName(path), st, session.mlstFacts, await session.permsAt(path, st.kind));
    session.reply(250, [`Listing ${safeName(path)}`, ` ${line}`, 'End MLST.']);
  },
};
