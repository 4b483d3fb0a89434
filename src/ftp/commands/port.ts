import { FtpError } from '../errors';
import { setActive } from '../data/setup';
import type { CommandDescriptor } from './types';

export const port: CommandDescriptor = {
  verb: 'PORT',
  help: 'PORT <sp> h,h,h,h,p,p (open active data connection).',
  login: true,
  arg: 'required',
  state: (s) => (s.epsvAll ? 'PORT not allowed after EPSV ALL.' : null),
  handle({ session, arg }) {
    const parts = arg.trim().split(',');
    if (parts.length !== 6 || !parts.every((p) => /^\d{1,3}$/.test(p.trim()))) {
      throw new FtpError(501, 'Invalid PORT format.');
    }
    const n = parts.map((p) => Number(p));
    if (n.some((x) => x > 255)) throw new FtpError(501, 'Invalid PORT format.');
    if (session.localAddress.includes(':') && !session.localAddress.startsWith('::ffff:')) {
      throw new FtpError(425, 'PORT on an IPv6 connection; use EPRT.');
    }
    setActive(session, n.slice(0, 4).join('.'), n[4] * 256 + n[5]);
    session.reply(200, 'Active data connection established.');
  },
};
