'use strict';
// ftp-srv peer for bench/run.js (ftp-srv is installed into .bench/node_modules by bench/setup.sh).
// Prints {"port": N} on stdout; on SIGUSR2 prints event-loop delay stats (same as ftpdlib.ts).
// --tls-cert FILE --tls-key FILE: ftp-srv's `tls` option (explicit AUTH TLS; PROT P data
// connections then use TLS). ftp-srv has no option to refuse plain sessions.
const path = require('path');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const port = Number(arg('--port', '0'));
const root = path.resolve(arg('--root', '.'));
const [pasvMin, pasvMax] = arg('--pasv', '20000-20999').split('-').map(Number);
const modDir = path.resolve(arg('--modules', path.join(__dirname, '..', '..', '.bench', 'node_modules')));

const tlsCert = arg('--tls-cert');
const tlsKey = arg('--tls-key');
const fs = require('fs');

const FtpSrv = require(path.join(modDir, 'ftp-srv'));
const bunyan = require(path.join(modDir, 'bunyan'));

// Loop delay and V8's collector over the phase between two SIGUSR2 (bench/run.js sends them
// around "many"; bench/gc-window.js).
const phase = require(path.join(__dirname, '..', 'gc-window.js')).phaseReporter();
process.on('SIGUSR2', () => process.stdout.write(JSON.stringify(phase()) + '\n'));

const server = new FtpSrv({
  url: `ftp://127.0.0.1:${port}`,
  pasv_url: '127.0.0.1',
  pasv_min: pasvMin,
  pasv_max: pasvMax,
  anonymous: false,
  greeting: 'ftp-srv bench',
  tls: tlsCert ? { cert: fs.readFileSync(tlsCert), key: fs.readFileSync(tlsKey || tlsCert) } : false,
  log: bunyan.createLogger({ name: 'ftp-srv', level: 'fatal' }),
});
server.on('login', ({ username, password }, resolve, reject) => {
  if (username === 'bench' && password === 'bench') resolve({ root });
  else reject(new Error('bad login'));
});
server.on('client-error', () => {});
server.listen().then(() => {
  const a = server.server.address();
  process.stdout.write(JSON.stringify({ port: a.port }) + '\n');
});
// "gc" on stdin: full GC (node --expose-gc) before the runner samples PSS, as for ftpdlib
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  if (d.includes('gc')) {
    if (global.gc) global.gc();
    process.stdout.write(JSON.stringify({ gc: !!global.gc }) + '\n');
  }
});
process.stdin.on('error', () => {});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
