// Listings sent a batch at a time (LIST, NLST, MLSD through FileSystem.readdirStream): every entry
// once, in name order, across many batches; an ABOR mid-listing stops it and gives back the pin
// of the directory; a directory that cannot be read is refused before any 150.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { LISTING_BATCH } from '../../src/ftp/commands/list';
import { MemoryFileSystem } from '../../src';
import { LocalFileSystem } from '../../src/fs/local';
import { eventually, openFds } from '../helpers/server';
import { fetch, lines, loggedIn } from './_support';

const COUNT = LISTING_BATCH * 11 + 7;
const names = Array.from({ length: COUNT }, (_, i) => `f${String(i).padStart(5, '0')}.txt`);

function fill(dir: string): void {
  fs.mkdirSync(dir);
  // Made in reverse: the listing's order is its own sort, not the disk's.
  for (const n of [...names].reverse()) fs.writeFileSync(path.join(dir, n), n);
}

test(`LIST, NLST and MLSD of ${COUNT} entries (${Math.ceil(COUNT / LISTING_BATCH)} batches): each entry once, in name order`, async (t) => {
  const { s, c } = await loggedIn(t);
  fill(path.join(s.root, 'big'));
  t.deepEqual(lines((await fetch(c, 'NLST big')).data), names);
  const list = lines((await fetch(c, 'LIST big')).data);
  t.is(list.length, COUNT);
  t.deepEqual(list.map((l) => l.split(' ').pop()), names);
  t.true(list.every((l, i) => l.startsWith('-rw') && / 10 \w{3} /.test(l)), 'each line has its own size (10 bytes)');
  const mlsd = lines((await fetch(c, 'MLSD big')).data);
  t.deepEqual(mlsd.map((l) => l.slice(l.indexOf(' ') + 1)), names);
  t.true(mlsd.every((l) => l.startsWith('type=file;size=10;')));
});

test(`STAT of a folder of ${COUNT} entries: one 213 reply, every entry once in name order, each line indented`, async (t) => {
  const { s, c } = await loggedIn(t);
  fill(path.join(s.root, 'big'));
  const r = await c.cmd('STAT big');
  t.is(r.code, 213);
  t.is(r.lines.length, COUNT + 2);
  t.is(r.lines[0], '213-Status of /big:');
  t.is(r.lines[COUNT + 1], '213 End of status.');
  t.deepEqual(r.lines.slice(1, -1).map((l) => l.split(' ').pop()), names);
  t.true(r.lines.slice(1, -1).every((l) => l.startsWith(' -rw')));
  t.is((await c.cmd('NOOP')).code, 200, 'the replies stay in step');
});

test('a filesystem without readdirStream (memory) lists the same way, from readdir', async (t) => {
  const files: Record<string, string> = {};
  for (const n of names.slice(0, LISTING_BATCH + 3)) files[`/m/${n}`] = n;
  const mem = new MemoryFileSystem({ files });
  const { c } = await loggedIn(t, { fileSystem: () => mem });
  t.deepEqual(lines((await fetch(c, 'NLST m')).data), names.slice(0, LISTING_BATCH + 3));
});

test('ABOR mid-listing: 426 then 226, the session goes on, and no descriptor is left (the pin of the folder is given back)', async (t) => {
  // 20 KB/s: the listing of about 250 KB takes seconds, and ABOR comes in its first moments.
  const { s, c } = await loggedIn(t, { writeLimit: 20_000 });
  fill(path.join(s.root, 'big'));
  t.is((await c.cmd('NOOP')).code, 200);
  const before = openFds();
  const sock = await c.epsvConnect();
  let got = 0;
  sock.on('data', (d: Buffer) => (got += d.length));
  sock.on('error', () => {});
  t.true([125, 150].includes((await c.cmd('LIST big')).code));
  await eventually(() => got > 0, 'the first bytes of the listing');
  c.send('ABOR\r\n');
  t.is((await c.read())?.code, 426);
  t.is((await c.read())?.code, 226);
  sock.destroy();
  t.true(got < 200_000, `${got} bytes before ABOR`);
  t.is((await c.cmd('NOOP')).code, 200);
  await eventually(() => openFds() <= before, `descriptors back to ${before} (now ${openFds()})`);
});

test('a folder whose names cannot be read is refused before any 150 (550), and a missing one too', async (t) => {
  // The server runs as root in CI, which reads any folder: the refusal comes from the filesystem.
  const { c } = await loggedIn(t, {
    fileSystem: (_user, home) => {
      const lfs = new LocalFileSystem(home);
      const real = lfs.readdirStream.bind(lfs);
      lfs.readdirStream = async (p, batch) => {
        if (p === '/closed') throw Object.assign(new Error('EACCES: scandir'), { code: 'EACCES' });
        return real(p, batch);
      };
      return lfs;
    },
  });
  await c.cmd('MKD closed');
  for (const verb of ['LIST', 'NLST', 'MLSD']) {
    const r = await fetch(c, `${verb} closed`);
    t.is(r.first.code, 550, verb);
    t.is(r.final, null, `${verb}: no 150 before it`);
    t.is((await fetch(c, `${verb} nope`)).first.code, 550, `${verb} of a missing folder`);
  }
});

test('a listing that fails after its 150 (a later batch refused) ends with 451, not 550, and the session goes on', async (t) => {
  const { s, c } = await loggedIn(t, {
    fileSystem: (_user, home) => {
      const lfs = new LocalFileSystem(home);
      const real = lfs.readdirStream.bind(lfs);
      lfs.readdirStream = async (p, batch) => {
        const inner = await real(p, batch);
        return (async function* failing() {
          let n = 0;
          for await (const b of inner) {
            if (++n === 3) throw Object.assign(new Error('EACCES: lstat'), { code: 'EACCES' });
            yield b;
          }
        })();
      };
      return lfs;
    },
  });
  fill(path.join(s.root, 'big'));
  for (const verb of ['LIST', 'NLST', 'MLSD']) {
    const r = await fetch(c, `${verb} big`);
    t.is(r.first.code, 125, verb);
    t.is(r.final?.code, 451, `${verb}: ${r.final?.code} ${r.final?.text}`);
    t.true(lines(r.data).length <= 2 * LISTING_BATCH, `${verb}: at most the two batches before the failure`);
  }
  t.is((await c.cmd('NOOP')).code, 200);
});
