import test from 'ava';
import { ALL_PERMS } from '../../src/auth/types';
import { ALL, COMMANDS, buildRegistry, type CommandDescriptor } from '../../src/ftp/commands';
import { DURING_TRANSFER } from '../../src/ftp/session';

const stub = (verb: string, aliases?: string[]): CommandDescriptor => ({
  verb,
  aliases,
  help: `${verb} (test)`,
  login: false,
  arg: 'none',
  handle: () => {},
});

test('buildRegistry maps verbs and aliases to their module', (t) => {
  const a = stub('AAAA', ['XAAA']);
  const reg = buildRegistry([a, stub('BBBB')]);
  t.is(reg.get('AAAA'), a);
  t.is(reg.get('XAAA'), a);
  t.is(reg.size, 3);
});

test('buildRegistry fails when two modules claim one verb, aliases included', (t) => {
  t.throws(() => buildRegistry([stub('AAAA'), stub('AAAA')]), { message: /AAAA/ });
  t.throws(() => buildRegistry([stub('AAAA', ['XAAA']), stub('XAAA')]), { message: /XAAA/ });
});

test('every command: upper-case verb, a help line naming it, a valid permission letter', (t) => {
  for (const c of ALL) {
    t.regex(c.verb, /^[A-Z]{3,4}$/, c.verb);
    for (const a of c.aliases ?? []) t.regex(a, /^[A-Z]{3,4}$/, a);
    t.true(c.help.startsWith(c.verb), `${c.verb}: ${c.help}`);
    t.false(/[\r\n]/.test(c.help), c.verb);
    if (c.perm) t.true(ALL_PERMS.includes(c.perm), `${c.verb}: ${c.perm}`);
  }
});

test('commands served during a transfer are flagged in their descriptors, and only those', (t) => {
  const flagged = ALL.filter((c) => c.duringTransfer).map((c) => c.verb).sort();
  t.deepEqual(flagged, [...DURING_TRANSFER].sort());
  for (const c of ALL) t.false(Boolean(c.transfer && c.duringTransfer), c.verb);
});

test("pyftpdlib's letters on the verbs that carry them", (t) => {
  const expected: Record<string, string> = {
    CWD: 'e', XCWD: 'e', CDUP: 'e', XCUP: 'e',
    LIST: 'l', NLST: 'l', MLSD: 'l', MLST: 'l', SIZE: 'l', MDTM: 'l',
    RETR: 'r', APPE: 'a', DELE: 'd', RMD: 'd', XRMD: 'd', RNFR: 'f', RNTO: 'f',
    MKD: 'm', XMKD: 'm', STOR: 'w', STOU: 'w', MFMT: 'T',
  };
  for (const [verb, letter] of Object.entries(expected)) t.is(COMMANDS.get(verb)?.perm as string | undefined, letter, verb);
  for (const verb of ['USER', 'PASS', 'QUIT', 'NOOP', 'SYST', 'FEAT', 'HELP', 'PWD', 'TYPE', 'PASV', 'EPSV', 'PORT', 'EPRT', 'REST']) {
    t.is(COMMANDS.get(verb)?.perm, undefined, verb);
  }
});

test('commands that need no login are the ones a client sends before it', (t) => {
  const open = ALL.filter((c) => !c.login).map((c) => c.verb);
  for (const v of ['USER', 'PASS', 'QUIT', 'NOOP', 'SYST', 'FEAT', 'HELP', 'STAT', 'OPTS']) t.true(open.includes(v), v);
  for (const v of ['RETR', 'STOR', 'LIST', 'CWD', 'PASV', 'PORT', 'DELE', 'SITE', 'MKD']) t.false(open.includes(v), v);
});
