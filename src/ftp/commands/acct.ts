import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const acct: CommandDescriptor = {
  verb: 'ACCT',
  help: 'ACCT <sp> account (not implemented).',
  login: false,
  arg: 'optional',
  handle() {
    throw new FtpError(502, 'Command not implemented.');
  },
};
