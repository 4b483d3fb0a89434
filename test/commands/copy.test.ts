// Server-side copy: SITE CPFR / SITE CPTO (src/ftp/commands/site/copy.ts), over a real control
// connection; the copies are checked by SHA-256 on disk and over the wire (RETR).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { MemoryFileSystem, VirtualAuthorizer, type CopyInfo, type FileSystem } from '../../src';
import { COPY_CHUNK } from '../../src/fs/copy';
import { fetch, loggedIn, loginAs, trickling, type Trickling } from './_support';
import { nextEvent, randomContent, sha256 } from '../helpers/data-client';
import { LineClient } from '../helpers/line-client';
import { eventually, startServer, type StartOptions, type TestServer } from '../helpers/server';

/** `mib` MiB whose every MiB differs (its index up front), so a copy from a wrong offset shows. */
function blocks(mib: number, tail = 0): Buffer {
  const one = randomContent(1024 * 1024);
  const out = Buffer.alloc(mib * 1024 * 1024 + tail);
  for (let i = 0; i < mib; i++) {
    one.copy(out, i * 1024 * 1024);
    out.writeUInt32BE(i, i * 1024 * 1024);
  }
  randomContent(tail).copy(out, mib * 1024 * 1024);
  return out;
}

const hash = (ts: TestServer, name: string): string => sha256(fs.readFileSync(path.join(ts.root, name)));
const leftovers = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.includes('.copy-'));
const copyRecords = (ts: TestServer): Array<Record<string, unknown>> => ts.records.filter((r) => r.msg === 'copy');

async function copy(c: LineClient, from: string, to: string): Promise<{ cpfr: number; cpto: number; text: string }> {
  const a = await c.cmd(`SITE CPFR ${from}`);
  if (a.code !== 350) return { cpfr: a.code, cpto: 0, text: a.text };
  const b = await c.cmd(`SITE CPTO ${to}`);
  return { cpfr: a.code, cpto: b.code, text: b.text };
}

for (const useSendfile of [true, false]) {
  const via = useSendfile ? 'copy_file_range' : 'stream';
  test(`SITE CPFR/CPTO copies a file larger than one copy step (${via}); RETR of the copy gives the same bytes`, async (t) => {
    const { s, c } = await loggedIn(t, { useSendfile });
    const body = blocks(Math.ceil(COPY_CHUNK / (1024 * 1024)) + 3, 12_345);
    fs.writeFileSync(path.join(s.root, 'src.bin'), body);
    fs.mkdirSync(path.join(s.root, 'dir'));
    const event = nextEvent<[string, CopyInfo, unknown]>(s.server, 'fileCopied');

    const r = await copy(c, 'src.bin', 'dir/copy.bin');
    t.deepEqual([r.cpfr, r.cpto], [350, 250]);
    t.is(r.text, `Copied ${body.length} bytes.`);
    t.is(hash(s, 'dir/copy.bin'), sha256(body));
    t.is(hash(s, 'src.bin'), sha256(body), 'the source is untouched');
    const [to, info] = await event;
    t.is(to, '/dir/copy.bin');
    t.like(info, { from: '/src.bin', to: '/dir/copy.bin', bytes: body.length, via });
    t.like(copyRecords(s)[0], { from: '/src.bin', to: '/dir/copy.bin', bytes: body.length, via });
    t.deepEqual(leftovers(path.join(s.root, 'dir')), [], 'no temporary file is left');

    t.is((await c.cmd('TYPE I')).code, 200);
    const got = await fetch(c, 'RETR dir/copy.bin');
    t.is(got.final?.code, 226);
    t.is(sha256(got.data), sha256(body));
  });

  test(`SITE CPTO replaces an existing file, and copies an empty one (${via})`, async (t) => {
    const { s, c } = await loggedIn(t, { useSendfile });
    const body = randomContent(70_000);
    fs.writeFileSync(path.join(s.root, 'a.bin'), body);
    fs.writeFileSync(path.join(s.root, 'old.bin'), randomContent(200_000));
    fs.writeFileSync(path.join(s.root, 'empty'), '');
    t.is((await copy(c, 'a.bin', 'old.bin')).cpto, 250);
    t.is(hash(s, 'old.bin'), sha256(body));
    t.is(fs.statSync(path.join(s.root, 'old.bin')).size, body.length, 'the longer old file does not show through');
    const e = await copy(c, '/empty', '/empty-copy');
    t.deepEqual([e.cpto, e.text], [250, 'Copied 0 bytes.']);
    t.is(fs.statSync(path.join(s.root, 'empty-copy')).size, 0);
  });
}

test('SITE CPFR/CPTO: the sequence and bad arguments get their replies, and the session stays usable', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'f'), 'file content');
  fs.mkdirSync(path.join(s.root, 'd'));

  t.is((await c.cmd('SITE CPTO x')).code, 503, 'CPTO without CPFR');
  t.is((await c.cmd('SITE CPFR')).code, 501);
  t.is((await c.cmd('SITE CPFR missing')).code, 550);
  t.is((await c.cmd('SITE CPFR d')).code, 350, 'a folder is copied whole (copy-folder.test.ts)');
  t.is((await c.cmd('SITE CPFR f')).code, 350);
  t.is((await c.cmd('NOOP')).code, 200);
  t.is((await c.cmd('SITE CPTO g')).code, 503, 'another command in between cancels the CPFR');
  t.false(fs.existsSync(path.join(s.root, 'g')));
  t.is((await c.cmd('SITE CPFR f')).code, 350);
  t.is((await c.cmd('SITE CHMOD 644 f')).code, 200);
  t.is((await c.cmd('SITE CPTO g')).code, 503, 'so does another SITE command');

  t.is((await copy(c, 'f', 'd')).cpto, 550, 'onto a directory');
  t.is((await copy(c, 'f', '/')).cpto, 553, 'onto the home directory');
  t.is((await copy(c, 'f', 'f')).cpto, 553, 'onto itself');
  t.is((await copy(c, 'f', './d/../f')).cpto, 553, 'onto itself by another name');
  fs.linkSync(path.join(s.root, 'f'), path.join(s.root, 'hard'));
  const same = await copy(c, 'f', 'hard');
  t.deepEqual([same.cpto, same.text], [553, 'Source and destination are the same file.'], 'onto a hard link of itself');
  t.is(fs.readFileSync(path.join(s.root, 'f'), 'utf8'), 'file content', 'the refused copies did not touch the file');
  t.is((await copy(c, 'f', 'no/such/dir/g')).cpto, 550);
  t.deepEqual(leftovers(s.root), []);

  t.is((await copy(c, 'f', 'g')).cpto, 250, 'the session still copies');
  t.is(fs.readFileSync(path.join(s.root, 'g'), 'utf8'), 'file content');
  t.is((await c.cmd('SITE CPFR')).code, 501);
  t.is((await c.cmd('NOOP')).code, 200);
});

test('SITE CPFR needs the r permission on the source and SITE CPTO w on the destination', async (t) => {
  const s = await startServer(t);
  fs.writeFileSync(path.join(s.root, 'f'), 'secret');
  s.auth.addUser('no-r', 'pw', s.root, { perm: 'elwadfmMT'.replace('r', '') });
  s.auth.addUser('no-w', 'pw', s.root, { perm: 'elradfmMT' });
  const noR = await loginAs(t, s, 'no-r', 'pw');
  t.is((await noR.cmd('SITE CPFR f')).code, 550);
  t.is((await noR.cmd('SITE CPTO g')).code, 503, 'the refused CPFR named no source');
  const noW = await loginAs(t, s, 'no-w', 'pw');
  t.is((await noW.cmd('SITE CPFR f')).code, 350);
  const r = await noW.cmd('SITE CPTO g');
  t.deepEqual([r.code, r.text], [550, 'Not enough privileges.']);
  t.false(fs.existsSync(path.join(s.root, 'g')));
  t.deepEqual(leftovers(s.root), []);
});

test('SITE CPFR/CPTO stay inside the root: symlinks leading out are refused both ways and nothing is written outside', async (t) => {
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-outside-'));
  t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
  fs.writeFileSync(path.join(outside, 'secret'), 'outside the root');
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'f'), 'inside');
  fs.symlinkSync(path.join(outside, 'secret'), path.join(s.root, 'out-file'));
  fs.symlinkSync(outside, path.join(s.root, 'out-dir'));

  t.is((await c.cmd('SITE CPFR out-file')).code, 550, 'a source outside');
  t.is((await c.cmd('SITE CPFR out-dir/secret')).code, 550, 'a source through a directory outside');
  t.is((await c.cmd('SITE CPFR ../../../../../etc/passwd')).code, 550, '.. cannot climb above the root');
  t.is((await copy(c, 'f', 'out-file')).cpto, 550, 'a destination link leading out');
  t.is((await copy(c, 'f', 'out-dir/new')).cpto, 550, 'a destination in a directory outside');
  t.is(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'outside the root');
  t.deepEqual(fs.readdirSync(outside), ['secret']);
  t.is((await copy(c, 'f', '../../../../g')).cpto, 250, '"../../g" is /g inside the root');
  t.is(fs.readFileSync(path.join(s.root, 'g'), 'utf8'), 'inside');
});

test('SITE CPTO counts against quotaBytes before a byte is written: 552 and no file when it does not fit', async (t) => {
  const auth = new VirtualAuthorizer({ scrypt: { ln: 4, r: 8, p: 1 } });
  const s = await startServer(t, { authorizer: auth });
  auth.addUser('q', 'pw', s.root, { perm: 'elradfmwMT', limits: { quotaBytes: 100_000 } });
  const big = randomContent(40_000);
  fs.writeFileSync(path.join(s.root, 'big'), big);
  fs.writeFileSync(path.join(s.root, 'small'), randomContent(30_000));
  const c = await loginAs(t, s, 'q', 'pw');

  // 70 000 used: 40 000 more do not fit.
  const r = await copy(c, 'big', 'big2');
  t.deepEqual([r.cpfr, r.cpto, r.text], [350, 552, 'Quota exceeded.']);
  t.false(fs.existsSync(path.join(s.root, 'big2')));
  t.deepEqual(leftovers(s.root), []);
  // Replacing a file counts the difference only: small (30 000) becomes 40 000 bytes, 80 000 in all.
  t.is((await copy(c, 'big', 'small')).cpto, 250);
  t.is(hash(s, 'small'), sha256(big));
  // The usage followed: 40 000 more do not fit now either; after DELE of one copy they do.
  t.is((await copy(c, 'small', 'x')).cpto, 552);
  t.is((await c.cmd('DELE big')).code, 250);
  t.is((await copy(c, 'small', 'x')).cpto, 250);
  t.is(hash(s, 'x'), sha256(big));
});

test('a copy that fails half way (disk full) leaves the destination as it was, no partial file, and the session up', async (t) => {
  const body = randomContent(100_000);
  let memfs: MemoryFileSystem | null = null;
  const opts: StartOptions = {
    fileSystem: (): FileSystem => {
      memfs ??= new MemoryFileSystem({ files: { '/a.bin': body, '/dst.bin': 'old content', '/filler': randomContent(40_000) }, maxBytes: 200_100 });
      return memfs;
    },
  };
  const { c } = await loggedIn(t, opts);
  const r = await copy(c, 'a.bin', 'dst.bin');
  t.deepEqual([r.cpfr, r.cpto], [350, 452]);
  const list = await fetch(c, 'NLST');
  t.deepEqual(list.data.toString().trim().split('\r\n').sort(), ['a.bin', 'dst.bin', 'filler'], 'no temporary file is left');
  t.is((await c.cmd('TYPE I')).code, 200);
  const dst = await fetch(c, 'RETR dst.bin');
  t.is(dst.data.toString(), 'old content');
  t.is((await c.cmd('NOOP')).code, 200);
  t.is((await c.cmd('DELE filler')).code, 250);
  t.is((await copy(c, 'a.bin', 'dst.bin')).cpto, 250, 'with room again it copies (through the streams)');
  t.is(sha256((await fetch(c, 'RETR dst.bin')).data), sha256(body));
});

test('siteCopy: false turns SITE CPFR/CPTO off: 500, and SITE HELP does not list them', async (t) => {
  const on = await loggedIn(t);
  const help = (await on.c.cmd('SITE HELP')).lines.join('\n');
  t.regex(help, /SITE CPFR/);
  t.regex(help, /SITE CPTO/);
  const { s, c } = await loggedIn(t, { siteCopy: false });
  fs.writeFileSync(path.join(s.root, 'f'), 'x');
  t.is((await c.cmd('SITE CPFR f')).code, 500);
  t.is((await c.cmd('SITE CPTO g')).code, 500);
  const offHelp = await c.cmd('SITE HELP');
  t.is(offHelp.code, 214);
  t.notRegex(offHelp.lines.join('\n'), /CP(FR|TO)/);
  t.false(fs.existsSync(path.join(s.root, 'g')));
});

test('SITE CPFR/CPTO need a login', async (t: ExecutionContext) => {
  const s = await startServer(t);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  t.is((await c.cmd('SITE CPFR f')).code, 530);
  t.is((await c.cmd('SITE CPTO g')).code, 530);
});

test('SITE CPTO to a name of 255 bytes of UTF-8 (the most a name may have) copies', async (t) => {
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'f'), 'long name');
  const name = `${'é'.repeat(127)}x`; // 2 × 127 + 1 = 255 bytes
  t.is(Buffer.byteLength(name), 255);
  t.is((await c.cmd('OPTS UTF8 ON')).code, 200);
  t.is((await copy(c, 'f', name)).cpto, 250);
  t.is(fs.readFileSync(path.join(s.root, name), 'utf8'), 'long name');
});

/** `/a.bin` of `bytes` random bytes on a filesystem whose reads trickle (see trickling). */
function tricklingFile(bytes: number): Trickling & { body: Buffer } {
  const body = randomContent(bytes);
  return { ...trickling({ '/a.bin': body }), body };
}

const names = async (mem: MemoryFileSystem): Promise<string[]> => (await mem.readdir('/')).map((e) => e.name).sort();

test('a client that leaves during a copy stops it: no partial file and no temporary file stay behind', async (t) => {
  const slow = tricklingFile(4 * 1024 * 1024);
  const { s, c } = await loggedIn(t, { fileSystem: () => slow.fs });
  t.is((await c.cmd('SITE CPFR a.bin')).code, 350);
  c.send('SITE CPTO b.bin\r\n');
  await eventually(() => slow.chunks() >= 3, 'the copy has started');
  c.close();
  await eventually(() => s.server.sessionCount === 0, 'the session ended');
  // The copy notices at its next chunk and removes its temporary file.
  const deadline = Date.now() + 5000;
  while ((await names(slow.mem)).length !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  t.deepEqual(await names(slow.mem), ['a.bin']);
  t.true(slow.chunks() < 256, `stopped after ${slow.chunks()} of 256 chunks`);
});

test('ABOR during a copy stops it: 426 then 226, no partial or temporary file, and the session goes on', async (t) => {
  const slow = tricklingFile(4 * 1024 * 1024);
  const { s, c } = await loggedIn(t, { fileSystem: () => slow.fs });
  t.is((await c.cmd('SITE CPFR a.bin')).code, 350);
  c.send('SITE CPTO b.bin\r\n');
  await eventually(() => slow.chunks() >= 3, 'the copy has started');
  c.send('ABOR\r\n');
  const aborted = await c.read();
  t.like(aborted, { code: 426, text: 'Copy aborted.' });
  t.like(await c.read(), { code: 226, text: 'ABOR command successful.' });
  t.true(slow.chunks() < 256, `stopped after ${slow.chunks()} of 256 chunks`);
  t.deepEqual(await names(slow.mem), ['a.bin'], 'the copy left nothing behind');
  t.like(s.records.find((r) => r.msg === 'copy failed'), { from: '/a.bin', to: '/b.bin', code: 'ECANCELED' });
  t.is(copyRecords(s).length, 0);
  t.is((await c.cmd('NOOP')).code, 200);
  t.like(await c.cmd('ABOR'), { code: 225 }, 'a second ABOR finds nothing to stop');
});

test('during a copy STAT tells the bytes copied and NOOP is answered at once; then the copy ends with 250', async (t) => {
  const slow = tricklingFile(512 * 1024);
  const { c } = await loggedIn(t, { fileSystem: () => slow.fs });
  t.is((await c.cmd('SITE CPFR a.bin')).code, 350);
  c.send('SITE CPTO b.bin\r\n');
  await eventually(() => slow.chunks() >= 3, 'the copy has started');
  const noop = await c.cmd('NOOP');
  t.is(noop.code, 200);
  const stat = await c.cmd('STAT');
  t.is(stat.code, 213);
  t.is(stat.lines[0], '213-Status: copy in progress.');
  t.true(stat.lines.includes('SITE CPTO /b.bin'), stat.lines.join('|'));
  const bytes = Number(/Bytes copied: (\d+)/.exec(stat.lines.join('\n'))?.[1]);
  t.true(bytes > 0 && bytes < slow.body.length, `copied ${bytes} of ${slow.body.length} when asked`);
  t.regex(stat.lines.join('\n'), /engine: stream/);
  t.like(await c.read(), { code: 250, text: `Copied ${slow.body.length} bytes.` });
  t.is((await c.cmd('STAT')).code, 211, 'no copy in progress any more');
  t.is((await c.cmd('TYPE I')).code, 200);
  t.is(sha256((await fetch(c, 'RETR b.bin')).data), sha256(slow.body));
});

test('QUIT during a copy lets it finish: 250, then 221 and the connection closes', async (t) => {
  const slow = tricklingFile(256 * 1024);
  const { c } = await loggedIn(t, { fileSystem: () => slow.fs });
  t.is((await c.cmd('SITE CPFR a.bin')).code, 350);
  c.send('SITE CPTO b.bin\r\n');
  await eventually(() => slow.chunks() >= 2, 'the copy has started');
  c.send('QUIT\r\n');
  t.like(await c.read(), { code: 250, text: `Copied ${slow.body.length} bytes.` });
  t.like(await c.read(), { code: 221 });
  await c.whenClosed();
  t.deepEqual(await names(slow.mem), ['a.bin', 'b.bin']);
});
