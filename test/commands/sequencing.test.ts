import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as net from 'node:net';
import test from 'ava';
import { digestSocket, loggedIn, randomContent, sha256, stor } from '../helpers/data-client';
import { LineClient } from '../helpers/line-client';
import { PASS, USER, startServer } from '../helpers/server';
import { tlsOption } from '../helpers/tls';

// The order of replies and the state one command leaves to the next: RNFR → RNTO, SITE CPFR →
// CPTO, REST → its transfer, and commands that arrive while a transfer runs.

/** The next `n` replies' codes. */
async function codes(c: LineClient, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await c.read(10000);
    out.push(r ? r.code : -1);
  }
  return out;
}

/** EPSV, then connect: the data socket, paused so that a download waits on it. */
async function dataSocket(c: LineClient): Promise<net.Socket> {
  const d = await c.epsvConnect();
  d.pause();
  return d;
}

test('QUIT, NOOP and STAT sent during a transfer wait for the commands sent before them; only ABOR goes ahead', async (t) => {
  const s = await startServer(t);
  // Big enough that the download waits on a client that does not read.
  fs.writeFileSync(path.join(s.root, 'big.bin'), randomContent(32 * 1024 * 1024));
  const c = await loggedIn(s.port, USER, PASS);
  let d = await dataSocket(c);
  // One read: a download, a command queued behind it, and QUIT.
  c.send('RETR big.bin\r\nPWD\r\nNOOP\r\n');
  t.true([125, 150].includes((await c.read())?.code ?? 0));
  // The download cannot finish (nobody reads). NOOP was queued behind PWD, not answered ahead.
  c.send('STAT\r\n');
  await t.throwsAsync(c.read(500), { message: /timed out/ }, 'nothing answered out of turn while the download runs');
  c.send('ABOR\r\n');
  // ABOR goes ahead of them: 426 and 226 for the download, then PWD, NOOP and STAT in order.
  t.deepEqual(await codes(c, 5), [426, 226, 257, 200, 211]);
  d.destroy();

  // QUIT behind a queued command: the command's reply comes first, then 221.
  fs.writeFileSync(path.join(s.root, 'small.bin'), randomContent(100_000));
  d = await c.epsvConnect();
  const got = digestSocket(d);
  c.send('RETR small.bin\r\nPWD\r\nQUIT\r\n');
  const four = await codes(c, 4);
  t.true([125, 150].includes(four[0]));
  t.deepEqual(four.slice(1), [226, 257, 221]);
  t.is((await got).bytes, 100_000);
  await c.whenClosed();
});

test('a refused RNFR, or a line that is no command, forgets the earlier RNFR: RNTO is 503', async (t) => {
  const s = await startServer(t);
  fs.writeFileSync(path.join(s.root, 'a.txt'), 'A');
  fs.mkdirSync(path.join(s.root, 'ro'));
  fs.writeFileSync(path.join(s.root, 'ro', 'b.txt'), 'B');
  s.auth.overridePerm(USER, '/ro', 'elr', true);
  const c = await loggedIn(s.port, USER, PASS);
  for (const between of ['RNFR', 'RNFR ro/b.txt', 'DELE a\0b']) {
    t.is((await c.cmd('RNFR a.txt')).code, 350);
    const r = await c.cmd(between);
    t.true(r.code === 501 || r.code === 550, `${JSON.stringify(between)}: ${r.code} ${r.text}`);
    t.is((await c.cmd('RNTO renamed.txt')).code, 503, `RNTO after ${JSON.stringify(between)}`);
  }
  t.true(fs.existsSync(path.join(s.root, 'a.txt')), 'nothing was renamed');
  t.false(fs.existsSync(path.join(s.root, 'renamed.txt')));
  // SITE CPFR and CPTO: a bare SITE (501) between them forgets the source too.
  t.is((await c.cmd('SITE CPFR a.txt')).code, 350);
  t.is((await c.cmd('SITE')).code, 501);
  t.is((await c.cmd('SITE CPTO copy.txt')).code, 503);
  t.false(fs.existsSync(path.join(s.root, 'copy.txt')));
  c.close();
});

test('REST belongs to the transfer right after it: PASV or SIZE may come between, other commands cancel it', async (t) => {
  const s = await startServer(t);
  const body = randomContent(1000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const c = await loggedIn(s.port, USER, PASS);
  const download = async (lines: string[]): Promise<number> => {
    for (const l of lines) await c.cmd(l);
    const d = await c.epsvConnect();
    const got = digestSocket(d);
    const first = await c.cmd('RETR f.bin');
    t.true([125, 150].includes(first.code), first.text);
    t.is((await c.read())?.code, 226);
    return (await got).bytes;
  };
  t.is(await download(['REST 600', 'SIZE f.bin']), 400, 'REST, SIZE, EPSV, RETR: resumed');
  t.is(await download(['REST 600', 'PWD']), 1000, 'REST, PWD, RETR: from the start');
  t.is(await download(['REST 600', 'TYPE I']), 1000, 'REST, TYPE, RETR: from the start');
  // A transfer command refused before its handler (no argument) takes the REST with it.
  t.is((await c.cmd('REST 600')).code, 350);
  t.is((await c.cmd('RETR')).code, 501);
  t.is(await download([]), 1000, 'REST, a refused RETR, RETR: from the start');
  c.close();
});

test('REST then APPE: at the file\'s size it appends (a resume), at any other offset it is 554', async (t) => {
  const s = await startServer(t);
  const file = path.join(s.root, 'log.txt');
  fs.writeFileSync(file, '0123456789');
  const c = await loggedIn(s.port, USER, PASS);
  t.is((await c.cmd('REST 4')).code, 350);
  const refused = await stor(c, 'passive', 'APPE log.txt', Buffer.from('XY'));
  t.is(refused.first.code, 554, refused.first.text);
  t.is(fs.readFileSync(file, 'utf8'), '0123456789', 'the file is as it was');
  t.is((await c.cmd('REST 10')).code, 350);
  const ok = await stor(c, 'passive', 'APPE log.txt', Buffer.from('XY'));
  t.is(ok.final?.code, 226, ok.final?.text);
  t.is(fs.readFileSync(file, 'utf8'), '0123456789XY');
  c.close();
});

test('MLST and MLSD say the perm letters a per-directory override leaves, not the user\'s', async (t) => {
  const s = await startServer(t);
  fs.mkdirSync(path.join(s.root, 'ro'));
  fs.writeFileSync(path.join(s.root, 'ro', 'a.txt'), 'A');
  fs.writeFileSync(path.join(s.root, 'w.txt'), 'W');
  s.auth.overridePerm(USER, '/ro', 'elr', true);
  const c = await loggedIn(s.port, USER, PASS);
  const fact = (line: string): string => /perm=([a-z]*);/.exec(line)?.[1] ?? '?';
  const mlst = async (p: string): Promise<string> => fact((await c.cmd(`MLST ${p}`)).lines[1] ?? '');
  t.is(await mlst('ro/a.txt'), 'r', 'read-only below /ro');
  t.is(await mlst('w.txt'), 'adfrw', 'the user\'s letters elsewhere');
  t.is(await mlst('ro'), 'el', 'the folder: enter and list, nothing to create or delete in it');
  t.is((await c.cmd('DELE ro/a.txt')).code, 550, 'as the fact says');
  // MLSD of the root: the folder's own letters come from the root's rules where they act on it.
  const d = await c.epsvConnect();
  const got = digestSocket(d, true);
  t.true([125, 150].includes((await c.cmd('MLSD')).code));
  t.is((await c.read())?.code, 226);
  const lines = (await got).data!.toString().split('\r\n').filter(Boolean);
  const byName = new Map(lines.map((l) => [l.slice(l.indexOf(' ') + 1), fact(l)]));
  t.is(byName.get('w.txt'), 'adfrw');
  t.is(byName.get('ro'), 'el');
  c.close();
});

test('an AUTH refused with commands after it in the same read: they are answered, not dropped', async (t) => {
  const s = await startServer(t, { tls: tlsOption() });
  const c = await LineClient.open(s.port);
  c.send('AUTH FOO\r\nNOOP\r\nSYST\r\n');
  t.deepEqual(await codes(c, 3), [504, 200, 215]);
  await c.login(USER, PASS);
  t.is((await c.cmd('PWD')).code, 257, 'the session goes on');
  c.close();
});
