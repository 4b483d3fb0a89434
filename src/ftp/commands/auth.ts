import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

/** AUTH TLS (RFC 4217); AUTH SSL and TLS-C are accepted as aliases, as FileZilla and curl may send them. */
export const auth: CommandDescriptor = {
  verb: 'AUTH',
  help: 'AUTH <sp> TLS|SSL (secure the control connection).',
  login: false,
  arg: 'required',
  async handle({ session, arg }) {
    const mech = arg.trim().toUpperCase();
    // A refusal releases the input held for the handshake (Session.execute does that).
    if (!session.ctx.tls) throw new FtpError(502, 'AUTH not supported: TLS is not configured.');
    if (session.secure) throw new FtpError(503, 'Already using TLS.');
    if (session.state !== 'auth') throw new FtpError(503, 'AUTH must come before USER.');
    if (mech !== 'TLS' && mech !== 'SSL' && mech !== 'TLS-C' && mech !== 'TLS-P') {
      throw new FtpError(504, 'Unrecognized AUTH type; use TLS.');
    }
    await session.upgradeControl();
  },
};
