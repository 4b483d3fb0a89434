import { AuthenticationFailedError, AuthorizerUnavailableError } from '../../auth/errors';
import { LocalFileSystem } from '../../fs/local';
import { FtpError } from '../errors';
import { normalizeLimits } from '../user-limits';
import type { CommandDescriptor } from './types';

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const pass: CommandDescriptor = {
  verb: 'PASS',
  help: 'PASS [<sp> password] (set user password).',
  login: false,
  arg: 'optional',
  state: (s) => (s.state === 'ready' ? 'User already authenticated.' : s.state !== 'pass' ? 'Login with USER first.' : null),
  async handle({ session, arg }) {
    const user = session.pendingUser!;
    const { authorizer, authFailedTimeout, maxLoginAttempts } = session.options;
    try {
      await authorizer.validateAuthentication(user, arg, { address: session.remoteAddress, port: session.remotePort });
    } catch (err) {
      if (!(err instanceof AuthenticationFailedError)) {
        if (err instanceof AuthorizerUnavailableError) throw err;
        session.log.error({ err }, 'authorizer failed');
        throw new AuthorizerUnavailableError();
      }
      session.loginAttempts++;
      session.pendingUser = null;
      session.state = 'auth';
      session.log.info({ user }, 'login failed');
      session.ctx.emitLoginFailed(session, user);
      if (authFailedTimeout > 0) await delay(authFailedTimeout * 1000);
      if (session.loginAttempts >= maxLoginAttempts) {
        session.replyAndClose(530, 'Maximum login attempts. Disconnecting.');
        return;
      }
      throw new FtpError(530, 'Authentication failed.');
    }
    const home = await authorizer.getHomeDir(user);
    const factory = session.options.fileSystem;
    const fs = factory ? await factory(user, home) : new LocalFileSystem(home);
    try {
      if (fs.checkRoot) {
        await fs.checkRoot();
      } else {
        const st = await fs.stat('/');
        if (st.kind !== 'dir') throw new Error('home is not a directory');
      }
    } catch (err) {
      session.log.error({ err, user, home }, 'home directory unavailable');
      session.pendingUser = null;
      session.state = 'auth';
      throw new FtpError(530, 'Home directory not available.');
    }
    const msg = await authorizer.getMsgLogin(user);
    let limits = normalizeLimits(undefined);
    if (typeof authorizer.getLimits === 'function') {
      try {
        limits = normalizeLimits(await authorizer.getLimits(user));
      } catch (err) {
        session.log.error({ err, user }, 'authorizer failed to give the limits');
        session.pendingUser = null;
        session.state = 'auth';
        throw err instanceof AuthorizerUnavailableError ? err : new AuthorizerUnavailableError();
      }
    }
    // Nothing awaits from the slot to the login itself: two logins cannot both take the last slot.
    // (A shared counter answers later; it decides alone, so the same holds.)
    const slot = session.takeLoginSlot(user, limits);
    if (!(typeof slot === 'boolean' ? slot : await slot)) {
      session.pendingUser = null;
      session.state = 'auth';
      session.log.info({ user, maxSessions: limits.maxSessions }, 'login refused: too many sessions for this user');
      // As pyftpdlib's max_login handling: the connection stays, the client may try again later.
      throw new FtpError(530, 'Too many sessions for this user.');
    }
    session.user = user;
    session.pendingUser = null;
    session.fs = fs;
    session.cwd = '/';
    session.state = 'ready';
    session.loginAttempts = 0;
    session.logAs(user);
    session.reply(230, msg);
    session.ctx.emitLogin(session, user);
    if ((limits.quotaBytes ?? 0) > 0 || (limits.quotaFiles ?? 0) > 0) {
      // Measure the disk usage now, so that the first upload does not wait for it.
      session.ctx.userLimits.usage(user, fs).catch((err: unknown) => session.log.warn({ err }, 'disk usage could not be measured'));
    }
  },
};
