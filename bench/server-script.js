'use strict';
// bench/servers/ftpdlib.ts as plain JavaScript, for running ftpdlib's benchmark server with
// plain node against a build (no TypeScript compiler in the server's memory). Used by
// bench/run.js and src/native/bench/login-floor.js.

const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '..');

/**
 * Write the transpiled server to `out` and return its path. `out` must be two folders below the
 * repository, as bench/servers/ftpdlib.ts is (it finds bench/gc-window.js from there); the
 * benchmark uses .bench/run/. Throws when TypeScript is not installed.
 */
function writeFtpdlibServer(out) {
  const ts = require(path.join(ROOT, 'node_modules', 'typescript'));
  const src = fs.readFileSync(path.join(__dirname, 'servers', 'ftpdlib.ts'), 'utf8');
  const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020, esModuleInterop: true } }).outputText;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, js);
  return out;
}

module.exports = { writeFtpdlibServer };
