// The stream path keeps its 1 MiB read buffers between downloads (src/native/fallback.ts): many
// downloads at once, each through buffers another download used before, must still each send
// their own file, and the kept buffers must go once downloads stop.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loggedIn, retr, sha256 } from '../helpers/data-client';
import { PASS, USER, startServer } from '../helpers/server';
import { sendPoolSize } from '../../src/native/fallback';

const MiB = 1024 * 1024;

test('stream path: 40 downloads of different files, 20 at a time through shared buffers, each intact; the buffers go 2 s after', async (t) => {
  const s = await startServer(t, { useSendfile: false });
  // Sizes around the 1 MiB chunk: exactly one chunk, one byte over, and several chunks.
  const sizes = [MiB, MiB + 1, MiB - 1, 3 * MiB + 7];
  const files = Array.from({ length: 40 }, (_, i) => {
    const body = randomBytes(sizes[i % sizes.length]);
    fs.writeFileSync(path.join(s.root, `f${i}.bin`), body);
    return { name: `f${i}.bin`, hash: sha256(body), size: body.length };
  });
  t.is(sendPoolSize(), 0);
  const clients = await Promise.all(Array.from({ length: 20 }, () => loggedIn(s.port, USER, PASS)));
  for (let round = 0; round < 2; round++) {
    await Promise.all(
      clients.map(async (c, i) => {
        const f = files[round * 20 + i];
        const out = await retr(c, 'passive', `RETR ${f.name}`, { keep: false, timeoutMs: 60000 });
        t.is(out.final?.code, 226, `${f.name}: ${out.final?.text}`);
        t.is(out.digest.bytes, f.size, f.name);
        t.is(out.digest.sha256, f.hash, `${f.name} hashes like the file`);
      }),
    );
  }
  t.true(sendPoolSize() > 0, 'buffers kept for the next downloads');
  t.true(sendPoolSize() <= 128, 'at most 128 kept');
  await new Promise((r) => setTimeout(r, 2600));
  t.is(sendPoolSize(), 0, 'given back once downloads stopped');
  for (const c of clients) c.close();
});
