import { randomBytes } from 'node:crypto';
import { FtpError } from '../errors';
import { startUpload } from '../quota';
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
      // 'w' at the file it creates, as STOR checks it (the descriptor's check was at the folder,
      // which a non-recursive override of its parent covers).
      await session.requirePerm('w', path);
      // Always a new file: the quota is checked (552) before it is created.
      const quota = await startUpload(session, { path, existing: null, append: false, offset: 0 });
      let handle;
      try {
        handle = await fs.openWrite(path, { exclusive: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          // Someone else's file: give back the slot without touching it.
          quota?.cancel();
          continue;
        }
        await quota?.finish();
        throw err;
      }
      try {
        await session.runTransfer({
          verb: 'STOU',
          path,
          direction: 'receive',
          handle: quota ? quota.wrap(handle) : handle,
          ascii: session.type === 'A',
          preliminary: `FILE: ${sanitizeLine(name)}`,
          file: true,
        });
      } finally {
        await quota?.finish();
      }
      return;
    }
    throw new FtpError(450, 'Could not find a unique file name.');
  },
};
