import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileDigest, randomContent, settleSessionsOnTeardown, sha256 } from '../helpers/data-client';
import { transferRecords } from '../helpers/matrix';
import { explain, run } from '../helpers/run';
import { startServer, USER, type TestServer } from '../helpers/server';

/** curl as a subprocess against an in-process server; every file moved is hash-checked. */

function scratch(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-curl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function curl(args: string[]): ReturnType<typeof run> {
  return run('curl', ['-sS', '--fail', '--max-time', '60', ...args], { timeoutMs: 70000 });
}

async function setup(t: ExecutionContext): Promise<{ s: TestServer; dir: string; body: Buffer }> {
  const s = await startServer(t);
  settleSessionsOnTeardown(t, s.server);
  const body = randomContent(1024 * 1024 + 1);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  fs.mkdirSync(path.join(s.root, 'sub', 'dir'), { recursive: true });
  fs.writeFileSync(path.join(s.root, 'sub', 'dir', 'deep.bin'), body);
  return { s, dir: scratch(t), body };
}

test('curl lists a directory', async (t) => {
  const { s } = await setup(t);
  const r = await curl([`${s.url}/`]);
  t.is(r.code, 0, explain(r));
  t.regex(r.stdout, /f\.bin\r?\n/);
  t.regex(r.stdout, /^d.* sub\r?$/m, 'LIST shows the directory as a directory');
  const names = await curl(['--list-only', `${s.url}/`]);
  t.is(names.code, 0, explain(names));
  t.deepEqual(names.stdout.split(/\r?\n/).filter(Boolean).sort(), ['f.bin', 'sub']);
});

const MODES: Array<[string, string[]]> = [
  ['default (EPSV)', []],
  ['--ftp-pasv --disable-epsv (PASV)', ['--ftp-pasv', '--disable-epsv']],
  ['-P - (active, EPRT)', ['-P', '-']],
  ['-P - --disable-eprt (active, PORT)', ['-P', '-', '--disable-eprt']],
];

for (const [name, flags] of MODES) {
  test(`curl downloads and uploads intact: ${name}`, async (t) => {
    const { s, dir, body } = await setup(t);
    const local = path.join(dir, 'down.bin');
    const d = await curl([...flags, '-o', local, `${s.url}/f.bin`]);
    t.is(d.code, 0, explain(d));
    t.is((await fileDigest(local)).sha256, sha256(body));
    const u = await curl([...flags, '-T', local, `${s.url}/up.bin`]);
    t.is(u.code, 0, explain(u));
    t.is((await fileDigest(path.join(s.root, 'up.bin'))).sha256, sha256(body));
    t.deepEqual(
      transferRecords(s).map((r) => [r.transfer, r.bytes, r.result]),
      [
        ['RETR', body.length, 'ok'],
        ['STOR', body.length, 'ok'],
      ],
    );
    // Each record names the session, the client's address and the logged-in user.
    for (const r of transferRecords(s)) {
      t.is(typeof r.session, 'number');
      t.regex(String(r.remote), /^127\.0\.0\.1:\d+$/);
      t.is(r.user, USER);
    }
  });
}

test('curl --ftp-create-dirs uploads into a new directory tree', async (t) => {
  const { s, dir, body } = await setup(t);
  const local = path.join(dir, 'x.bin');
  fs.writeFileSync(local, body);
  const r = await curl(['--ftp-create-dirs', '-T', local, `${s.url}/new/deeper/deepest/x.bin`]);
  t.is(r.code, 0, explain(r));
  t.is((await fileDigest(path.join(s.root, 'new', 'deeper', 'deepest', 'x.bin'))).sha256, sha256(body));
});

for (const method of ['multicwd', 'singlecwd', 'nocwd']) {
  test(`curl --ftp-method ${method} reaches files in subdirectories both ways`, async (t) => {
    const { s, dir, body } = await setup(t);
    const local = path.join(dir, 'deep.bin');
    const d = await curl(['--ftp-method', method, '-o', local, `${s.url}/sub/dir/deep.bin`]);
    t.is(d.code, 0, explain(d));
    t.is((await fileDigest(local)).sha256, sha256(body));
    const u = await curl(['--ftp-method', method, '-T', local, `${s.url}/sub/dir/up.bin`]);
    t.is(u.code, 0, explain(u));
    t.is((await fileDigest(path.join(s.root, 'sub', 'dir', 'up.bin'))).sha256, sha256(body));
    const l = await curl(['--ftp-method', method, '--list-only', `${s.url}/sub/dir/`]);
    t.is(l.code, 0, explain(l));
    t.deepEqual(l.stdout.split(/\r?\n/).filter(Boolean).sort(), ['deep.bin', 'up.bin']);
  });
}

test('curl -Q runs quote commands before and after the transfer', async (t) => {
  const { s, dir, body } = await setup(t);
  const local = path.join(dir, 'f.bin');
  const r = await curl(['-Q', 'MKD made', '-Q', '-RNFR f.bin', '-Q', '-RNTO moved.bin', '-o', local, `${s.url}/f.bin`]);
  t.is(r.code, 0, explain(r));
  t.is((await fileDigest(local)).sha256, sha256(body));
  t.true(fs.statSync(path.join(s.root, 'made')).isDirectory(), 'MKD ran before');
  t.false(fs.existsSync(path.join(s.root, 'f.bin')), 'RNFR/RNTO ran after');
  t.is((await fileDigest(path.join(s.root, 'moved.bin'))).sha256, sha256(body));
  const bad = await curl(['-Q', 'DELE nothing-here', `${s.url}/moved.bin`, '-o', local]);
  t.not(bad.code, 0, 'a failing quote command fails curl');
});

test('curl -Q copies a file, and a folder, on the server with SITE CPFR and SITE CPTO', async (t) => {
  const { s, dir, body } = await setup(t);
  const local = path.join(dir, 'copy.bin');
  const r = await curl(['-Q', 'SITE CPFR f.bin', '-Q', 'SITE CPTO sub/copy.bin', '-o', local, `${s.url}/f.bin`]);
  t.is(r.code, 0, explain(r));
  t.is((await fileDigest(path.join(s.root, 'sub', 'copy.bin'))).sha256, sha256(body));
  t.is((await fileDigest(local)).sha256, sha256(body));
  const bad = await curl(['-Q', 'SITE CPFR missing.bin', '-Q', 'SITE CPTO sub/x.bin', '-o', local, `${s.url}/f.bin`]);
  t.not(bad.code, 0, 'a missing source fails curl');
  t.false(fs.existsSync(path.join(s.root, 'sub', 'x.bin')));
  // A folder, whole: curl takes the 250 and goes on to the download.
  const tree = await curl(['-Q', 'SITE CPFR sub', '-Q', 'SITE CPTO sub2', '-o', local, `${s.url}/sub2/copy.bin`]);
  t.is(tree.code, 0, explain(tree));
  t.is((await fileDigest(local)).sha256, sha256(body));
  t.is((await fileDigest(path.join(s.root, 'sub', 'copy.bin'))).sha256, sha256(body), 'the source folder is untouched');
});

test('curl -R gives the download the server file time (MDTM)', async (t) => {
  const { s, dir } = await setup(t);
  const when = new Date('2021-03-04T05:06:07Z');
  fs.utimesSync(path.join(s.root, 'f.bin'), when, when);
  const local = path.join(dir, 'timed.bin');
  const r = await curl(['-R', '-o', local, `${s.url}/f.bin`]);
  t.is(r.code, 0, explain(r));
  t.is(fs.statSync(local).mtime.getTime(), when.getTime());
});

test('curl --append appends (APPE)', async (t) => {
  const { s, dir, body } = await setup(t);
  const local = path.join(dir, 'more.bin');
  const more = randomContent(65537);
  fs.writeFileSync(local, more);
  const r = await curl(['--append', '-T', local, `${s.url}/f.bin`]);
  t.is(r.code, 0, explain(r));
  t.is((await fileDigest(path.join(s.root, 'f.bin'))).sha256, sha256(Buffer.concat([body, more])));
});
