import { FtpError } from '../errors';
import { announcedAddress, openPassive } from '../data/setup';
import type { CommandDescriptor } from './types';

export const pasv: CommandDescriptor = {
  verb: 'PASV',
  help: 'PASV (open passive data connection).',
  login: true,
  arg: 'none',
  state: (s) => (s.epsvAll ? 'PASV not allowed after EPSV ALL.' : null),
  async handle({ session }) {
    const addr = announcedAddress(session);
    if (!addr) throw new FtpError(425, "Can't use PASV on an IPv6 connection; use EPSV.");
    const ch = await openPassive(session);
    const h = addr.split('.').join(',');
    session.reply(227, `Entering passive mode (${h},${ch.port >> 8},${ch.port & 255}).`);
  },
};
