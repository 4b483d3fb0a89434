import type { CommandDescriptor } from './types';
import { abor } from './abor';
import { acct } from './acct';
import { allo } from './allo';
import { appe } from './appe';
import { auth } from './auth';
import { ccc } from './ccc';
import { cdup } from './cdup';
import { clnt } from './clnt';
import { cwd } from './cwd';
import { dele } from './dele';
import { eprt } from './eprt';
import { epsv } from './epsv';
import { feat } from './feat';
import { help } from './help';
import { list } from './list';
import { mdtm } from './mdtm';
import { mfmt } from './mfmt';
import { mkd } from './mkd';
import { mlsd } from './mlsd';
import { mlst } from './mlst';
import { mode } from './mode';
import { nlst } from './nlst';
import { noop } from './noop';
import { opts } from './opts';
import { pass } from './pass';
import { pbsz } from './pbsz';
import { prot } from './prot';
import { pasv } from './pasv';
import { port } from './port';
import { pwd } from './pwd';
import { quit } from './quit';
import { rein } from './rein';
import { rest } from './rest';
import { retr } from './retr';
import { rmd } from './rmd';
import { rnfr } from './rnfr';
import { rnto } from './rnto';
import { site } from './site';
import { size } from './size';
import { stat } from './stat';
import { stor } from './stor';
import { stou } from './stou';
import { stru } from './stru';
import { syst } from './syst';
import { type } from './type';
import { user } from './user';

export const ALL: readonly CommandDescriptor[] = [
  abor, acct, allo, appe, auth, ccc, cdup, clnt, cwd, dele, eprt, epsv, feat, help, list, mdtm, mfmt, mkd, mlsd, mlst,
  mode, nlst, noop, opts, pass, pasv, pbsz, port, prot, pwd, quit, rein, rest, retr, rmd, rnfr, rnto, site, size, stat,
  stor, stou, stru, syst, type, user,
];

/** Verb (and alias) → descriptor. Built once; two modules claiming one verb fail at load time. */
export function buildRegistry(cmds: readonly CommandDescriptor[]): ReadonlyMap<string, CommandDescriptor> {
  const map = new Map<string, CommandDescriptor>();
  for (const c of cmds) {
    for (const v of [c.verb, ...(c.aliases ?? [])]) {
      if (map.has(v)) throw new Error(`Two command modules claim the verb ${v}`);
      map.set(v, c);
    }
  }
  return map;
}

export const COMMANDS = buildRegistry(ALL);
export type { CommandDescriptor, CommandContext } from './types';
