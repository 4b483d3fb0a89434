import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

/** CCC would drop TLS on the control connection; we never do (it exposes commands and passwords of later logins). */
export const ccc: CommandDescriptor = {
  verb: 'CCC',
  help: 'CCC (clear command channel: refused).',
  login: true,
  arg: 'none',
  handle() {
    throw new FtpError(534, 'CCC refused: the control connection stays encrypted.');
  },
};
