#!/usr/bin/env node
// Runs the compiled CLI (dist/, made by `npm run build`, and shipped in the package). In a source
// checkout whose TypeScript is newer than that build, or that has none yet, it runs the sources
// through ts-node instead (a development dependency): never in an installed package, whose files'
// times say nothing (npm gives them all the time of the install, in any order).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const compiled = path.join(root, 'dist', 'src', 'cli.js');
const sources = path.join(root, 'src', 'cli.ts');
const tsconfig = path.join(root, 'tsconfig.json');

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

function tsNode() {
  try {
    return require.resolve('ts-node', { paths: [root] });
  } catch {
    return null;
  }
}

const checkout = fs.existsSync(sources) && fs.existsSync(tsconfig) && tsNode() !== null;
const built = fs.existsSync(compiled);
// A build older than the sources (a checkout edited after `npm run build`) is not used.
if (built && (!checkout || fs.statSync(compiled).mtimeMs >= newestSource(path.join(root, 'src')))) {
  require(compiled).main(process.argv.slice(2));
} else if (checkout) {
  if (!built) process.stderr.write('ftpdlib: no build yet; compiling the TypeScript sources as they load (`npm run build` makes starts quicker)...\n');
  require('ts-node').register({ transpileOnly: true, project: tsconfig });
  require(sources).main(process.argv.slice(2));
} else {
  process.stderr.write(`ftpdlib: ${compiled} is missing: run \`npm run build\` in ${root}\n`);
  process.exit(1);
}
