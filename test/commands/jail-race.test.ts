import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loggedIn, stor } from '../helpers/data-client';
import { PASS, USER, startServer } from '../helpers/server';

// An FTP client racing the jail's check on its own: one session renames a symlink that leads out
// of the root (made by someone else: FTP cannot make one) back and forth over a missing folder,
// while another uploads into that folder and makes folders in it. Before pinning (src/fs/pin.ts),
// the upload's check saw a missing folder and its open then followed the link: a file written
// outside the root within a second or so. Bounded in time: 3 s of racing.

const RACE_MS = 3000;

test('STOR and MKD racing RNFR/RNTO of an outside symlink never create anything outside the root', async (t) => {
  const s = await startServer(t);
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-outside-'));
  t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
  fs.symlinkSync(outside, path.join(s.root, 'esc'));
  const a = await loggedIn(s.port, USER, PASS);
  const b = await loggedIn(s.port, USER, PASS);
  let stop = false;
  let swaps = 0;
  const swapper = (async () => {
    while (!stop) {
      // /d is missing, then the link, then missing again: one rename each way, pipelined.
      b.send('RNFR /esc\r\nRNTO /d\r\nRNFR /d\r\nRNTO /esc\r\n');
      for (let i = 0; i < 4; i++) await b.read();
      swaps++;
    }
  })();
  const codes = new Map<string, number>();
  const count = (k: string): void => {
    codes.set(k, (codes.get(k) ?? 0) + 1);
  };
  const started = Date.now();
  let tries = 0;
  while (Date.now() - started < RACE_MS) {
    tries++;
    const r = await stor(a, 'passive', 'STOR /d/planted.txt', Buffer.from('PLANTED\n'));
    count(`STOR ${r.first.code}${r.final ? `/${r.final.code}` : ''}`);
    count(`MKD ${(await a.cmd(`MKD /d/made${tries}`)).code}`);
    if (fs.readdirSync(outside).length) break;
  }
  stop = true;
  await swapper;
  t.log(`${tries} tries, ${swaps} swaps, replies: ${[...codes].map(([k, v]) => `${k} x${v}`).join(', ')}`);
  t.deepEqual(fs.readdirSync(outside), [], 'nothing outside the root');
  t.true(swaps > 10, `the link moved (${swaps} swaps)`);
  // Both sessions stay up, and the link can still be renamed and removed as an entry.
  t.is((await a.cmd('NOOP')).code, 200);
  t.is((await b.cmd('NOOP')).code, 200);
  a.close();
  b.close();
});
