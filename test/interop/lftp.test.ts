import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomContent, settleSessionsOnTeardown, sha256 } from '../helpers/data-client';
import { explain, run } from '../helpers/run';
import { PASS, USER, startServer } from '../helpers/server';

/** lftp: mirror both ways, put, get, mv, site CPFR/CPTO, rm, mkdir -p, in passive and active mode. */

/** Every file under dir, as relative path → sha256. */
function treeHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out[r] = sha256(fs.readFileSync(path.join(dir, r)));
    }
  };
  walk('');
  return out;
}

function makeTree(dir: string): void {
  fs.mkdirSync(path.join(dir, 'sub', 'deeper'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'empty-not', 'x'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'a.bin'), randomContent(65537));
  fs.writeFileSync(path.join(dir, 'zero.bin'), Buffer.alloc(0));
  fs.writeFileSync(path.join(dir, 'sub', 'b.bin'), randomContent(1024 * 1024 + 1));
  fs.writeFileSync(path.join(dir, 'sub', 'deeper', 'c.bin'), randomContent(1));
  fs.writeFileSync(path.join(dir, 'empty-not', 'x', 'd.txt'), 'hello\n');
}

for (const passive of [true, false]) {
  const mode = passive ? 'passive' : 'active';
  test(`lftp mirror, put, get, mv, site CPFR/CPTO, rm, mkdir -p [${mode}]`, async (t: ExecutionContext) => {
    const s = await startServer(t);
    settleSessionsOnTeardown(t, s.server);
    const local = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-lftp-'));
    t.teardown(() => fs.rmSync(local, { recursive: true, force: true }));
    makeTree(path.join(s.root, 'tree'));
    makeTree(path.join(local, 'uptree'));
    const single = randomContent(300_001);
    fs.writeFileSync(path.join(local, 'single.bin'), single);
    const script = [
      'set cmd:fail-exit yes',
      'set ftp:ssl-allow no',
      'set net:max-retries 1',
      'set net:timeout 20',
      'set xfer:clobber yes',
      `set ftp:passive-mode ${passive ? 'on' : 'off'}`,
      `open -u ${USER},${PASS} -p ${s.port} 127.0.0.1`,
      `lcd ${local}`,
      'mirror tree downtree',
      'mirror -R uptree uptree',
      'put single.bin -o put.bin',
      'get put.bin -o got.bin',
      'mkdir -p made/a/b/c',
      'mv put.bin made/a/b/c/moved.bin',
      'site CPFR made/a/b/c/moved.bin',
      'site CPTO made/copied.bin',
      'put single.bin -o doomed.bin',
      'rm doomed.bin',
      'bye',
    ].join('; ');
    const r = await run('lftp', ['-c', script], { timeoutMs: 90000 });
    t.is(r.code, 0, explain(r));
    t.deepEqual(treeHashes(path.join(local, 'downtree')), treeHashes(path.join(s.root, 'tree')), 'mirror downloads the tree intact');
    t.deepEqual(treeHashes(path.join(s.root, 'uptree')), treeHashes(path.join(local, 'uptree')), 'mirror -R uploads the tree intact');
    t.is(sha256(fs.readFileSync(path.join(local, 'got.bin'))), sha256(single), 'get after put gives the bytes back');
    t.is(sha256(fs.readFileSync(path.join(s.root, 'made', 'a', 'b', 'c', 'moved.bin'))), sha256(single), 'mv into the mkdir -p tree');
    t.false(fs.existsSync(path.join(s.root, 'put.bin')));
    t.is(sha256(fs.readFileSync(path.join(s.root, 'made', 'copied.bin'))), sha256(single), 'site CPFR/CPTO copied on the server');
    t.false(fs.existsSync(path.join(s.root, 'doomed.bin')), 'rm removed the file');
  });
}
