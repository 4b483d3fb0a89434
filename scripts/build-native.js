#!/usr/bin/env node
// Builds the zero-copy engine (src/native) from source with node-gyp at install time.
// A failed build is reported and leaves a working server that moves data over streams;
// FTPDLIB_NATIVE_REQUIRED=1 (set by CI) turns a failed build into an install failure.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const required = process.env.FTPDLIB_NATIVE_REQUIRED === '1';

function done(ok, why) {
  if (ok) return process.exit(0);
  const msg = `ftpdlib: native engine not built (${why}); transfers will use the stream path.`;
  if (required) {
    console.error(`${msg}\nFTPDLIB_NATIVE_REQUIRED=1: failing the install.`);
    process.exit(1);
  }
  console.warn(msg);
  process.exit(0);
}

if (process.env.FTPDLIB_SKIP_NATIVE === '1') done(false, 'FTPDLIB_SKIP_NATIVE=1');
if (process.platform !== 'linux') done(false, `platform ${process.platform} has no sendfile/splice engine`);
if (!fs.existsSync(path.join(root, 'src', 'native', 'binding.gyp'))) done(false, 'binding.gyp missing');

// npm puts its bundled node-gyp on PATH for lifecycle scripts; fall back to the one beside npm.
let cmd = 'node-gyp';
let args = ['rebuild', '--directory=src/native'];
const probe = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
if (probe.error) {
  const npmDir = path.dirname(path.dirname(process.env.npm_execpath || ''));
  const bundled = path.join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!fs.existsSync(bundled)) done(false, 'node-gyp not found');
  cmd = process.execPath;
  args = [bundled, 'rebuild', '--directory=src/native'];
}
const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
done(r.status === 0, r.error ? r.error.message : `node-gyp exited with ${r.status}`);
