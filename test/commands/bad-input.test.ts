// What a hostile or broken client sends: traversal, control bytes, huge lines, garbage.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Client } from 'basic-ftp';
import { LineClient } from '../helpers/line-client';
import { startServer } from '../helpers/server';
import { assertAcceptsNew, assertAlive, fetch, lines, loggedIn, readUntil, upload } from './_support';

/** A directory beside the root, with a secret, removed at teardown. */
function outsideDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-outside-'));
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'SECRET');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('path traversal in every form stays inside the root', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'in.txt'), 'IN');
  t.is((await c.cmd('TYPE I')).code, 200);
  const forms = [
    '../../../../../../etc/passwd',
    '/../../../../etc/passwd',
    '/etc/passwd',
    '%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '..\\..\\..\\..\\etc\\passwd',
    '\\..\\..\\etc\\passwd',
    'sub/../../../etc/passwd',
    '.../.../etc/passwd',
    '//etc//passwd',
  ];
  for (const f of forms) {
    t.is((await fetch(c, `RETR ${f}`)).first.code, 550, `RETR ${f}`);
    t.is((await c.cmd(`SIZE ${f}`)).code, 550, `SIZE ${f}`);
    t.is((await c.cmd(`MDTM ${f}`)).code, 550, `MDTM ${f}`);
  }
  // ".." clamps at the root: the root's own file is reachable from any depth.
  t.is((await fetch(c, 'RETR ../../../in.txt')).data.toString(), 'IN');
  t.is((await fetch(c, 'RETR ..\\..\\in.txt')).data.toString(), 'IN');
  t.is((await c.cmd('CWD ../../..')).code, 250);
  t.is((await c.cmd('PWD')).text, '"/" is the current directory.');
  t.is((await c.cmd('CWD /../../etc')).code, 550);
  t.deepEqual(lines((await fetch(c, 'NLST ../../..')).data), ['in.txt']);
  // /etc/passwd names a file under the root, never the real one.
  fs.mkdirSync(path.join(s.root, 'etc'));
  fs.writeFileSync(path.join(s.root, 'etc', 'passwd'), 'mine');
  t.is((await fetch(c, 'RETR /../../etc/passwd')).data.toString(), 'mine');
  t.is((await fetch(c, 'RETR ..\\..\\etc\\passwd')).data.toString(), 'mine');
  // Writes with climbing paths land inside the root.
  t.is((await upload(c, 'STOR ../../escaped.txt', 'x')).final?.code, 226);
  t.true(fs.existsSync(path.join(s.root, 'escaped.txt')));
  t.false(fs.existsSync(path.join(path.dirname(s.root), 'escaped.txt')));
  t.is((await c.cmd('MKD ..\\..\\madedir')).code, 257);
  t.true(fs.existsSync(path.join(s.root, 'madedir')));
  // "%2e%2e" is a literal name, not "..".
  t.is((await c.cmd('MKD %2e%2e')).code, 257);
  t.true(fs.statSync(path.join(s.root, '%2e%2e')).isDirectory());
  await assertAlive(t, c);
});

test('a symlink inside the root that points out is refused for RETR, CWD, LIST and writes (550)', async (t) => {
  const { s, c } = await loggedIn(t);
  const out = outsideDir(t);
  const secretMode = fs.statSync(path.join(out, 'secret.txt')).mode;
  fs.symlinkSync(out, path.join(s.root, 'outdir'));
  fs.symlinkSync(path.join(out, 'secret.txt'), path.join(s.root, 'outfile'));
  fs.symlinkSync('../../../../../../../../etc/passwd', path.join(s.root, 'relpasswd'));
  fs.writeFileSync(path.join(s.root, 'ok.txt'), 'ok');
  fs.symlinkSync('ok.txt', path.join(s.root, 'inside-link'));
  t.is((await c.cmd('TYPE I')).code, 200);

  for (const p of ['outfile', 'outdir/secret.txt', 'relpasswd', '/outdir/../outdir/secret.txt']) {
    const r = await fetch(c, `RETR ${p}`);
    t.is(r.first.code, 550, `RETR ${p}`);
    t.is(r.data.length, 0);
    t.is((await c.cmd(`SIZE ${p}`)).code, 550, `SIZE ${p}`);
  }
  t.is((await c.cmd('CWD outdir')).code, 550);
  t.is((await c.cmd('PWD')).text, '"/" is the current directory.');
  for (const v of ['LIST', 'NLST', 'MLSD']) t.is((await fetch(c, `${v} outdir`)).first.code, 550, `${v} outdir`);
  t.is((await c.cmd('STAT outdir')).code, 550);
  t.is((await c.cmd('MLST outfile')).code, 550);
  t.is((await upload(c, 'STOR outdir/new.txt', 'x')).first.code, 550);
  t.is((await upload(c, 'APPE outfile', 'x')).first.code, 550);
  t.is((await c.cmd('MKD outdir/sub')).code, 550);
  t.is((await c.cmd('SITE CHMOD 777 outfile')).code, 550);
  t.is((await c.cmd('MFMT 20000101000000 outfile')).code, 550);
  t.deepEqual(fs.readdirSync(out), ['secret.txt'], 'nothing was created outside');
  t.is(fs.readFileSync(path.join(out, 'secret.txt'), 'utf8'), 'SECRET');
  t.is(fs.statSync(path.join(out, 'secret.txt')).mode, secretMode, 'SITE CHMOD did not reach outside');
  // The listing of the root still shows the links (as links), and a link inside the root works.
  const ls = lines((await fetch(c, 'LIST')).data);
  t.true(ls.some((l) => l.startsWith('l') && l.endsWith(' outdir')), ls.join('\n'));
  t.is((await fetch(c, 'RETR inside-link')).data.toString(), 'ok');
  await assertAlive(t, c);
});

test('NUL inside an argument is 501 and the session continues', async (t) => {
  const { s, c } = await loggedIn(t);
  c.send(Buffer.from('MKD a\0b\r\n'));
  t.is((await c.read())?.code, 501);
  await assertAlive(t, c);
  t.deepEqual(fs.readdirSync(s.root), []);
});

test('a Telnet subnegotiation (IAC SB) not ended before the line ends: the whole line is 501, nothing is deleted, and the session answers the next command', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'a'), 'A');
  fs.writeFileSync(path.join(s.root, 'ab.txt'), 'AB');
  c.send(Buffer.concat([Buffer.from('DELE a'), Buffer.from([0xff, 0xfa]), Buffer.from('b.txt\r\n')]));
  const r = await c.read();
  t.is(r?.code, 501, `${r?.code} ${r?.text}`);
  t.is(r?.text, 'Syntax error: Telnet subnegotiation without IAC SE.');
  t.is((await c.cmd('NOOP')).code, 200, 'the next line is a command again (the session had ignored them until its idle timeout)');
  t.true(fs.existsSync(path.join(s.root, 'a')), 'the truncated line was not run');
  t.true(fs.existsSync(path.join(s.root, 'ab.txt')));
});

test('a bare CR inside an argument is 501, never a line break; nothing is echoed', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'keep.txt'), 'keep');
  c.send('MKD a\rb\r\n');
  const r = await c.read();
  t.is(r?.code, 501);
  t.false(r!.lines.join('\n').includes('a\rb'));
  // "DELE" after the CR must not run as a second command.
  c.send('NOOP\rDELE keep.txt\r\n');
  t.is((await c.read())?.code, 501);
  await assertAlive(t, c);
  t.deepEqual(fs.readdirSync(s.root), ['keep.txt']);
});

test('a 10 KB line is 500 and the next command works', async (t) => {
  const { c } = await loggedIn(t);
  c.send(`MKD ${'x'.repeat(10 * 1024)}\r\n`);
  t.is((await c.read())?.code, 500);
  await assertAlive(t, c);
});

test('a 1 MB line is 500 and the next command works', async (t) => {
  const { s, c } = await loggedIn(t);
  c.send(`STOR ${'y'.repeat(1024 * 1024)}\r\nPWD\r\n`);
  t.is((await c.read())?.code, 500);
  t.is((await c.read())?.code, 257);
  await assertAlive(t, c);
  t.deepEqual(fs.readdirSync(s.root), []);
  await assertAcceptsNew(t, s);
});

test('random binary bytes do not bring the server down', async (t) => {
  const { s, c } = await loggedIn(t);
  // A fixed seed: a failure can be replayed.
  let x = 0x2545f491;
  const rand = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const junk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < junk.length; i++) junk[i] = rand() & 0xff;
  for (let i = 0; i < junk.length; i += 4096) c.send(junk.subarray(i, i + 4096));
  // Leave any Telnet subnegotiation and any partial line, then ask for a known reply.
  c.send(Buffer.from([0xff, 0xf0, 0xff, 0xf0, 0x0d, 0x0a]));
  c.send('SYST\r\n');
  const seen = await readUntil(c, 215);
  t.true(seen.every((r) => r.code >= 200 && r.code < 600));
  await assertAlive(t, c);
  t.is((await c.cmd('PWD')).code, 257, 'still logged in');
  await assertAcceptsNew(t, s);
});

test('a command split across packets byte by byte is understood', async (t) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  c.socket.setNoDelay(true);
  const sendSlowly = async (text: string): Promise<void> => {
    for (const b of Buffer.from(text)) await new Promise<void>((r) => c.socket.write(Buffer.from([b]), () => r()));
  };
  await sendSlowly('USER demo\r\n');
  t.is((await c.read())?.code, 331);
  await sendSlowly('PASS demo-password\r\n');
  t.is((await c.read())?.code, 230);
  await sendSlowly('MKD split dir\r\n');
  const r = await c.read();
  t.is(r?.code, 257);
  t.is(r?.text, '"/split dir" directory created.');
  // CR and LF in separate packets, and two commands in one.
  c.send('NOOP\r');
  c.send('\nPWD\r\nSYST\r\n');
  t.deepEqual([(await c.read())?.code, (await c.read())?.code, (await c.read())?.code], [200, 257, 215]);
});

test('RNTO without RNFR is 503', async (t) => {
  const { c } = await loggedIn(t);
  t.is((await c.cmd('RNTO x')).code, 503);
  await assertAlive(t, c);
});

test('RNFR, then another command, then RNTO is 503', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'a.txt'), 'a');
  t.is((await c.cmd('RNFR a.txt')).code, 350);
  t.is((await c.cmd('PWD')).code, 257);
  t.is((await c.cmd('RNTO b.txt')).code, 503);
  t.true(fs.existsSync(path.join(s.root, 'a.txt')));
  t.is((await c.cmd('RNFR a.txt')).code, 350);
  t.is((await c.cmd('FOO')).code, 500);
  t.is((await c.cmd('RNTO b.txt')).code, 503, 'an unknown command also breaks the sequence');
  t.false(fs.existsSync(path.join(s.root, 'b.txt')));
  await assertAlive(t, c);
});

test('REST beyond the end of the file is 554 at RETR and nothing is sent', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'a.txt'), '12345');
  t.is((await c.cmd('TYPE I')).code, 200);
  t.is((await c.cmd('REST 100')).code, 350);
  const r = await fetch(c, 'RETR a.txt');
  t.is(r.first.code, 554);
  t.is(r.data.length, 0);
  await assertAlive(t, c);
  t.is((await fetch(c, 'RETR a.txt')).data.toString(), '12345', 'the bad offset does not stick');
});

test('STOR onto a directory is 550 and the directory survives', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.mkdirSync(path.join(s.root, 'd'));
  fs.writeFileSync(path.join(s.root, 'd', 'keep'), 'k');
  const r = await upload(c, 'STOR d', 'x');
  t.is(r.first.code, 550);
  t.true(fs.statSync(path.join(s.root, 'd')).isDirectory());
  t.is((await upload(c, 'APPE d', 'x')).first.code, 550);
  await assertAlive(t, c);
});

test('RMD non-empty, DELE directory, CWD file, MKD existing: each 550, session continues', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.mkdirSync(path.join(s.root, 'full'));
  fs.writeFileSync(path.join(s.root, 'full', 'x'), 'x');
  fs.writeFileSync(path.join(s.root, 'file.txt'), 'f');
  t.is((await c.cmd('RMD full')).code, 550);
  await assertAlive(t, c, 'after RMD');
  t.is((await c.cmd('DELE full')).code, 550);
  await assertAlive(t, c, 'after DELE');
  t.is((await c.cmd('CWD file.txt')).code, 550);
  await assertAlive(t, c, 'after CWD');
  t.is((await c.cmd('MKD full')).code, 550);
  t.is((await c.cmd('MKD file.txt')).code, 550);
  await assertAlive(t, c, 'after MKD');
  t.deepEqual(fs.readdirSync(path.join(s.root, 'full')), ['x']);
  t.is(fs.readFileSync(path.join(s.root, 'file.txt'), 'utf8'), 'f');
  await assertAcceptsNew(t, s);
});

test('replies never carry a raw CR or LF from the argument', async (t) => {
  const { s, c } = await loggedIn(t);
  const raw: string[] = [];
  c.socket.on('data', (d: string | Buffer) => raw.push(d.toString()));
  const evil = ['MKD a\rb', 'CWD x\r250 fake', 'FOO\rBAR', 'SITE \r500 fake'];
  for (const e of evil) {
    c.send(`${e}\r\n`);
    t.is((await c.read())?.code, 501, JSON.stringify(e));
  }
  // An unknown verb is echoed only after sanitising.
  t.is((await c.cmd('F\x01O\x7fO bar')).code, 500);
  await assertAlive(t, c);
  const all = raw.join('');
  // Every CR is part of a CRLF and every line is a reply line (code, or continuation).
  t.false(/\r(?!\n)/.test(all));
  t.false(/(?<!\r)\n/.test(all));
  t.false(all.includes('fake'));
  t.deepEqual(fs.readdirSync(s.root), []);
});

test('names with a quote are doubled in 257, and other controls never reach the reply', async (t) => {
  const { c } = await loggedIn(t);
  const r = await c.cmd('MKD "quoted" dir');
  t.is(r.code, 257);
  t.is(r.text, '"/""quoted"" dir" directory created.');
  const tab = await c.cmd('MKD tab\there');
  t.is(tab.code, 257);
  t.is(tab.lines.length, 1);
});

test('the server still accepts connections after abusive sessions close', async (t) => {
  const s = await startServer(t);
  for (let i = 0; i < 3; i++) {
    const c = await LineClient.open(s.port);
    c.send(Buffer.alloc(70 * 1024, 0x41));
    c.send('\r\n\xff\xff\xff\r\n');
    c.close();
  }
  await assertAcceptsNew(t, s);
});

test('a dangling symlink that points out cannot be used to create a file outside (550)', async (t) => {
  const { s, c } = await loggedIn(t);
  const out = outsideDir(t);
  fs.symlinkSync(path.join(out, 'created-by-ftp.txt'), path.join(s.root, 'dangling'));
  fs.symlinkSync(path.join(out, 'newdir'), path.join(s.root, 'dangling-dir'));
  t.is((await upload(c, 'STOR dangling', 'x')).first.code, 550);
  t.is((await upload(c, 'APPE dangling', 'x')).first.code, 550);
  t.is((await c.cmd('MKD dangling-dir/sub')).code, 550);
  fs.writeFileSync(path.join(s.root, 'mine.txt'), 'mine');
  t.is((await c.cmd('RNFR mine.txt')).code, 350);
  t.is((await c.cmd('RNTO dangling-dir')).code, 550, 'rename onto the link target outside');
  fs.symlinkSync(out, path.join(s.root, 'outdir'));
  t.is((await c.cmd('RNFR mine.txt')).code, 350);
  t.is((await c.cmd('RNTO outdir/mine.txt')).code, 550);
  t.deepEqual(fs.readdirSync(out), ['secret.txt']);
  t.is(fs.readFileSync(path.join(s.root, 'mine.txt'), 'utf8'), 'mine');
  await assertAlive(t, c);
});

test('names with CR or LF on disk are listed escaped, one line per entry', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'evil\r\n226 fake'), 'x');
  fs.writeFileSync(path.join(s.root, 'plain'), 'y');
  t.deepEqual(lines((await fetch(c, 'NLST')).data), ['evil\\r\\n226 fake', 'plain']);
  const ls = lines((await fetch(c, 'LIST')).data);
  t.is(ls.length, 2);
  t.true(ls[0].endsWith(' evil\\r\\n226 fake'));
  const stat = await c.cmd('STAT /');
  t.is(stat.code, 213);
  t.is(stat.lines.length, 4, 'header, two entries, footer');
  await assertAlive(t, c);
});

test('terminal control characters in names on disk reach no listing raw (ESC, BEL, backspace)', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'esc\u001b]0;pwned\u0007 bs\b\bX'), 'x');
  const want = 'esc\\x1b]0;pwned\\x07 bs\\x08\\x08X';
  t.deepEqual(lines((await fetch(c, 'NLST')).data), [want]);
  t.true(lines((await fetch(c, 'LIST')).data)[0].endsWith(` ${want}`));
  t.true(lines((await fetch(c, 'MLSD')).data)[0].endsWith(`; ${want}`));
  await assertAlive(t, c);
});

test('UTF-8 names round-trip; a line that is not UTF-8 is read as latin1', async (t) => {
  const { s, c } = await loggedIn(t);
  const r = await c.cmd('MKD héllo wörld ✓');
  t.is(r.code, 257);
  t.is(r.text, '"/héllo wörld ✓" directory created.');
  t.true(fs.existsSync(path.join(s.root, 'héllo wörld ✓')));
  c.send(Buffer.concat([Buffer.from('MKD caf'), Buffer.from([0xe9]), Buffer.from('\r\n')]));
  t.is((await c.read())?.code, 257);
  t.true(fs.existsSync(path.join(s.root, 'café')));
  t.deepEqual(lines((await fetch(c, 'NLST')).data).sort(), ['café', 'héllo wörld ✓']);
});

test("encoding 'latin1': a name on disk with characters above U+00FF forges no reply line and no listing line", async (t) => {
  const { s, c } = await loggedIn(t, { encoding: 'latin1' });
  // U+010D and U+010A have the low bytes of CR and LF; U+4E0D and U+4E0A too.
  fs.writeFileSync(path.join(s.root, 'a\u010d\u010a213 forged reply'), 'x');
  fs.writeFileSync(path.join(s.root, 'b\u4e0d\u4e0ac'), 'x');
  fs.writeFileSync(path.join(s.root, 'z-plain.txt'), 'x');
  const stat = await c.cmd('STAT /');
  t.is(stat.code, 213);
  t.is(stat.lines.length, 5, 'header, three entries, footer');
  t.true(stat.lines[1].endsWith(' a??213 forged reply'), stat.lines[1]);
  t.true(stat.lines[2].endsWith(' b??c'), stat.lines[2]);
  t.is((await c.cmd('NOOP')).code, 200, 'the replies stay in step');
  t.deepEqual(lines((await fetch(c, 'NLST')).data), ['a??213 forged reply', 'b??c', 'z-plain.txt']);
  t.is((await fetch(c, 'LIST')).data.toString('latin1').split('\r\n').filter(Boolean).length, 3);
  await assertAlive(t, c);
});

test('a name on disk that is not UTF-8 is listed (with U+FFFD), and a folder copy skips it and says so', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.mkdirSync(path.join(s.root, 'd'));
  fs.writeFileSync(Buffer.concat([Buffer.from(path.join(s.root, 'd', 'caf')), Buffer.from([0xe9]), Buffer.from('.txt')]), 'latin1 name');
  fs.writeFileSync(path.join(s.root, 'd', 'plain.txt'), 'p');
  t.deepEqual(lines((await fetch(c, 'NLST d')).data), ['caf\ufffd.txt', 'plain.txt']);
  t.is(lines((await fetch(c, 'MLSD d')).data).length, 2);
  const stat = await c.cmd('STAT d');
  t.is(stat.lines.length, 4, 'header, two entries, footer');
  t.is((await c.cmd('SITE CPFR d')).code, 350);
  const r = await c.cmd('SITE CPTO d2');
  t.is(r.code, 250);
  t.is(r.text, 'Copied 1 folder and 1 file, 1 bytes. Skipped 1 (links and the like, or names no path can give).');
  t.deepEqual(fs.readdirSync(path.join(s.root, 'd2')), ['plain.txt']);
  await assertAlive(t, c);
});

test('a name too long for the filesystem is 553 and the session continues', async (t) => {
  const { s, c } = await loggedIn(t);
  t.is((await c.cmd(`MKD ${'n'.repeat(300)}`)).code, 553);
  t.is((await upload(c, `STOR ${'f'.repeat(300)}`, 'x')).first.code, 553);
  await assertAlive(t, c);
  t.deepEqual(fs.readdirSync(s.root), []);
});

test('a file used as a directory is 550 (STOR a.txt/x, CWD a.txt/x, MKD a.txt/x)', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'a.txt'), 'a');
  t.is((await upload(c, 'STOR a.txt/x', 'x')).first.code, 550);
  t.is((await c.cmd('CWD a.txt/x')).code, 550);
  t.is((await c.cmd('MKD a.txt/x')).code, 550);
  t.is((await fetch(c, 'LIST a.txt/x')).first.code, 550);
  t.is(fs.readFileSync(path.join(s.root, 'a.txt'), 'utf8'), 'a');
  await assertAlive(t, c);
});

test('a FIFO is listed as p, and RETR or STOR on it is refused at once', async (t) => {
  const { s, c } = await loggedIn(t);
  execFileSync('mkfifo', [path.join(s.root, 'pipe')]);
  fs.writeFileSync(path.join(s.root, 'a.txt'), 'a');
  const ls = lines((await fetch(c, 'LIST')).data);
  t.regex(ls[1], /^prw/, ls.join('\n'));
  t.is((await fetch(c, 'RETR pipe')).first.code, 550);
  t.is((await upload(c, 'STOR pipe', 'x')).first.code, 550);
  await assertAlive(t, c);
  // A polite client sees it too.
  const ftp = new Client(5000);
  t.teardown(() => ftp.close());
  await ftp.access({ host: s.host, port: s.port, user: 'demo', password: 'demo-password' });
  ftp.availableListCommands = ['LIST'];
  t.deepEqual((await ftp.list()).map((e) => e.name).sort(), ['a.txt', 'pipe']);
});

test('pipelined NOOP, QUIT, NOOP: the command after QUIT is never run', async (t) => {
  const { s, c } = await loggedIn(t);
  c.send('NOOP\r\nQUIT\r\nMKD after-quit\r\n');
  t.is((await c.read())?.code, 200);
  t.is((await c.read())?.code, 221);
  t.is(await c.read(), null);
  // Closed with a FIN: a reset (unread input at close) could cost a client the 221.
  t.is(c.endedBy, 'fin');
  t.false(fs.existsSync(path.join(s.root, 'after-quit')));
});
