import { constants as C } from 'node:fs';
import test from 'ava';
import type { FileStat } from '../../src/fs/types';
import { safeName, stripListFlags } from '../../src/ftp/commands/list';
import { bufferHandle, ftpTime, listLine, mlsxLine, modeString, parseFtpTime, permFact } from '../../src/ftp/listing';

function st(kind: FileStat['kind'], perm: number, extra: Partial<FileStat> = {}): FileStat {
  const type = kind === 'dir' ? C.S_IFDIR : kind === 'symlink' ? C.S_IFLNK : kind === 'file' ? C.S_IFREG : C.S_IFIFO;
  return {
    kind,
    size: 42,
    mtime: new Date(Date.UTC(2020, 0, 2, 3, 4, 5)),
    mode: type | perm,
    uid: 1000,
    gid: 100,
    nlink: 1,
    unique: 'u1',
    ...extra,
  };
}

test('modeString: type letter and rwx bits', (t) => {
  t.is(modeString(st('file', 0o644)), '-rw-r--r--');
  t.is(modeString(st('dir', 0o755)), 'drwxr-xr-x');
  t.is(modeString(st('symlink', 0o777)), 'lrwxrwxrwx');
  t.is(modeString(st('other', 0o600)), 'prw-------', 'a FIFO');
  t.is(modeString({ ...st('other', 0), mode: C.S_IFSOCK | 0o755 }), 'srwxr-xr-x');
  t.is(modeString({ ...st('other', 0), mode: C.S_IFCHR | 0o666 }), 'crw-rw-rw-');
  t.is(modeString({ ...st('other', 0), mode: C.S_IFBLK | 0o660 }), 'brw-rw----');
  t.is(modeString({ ...st('other', 0), mode: 0o644 }), '?rw-r--r--', 'no type bits at all');
  t.is(modeString(st('file', 0)), '----------');
});

test('modeString: setuid, setgid and sticky, with and without x', (t) => {
  t.is(modeString(st('file', 0o4755)), '-rwsr-xr-x');
  t.is(modeString(st('file', 0o4644)), '-rwSr--r--');
  t.is(modeString(st('file', 0o2755)), '-rwxr-sr-x');
  t.is(modeString(st('file', 0o2745)), '-rwxr-Sr-x');
  t.is(modeString(st('dir', 0o1777)), 'drwxrwxrwt');
  t.is(modeString(st('dir', 0o1776)), 'drwxrwxrwT');
});

test('listLine: ls -l shape; recent files show the time, old ones the year', (t) => {
  const now = Date.UTC(2020, 2, 1);
  const line = listLine({ name: 'a b.txt', stat: st('file', 0o644) }, now, true);
  t.is(line, '-rw-r--r--   1 1000     100            42 Jan  2 03:04 a b.txt');
  const old = listLine({ name: 'x', stat: st('file', 0o644) }, Date.UTC(2021, 6, 1), true);
  t.regex(old, / Jan  2  2020 x$/);
  const future = listLine({ name: 'x', stat: st('file', 0o644) }, Date.UTC(2019, 0, 1), true);
  t.regex(future, / Jan  2  2020 x$/, 'far in the future: the year');
  const big = listLine({ name: 'big', stat: st('file', 0o644, { size: 123456789012 }) }, now, true);
  t.regex(big, / 123456789012 Jan/);
});

test('listLine: UTC or local time', (t) => {
  const d = new Date(Date.UTC(2020, 0, 2, 3, 4, 5));
  const now = d.getTime();
  const local = listLine({ name: 'x', stat: st('file', 0o644, { mtime: d }) }, now, false);
  const hh = String(d.getHours()).padStart(2, '0');
  const mm = String(d.getMinutes()).padStart(2, '0');
  t.true(local.includes(`${hh}:${mm} x`));
  t.true(listLine({ name: 'x', stat: st('file', 0o644, { mtime: d }) }, now, true).includes('03:04 x'));
});

test('ftpTime: YYYYMMDDHHMMSS in UTC, zero padded', (t) => {
  t.is(ftpTime(new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 999))), '20200102030405');
  t.is(ftpTime(new Date(0)), '19700101000000');
  t.is(ftpTime(new Date(Date.UTC(2038, 11, 31, 23, 59, 59))), '20381231235959');
});

test('parseFtpTime: valid times, with and without fractions', (t) => {
  t.is(parseFtpTime('20200102030405')?.getTime(), Date.UTC(2020, 0, 2, 3, 4, 5));
  t.is(parseFtpTime('20200102030405.5')?.getTime(), Date.UTC(2020, 0, 2, 3, 4, 5, 500));
  t.is(parseFtpTime('20200102030405.123')?.getTime(), Date.UTC(2020, 0, 2, 3, 4, 5, 123));
  t.is(parseFtpTime('20000229000000')?.getTime(), Date.UTC(2000, 1, 29), 'leap day');
});

test('parseFtpTime: malformed and out-of-range values are null', (t) => {
  for (const bad of [
    '',
    '2020',
    '202001020304056',
    '2020010203040',
    '2020-01-02 03:04:05',
    '20201302030405',
    '20200002030405',
    '20200100030405',
    '20200132030405',
    '20200231000000',
    '20190229000000',
    '20200102240000',
    '20200102036000',
    '20200102030405.',
    '20200102030405.1234',
    ' 20200102030405',
    '2020010203040x',
  ]) {
    t.is(parseFtpTime(bad), null, JSON.stringify(bad));
  }
});

test('parseFtpTime: years below 100 are not taken as 19xx', (t) => {
  const d = parseFtpTime('00500101000000');
  t.truthy(d);
  t.is(d!.getUTCFullYear(), 50);
  t.is(ftpTime(d!), '00500101000000', 'round trip');
});

test('parseFtpTime: a leap second (60) is accepted and stays in its minute', (t) => {
  for (const s of ['20161231235960', '20150630235960']) {
    const d = parseFtpTime(s);
    t.truthy(d, s);
    t.is(ftpTime(d!).slice(0, 12), s.slice(0, 12), s);
  }
});

test('ftpTime and parseFtpTime round-trip', (t) => {
  for (const ms of [0, 1, 86_399_000, 951_782_400_000, 1_700_000_000_000, 4_102_444_799_000]) {
    const s = ftpTime(new Date(ms));
    t.is(parseFtpTime(s)?.getTime(), ms - (ms % 1000), s);
  }
});

test('permFact: RFC 3659 letters from pyftpdlib letters', (t) => {
  t.is(permFact(st('file', 0o644), 'elradfmwMT'), 'adfrw');
  t.is(permFact(st('dir', 0o755), 'elradfmwMT'), 'cdeflmp');
  t.is(permFact(st('file', 0o644), 'elr'), 'r');
  t.is(permFact(st('dir', 0o755), 'elr'), 'el');
  t.is(permFact(st('file', 0o644), ''), '');
  t.is(permFact(st('dir', 0o755), 'w'), 'c');
  t.is(permFact(st('dir', 0o755), 'd'), 'dp');
  t.is(permFact(st('file', 0o644), 'MT'), '');
});

test('mlsxLine: facts in order; no size for directories; chosen facts only', (t) => {
  const all = new Set(['type', 'size', 'modify', 'perm', 'unique', 'unix.mode', 'unix.uid', 'unix.gid']);
  t.is(
    mlsxLine('a.txt', st('file', 0o644), all, 'elr'),
    'type=file;size=42;modify=20200102030405;perm=r;unique=u1;unix.mode=0644;unix.uid=1000;unix.gid=100; a.txt',
  );
  t.is(mlsxLine('d', st('dir', 0o755), new Set(['type', 'size']), 'elr'), 'type=dir; d');
  t.is(mlsxLine('l', st('symlink', 0o777), new Set(['type']), ''), 'type=OS.unix=symlink; l');
  t.is(mlsxLine('p', st('other', 0o600), new Set(['type']), ''), 'type=OS.unix=other; p');
  t.is(mlsxLine('.', st('dir', 0o755), new Set(['type']), '', 'cdir'), 'type=cdir; .');
  t.is(mlsxLine('x', st('file', 0o4755), new Set(['unix.mode']), ''), 'unix.mode=04755; x');
  t.is(mlsxLine('x', st('file', 0), new Set(['unix.mode']), ''), 'unix.mode=0000; x');
  t.is(mlsxLine('x', st('file', 0o644), new Set(), ''), ' x');
  t.is(mlsxLine('with space', st('file', 0o644), new Set(['size']), ''), 'size=42; with space');
});

test('stripListFlags drops leading ls flags only', (t) => {
  t.is(stripListFlags('-la'), '');
  t.is(stripListFlags('-a -l'), '');
  t.is(stripListFlags('-la dir'), 'dir');
  t.is(stripListFlags('-a   dir with space'), 'dir with space');
  t.is(stripListFlags('dir'), 'dir');
  t.is(stripListFlags(''), '');
  t.is(stripListFlags('-notes.txt'), '-notes.txt', 'a file name starting with a dash');
  t.is(stripListFlags('dir -la'), 'dir -la');
  t.is(stripListFlags('-'), '-');
});

test('safeName shows CR, LF and NUL escaped, and the other C0 controls and DEL as \\xNN', (t) => {
  t.is(safeName('plain é ✓'), 'plain é ✓');
  t.is(safeName('a\r\nb\0c'), 'a\\r\\nb\\0c');
  t.is(safeName('esc\u001b[2J\u001b]0;pwned\u0007 bs\b\bX\ttab\u007f'), 'esc\\x1b[2J\\x1b]0;pwned\\x07 bs\\x08\\x08X\\x09tab\\x7f');
});

test('bufferHandle streams its bytes once; an empty one ends at once', async (t) => {
  const read = async (b: Buffer): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of bufferHandle(b).createReadStream()) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  t.deepEqual(await read(Buffer.from('abc')), Buffer.from('abc'));
  t.is((await read(Buffer.alloc(0))).length, 0);
  const h = bufferHandle(Buffer.from('x'));
  t.is(h.offset, 0);
  t.is(h.fd, undefined);
  t.throws(() => h.createWriteStream());
  await h.close();
  await h.close();
});
