// One set of command tests, run against the local filesystem, the in-memory one, and a user's
// folder of a shared in-memory one (SubtreeFileSystem).
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { Client, FTPError, FileType } from 'basic-ftp';
import { MemoryFileSystem, SubtreeFileSystem } from '../../src';
import { LineClient } from '../helpers/line-client';
import { PASS, USER, startServer, type StartOptions, type TestServer } from '../helpers/server';
import { fetch, lines, parseMlsx, upload } from './_support';

interface Backend {
  name: string;
  options(): StartOptions;
}

const BACKENDS: Backend[] = [
  { name: 'local', options: () => ({}) },
  {
    name: 'memory',
    options: () => {
      const memfs = new MemoryFileSystem();
      return { fileSystem: () => memfs };
    },
  },
  {
    name: 'memory-subtree',
    options: () => {
      // Every user's home is a folder of one shared filesystem; another user's files sit beside it.
      const shared = new MemoryFileSystem({ files: { [`/users/${USER}/`]: '', '/users/other/private.txt': 'not yours' } });
      return { fileSystem: (user: string) => new SubtreeFileSystem(shared, `/users/${user}`) };
    },
  },
];

interface Ctx {
  s: TestServer;
  /** A polite client (basic-ftp), logged in. */
  ftp: Client;
  /** A raw client, logged in. */
  raw: LineClient;
}

async function open(t: ExecutionContext, backend: Backend): Promise<Ctx> {
  const s = await startServer(t, backend.options());
  const ftp = new Client(10000);
  t.teardown(() => ftp.close());
  await ftp.access({ host: s.host, port: s.port, user: USER, password: PASS });
  const raw = await LineClient.open(s.port);
  t.teardown(() => raw.close());
  await raw.login(USER, PASS);
  return { s, ftp, raw };
}

async function put(ftp: Client, path: string, body: Buffer | string): Promise<void> {
  await ftp.uploadFrom(Readable.from([Buffer.from(body)]), path);
}

async function get(ftp: Client, path: string, startAt = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await ftp.downloadTo(sink, path, startAt);
  return Buffer.concat(chunks);
}

async function ftpCode(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (err) {
    if (err instanceof FTPError) return err.code;
    throw err;
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Bytes 0..255 repeated, plus an odd tail: every byte value, not a multiple of any buffer size. */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

const CASES: Array<{ title: string; run: (t: ExecutionContext, c: Ctx) => Promise<void> }> = [
  {
    title: 'upload then download returns the same bytes (sizes 0, 1, 64 KiB + 1)',
    async run(t, { ftp }) {
      for (const n of [0, 1, 65537]) {
        const body = pattern(n);
        await put(ftp, `f${n}.bin`, body);
        t.is(await ftp.size(`f${n}.bin`), n);
        t.is(sha(await get(ftp, `f${n}.bin`)), sha(body), `size ${n}`);
      }
    },
  },
  {
    title: 'a listing shows files with sizes and directories',
    async run(t, { ftp, raw }) {
      await put(ftp, 'a.txt', 'hello');
      await ftp.ensureDir('/dir');
      await ftp.cd('/');
      const list = await ftp.list();
      const byName = new Map(list.map((e) => [e.name, e]));
      t.deepEqual([...byName.keys()].sort(), ['a.txt', 'dir']);
      t.is(byName.get('a.txt')!.size, 5);
      t.is(byName.get('a.txt')!.type, FileType.File);
      t.is(byName.get('dir')!.type, FileType.Directory);
      // The same through LIST and NLST on the raw client.
      const ls = lines((await fetch(raw, 'LIST')).data);
      t.is(ls.length, 2);
      t.regex(ls[0], /^-[-rwx]{9} .* 5 .* a\.txt$/);
      t.regex(ls[1], /^d[-rwx]{9} .* dir$/);
      t.deepEqual(lines((await fetch(raw, 'NLST')).data), ['a.txt', 'dir']);
    },
  },
  {
    title: 'MLSD facts are the same shape on both filesystems',
    async run(t, { ftp, raw }) {
      await put(ftp, 'a.txt', 'hello');
      await ftp.ensureDir('/dir');
      const ents = lines((await fetch(raw, 'MLSD /')).data).map(parseMlsx);
      t.deepEqual(ents.map((e) => e.name), ['a.txt', 'dir']);
      t.deepEqual(Object.keys(ents[0].facts), ['type', 'size', 'modify', 'perm', 'unique', 'unix.mode']);
      t.is(ents[0].facts.type, 'file');
      t.is(ents[0].facts.size, '5');
      t.regex(ents[0].facts.modify, /^\d{14}$/);
      t.is(ents[1].facts.type, 'dir');
      t.not(ents[0].facts.unique, ents[1].facts.unique);
      const now = Date.now();
      const m = ents[0].facts.modify;
      const mtime = Date.UTC(+m.slice(0, 4), +m.slice(4, 6) - 1, +m.slice(6, 8), +m.slice(8, 10), +m.slice(10, 12), +m.slice(12, 14));
      t.true(Math.abs(now - mtime) < 120_000, 'modify is UTC and recent');
    },
  },
  {
    title: 'rename a file and a directory',
    async run(t, { ftp }) {
      await put(ftp, 'old.txt', 'content');
      await ftp.rename('old.txt', 'new.txt');
      t.is((await get(ftp, 'new.txt')).toString(), 'content');
      t.is(await ftpCode(get(ftp, 'old.txt')), 550);
      await ftp.ensureDir('/d1/inner');
      await ftp.cd('/');
      await put(ftp, '/d1/inner/x', 'x');
      await ftp.rename('/d1', '/d2');
      t.is((await get(ftp, '/d2/inner/x')).toString(), 'x');
      t.is(await ftpCode(ftp.cd('/d1')), 550);
      // Rename over an existing file replaces it.
      await put(ftp, 'other.txt', 'other');
      await ftp.rename('new.txt', 'other.txt');
      t.is((await get(ftp, 'other.txt')).toString(), 'content');
    },
  },
  {
    title: 'delete a file; deleting it again is 550',
    async run(t, { ftp }) {
      await put(ftp, 'gone.txt', 'x');
      await ftp.remove('gone.txt');
      t.is(await ftpCode(ftp.size('gone.txt')), 550);
      t.is(await ftpCode(ftp.remove('gone.txt')), 550);
      t.deepEqual((await ftp.list()).map((e) => e.name), []);
    },
  },
  {
    title: 'mkdir, cd, pwd, rmdir, and the errors around them',
    async run(t, { ftp, raw }) {
      t.is((await raw.cmd('MKD top')).code, 257);
      t.is((await raw.cmd('MKD top/nested')).code, 257);
      t.is((await raw.cmd('MKD top')).code, 550, 'exists');
      t.is((await raw.cmd('MKD no/such/parent')).code, 550);
      t.is((await raw.cmd('CWD top/nested')).code, 250);
      t.is((await raw.cmd('PWD')).text, '"/top/nested" is the current directory.');
      t.is((await raw.cmd('CDUP')).code, 250);
      t.is((await raw.cmd('RMD /top')).code, 550, 'not empty');
      t.is((await raw.cmd('DELE nested')).code, 550, 'DELE of a directory');
      t.is((await raw.cmd('RMD nested')).code, 250);
      t.is((await raw.cmd('CWD nested')).code, 550);
      await put(ftp, '/top/file', 'f');
      t.is((await raw.cmd('CWD file')).code, 550, 'CWD to a file');
      t.is((await raw.cmd('RMD file')).code, 550, 'RMD of a file');
      t.is((await upload(raw, 'STOR /top', 'x')).first.code, 550, 'STOR onto a directory');
      await ftp.removeDir('/top');
      t.deepEqual((await ftp.list('/')).map((e) => e.name), []);
    },
  },
  {
    title: 'append and resume',
    async run(t, { ftp, raw }) {
      await put(ftp, 'log.txt', 'one,');
      await ftp.appendFrom(Readable.from([Buffer.from('two,')]), 'log.txt');
      t.is((await get(ftp, 'log.txt')).toString(), 'one,two,');
      t.is((await get(ftp, 'log.txt', 4)).toString(), 'two,');
      t.is((await raw.cmd('TYPE I')).code, 200);
      t.is((await raw.cmd('REST 8')).code, 350);
      t.is((await upload(raw, 'STOR log.txt', 'three')).final?.code, 226);
      t.is((await get(ftp, 'log.txt')).toString(), 'one,two,three');
      t.is((await raw.cmd('REST 99')).code, 350);
      t.is((await fetch(raw, 'RETR log.txt')).first.code, 554);
      t.is((await upload(raw, 'APPE fresh.txt', 'new')).final?.code, 226, 'APPE creates a missing file');
      t.is((await get(ftp, 'fresh.txt')).toString(), 'new');
    },
  },
  {
    title: 'TYPE A converts CRLF on upload and back on download',
    async run(t, { ftp, raw }) {
      t.is((await raw.cmd('TYPE A')).code, 200);
      t.is((await upload(raw, 'STOR text.txt', 'a\r\nb\r\n')).final?.code, 226);
      t.is((await get(ftp, 'text.txt')).toString(), 'a\nb\n', 'stored with LF (basic-ftp reads in TYPE I)');
      t.is((await fetch(raw, 'RETR text.txt')).data.toString(), 'a\r\nb\r\n');
    },
  },
  {
    title: 'modification times: MFMT and MDTM set, MDTM reads',
    async run(t, { ftp, raw }) {
      await put(ftp, 'a.txt', 'a');
      t.is((await raw.cmd('MFMT 20200304050607 a.txt')).code, 213);
      t.is((await raw.cmd('MDTM a.txt')).text, '20200304050607');
      t.is((await ftp.lastMod('a.txt')).getTime(), Date.UTC(2020, 2, 4, 5, 6, 7));
      t.is((await raw.cmd('MDTM 19991231235959 a.txt')).code, 213);
      t.is((await raw.cmd('MDTM a.txt')).text, '19991231235959');
      t.is((await raw.cmd('MDTM missing')).code, 550);
    },
  },
  {
    title: 'SITE CHMOD shows in unix.mode',
    async run(t, { ftp, raw }) {
      await put(ftp, 'a.txt', 'a');
      t.is((await raw.cmd('SITE CHMOD 640 a.txt')).code, 200);
      const [e] = lines((await fetch(raw, 'MLSD')).data).map(parseMlsx);
      t.is(e.facts['unix.mode'], '0640');
      t.regex(lines((await fetch(raw, 'LIST')).data)[0], /^-rw-r----- /);
    },
  },
  {
    title: 'climbing paths stay inside the root',
    async run(t, { ftp, raw }) {
      await put(ftp, '../../../../top.txt', 'top');
      t.deepEqual(lines((await fetch(raw, 'NLST /')).data), ['top.txt']);
      t.is((await get(ftp, '/../top.txt')).toString(), 'top');
      t.is((await raw.cmd('CWD ../../..')).code, 250);
      t.is((await raw.cmd('PWD')).text, '"/" is the current directory.');
      t.is(await ftpCode(get(ftp, '../../etc/passwd')), 550);
    },
  },
  {
    title: 'STOU stores under a fresh name each time',
    async run(t, { raw }) {
      const a = await upload(raw, 'STOU', '1');
      const b = await upload(raw, 'STOU', '2');
      t.is(a.final?.code, 226);
      t.is(b.final?.code, 226);
      const names = lines((await fetch(raw, 'NLST')).data);
      t.is(names.length, 2);
      t.is(new Set(names).size, 2);
    },
  },
];

for (const backend of BACKENDS) {
  for (const c of CASES) {
    test(`${backend.name}: ${c.title}`, async (t) => c.run(t, await open(t, backend)));
  }
}
