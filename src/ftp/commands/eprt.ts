import * as net from 'node:net';
import { FtpError } from '../errors';
import { setActive } from '../data/setup';
import type { CommandDescriptor } from './types';

export const eprt: CommandDescriptor = {
  verb: 'EPRT',
  help: 'EPRT <sp> |proto|ip|port| (extended active data connection).',
  login: true,
  arg: 'required',
  state: (s) => (s.epsvAll ? 'EPRT not allowed after EPSV ALL.' : null),
  handle({ session, arg }) {
    const a = arg.trim();
    const d = a[0];
    const parts = d ? a.split(d) : [];
    // "|1|132.235.1.2|6275|" splits into ['', '1', '132.235.1.2', '6275', ''].
    if (!d || d.charCodeAt(0) < 33 || d.charCodeAt(0) > 126 || parts.length !== 5 || parts[0] !== '' || parts[4] !== '') {
      throw new FtpError(501, 'Invalid EPRT format.');
    }
    const [, proto, host, portStr] = parts;
    if (proto !== '1' && proto !== '2') throw new FtpError(522, 'Network protocol not supported, use (1,2).');
    if ((proto === '1' && !net.isIPv4(host)) || (proto === '2' && !net.isIPv6(host))) {
      throw new FtpError(501, 'Invalid EPRT address.');
    }
    if (!/^\d{1,5}$/.test(portStr)) throw new FtpError(501, 'Invalid EPRT port.');
    setActive(session, host, Number(portStr));
    session.reply(200, 'Active data connection established.');
  },
};
