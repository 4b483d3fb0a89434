import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as net from 'node:net';
import { loggedIn, prepareData, randomContent, settleSessionsOnTeardown } from '../helpers/data-client';
import { MATRIX, transferRecords } from '../helpers/matrix';
import { PASS, USER, startServer } from '../helpers/server';

const write = (s: net.Socket, b: Buffer): Promise<void> => new Promise((resolve, reject) => s.write(b, (err) => (err ? reject(err) : resolve())));

/**
 * APPE from two sessions to one file at once. Both open the file at the same size; each write
 * must still land after everything before it (O_APPEND), not at the size the open saw, or the
 * second upload overwrites the first and both get 226.
 */
for (const row of MATRIX) {
  row.test('two sessions APPE to one file at once: the file keeps every byte of both, each upload in order', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    settleSessionsOnTeardown(t, s.server);
    const head = Buffer.from('head\n');
    fs.writeFileSync(path.join(s.root, 'log.bin'), head);
    const CHUNKS = 8;
    const CHUNK = 64 * 1024;
    // Each upload's bytes name their upload (A or B) and carry a counter, so order can be checked.
    const body = (tag: string): Buffer[] =>
      Array.from({ length: CHUNKS }, (_, i) => {
        const b = Buffer.alloc(CHUNK, tag);
        b.write(`${tag}${i}`, 0, 'latin1');
        return b;
      });
    const uploads = await Promise.all(
      ['A', 'B'].map(async (tag) => {
        const c = await loggedIn(s.port, USER, PASS);
        const plan = await prepareData(c, row.mode);
        c.send('APPE log.bin\r\n');
        const first = await c.read(30000);
        t.true(first?.code === 150 || first?.code === 125, `${tag}: ${first?.code} ${first?.text}`);
        const sock = await plan.socket();
        sock.setNoDelay(true);
        return { tag, c, sock, chunks: body(tag) };
      }),
    );
    // Both files are open now; their chunks go out in turns.
    for (let i = 0; i < CHUNKS; i++) {
      for (const u of uploads) await write(u.sock, u.chunks[i]);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const u of uploads) u.sock.end();
    for (const u of uploads) {
      const final = await u.c.read(30000);
      t.is(final?.code, 226, `${u.tag}: ${final?.text}`);
      u.sock.destroy();
      u.c.close();
    }
    const stored = fs.readFileSync(path.join(s.root, 'log.bin'));
    t.is(stored.length, head.length + 2 * CHUNKS * CHUNK, 'every byte of both uploads');
    t.true(stored.subarray(0, head.length).equals(head), 'what was there stays');
    const rest = stored.subarray(head.length);
    for (const tag of ['A', 'B']) {
      t.is(rest.filter((x) => x === tag.charCodeAt(0)).length >= CHUNKS * (CHUNK - 2), true, `${tag}'s bytes are all there`);
      // The counters of one upload appear in its own order.
      const seen = [...rest.toString('latin1').matchAll(new RegExp(`${tag}(\\d)`, 'g'))].map((m) => Number(m[1]));
      t.deepEqual(
        seen.filter((n, i) => i === 0 || n !== seen[i - 1]),
        Array.from({ length: CHUNKS }, (_, i) => i),
        `${tag}'s chunks in order`,
      );
    }
    const recs = transferRecords(s).filter((r) => r.transfer === 'APPE');
    t.is(recs.length, 2);
    t.true(recs.every((r) => r.result === 'ok' && r.bytes === CHUNKS * CHUNK));
  });
}
