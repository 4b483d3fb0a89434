import { Readable, Writable } from 'node:stream';
import test from 'ava';
import { loggedIn, randomContent, retr, settleSessionsOnTeardown, stor, withReads } from '../helpers/data-client';
import { PASS, USER, startServer } from '../helpers/server';
import { MemoryFileSystem, type FileSystem } from '../../src';

/** An I/O error as a disk gives it. */
const eio = (): NodeJS.ErrnoException => Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });

/** A filesystem whose reads and writes of files fail with EIO once 64 KiB went through. */
function failingDisk(files: Record<string, Buffer>): FileSystem {
  const mem = new MemoryFileSystem({ files });
  const LIMIT = 64 * 1024;
  return withReads(
    mem,
    (h) =>
      Readable.from(
        (async function* () {
          let n = 0;
          for await (const chunk of h.createReadStream()) {
            if (n + chunk.length > LIMIT) throw eio();
            n += chunk.length;
            yield chunk;
          }
        })(),
      ),
    {
      openWrite: {
        value: async (p: string, options: object) => {
          const h = await mem.openWrite(p, options);
          let n = 0;
          return {
            offset: h.offset,
            close: () => h.close(),
            createReadStream: () => h.createReadStream(),
            createWriteStream: () =>
              new Writable({
                write(chunk: Buffer, _enc, cb) {
                  n += chunk.length;
                  cb(n > LIMIT ? eio() : null);
                },
              }),
          };
        },
      },
    },
  );
}

test('a disk error (EIO) in the middle of a RETR or a STOR answers 451, a local error, and the session goes on', async (t) => {
  const s = await startServer(t, { fileSystem: () => failingDisk({ '/big.bin': randomContent(1024 * 1024) }) });
  settleSessionsOnTeardown(t, s.server);
  const c = await loggedIn(s.port, USER, PASS);
  const down = await retr(c, 'passive', 'RETR big.bin');
  t.true(down.first.code === 150 || down.first.code === 125);
  t.is(down.final?.code, 451, `RETR: ${down.final?.text}`);
  t.regex(down.final?.text ?? '', /local error/);
  t.true(down.digest.bytes <= 64 * 1024, 'no byte beyond the failed read');
  const up = await stor(c, 'passive', 'STOR up.bin', randomContent(512 * 1024));
  t.true(up.first.code === 150 || up.first.code === 125);
  t.is(up.final?.code, 451, `STOR: ${up.final?.text}`);
  t.is((await c.cmd('NOOP')).code, 200, 'the session still works');
  // The failures are logged as errors, with the transfer.
  const recs = s.records.filter((r) => r.msg === 'transfer' && r.result !== 'ok');
  t.is(recs.length, 2);
  t.true(recs.every((r) => (r.err as { code?: string } | undefined)?.code === 'EIO'), JSON.stringify(recs.map((r) => r.err)));
  c.close();
});
