import { FtpError } from '../errors';
import { openPassive } from '../data/setup';
import type { CommandDescriptor } from './types';

export const epsv: CommandDescriptor = {
  verb: 'EPSV',
  help: 'EPSV [<sp> proto/"ALL"] (open passive data connection).',
  login: true,
  arg: 'optional',
  async handle({ session, arg }) {
    const a = arg.trim().toUpperCase();
    if (a === 'ALL') {
      session.epsvAll = true;
      session.reply(220, 'Other commands other than EPSV are now disabled.');
      return;
    }
    if (a !== '' && a !== '1' && a !== '2') throw new FtpError(522, 'Network protocol not supported, use (1,2).');
    const ipv6 = session.localAddress.includes(':') && !session.localAddress.startsWith('::ffff:');
    if ((a === '1' && ipv6) || (a === '2' && !ipv6)) throw new FtpError(522, `Network protocol not supported, use (${ipv6 ? 2 : 1}).`);
    const ch = await openPassive(session);
    session.reply(229, `Entering extended passive mode (|||${ch.port}|).`);
  },
};
