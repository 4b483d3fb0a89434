#!/usr/bin/env node
// The test command (npm test): type-check, then every ava suite (the server's and the vendored
// parser's), then one closing line "N passed, M failed" that CI reads.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const extra = process.argv.slice(2);

let failedChecks = 0;
let passedChecks = 0;
if (!extra.length) {
  process.stdout.write('typecheck: tsc --noEmit\n');
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (tsc.status === 0) passedChecks++;
  else failedChecks++;
}

const ava = spawn(process.execPath, [path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), '--tap', ...extra], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
});
let tail = '';
let pass = 0;
let fail = 0;
let skip = 0;
let todo = 0;
ava.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString('utf8')).slice(-4096);
});
ava.on('close', (code) => {
  const num = (name) => {
    const m = new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tail);
    return m ? Number(m[1]) : 0;
  };
  pass = num('pass');
  fail = num('fail');
  skip = num('skip');
  todo = num('todo');
  // ava exits non-zero for uncaught exceptions and timeouts that TAP does not count as a failed test.
  if (code !== 0 && fail === 0) fail = 1;
  const passed = pass + passedChecks;
  const failed = fail + failedChecks;
  process.stdout.write(`\n${passed} passed, ${failed} failed${skip || todo ? `, ${skip + todo} skipped` : ''}\n`);
  process.exit(failed === 0 && code === 0 ? 0 : 1);
});
