import type { CommandDescriptor } from './types';

/** FileZilla announces itself with CLNT; we note it in the log. */
export const clnt: CommandDescriptor = {
  verb: 'CLNT',
  help: 'CLNT <sp> client-name (tell the server who you are).',
  login: false,
  arg: 'optional',
  handle({ session, arg }) {
    if (session.ctx.log.debug()) session.log.debug({ client: arg.slice(0, 100) }, 'client name');
    session.reply(200, 'Noted.');
  },
};
