// Permission letters through the wire, with pyftpdlib's meaning of each letter.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { Authorizer, PermLetter } from '../../src';
import type { LineClient } from '../helpers/line-client';
import { startServer, type TestServer } from '../helpers/server';
import { fetch, lines, loginAs, parseMlsx, upload } from './_support';

const ALL = 'elradfmwMT';
const PW = 'pw';

/** A server whose root holds a.txt, dir/ (with f.txt) and empty/; one user per missing letter plus 'all'. */
async function setup(t: ExecutionContext): Promise<TestServer> {
  const s = await startServer(t, { noUser: true });
  fs.writeFileSync(path.join(s.root, 'a.txt'), 'hello');
  fs.mkdirSync(path.join(s.root, 'dir'));
  fs.writeFileSync(path.join(s.root, 'dir', 'f.txt'), 'f');
  fs.mkdirSync(path.join(s.root, 'empty'));
  s.auth.addUser('all', PW, s.root, { perm: ALL });
  for (const letter of ALL) s.auth.addUser(`no-${letter}`, PW, s.root, { perm: ALL.replace(letter, '') });
  return s;
}

interface LetterCase {
  letter: string;
  /** Commands that need the letter: each returns the final reply code. */
  checks: Array<{ what: string; run: (c: LineClient, root: string) => Promise<number>; ok: number }>;
}

const cmd = (line: string) => async (c: LineClient) => (await c.cmd(line)).code;
const data = (line: string) => async (c: LineClient) => {
  const r = await fetch(c, line);
  return r.final?.code ?? r.first.code;
};
const up = (line: string) => async (c: LineClient) => {
  const r = await upload(c, line, 'data');
  return r.final?.code ?? r.first.code;
};
const binary = (line: string) => async (c: LineClient) => {
  await c.cmd('TYPE I');
  return (await c.cmd(line)).code;
};

const CASES: LetterCase[] = [
  { letter: 'e', checks: [{ what: 'CWD', run: cmd('CWD dir'), ok: 250 }, { what: 'CDUP', run: async (c) => (await c.cmd('CDUP')).code, ok: 250 }] },
  {
    letter: 'l',
    checks: [
      { what: 'LIST', run: data('LIST'), ok: 226 },
      { what: 'NLST', run: data('NLST dir'), ok: 226 },
      { what: 'MLSD', run: data('MLSD'), ok: 226 },
      { what: 'MLST', run: cmd('MLST a.txt'), ok: 250 },
      { what: 'SIZE', run: binary('SIZE a.txt'), ok: 213 },
      { what: 'MDTM', run: cmd('MDTM a.txt'), ok: 213 },
      { what: 'STAT path', run: cmd('STAT dir'), ok: 213 },
    ],
  },
  { letter: 'r', checks: [{ what: 'RETR', run: data('RETR a.txt'), ok: 226 }] },
  { letter: 'a', checks: [{ what: 'APPE', run: up('APPE a.txt'), ok: 226 }] },
  { letter: 'd', checks: [{ what: 'DELE', run: cmd('DELE a.txt'), ok: 250 }, { what: 'RMD', run: cmd('RMD empty'), ok: 250 }] },
  { letter: 'f', checks: [{ what: 'RNFR', run: cmd('RNFR a.txt'), ok: 350 }] },
  { letter: 'm', checks: [{ what: 'MKD', run: cmd('MKD newdir'), ok: 257 }] },
  { letter: 'w', checks: [{ what: 'STOR', run: up('STOR new.txt'), ok: 226 }, { what: 'STOU', run: up('STOU'), ok: 226 }] },
  { letter: 'M', checks: [{ what: 'SITE CHMOD', run: cmd('SITE CHMOD 600 a.txt'), ok: 200 }] },
  {
    letter: 'T',
    checks: [
      { what: 'MFMT', run: cmd('MFMT 20200101000000 a.txt'), ok: 213 },
      { what: 'MDTM set', run: cmd('MDTM 20200101000000 a.txt'), ok: 213 },
    ],
  },
];

for (const { letter, checks } of CASES) {
  for (const check of checks) {
    test(`'${letter}' governs ${check.what}: 550 without it, ${check.ok} with it`, async (t) => {
      const s = await setup(t);
      const without = await loginAs(t, s, `no-${letter}`, PW);
      t.is(await check.run(without, s.root), 550, `no-${letter}: ${check.what}`);
      t.is((await without.cmd('NOOP')).code, 200);
      const withIt = await loginAs(t, s, 'all', PW);
      t.is(await check.run(withIt, s.root), check.ok, `all: ${check.what}`);
    });
  }
}

test("refusals leave the disk alone (no 'w', 'd', 'm', 'f', 'M', 'T')", async (t) => {
  const s = await setup(t);
  const before = fs.statSync(path.join(s.root, 'a.txt'));
  const c = await loginAs(t, s, 'no-w', PW);
  t.is((await upload(c, 'STOR a.txt', 'overwritten')).first.code, 550);
  t.is(fs.readFileSync(path.join(s.root, 'a.txt'), 'utf8'), 'hello');
  t.false(fs.existsSync(path.join(s.root, 'new.txt')));
  const d = await loginAs(t, s, 'no-d', PW);
  t.is((await d.cmd('DELE a.txt')).code, 550);
  t.true(fs.existsSync(path.join(s.root, 'a.txt')));
  const m = await loginAs(t, s, 'no-m', PW);
  t.is((await m.cmd('MKD x')).code, 550);
  t.false(fs.existsSync(path.join(s.root, 'x')));
  const f = await loginAs(t, s, 'no-f', PW);
  t.is((await f.cmd('RNFR a.txt')).code, 550);
  t.is((await f.cmd('RNTO b.txt')).code, 503, 'the refused RNFR set nothing up');
  const mm = await loginAs(t, s, 'no-M', PW);
  t.is((await mm.cmd('SITE CHMOD 777 a.txt')).code, 550);
  const tt = await loginAs(t, s, 'no-T', PW);
  t.is((await tt.cmd('MDTM 20000101000000 a.txt')).code, 550);
  const after = fs.statSync(path.join(s.root, 'a.txt'));
  t.is(after.mode, before.mode);
  t.is(after.mtimeMs, before.mtimeMs);
});

test("RNTO needs 'f' on the destination too", async (t) => {
  const s = await setup(t);
  // 'f' everywhere except in /dir.
  s.auth.overridePerm('all', '/dir', 'elr', true);
  const c = await loginAs(t, s, 'all', PW);
  t.is((await c.cmd('RNFR a.txt')).code, 350);
  t.is((await c.cmd('RNTO dir/a.txt')).code, 550);
  t.true(fs.existsSync(path.join(s.root, 'a.txt')));
  t.is((await c.cmd('RNFR a.txt')).code, 350);
  t.is((await c.cmd('RNTO b.txt')).code, 250);
  t.true(fs.existsSync(path.join(s.root, 'b.txt')));
});

test('a non-recursive override grants letters in that directory only', async (t) => {
  const s = await startServer(t, { perm: 'elr' });
  fs.mkdirSync(path.join(s.root, 'uploads', 'deep'), { recursive: true });
  s.auth.overridePerm('demo', '/uploads', 'elrw', false);
  const c = await loginAs(t, s, 'demo', 'demo-password');
  t.is((await upload(c, 'STOR /uploads/x.txt', 'x')).final?.code, 226);
  t.true(fs.existsSync(path.join(s.root, 'uploads', 'x.txt')));
  t.is((await upload(c, 'STOR /top.txt', 'x')).first.code, 550, 'outside the override');
  t.is((await upload(c, 'STOR /uploads/deep/y.txt', 'y')).first.code, 550, 'below it: not recursive');
  t.is((await c.cmd('CWD uploads')).code, 250);
  t.is((await upload(c, 'STOR rel.txt', 'r')).final?.code, 226, 'relative paths are resolved before the check');
  t.false(fs.existsSync(path.join(s.root, 'top.txt')));
  t.false(fs.existsSync(path.join(s.root, 'uploads', 'deep', 'y.txt')));
  // STOU is checked at the file it creates, as STOR: in /uploads yes, in /uploads/deep no (it
  // was checked at the folder, which the override covers as an entry of /uploads).
  t.is((await upload(c, 'STOU', 'u')).final?.code, 226);
  t.is((await c.cmd('CWD deep')).code, 250);
  t.is((await upload(c, 'STOU', 'v')).first.code, 550, 'STOU below the override');
  t.deepEqual(fs.readdirSync(path.join(s.root, 'uploads', 'deep')), []);
});

test('MLST and MLSD give a folder below a non-recursive override the letters enforced in it', async (t) => {
  const s = await startServer(t, { perm: 'elr' });
  fs.mkdirSync(path.join(s.root, 'box', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(s.root, 'box', 'sub', 'x'), 'x');
  s.auth.overridePerm('demo', '/box', 'elradfmw', false);
  const c = await loginAs(t, s, 'demo', 'demo-password');
  // The override covers box/sub as an entry of /box (RNFR, RMD of it), not the names inside it,
  // where the base letters 'elr' apply: no STOR (c), MKD (m) or DELE (p) there.
  t.is((await c.cmd('DELE box/sub/x')).code, 550, 'DELE inside');
  t.is((await upload(c, 'STOR box/sub/y', 'y')).first.code, 550, 'STOR inside');
  t.is((await c.cmd('MKD box/sub/z')).code, 550, 'MKD inside');
  t.is((await c.cmd('RNFR box/sub')).code, 350, 'RNFR of the folder');
  t.is((await c.cmd('CWD box/sub')).code, 250);
  t.is((await c.cmd('CWD /')).code, 250);
  t.deepEqual(fs.readdirSync(path.join(s.root, 'box', 'sub')), ['x']);
  const r = await c.cmd('MLST box/sub');
  t.is(r.code, 250, `${r.code} ${r.text}`);
  const { facts } = parseMlsx(r.lines[1].slice(1));
  t.is(facts.perm, 'defl', `MLST perm=${facts.perm}`);
  const listed = await fetch(c, 'MLSD box');
  t.is(listed.final?.code, 226);
  const sub = lines(listed.data).map(parseMlsx).find((e) => e.name === 'sub');
  t.is(sub?.facts.perm, 'defl', `MLSD perm=${sub?.facts.perm}`);
});

test('a recursive override grants letters in the whole subtree', async (t) => {
  const s = await startServer(t, { perm: 'elr' });
  fs.mkdirSync(path.join(s.root, 'uploads', 'deep'), { recursive: true });
  s.auth.overridePerm('demo', '/uploads', 'elrwm', true);
  const c = await loginAs(t, s, 'demo', 'demo-password');
  t.is((await upload(c, 'STOR /uploads/deep/y.txt', 'y')).final?.code, 226);
  t.is((await c.cmd('MKD /uploads/deep/more')).code, 257);
  t.is((await c.cmd('MKD /elsewhere')).code, 550);
  t.is((await upload(c, 'STOR ../top.txt', 'x')).first.code, 550);
});

test('an override can take letters away: a read-only subtree for a full user', async (t) => {
  const s = await startServer(t);
  fs.mkdirSync(path.join(s.root, 'ro', 'inner'), { recursive: true });
  fs.writeFileSync(path.join(s.root, 'ro', 'inner', 'keep.txt'), 'keep');
  fs.writeFileSync(path.join(s.root, 'free.txt'), 'free');
  s.auth.overridePerm('demo', '/ro', 'elr', true);
  const c = await loginAs(t, s, 'demo', 'demo-password');
  t.is((await c.cmd('DELE /ro/inner/keep.txt')).code, 550);
  t.is((await c.cmd('CWD /ro/inner')).code, 250);
  t.is((await c.cmd('DELE keep.txt')).code, 550);
  t.is((await upload(c, 'STOR new.txt', 'n')).first.code, 550);
  t.is((await fetch(c, 'RETR keep.txt')).data.toString(), 'keep', 'reading still works');
  t.is((await c.cmd('DELE /free.txt')).code, 250, 'outside the override the base letters apply');
  t.true(fs.existsSync(path.join(s.root, 'ro', 'inner', 'keep.txt')));
});

test('a folder holding an override cannot be renamed out from under it (550); the override folder itself, files, and other folders can', async (t) => {
  const s = await startServer(t);
  fs.mkdirSync(path.join(s.root, 'a', 'private'), { recursive: true });
  fs.writeFileSync(path.join(s.root, 'a', 'private', 'keep.txt'), 'keep');
  fs.mkdirSync(path.join(s.root, 'a', 'open'));
  fs.mkdirSync(path.join(s.root, 'b'));
  fs.writeFileSync(path.join(s.root, 'a', 'note.txt'), 'n');
  // Read-only below /a/private; 'f' there too, so that the folder itself may be renamed.
  s.auth.overridePerm('demo', '/a/private', 'elrf', true);
  const c = await loginAs(t, s, 'demo', 'demo-password');
  // Renaming /a (or moving it into /b) would leave /a/private's files writable at /b/private.
  const refused = await c.cmd('RNFR /a');
  t.is(refused.code, 550, refused.text);
  t.is((await c.cmd('RNTO /b/a')).code, 503, 'no RNFR in force');
  t.is((await c.cmd('CWD /a')).code, 250);
  t.is((await c.cmd('RNFR .')).code, 550, 'the same folder by another spelling');
  t.is((await c.cmd('CWD /')).code, 250);
  t.true(fs.existsSync(path.join(s.root, 'a', 'private', 'keep.txt')));
  t.is((await c.cmd('DELE /a/private/keep.txt')).code, 550, 'still read-only');
  // What holds no override moves as before.
  t.is((await c.cmd('RNFR /a/open')).code, 350);
  t.is((await c.cmd('RNTO /b/open')).code, 250);
  t.is((await c.cmd('RNFR /a/note.txt')).code, 350);
  t.is((await c.cmd('RNTO /b/note.txt')).code, 250);
  // The override's own folder: its letters decide (here they include 'f').
  t.is((await c.cmd('RNFR /a/private')).code, 350);
  t.is((await c.cmd('RNTO /a/private2')).code, 250);
});

test('a folder cannot be moved to where an override lies below the destination (553): its contents would take that override\'s letters', async (t) => {
  const s = await startServer(t);
  fs.mkdirSync(path.join(s.root, 'x', 'drop'), { recursive: true });
  fs.writeFileSync(path.join(s.root, 'x', 'drop', 'f.txt'), 'f');
  fs.writeFileSync(path.join(s.root, 'x.txt'), 'x');
  // A base without 'd'; the override grants it in /c/drop (a folder not made yet).
  s.auth.addUser('nod', 'pw', s.root, { perm: 'elrafmw' });
  s.auth.overridePerm('nod', '/c/drop', 'elradfmw', true);
  const c = await loginAs(t, s, 'nod', 'pw');
  t.is((await c.cmd('DELE /x/drop/f.txt')).code, 550, "no 'd' where it is");
  t.is((await c.cmd('RNFR /x')).code, 350);
  const moved = await c.cmd('RNTO /c');
  t.is(moved.code, 553, moved.text);
  t.true(fs.existsSync(path.join(s.root, 'x', 'drop', 'f.txt')), 'not moved');
  // A file may go there (RNTO's 'f' on the destination decides), and a folder elsewhere.
  t.is((await c.cmd('RNFR /x')).code, 350);
  t.is((await c.cmd('RNTO /y')).code, 250);
  t.is((await c.cmd('MKD /c')).code, 257);
  t.is((await c.cmd('RNFR /x.txt')).code, 350);
  t.is((await c.cmd('RNTO /c/x.txt')).code, 250);
});

test('anonymous is read-only by default', async (t) => {
  const s = await startServer(t, { noUser: true });
  fs.writeFileSync(path.join(s.root, 'pub.txt'), 'public');
  s.auth.addAnonymous(s.root);
  const c = await loginAs(t, s, 'anonymous', 'guest@example.com');
  t.is((await fetch(c, 'RETR pub.txt')).data.toString(), 'public');
  t.is((await fetch(c, 'NLST')).final?.code, 226);
  t.is((await c.cmd('CWD /')).code, 250);
  t.is((await upload(c, 'STOR up.txt', 'x')).first.code, 550);
  t.is((await upload(c, 'APPE pub.txt', 'x')).first.code, 550);
  t.is((await c.cmd('MKD d')).code, 550);
  t.is((await c.cmd('DELE pub.txt')).code, 550);
  t.is((await c.cmd('RNFR pub.txt')).code, 550);
  t.is((await c.cmd('SITE CHMOD 777 pub.txt')).code, 550);
  t.is((await c.cmd('MFMT 20000101000000 pub.txt')).code, 550);
  t.deepEqual(fs.readdirSync(s.root), ['pub.txt']);
  t.is(fs.readFileSync(path.join(s.root, 'pub.txt'), 'utf8'), 'public');
});

test('an authorizer whose hasPerm answers with a promise: the same refusals and grants, and a failed answer is a 451', async (t) => {
  const { VirtualAuthorizer } = await import('../../src');
  const inner = new VirtualAuthorizer({ allowPlaintextPasswords: true });
  // The same users, whose hasPerm answers a turn later; for the user "broken", fails.
  const later = (user: string, perm: PermLetter, p: string): Promise<boolean> => {
    const answer = inner.hasPerm(user, perm, p);
    return new Promise((resolve, reject) => setImmediate(() => (user === 'broken' ? reject(new Error('permission store down')) : resolve(answer))));
  };
  const auth: Authorizer = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'hasPerm') return later;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const s = await startServer(t, { authorizer: auth });
  fs.writeFileSync(path.join(s.root, 'a.txt'), 'hello');
  inner.addUser('all', PW, s.root, { perm: ALL });
  inner.addUser('no-r', PW, s.root, { perm: ALL.replace('r', '') });
  inner.addUser('no-w', PW, s.root, { perm: ALL.replace('w', '') });
  inner.addUser('broken', PW, s.root, { perm: ALL });
  const all = await loginAs(t, s, 'all', PW);
  t.is((await fetch(all, 'RETR a.txt')).final?.code, 226);
  t.is((await upload(all, 'STOR b.txt', 'data')).final?.code, 226);
  t.is((await all.cmd('MKD d')).code, 257);
  const noR = await loginAs(t, s, 'no-r', PW);
  t.is((await fetch(noR, 'RETR a.txt')).first.code, 550);
  const noW = await loginAs(t, s, 'no-w', PW);
  t.is((await upload(noW, 'STOR c.txt', 'data')).first.code, 550);
  t.false(fs.existsSync(path.join(s.root, 'c.txt')));
  const broken = await loginAs(t, s, 'broken', PW);
  t.is((await broken.cmd('DELE a.txt')).code, 451);
  t.true(fs.existsSync(path.join(s.root, 'a.txt')));
  t.is((await broken.cmd('NOOP')).code, 200);
});
