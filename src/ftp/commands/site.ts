import { FtpError } from '../errors';
import { SITE_COMMANDS } from './site/index';
import type { CommandDescriptor } from './types';

/** SITE <sub> [args]: dispatches to the modules in site/. */
export const site: CommandDescriptor = {
  verb: 'SITE',
  help: 'SITE <sp> site-command (SITE HELP lists them).',
  login: true,
  arg: 'required',
  async handle(ctx) {
    const sp = ctx.arg.indexOf(' ');
    const sub = (sp === -1 ? ctx.arg : ctx.arg.slice(0, sp)).toUpperCase();
    const rest = sp === -1 ? '' : ctx.arg.slice(sp + 1);
    if (sub !== 'CPTO') ctx.session.copyFrom = null;
    const cmd = SITE_COMMANDS.get(sub);
    if (!cmd || cmd.enabled?.(ctx.session) === false) throw new FtpError(500, 'Unknown SITE command.');
    await cmd.handle({ ...ctx, verb: `SITE ${sub}`, arg: rest });
  },
};
