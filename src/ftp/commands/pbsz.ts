import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const pbsz: CommandDescriptor = {
  verb: 'PBSZ',
  help: 'PBSZ <sp> 0 (negotiate TLS buffer size).',
  login: false,
  arg: 'required',
  state: (s) => (s.secure ? null : 'PBSZ not allowed on an insecure control connection; use AUTH TLS first.'),
  handle({ session, arg }) {
    if (!/^\d{1,10}$/.test(arg.trim())) throw new FtpError(501, 'Invalid PBSZ value.');
    session.pbsz = true;
    // RFC 4217: a stream protocol has no buffer; 0 is the only size.
    session.reply(200, 'PBSZ=0 successful.');
  },
};
