import { FtpError } from '../errors';
import { mlsxLine } from '../listing';
import { listingBatches, safeName, streamListing } from './list';
import { ftpJoin } from '../../fs/paths';
import type { CommandDescriptor } from './types';

export const mlsd: CommandDescriptor = {
  verb: 'MLSD',
  help: 'MLSD [<sp> path] (list directory).',
  login: true,
  arg: 'optional',
  perm: 'l',
  path: 'arg-or-cwd',
  transfer: true,
  async handle({ session, path }) {
    if (!session.dataChannel) throw new FtpError(425, 'Use PORT, EPRT, PASV or EPSV first.');
    const fs = session.requireFs();
    const st = await fs.stat(path);
    if (st.kind !== 'dir') throw new FtpError(501, 'No such directory.');
    const batches = await listingBatches(session, path);
    await streamListing(session, 'MLSD', path, batches, async (e) =>
      mlsxLine(safeName(e.name), e.stat, session.mlstFacts, await session.permsAt(ftpJoin(path, e.name), e.stat.kind)),
    );
  },
};
