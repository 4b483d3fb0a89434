import { MLST_FACTS } from '../listing';
import type { CommandDescriptor } from './types';

export const feat: CommandDescriptor = {
  verb: 'FEAT',
  help: 'FEAT (list all new features supported).',
  login: false,
  arg: 'none',
  handle({ session }) {
    const facts = MLST_FACTS.map((f) => (session.mlstFacts.has(f) ? `${f}*;` : `${f};`)).join('');
    const tls = session.ctx.tls ? [' AUTH TLS', ' AUTH SSL', ' PBSZ', ' PROT'] : [];
    const lines = [
      'Features supported:',
      ...tls,
      ' CLNT',
      ' EPRT',
      ' EPSV',
      ' MDTM',
      ' MFMT',
      ` MLST ${facts}`,
      ' REST STREAM',
      ' SIZE',
      ' TVFS',
      ...(session.options.encoding === 'utf8' ? [' UTF8'] : []),
      'End FEAT.',
    ];
    session.reply(211, lines);
  },
};
