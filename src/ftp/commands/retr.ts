import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const retr: CommandDescriptor = {
  verb: 'RETR',
  help: 'RETR <sp> file-name (retrieve a file).',
  login: true,
  arg: 'required',
  perm: 'r',
  path: 'arg',
  transfer: true,
  async handle({ session, path }) {
    const rest = session.takeRest();
    if (!session.dataChannel) throw new FtpError(425, 'Use PORT, EPRT, PASV or EPSV first.');
    const fs = session.requireFs();
    // openRead refuses directories and other non-files itself (EISDIR/EPERM → 550).
    const handle = await fs.openRead(path, rest);
    const size = handle.size ?? (await fs.stat(path)).size;
    if (rest > size) {
      await handle.close();
      throw new FtpError(554, 'Invalid REST parameter: beyond the end of the file.');
    }
    // Returned, not awaited: no frame of this handler stays behind for the transfer's length.
    return session.runTransfer({
      verb: 'RETR',
      path,
      direction: 'send',
      handle,
      size,
      ascii: session.type === 'A',
      preliminary: `Opening ${session.type === 'A' ? 'ASCII' : 'BINARY'} mode data connection for ${path.slice(path.lastIndexOf('/') + 1) || path}.`.replace(/[\r\n\0]/g, ' '),
      file: true,
    });
  },
};
