import { randomBytes } from 'node:crypto';
import { FtpError } from '../errors';
import { ftpJoin } from '../../fs/paths';
import { sanitizeLine } from '../parser';
import type { CommandDescriptor } from './types';

export const stou: CommandDescriptor = {
  verb: 'STOU',
  help: 'STOU [<sp> name] (store a file with a unique name).',
  login: true,
  arg: 'optional',
  perm: 'w',
  path: () => '.',
  transfer: true,
  async handle({ session, arg, path: dir }) {
    const rest = session.takeRest();
    if (rest) throw new FtpError(450, "Can't STOU while REST request is pending.");
    if (!session.dataChannel) throw new FtpError(425, 'Use PORT, EPRT, PASV or EPSV first.');
    const fs = session.requireFs();
    const prefix = arg.replace(/[/\\]/g, '').slice(0, 64) || 'ftpd';
    for (let attempt = 0; attempt < 10; attempt++) {
      const name = `${prefix}.${randomBytes(4).toString('hex')}`;
      const path = ftpJoin(dir, name);
      let handle;
      try {
        handle = await fs.openWrite(path, { exclusive: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      await session.runTransfer({
        verb: 'STOU',
        path,
        direction: 'receive',
        handle,
        ascii: session.type === 'A',
        preliminary: `FILE: ${sanitizeLine(name)}`,
        file: true,
      });
      return;
    }
    throw new FtpError(450, 'Could not find a unique file name.');
  },
};
