import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileDigest, randomContent, settleSessionsOnTeardown, sha256 } from '../helpers/data-client';
import { explain, run } from '../helpers/run';
import { startServer } from '../helpers/server';

/** wget's ftp:// downloads, passive and active. */
for (const flags of [[], ['--no-passive-ftp']]) {
  test(`wget downloads ftp:// URLs intact ${flags.join(' ') || '(passive)'}`, async (t) => {
    const s = await startServer(t);
    settleSessionsOnTeardown(t, s.server);
    const body = randomContent(2 * 1024 * 1024 + 3);
    fs.mkdirSync(path.join(s.root, 'pub'));
    fs.writeFileSync(path.join(s.root, 'pub', 'w.bin'), body);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-wget-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const out = path.join(dir, 'w.bin');
    const r = await run('wget', ['-q', '--tries=1', '--timeout=20', ...flags, '-O', out, `${s.url}/pub/w.bin`], { timeoutMs: 60000 });
    t.is(r.code, 0, explain(r));
    t.is((await fileDigest(out)).sha256, sha256(body));
  });
}
