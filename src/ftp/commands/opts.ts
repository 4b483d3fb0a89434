import { FtpError } from '../errors';
import { MLST_FACTS } from '../listing';
import type { CommandDescriptor } from './types';

export const opts: CommandDescriptor = {
  verb: 'OPTS',
  help: 'OPTS <sp> option [<sp> value] (set option: UTF8 ON, MLST facts).',
  login: false,
  arg: 'required',
  handle({ session, arg }) {
    const sp = arg.indexOf(' ');
    const name = (sp === -1 ? arg : arg.slice(0, sp)).toUpperCase();
    const value = sp === -1 ? '' : arg.slice(sp + 1).trim();
    if (name === 'UTF8' || name === 'UTF-8') {
      const v = value.toUpperCase();
      if (session.options.encoding !== 'utf8') throw new FtpError(504, 'UTF8 is not enabled on this server.');
      if (v === 'ON' || v === '') session.reply(200, 'Always in UTF8 mode.');
      else if (v === 'OFF') throw new FtpError(504, 'Only UTF8 mode is supported.');
      else throw new FtpError(501, 'Invalid argument for OPTS UTF8.');
      return;
    }
    if (name === 'MLST') {
      const wanted = value
        .split(';')
        .map((f) => f.trim().toLowerCase())
        .filter((f) => (MLST_FACTS as readonly string[]).includes(f));
      session.mlstFacts = new Set(wanted);
      session.reply(200, `MLST OPTS ${wanted.map((f) => `${f};`).join('')}`);
      return;
    }
    throw new FtpError(501, 'Invalid OPTS argument.');
  },
};
