import { FtpError } from '../errors';
import { listingBatches, safeName, streamListing, stripListFlags } from './list';
import type { CommandDescriptor } from './types';

export const nlst: CommandDescriptor = {
  verb: 'NLST',
  help: 'NLST [<sp> path] (list path in a compact form).',
  login: true,
  arg: 'optional',
  perm: 'l',
  path: (arg) => stripListFlags(arg),
  transfer: true,
  async handle({ session, path }) {
    if (!session.dataChannel) throw new FtpError(425, 'Use PORT, EPRT, PASV or EPSV first.');
    await streamListing(session, 'NLST', path, await listingBatches(session, path), (e) => safeName(e.name));
  },
};
