// Every verb of the registry, through a real loopback socket.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { COMMANDS } from '../../src/ftp/commands';
import { LineClient, readAll } from '../helpers/line-client';
import { PASS, startServer, USER } from '../helpers/server';
import { activeListener, fetch, lines, loggedIn, loginAs, parseMlsx, upload } from './_support';

const MTIME = new Date(Date.UTC(2020, 0, 2, 3, 4, 5));
const LIST_LINE = /^([-dl][-rwxsStT]{9}) +\d+ +\S+ +\S+ +(\d+) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d (\d\d:\d\d| \d{4}) (.+)$/;

/** a.txt ("hello", 0644, MTIME), sub/ with inner.txt. */
function seed(root: string): void {
  fs.writeFileSync(path.join(root, 'a.txt'), 'hello');
  fs.chmodSync(path.join(root, 'a.txt'), 0o644);
  fs.utimesSync(path.join(root, 'a.txt'), MTIME, MTIME);
  fs.mkdirSync(path.join(root, 'sub'));
  fs.chmodSync(path.join(root, 'sub'), 0o755);
  fs.writeFileSync(path.join(root, 'sub', 'inner.txt'), 'inner');
}

test('the registry holds every verb this suite covers (aliases included)', (t) => {
  const verbs = [
    'ABOR', 'ACCT', 'ALLO', 'APPE', 'CDUP', 'XCUP', 'CLNT', 'CWD', 'XCWD', 'DELE', 'EPRT', 'EPSV', 'FEAT', 'HELP',
    'LIST', 'MDTM', 'MFMT', 'MKD', 'XMKD', 'MLSD', 'MLST', 'MODE', 'NLST', 'NOOP', 'OPTS', 'PASS', 'PASV', 'PORT',
    'PWD', 'XPWD', 'QUIT', 'REIN', 'REST', 'RETR', 'RMD', 'XRMD', 'RNFR', 'RNTO', 'SITE', 'SIZE', 'STAT', 'STOR',
    'STOU', 'STRU', 'SYST', 'TYPE', 'USER',
  ];
  t.deepEqual(verbs.filter((v) => !COMMANDS.has(v)), []);
});

test('ACCT is not implemented (502); CLNT is noted (200)', async (t) => {
  const { c } = await loggedIn(t);
  t.is((await c.cmd('ACCT whatever')).code, 502);
  t.is((await c.cmd('CLNT FileZilla')).code, 200);
});

test('REIN logs out: 220, then commands need a login again, and a new login works', async (t) => {
  const { c } = await loggedIn(t);
  t.is((await c.cmd('TYPE I')).code, 200);
  t.is((await c.cmd('REIN')).code, 220);
  t.is((await c.cmd('PWD')).code, 530);
  await c.login('demo', 'demo-password');
  t.is((await c.cmd('PWD')).text, '"/" is the current directory.');
  // REIN resets TYPE to ASCII.
  t.regex((await c.cmd('STAT')).lines.join('\n'), /TYPE: ASCII/);
});

test('QUIT answers 221 and closes the connection', async (t) => {
  const { c } = await loggedIn(t);
  const r = await c.cmd('QUIT');
  t.is(r.code, 221);
  await c.whenClosed();
  t.true(c.closed);
});

test('QUIT sent right behind a RETR that fails: the 550 comes first, then 221', async (t) => {
  // The QUIT arrives while the RETR is still looking for its file, and waits for it to answer.
  const { c } = await loggedIn(t);
  t.is((await c.cmd('EPSV')).code, 229);
  c.send('RETR no-such-file\r\nQUIT\r\n');
  t.like(await c.read(), { code: 550 });
  t.like(await c.read(), { code: 221 });
  await c.whenClosed();
});

test('NOOP, STAT and HELP sent right behind a RETR are answered after its first reply, in order', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'f.bin'), 'x'.repeat(1000));
  t.is((await c.cmd('EPSV')).code, 229);
  c.send('RETR no-such-file\r\nNOOP\r\nSTAT\r\nHELP NOOP\r\n');
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await c.read())?.code);
  t.deepEqual(codes, [550, 200, 211, 214]);
  t.is((await c.cmd('TYPE I')).code, 200);
  const data = await c.epsvConnect();
  c.send('RETR f.bin\r\nNOOP\r\n');
  const first = await c.read();
  t.true(first?.code === 125 || first?.code === 150, `first reply ${first?.code}`);
  t.is((await readAll(data)).length, 1000);
  // The NOOP may be answered during the transfer or after its 226, never before its 125.
  const rest = [(await c.read())?.code, (await c.read())?.code].sort();
  t.deepEqual(rest, [200, 226]);
});

test('CWD, XCWD, PWD, XPWD, CDUP, XCUP move around and report the directory', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  fs.mkdirSync(path.join(s.root, 'sub', 'deep'));
  let r = await c.cmd('CWD sub');
  t.is(r.code, 250);
  t.is((await c.cmd('PWD')).text, '"/sub" is the current directory.');
  t.is((await c.cmd('XCWD deep')).code, 250);
  t.is((await c.cmd('XPWD')).text, '"/sub/deep" is the current directory.');
  t.is((await c.cmd('CDUP')).code, 250);
  t.is((await c.cmd('PWD')).text, '"/sub" is the current directory.');
  t.is((await c.cmd('XCUP')).code, 250);
  t.is((await c.cmd('PWD')).text, '"/" is the current directory.');
  // CDUP at the root stays at the root.
  t.is((await c.cmd('CDUP')).code, 250);
  t.is((await c.cmd('PWD')).text, '"/" is the current directory.');
  // CWD with an absolute path, and CWD with no argument goes home.
  t.is((await c.cmd('CWD /sub/deep')).code, 250);
  t.is((await c.cmd('CWD')).code, 250);
  t.is((await c.cmd('PWD')).text, '"/" is the current directory.');
  // Missing directory and a file: 550, cwd unchanged.
  t.is((await c.cmd('CWD nope')).code, 550);
  r = await c.cmd('CWD a.txt');
  t.is(r.code, 550);
  t.is((await c.cmd('PWD')).text, '"/" is the current directory.');
  // PWD takes no argument.
  t.is((await c.cmd('PWD x')).code, 501);
});

test('MKD and XMKD create directories and answer 257 with the quoted path', async (t) => {
  const { s, c } = await loggedIn(t);
  let r = await c.cmd('MKD made');
  t.is(r.code, 257);
  t.is(r.text, '"/made" directory created.');
  t.true(fs.statSync(path.join(s.root, 'made')).isDirectory());
  r = await c.cmd('XMKD made/inner');
  t.is(r.code, 257);
  t.is(r.text, '"/made/inner" directory created.');
  t.true(fs.statSync(path.join(s.root, 'made', 'inner')).isDirectory());
  t.is((await c.cmd('MKD made')).code, 550, 'existing directory');
  t.is((await c.cmd('MKD missing/parent/x')).code, 550, 'missing parent');
  t.is((await c.cmd('MKD')).code, 501);
});

test('a quote in a directory name is doubled in 257 replies (RFC 959)', async (t) => {
  const { s, c } = await loggedIn(t);
  const r = await c.cmd('MKD say "hi"');
  t.is(r.code, 257);
  t.is(r.text, '"/say ""hi""" directory created.');
  t.true(fs.statSync(path.join(s.root, 'say "hi"')).isDirectory());
  t.is((await c.cmd('CWD say "hi"')).code, 250);
  t.is((await c.cmd('PWD')).text, '"/say ""hi""" is the current directory.');
});

test('RMD and XRMD remove empty directories only', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  fs.mkdirSync(path.join(s.root, 'e1'));
  fs.mkdirSync(path.join(s.root, 'e2'));
  t.is((await c.cmd('RMD e1')).code, 250);
  t.false(fs.existsSync(path.join(s.root, 'e1')));
  t.is((await c.cmd('XRMD /e2')).code, 250);
  t.false(fs.existsSync(path.join(s.root, 'e2')));
  t.is((await c.cmd('RMD sub')).code, 550, 'not empty');
  t.true(fs.existsSync(path.join(s.root, 'sub', 'inner.txt')));
  t.is((await c.cmd('RMD a.txt')).code, 550, 'a file');
  t.is((await c.cmd('RMD nope')).code, 550, 'missing');
  t.is((await c.cmd('RMD /')).code, 550, 'the root');
  t.true(fs.existsSync(s.root));
});

test('DELE removes files, never directories', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  t.is((await c.cmd('DELE a.txt')).code, 250);
  t.false(fs.existsSync(path.join(s.root, 'a.txt')));
  t.is((await c.cmd('DELE a.txt')).code, 550, 'already gone');
  t.is((await c.cmd('DELE sub')).code, 550, 'a directory');
  t.true(fs.existsSync(path.join(s.root, 'sub')));
  t.is((await c.cmd('DELE /sub/inner.txt')).code, 250);
});

test('RNFR then RNTO renames; RNFR of a missing path is 550', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  t.is((await c.cmd('RNFR a.txt')).code, 350);
  t.is((await c.cmd('RNTO sub/b.txt')).code, 250);
  t.false(fs.existsSync(path.join(s.root, 'a.txt')));
  t.is(fs.readFileSync(path.join(s.root, 'sub', 'b.txt'), 'utf8'), 'hello');
  // A directory can be renamed too.
  t.is((await c.cmd('RNFR sub')).code, 350);
  t.is((await c.cmd('RNTO moved')).code, 250);
  t.true(fs.existsSync(path.join(s.root, 'moved', 'b.txt')));
  t.is((await c.cmd('RNFR nope')).code, 550);
  t.is((await c.cmd('RNTO x')).code, 503, 'a failed RNFR leaves nothing to rename');
});

test('LIST sends ls -l lines; -a, -l and -la are ignored', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const r = await fetch(c, 'LIST');
  t.is(r.first.code < 200, true);
  t.is(r.final?.code, 226);
  const ls = lines(r.data);
  t.is(ls.length, 2);
  const [file, dir] = ls.map((l) => LIST_LINE.exec(l));
  t.truthy(file, ls[0]);
  t.truthy(dir, ls[1]);
  t.is(file![1], '-rw-r--r--');
  t.is(file![2], '5');
  t.is(file![3], 'Jan');
  t.is(file![4], ' 2020', 'old files show the year');
  t.is(file![5], 'a.txt');
  t.is(dir![1], 'drwxr-xr-x');
  t.is(dir![5], 'sub');
  for (const flags of ['-a', '-l', '-la', '-al']) {
    const again = await fetch(c, `LIST ${flags}`);
    t.is(again.final?.code, 226, flags);
    t.deepEqual(lines(again.data), ls, `LIST ${flags}`);
  }
  const sub = await fetch(c, 'LIST -la sub');
  t.is(sub.final?.code, 226);
  t.regex(lines(sub.data)[0], / inner\.txt$/);
});

test('LIST of a file lists that file; LIST of a missing path is 550', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const r = await fetch(c, 'LIST sub/inner.txt');
  t.is(r.final?.code, 226);
  const ls = lines(r.data);
  t.is(ls.length, 1);
  t.regex(ls[0], LIST_LINE);
  t.true(ls[0].endsWith(' inner.txt'));
  const missing = await fetch(c, 'LIST nope');
  t.is(missing.first.code, 550);
  t.is(missing.final, null);
  t.is((await c.cmd('NOOP')).code, 200);
});

test('NLST sends bare names', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  let r = await fetch(c, 'NLST');
  t.is(r.final?.code, 226);
  t.deepEqual(lines(r.data), ['a.txt', 'sub']);
  r = await fetch(c, 'NLST sub');
  t.deepEqual(lines(r.data), ['inner.txt']);
  fs.mkdirSync(path.join(s.root, 'empty'));
  r = await fetch(c, 'NLST empty');
  t.is(r.final?.code, 226);
  t.deepEqual(lines(r.data), []);
  t.is((await fetch(c, 'NLST nope')).first.code, 550);
});

test('MLSD sends type, size, modify (UTC), perm, unique and unix.mode facts', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const r = await fetch(c, 'MLSD');
  t.is(r.final?.code, 226);
  const entries = lines(r.data).map(parseMlsx);
  t.deepEqual(entries.map((e) => e.name), ['a.txt', 'sub']);
  const [file, dir] = entries;
  const st = fs.statSync(path.join(s.root, 'a.txt'));
  t.deepEqual(file.facts, {
    type: 'file',
    size: '5',
    modify: '20200102030405',
    perm: 'adfrw',
    unique: `${st.dev.toString(16)}g${st.ino.toString(16)}`,
    'unix.mode': '0644',
  });
  t.is(dir.facts.type, 'dir');
  t.false('size' in dir.facts, 'no size fact for directories');
  t.is(dir.facts.perm, 'cdeflmp');
  t.is(dir.facts['unix.mode'], '0755');
  // MLSD of a file is refused (RFC 3659: the argument is a directory).
  t.is((await fetch(c, 'MLSD a.txt')).first.code, 501);
  t.is((await fetch(c, 'MLSD nope')).first.code, 550);
});

test('MLST answers on the control connection', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const r = await c.cmd('MLST a.txt');
  t.is(r.code, 250);
  t.is(r.lines.length, 3);
  t.true(r.lines[1].startsWith(' '), 'the fact line starts with a space');
  const { facts, name } = parseMlsx(r.lines[1].slice(1));
  t.is(facts.type, 'file');
  t.is(facts.size, '5');
  t.is(facts.modify, '20200102030405');
  t.is(name, '/a.txt');
  const dir = await c.cmd('MLST');
  t.is(dir.code, 250);
  t.regex(dir.lines[1], /^ type=dir;/);
  t.is((await c.cmd('MLST nope')).code, 550);
});

test('STAT without an argument is 211 server status, before and after login', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  let r = await c.cmd('STAT');
  t.is(r.code, 211);
  t.true(r.lines.length > 2);
  t.true(r.lines.some((l) => l.includes('Waiting for username')));
  await c.login('demo', 'demo-password');
  r = await c.cmd('STAT');
  t.is(r.code, 211);
  t.true(r.lines.some((l) => l.includes('Logged in as: demo')));
  t.is((await c.cmd('STAT /')).code, 213);
});

test('STAT path lists over the control connection (213); missing path is 550', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const r = await c.cmd('STAT /');
  t.is(r.code, 213);
  const body = r.lines.slice(1, -1).map((l) => l.trim());
  t.is(body.length, 2);
  t.regex(body[0], LIST_LINE);
  t.true(body[0].endsWith(' a.txt'));
  t.true(body[1].endsWith(' sub'));
  const f = await c.cmd('STAT sub/inner.txt');
  t.is(f.code, 213);
  t.true(f.lines.some((l) => l.endsWith(' inner.txt')));
  t.is((await c.cmd('STAT nope')).code, 550);
});

/** Upload 1000 bytes, hold the data connection open, and ask STAT until the bytes show. */
async function statDuringTransfer(t: ExecutionContext, type: 'A' | 'I'): Promise<void> {
  const { s, c } = await loggedIn(t);
  t.is((await c.cmd(`TYPE ${type}`)).code, 200);
  const sock = await c.epsvConnect();
  const first = await c.cmd('STOR up.bin');
  t.true(first.code >= 100 && first.code < 200);
  sock.write(Buffer.alloc(1000, 7));
  let st = await c.cmd('STAT');
  t.is(st.code, 213);
  t.true(st.lines.some((l) => l.includes('STOR /up.bin')), st.lines.join('|'));
  // Progress is reported as bytes arrive: ask until it shows up (or give up after 2 s).
  const deadline = Date.now() + 2000;
  while (!st.lines.some((l) => /Bytes transferred: [1-9]/.test(l)) && Date.now() < deadline) st = await c.cmd('STAT');
  t.true(st.lines.some((l) => l.includes('Bytes transferred: 1000')), st.lines.join('|'));
  sock.end(Buffer.alloc(24, 7));
  t.is((await c.read())?.code, 226);
  t.is(fs.statSync(path.join(s.root, 'up.bin')).size, 1024);
  // After the transfer, STAT is the plain status again.
  t.is((await c.cmd('STAT')).code, 211);
}

test('STAT during a TYPE A upload reports the transfer and its bytes', (t) => statDuringTransfer(t, 'A'));

test('STAT during a TYPE I upload reports the transfer and its bytes (default engine)', (t) => statDuringTransfer(t, 'I'));

test('SIZE is 213 in TYPE I and refused in TYPE A; not for directories', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  t.is((await c.cmd('SIZE a.txt')).code, 550, 'TYPE A is the default');
  t.is((await c.cmd('TYPE I')).code, 200);
  const r = await c.cmd('SIZE a.txt');
  t.is(r.code, 213);
  t.is(r.text, '5');
  t.is((await c.cmd('SIZE sub')).code, 550);
  t.is((await c.cmd('SIZE nope')).code, 550);
  t.is((await c.cmd('SIZE')).code, 501);
});

test('MDTM reads the time in UTC, and MDTM YYYYMMDDHHMMSS path sets it', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  let r = await c.cmd('MDTM a.txt');
  t.is(r.code, 213);
  t.is(r.text, '20200102030405');
  r = await c.cmd('MDTM 20211231235958 a.txt');
  t.is(r.code, 213);
  t.is(fs.statSync(path.join(s.root, 'a.txt')).mtime.getTime(), Date.UTC(2021, 11, 31, 23, 59, 58));
  t.is((await c.cmd('MDTM a.txt')).text, '20211231235958');
  t.is((await c.cmd('MDTM sub')).code, 550);
  t.is((await c.cmd('MDTM nope')).code, 550);
  // A file whose name starts with a time and a space is read, not taken as "set a.txt's time".
  const odd = path.join(s.root, '20240101120000 a.txt');
  fs.writeFileSync(odd, 'x');
  fs.utimesSync(odd, new Date(Date.UTC(2021, 5, 15, 10)), new Date(Date.UTC(2021, 5, 15, 10)));
  r = await c.cmd('MDTM 20240101120000 a.txt');
  t.is(r.code, 213);
  t.is(r.text, '20210615100000');
  t.is((await c.cmd('MDTM a.txt')).text, '20211231235958', "a.txt's time unchanged");
});

test('MFMT sets the modification time; bad time is 501', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const r = await c.cmd('MFMT 20190304050607 a.txt');
  t.is(r.code, 213);
  t.regex(r.text, /^Modify=20190304050607;/);
  t.is(fs.statSync(path.join(s.root, 'a.txt')).mtime.getTime(), Date.UTC(2019, 2, 4, 5, 6, 7));
  t.is((await c.cmd('MFMT 2019 a.txt')).code, 501);
  t.is((await c.cmd('MFMT 20191304050607 a.txt')).code, 501, 'month 13');
  t.is((await c.cmd('MFMT 20190304050607')).code, 501, 'no path');
  t.is((await c.cmd('MFMT 20190304050607 nope')).code, 550);
  t.is((await c.cmd('MFMT 20190304050607 sub')).code, 550);
});

test('REST: 501 for non-numbers, resumes RETR at the offset, 554 beyond the end, consumed once', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  t.is((await c.cmd('TYPE I')).code, 200);
  t.is((await c.cmd('REST abc')).code, 501);
  t.is((await c.cmd('REST -1')).code, 501);
  t.is((await c.cmd('REST 2')).code, 350);
  let r = await fetch(c, 'RETR a.txt');
  t.is(r.final?.code, 226);
  t.is(r.data.toString(), 'llo');
  r = await fetch(c, 'RETR a.txt');
  t.is(r.data.toString(), 'hello', 'the offset was consumed by the first RETR');
  t.is((await c.cmd('REST 5')).code, 350);
  r = await fetch(c, 'RETR a.txt');
  t.is(r.final?.code, 226);
  t.is(r.data.length, 0, 'REST at the end gives an empty transfer');
  t.is((await c.cmd('REST 6')).code, 350);
  r = await fetch(c, 'RETR a.txt');
  t.is(r.first.code, 554);
  t.is((await c.cmd('NOOP')).code, 200);
  // REST then STOR writes at the offset.
  t.is((await c.cmd('REST 3')).code, 350);
  const up = await upload(c, 'STOR a.txt', 'LO!');
  t.is(up.final?.code, 226);
  t.is(fs.readFileSync(path.join(s.root, 'a.txt'), 'utf8'), 'helLO!');
});

test('ALLO is accepted (202); TYPE A, I, L 8 and bad types', async (t) => {
  const { c } = await loggedIn(t);
  t.is((await c.cmd('ALLO 1000')).code, 202);
  t.is((await c.cmd('ALLO')).code, 202);
  for (const ty of ['A', 'a', 'A N', 'I', 'i', 'L 8']) t.is((await c.cmd(`TYPE ${ty}`)).code, 200, ty);
  t.regex((await c.cmd('STAT')).lines.join('\n'), /TYPE: Binary/, 'L 8 is binary');
  for (const ty of ['E', 'X', 'L 7', 'A T']) t.is((await c.cmd(`TYPE ${ty}`)).code, 504, ty);
  t.is((await c.cmd('TYPE')).code, 501);
});

test('MODE S and STRU F are accepted; others refused', async (t) => {
  const { c } = await loggedIn(t);
  t.is((await c.cmd('MODE S')).code, 200);
  t.is((await c.cmd('MODE s')).code, 200);
  for (const m of ['B', 'C', 'Z']) t.is((await c.cmd(`MODE ${m}`)).code, 504, m);
  t.is((await c.cmd('MODE X')).code, 501);
  t.is((await c.cmd('STRU F')).code, 200);
  for (const m of ['R', 'P']) t.is((await c.cmd(`STRU ${m}`)).code, 504, m);
  t.is((await c.cmd('STRU X')).code, 501);
});

test('PASV announces an address and port that carry a transfer', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const r = await c.cmd('PASV');
  t.is(r.code, 227);
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text);
  t.truthy(m);
  t.is(m!.slice(1, 5).join('.'), '127.0.0.1');
  const port = Number(m![5]) * 256 + Number(m![6]);
  const { connectData, readAll } = await import('../helpers/line-client');
  const sock = await connectData(port);
  const dataP = readAll(sock);
  const first = await c.cmd('RETR a.txt');
  t.true(first.code < 200);
  t.is((await dataP).toString(), 'hello');
  t.is((await c.read())?.code, 226);
  t.is((await c.cmd('PASV x')).code, 501);
});

test('EPSV ALL: PASV, PORT and EPRT are refused afterwards (503); EPSV still works', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  t.is((await c.cmd('EPSV 1')).code, 229);
  t.is((await c.cmd('EPSV 2')).code, 522, 'IPv6 on an IPv4 connection');
  t.is((await c.cmd('EPSV 3')).code, 522);
  t.is((await c.cmd('EPSV ALL')).code, 220);
  t.is((await c.cmd('PASV')).code, 503);
  t.is((await c.cmd('PORT 127,0,0,1,200,10')).code, 503);
  t.is((await c.cmd('EPRT |1|127.0.0.1|51210|')).code, 503);
  const r = await fetch(c, 'RETR a.txt');
  t.is(r.final?.code, 226);
  t.is(r.data.toString(), 'hello');
});

test('PORT connects to the client for the transfer', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const l = await activeListener(t);
  const r = await c.cmd(`PORT 127,0,0,1,${l.port >> 8},${l.port & 255}`);
  t.is(r.code, 200);
  const first = await c.cmd('RETR a.txt');
  t.true(first.code < 200);
  t.is((await l.received).toString(), 'hello');
  t.is((await c.read())?.code, 226);
});

test('PORT refuses foreign addresses, privileged ports and bad syntax (501)', async (t) => {
  const { c } = await loggedIn(t);
  t.is((await c.cmd('PORT 10,0,0,1,200,10')).code, 501, 'foreign address');
  t.is((await c.cmd('PORT 127,0,0,1,0,21')).code, 501, 'privileged port');
  t.is((await c.cmd('PORT 127,0,0,1,3,255')).code, 501, 'port 1023');
  t.is((await c.cmd('PORT 127,0,0,1,0,0')).code, 501, 'port 0');
  for (const bad of ['1,2,3', '127,0,0,1,200', '127,0,0,1,200,10,1', '256,0,0,1,200,10', 'a,b,c,d,e,f', '127.0.0.1,200,10', '127,0,0,1,-1,10']) {
    t.is((await c.cmd(`PORT ${bad}`)).code, 501, bad);
  }
  t.is((await c.cmd('PORT')).code, 501);
  // Nothing was set up: a transfer needs a data channel still.
  t.is((await c.cmd('LIST')).code, 425);
});

test('EPRT connects to the client; bad protocol is 522; foreign, privileged and malformed are 501', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const l = await activeListener(t);
  t.is((await c.cmd(`EPRT |1|127.0.0.1|${l.port}|`)).code, 200);
  const first = await c.cmd('RETR a.txt');
  t.true(first.code < 200);
  t.is((await l.received).toString(), 'hello');
  t.is((await c.read())?.code, 226);
  t.is((await c.cmd('EPRT |3|127.0.0.1|5000|')).code, 522);
  t.is((await c.cmd('EPRT |1|10.0.0.1|5000|')).code, 501, 'foreign');
  t.is((await c.cmd('EPRT |1|127.0.0.1|21|')).code, 501, 'privileged');
  t.is((await c.cmd('EPRT |1|127.0.0.1|70000|')).code, 501, 'port out of range');
  for (const bad of ['|1|127.0.0.1|5000', '1|127.0.0.1|5000|', '|1|127.0.0.1||', '|1|notanip|5000|', '|2|127.0.0.1|5000|', '|1|127.0.0.1|50a0|']) {
    t.is((await c.cmd(`EPRT ${bad}`)).code, 501, bad);
  }
});

test('FEAT lists the features, before login too', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  const r = await c.cmd('FEAT');
  t.is(r.code, 211);
  const feats = r.lines.slice(1, -1).map((l) => l.trim());
  for (const f of ['EPRT', 'EPSV', 'MDTM', 'MFMT', 'REST STREAM', 'SIZE', 'TVFS', 'UTF8']) t.true(feats.includes(f), f);
  const mlst = feats.find((f) => f.startsWith('MLST '));
  t.is(mlst, 'MLST type*;size*;modify*;perm*;unique*;unix.mode*;unix.uid;unix.gid;');
  t.true(r.lines.slice(1, -1).every((l) => l.startsWith(' ')), 'feature lines start with a space');
  t.is((await c.cmd('FEAT x')).code, 501);
});

test('OPTS UTF8 ON; OPTS MLST picks the facts MLSD and MLST show', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  t.is((await c.cmd('OPTS UTF8 ON')).code, 200);
  t.is((await c.cmd('OPTS utf8 on')).code, 200);
  t.is((await c.cmd('OPTS UTF8 MAYBE')).code, 501);
  t.is((await c.cmd('OPTS NOSUCH')).code, 501);
  const r = await c.cmd('OPTS MLST type;size;');
  t.is(r.code, 200);
  t.is(r.text, 'MLST OPTS type;size;');
  const mlsd = await fetch(c, 'MLSD');
  const entries = lines(mlsd.data).map(parseMlsx);
  t.deepEqual(entries[0], { facts: { type: 'file', size: '5' }, name: 'a.txt' });
  t.deepEqual(entries[1], { facts: { type: 'dir' }, name: 'sub' });
  t.regex((await c.cmd('MLST a.txt')).lines[1], /^ type=file;size=5; \/a\.txt$/);
  const feat = await c.cmd('FEAT');
  t.true(feat.lines.some((l) => l.trim() === 'MLST type*;size*;modify;perm;unique;unix.mode;unix.uid;unix.gid;'));
  // Unknown facts are dropped.
  t.is((await c.cmd('OPTS MLST modify;bogus;')).text, 'MLST OPTS modify;');
  // The choice is the session's own: another session still gets the default facts.
  const other = await loginAs(t, s, USER, PASS);
  const otherFeat = await other.cmd('FEAT');
  t.true(otherFeat.lines.some((l) => l.trim() === 'MLST type*;size*;modify*;perm*;unique*;unix.mode*;unix.uid;unix.gid;'));
  t.regex((await other.cmd('MLST a.txt')).lines[1], /^ type=file;size=5;modify=\d{14};perm=[a-z]+;unique=[^;]+;unix\.mode=0\d+; \/a\.txt$/);
});

test('HELP lists the commands; HELP verb shows its syntax; unknown verb 501', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  const r = await c.cmd('HELP');
  t.is(r.code, 214);
  const all = r.lines.join(' ');
  for (const v of ['RETR', 'STOR', 'MLSD', 'XPWD', 'SITE']) t.regex(all, new RegExp(`\\b${v}\\b`), v);
  const one = await c.cmd('HELP retr');
  t.is(one.code, 214);
  t.regex(one.text, /RETR/);
  t.is((await c.cmd('HELP BOGUS')).code, 501);
});

test('SYST and NOOP', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  const r = await c.cmd('SYST');
  t.is(r.code, 215);
  t.is(r.text, 'UNIX Type: L8');
  t.is((await c.cmd('NOOP')).code, 200);
  t.is((await c.cmd('NOOP x')).code, 501);
});

test('SITE HELP and SITE CHMOD (mode changes on disk)', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const h = await c.cmd('SITE HELP');
  t.is(h.code, 214);
  t.true(h.lines.some((l) => l.includes('CHMOD')));
  t.is((await c.cmd('SITE CHMOD 600 a.txt')).code, 200);
  t.is(fs.statSync(path.join(s.root, 'a.txt')).mode & 0o7777, 0o600);
  t.is((await c.cmd('SITE chmod 0750 sub')).code, 200);
  t.is(fs.statSync(path.join(s.root, 'sub')).mode & 0o7777, 0o750);
  // setuid, setgid and sticky are never set: the server runs as root here, so 6755 would make a
  // setuid-root file of an upload. The permission bits are taken, as vsftpd does.
  t.is((await c.cmd('SITE CHMOD 6755 a.txt')).code, 200);
  t.is(fs.statSync(path.join(s.root, 'a.txt')).mode & 0o7777, 0o755);
  t.is((await c.cmd('SITE CHMOD 1777 sub')).code, 200);
  t.is(fs.statSync(path.join(s.root, 'sub')).mode & 0o7777, 0o777);
  t.is((await c.cmd('SITE CHMOD 999 a.txt')).code, 501);
  t.is((await c.cmd('SITE CHMOD 644')).code, 501);
  t.is((await c.cmd('SITE CHMOD 644 nope')).code, 550);
  t.is((await c.cmd('SITE BOGUS')).code, 500);
  t.is((await c.cmd('SITE')).code, 501);
});

test('unknown verb is 500; a missing required argument is 501', async (t) => {
  const { c } = await loggedIn(t);
  const r = await c.cmd('FOO bar');
  t.is(r.code, 500);
  for (const v of ['RETR', 'STOR', 'APPE', 'DELE', 'MKD', 'RMD', 'RNFR', 'RNTO', 'SIZE', 'MDTM', 'MFMT', 'REST', 'TYPE', 'MODE', 'STRU', 'PORT', 'EPRT', 'OPTS', 'USER']) {
    t.is((await c.cmd(v)).code, 501, v);
  }
  t.is((await c.cmd('NOOP')).code, 200);
});

test('RETR, STOR, APPE, STOU, LIST, NLST and MLSD without PASV/PORT get 425 at once, never a 150 first', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  for (const line of ['RETR a.txt', 'STOR new.txt', 'APPE a.txt', 'STOU', 'LIST', 'NLST', 'MLSD']) {
    const r = await c.cmd(line);
    t.is(r.code, 425, line);
  }
  t.false(fs.existsSync(path.join(s.root, 'new.txt')), 'STOR without a data channel creates nothing');
  t.is((await c.cmd('NOOP')).code, 200);
});

test('RETR, STOR, APPE and STOU move bytes', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  t.is((await c.cmd('TYPE I')).code, 200);
  let r = await upload(c, 'STOR up.bin', Buffer.from([0, 1, 2, 255, 13, 10]));
  t.is(r.final?.code, 226);
  t.deepEqual(fs.readFileSync(path.join(s.root, 'up.bin')), Buffer.from([0, 1, 2, 255, 13, 10]));
  r = await upload(c, 'APPE up.bin', 'more');
  t.is(r.final?.code, 226);
  t.is(fs.readFileSync(path.join(s.root, 'up.bin')).subarray(6).toString(), 'more');
  r = await fetch(c, 'RETR up.bin');
  t.is(r.final?.code, 226);
  t.deepEqual(r.data, Buffer.concat([Buffer.from([0, 1, 2, 255, 13, 10]), Buffer.from('more')]));
  r = await upload(c, 'STOU', 'unique');
  t.is(r.final?.code, 226);
  const name = /FILE: (\S+)/.exec(r.first.text)?.[1];
  t.truthy(name, r.first.text);
  t.is(fs.readFileSync(path.join(s.root, name!), 'utf8'), 'unique');
  t.is((await fetch(c, 'RETR sub')).first.code, 550, 'RETR of a directory');
  t.is((await fetch(c, 'RETR nope')).first.code, 550);
});

test('ABOR without a transfer answers 225', async (t) => {
  const { c } = await loggedIn(t);
  t.is((await c.cmd('ABOR')).code, 225);
  t.is((await c.cmd('EPSV')).code, 229);
  t.is((await c.cmd('ABOR')).code, 225);
  t.is((await c.cmd('LIST')).code, 425, 'ABOR dropped the prepared data channel');
});

test('a passive data connection from another address is refused; the client\'s own still works', async (t) => {
  const { s, c } = await loggedIn(t);
  seed(s.root);
  const r = await c.cmd('EPSV');
  const port = Number(/\|\|\|(\d+)\|/.exec(r.text)![1]);
  // 127.0.0.2 is another address on Linux loopback: the server drops it at once.
  const intruder = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  intruder.on('error', () => {});
  const stolen = await readAll(intruder).catch(() => Buffer.alloc(0));
  t.is(stolen.length, 0);
  const { connectData } = await import('../helpers/line-client');
  const sock = await connectData(port);
  const dataP = readAll(sock);
  t.true((await c.cmd('RETR a.txt')).code < 200);
  t.is((await dataP).toString(), 'hello');
  t.is((await c.read())?.code, 226);
});

test('a passive range of one port is reused transfer after transfer, and by PASV after PASV', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const free = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const { s, c } = await loggedIn(t, { passivePorts: [free, free] });
  seed(s.root);
  for (let i = 0; i < 5; i++) {
    const r = await fetch(c, 'RETR a.txt');
    t.is(r.final?.code, 226, `transfer ${i}`);
    t.is(r.data.toString(), 'hello');
  }
  // A PASV that is never used gives its port back to the next one.
  for (let i = 0; i < 3; i++) t.is((await c.cmd('PASV')).code, 227, `PASV ${i}`);
  t.is((await c.cmd('ABOR')).code, 225);
  t.is((await fetch(c, 'NLST')).final?.code, 226);
  // Another session gets the port once this one is done with it.
  const other = await LineClient.open(s.port);
  t.teardown(() => other.close());
  await other.login('demo', 'demo-password');
  t.is((await fetch(other, 'RETR a.txt')).data.toString(), 'hello');
});

test('dual stack (host ::): IPv4 clients get PASV, EPSV, PORT and EPRT', async (t) => {
  const { s, c } = await loggedIn(t, { host: '::' });
  seed(s.root);
  const r = await c.cmd('PASV');
  t.is(r.code, 227);
  t.regex(r.text, /\(127,0,0,1,\d+,\d+\)/);
  t.is((await c.cmd('ABOR')).code, 225);
  t.is((await fetch(c, 'RETR a.txt')).data.toString(), 'hello', 'EPSV');
  const l1 = await activeListener(t);
  t.is((await c.cmd(`PORT 127,0,0,1,${l1.port >> 8},${l1.port & 255}`)).code, 200);
  t.true((await c.cmd('RETR a.txt')).code < 200);
  t.is((await l1.received).toString(), 'hello');
  t.is((await c.read())?.code, 226);
  const l2 = await activeListener(t);
  t.is((await c.cmd(`EPRT |1|127.0.0.1|${l2.port}|`)).code, 200);
  t.true((await c.cmd('RETR a.txt')).code < 200);
  t.is((await l2.received).toString(), 'hello');
  t.is((await c.read())?.code, 226);
});

test('IPv6 clients: EPSV and EPRT |2| carry transfers; PASV and PORT are refused', async (t) => {
  const s = await startServer(t, { host: '::1' });
  seed(s.root);
  const c = await LineClient.open(s.port, '::1');
  t.teardown(() => c.close());
  await c.login('demo', 'demo-password');
  t.true((await c.cmd('PASV')).code >= 400);
  t.true((await c.cmd('PORT 127,0,0,1,200,10')).code >= 400);
  t.is((await c.cmd('EPSV 1')).code, 522);
  t.is((await fetch(c, 'RETR a.txt')).data.toString(), 'hello');
  const l = await activeListener(t, '::1');
  t.is((await c.cmd(`EPRT |2|::1|${l.port}|`)).code, 200);
  t.true((await c.cmd('RETR a.txt')).code < 200);
  t.is((await l.received).toString(), 'hello');
  t.is((await c.read())?.code, 226);
  t.is((await c.cmd('EPRT |1|127.0.0.1|5000|')).code, 501, 'an IPv4 address is foreign to an IPv6 client');
});

test('PASV announces masqueradeAddress, or the masqueradeAddressMap entry of the local address', async (t) => {
  const a = await loggedIn(t, { masqueradeAddress: '203.0.113.7' });
  t.regex((await a.c.cmd('PASV')).text, /\(203,0,113,7,\d+,\d+\)/);
  t.is((await a.c.cmd('EPSV')).code, 229, 'EPSV has no address to masquerade');
  const b = await loggedIn(t, { masqueradeAddress: '203.0.113.7', masqueradeAddressMap: { '127.0.0.1': '198.51.100.1' } });
  t.regex((await b.c.cmd('PASV')).text, /\(198,51,100,1,\d+,\d+\)/, 'the map wins for its address');
});

test('permitForeignAddresses and permitPrivilegedPorts open up PORT and EPRT', async (t) => {
  const { c } = await loggedIn(t, { permitForeignAddresses: true, permitPrivilegedPorts: true });
  t.is((await c.cmd('PORT 10,0,0,1,200,10')).code, 200);
  t.is((await c.cmd('PORT 127,0,0,1,0,21')).code, 200);
  t.is((await c.cmd('EPRT |1|192.0.2.1|21|')).code, 200);
  t.is((await c.cmd('PORT 127,0,0,1,0,0')).code, 501, 'port 0 is never valid');
  t.is((await c.cmd('ABOR')).code, 225);
});
