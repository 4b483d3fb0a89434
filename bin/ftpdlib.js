#!/usr/bin/env node
// Runs the compiled CLI when `npm run build` has made it, else the TypeScript source through ts-node.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const compiled = path.join(root, 'dist', 'src', 'cli.js');

/** Newest modification time of the TypeScript sources (0 when they are not there, as in a package). */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'build') newest = Math.max(newest, newestSource(p));
    } else if (e.name.endsWith('.ts')) {
      newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  }
  return newest;
}

// A build older than the sources (a checkout that was edited after `npm run build`) is not used.
if (fs.existsSync(compiled) && fs.statSync(compiled).mtimeMs >= newestSource(path.join(root, 'src'))) {
  require(compiled).main(process.argv.slice(2));
} else {
  require('ts-node').register({ transpileOnly: true, project: path.join(__dirname, '..', 'tsconfig.json') });
  require(path.join(__dirname, '..', 'src', 'cli.ts')).main(process.argv.slice(2));
}
