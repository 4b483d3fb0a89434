import { FtpError } from '../errors';
import { existingTarget, startUpload } from '../quota';
import type { Session } from '../session';
import type { OpenWriteOptions } from '../../fs/types';
import type { CommandDescriptor } from './types';

/** STOR, APPE and STOU share this: open for writing, then receive over the data channel. */
export async function receiveFile(session: Session, verb: string, path: string, how: OpenWriteOptions, preliminary: string): Promise<void> {
  const rest = session.takeRest();
  if (!session.dataChannel) throw new FtpError(425, 'Use PORT, EPRT, PASV or EPSV first.');
  const fs = session.requireFs();
  const existing = await existingTarget(fs, path);
  if (rest > 0 && rest > (existing?.size ?? 0)) throw new FtpError(554, 'Invalid REST parameter: beyond the end of the file.');
  // APPE writes at the end (O_APPEND): REST at the file's size is a client resuming that way, any
  // other offset could not be honoured (pyftpdlib refuses every REST before APPE).
  if (how.append && rest > 0 && rest !== (existing?.size ?? 0)) throw new FtpError(554, 'Invalid REST parameter: APPE writes at the end of the file.');
  // The quota is checked (552) before the file is opened, which would cut it.
  const quota = await startUpload(session, { path, existing, append: how.append === true, offset: how.append ? 0 : rest });
  try {
    const handle = await fs.openWrite(path, how.append ? how : { ...how, offset: rest });
    await session.runTransfer({
      verb,
      path,
      direction: 'receive',
      handle: quota ? quota.wrap(handle) : handle,
      ascii: session.type === 'A',
      preliminary,
      file: true,
    });
  } finally {
    await quota?.finish();
  }
}

export const stor: CommandDescriptor = {
  verb: 'STOR',
  help: 'STOR <sp> file-name (store a file).',
  login: true,
  arg: 'required',
  perm: 'w',
  path: 'arg',
  transfer: true,
  handle: ({ session, path }) => receiveFile(session, 'STOR', path, {}, 'Ok to send data.'),
};
