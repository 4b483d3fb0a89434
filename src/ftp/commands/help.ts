import { FtpError } from '../errors';
import type { CommandDescriptor } from './types';

export const help: CommandDescriptor = {
  verb: 'HELP',
  help: 'HELP [<sp> cmd] (show help).',
  login: false,
  arg: 'optional',
  duringTransfer: true,
  async handle({ session, arg }) {
    const { COMMANDS } = await import('./index');
    const want = arg.trim().toUpperCase();
    if (want) {
      const cmd = COMMANDS.get(want);
      if (!cmd) throw new FtpError(501, 'Unrecognized command.');
      session.reply(214, `Syntax: ${cmd.help}`);
      return;
    }
    const verbs = [...COMMANDS.keys()].sort();
    const rows: string[] = [];
    for (let i = 0; i < verbs.length; i += 8) rows.push(` ${verbs.slice(i, i + 8).map((v) => v.padEnd(6)).join(' ')}`);
    session.reply(214, ['The following commands are recognized:', ...rows, 'Help command successful.']);
  },
};
