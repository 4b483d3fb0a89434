#!/usr/bin/env node
'use strict';
// Where a download's heap goes: V8's sampling heap profiler (128-byte interval, objects that
// either collector took counted too) over ftpdlib serving "many" in this process.
//
//   npm run build && node src/native/bench/heap-profile.js [--clients 100] [--count 50] [--top 30]
//
// Serves a 1 MiB file from a temporary root with the built library (dist/), runs
// `.bench/ftpbench many` (cc -O2 -pthread -o .bench/ftpbench bench/client/ftpbench.c) five
// times unprofiled for V8 to compile the hot paths, then once profiled, and prints the total
// KiB per file and the functions that allocated most in their own bodies, per file. The total
// matches the benchmark's "GC KiB/file" column within a few percent; the split between a
// function and what V8 inlined into it moves from build to build.
const fs = require('fs');
const os = require('os');
const path = require('path');
const inspector = require('inspector');
const { spawn } = require('child_process');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const CLIENTS = arg('--clients', 100);
const COUNT = arg('--count', 50);
const TOP = arg('--top', 30);
const client = path.join(ROOT, '.bench', 'ftpbench');
if (!fs.existsSync(client)) {
  console.error(`${client} is missing: cc -O2 -pthread -o .bench/ftpbench bench/client/ftpbench.c`);
  process.exit(2);
}
const { FtpServer, VirtualAuthorizer } = require(path.join(ROOT, 'dist', 'src'));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-heap-'));
fs.writeFileSync(path.join(dir, 'small.bin'), Buffer.alloc(1024 * 1024, 7));
const auth = new VirtualAuthorizer({ allowPlaintextPasswords: true });
auth.addUser('bench', 'bench', dir, { perm: 'elradfmwMT' });
const server = new FtpServer({ host: '127.0.0.1', port: 0, authorizer: auth, maxConnections: 5000 });

function many(clients, count) {
  return new Promise((resolve, reject) => {
    const args = ['many', '--port', String(server.address().port), '--user', 'bench', '--pass', 'bench', '--file', 'small.bin', '--clients', String(clients), '--count', String(count)];
    const p = spawn(client, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('exit', () => {
      try {
        const r = JSON.parse(out.trim().split('\n').pop());
        if (r.files !== clients * count) reject(new Error(`${r.files} of ${clients * count} files: ${r.first_error}`));
        else resolve(r);
      } catch (e) {
        reject(new Error(`ftpbench printed no result: ${out}`));
      }
    });
  });
}

(async () => {
  await server.listen();
  for (let i = 0; i < 5; i++) await many(100, 10);
  const s = new inspector.Session();
  s.connect();
  const post = (m, a = {}) => new Promise((resolve, reject) => s.post(m, a, (e, v) => (e ? reject(e) : resolve(v))));
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const r = await many(CLIENTS, COUNT);
  const { profile } = await post('HeapProfiler.stopSampling');
  const files = CLIENTS * COUNT;
  const self = new Map();
  let total = 0;
  const walk = (n) => {
    const cf = n.callFrame;
    const where = cf.url.replace(/^file:\/\//, '').replace(ROOT + path.sep, '');
    const key = `${cf.functionName || '(anonymous)'} ${where}${where ? `:${cf.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) || 0) + n.selfSize);
    total += n.selfSize;
    n.children.forEach(walk);
  };
  walk(profile.head);
  console.log(`${files} downloads of 1 MiB, ${CLIENTS} clients, ${Math.round(r.files_per_s)} files/s while profiled`);
  console.log(`heap allocated: ${(total / 1024 / files).toFixed(2)} KiB per file`);
  for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${(v / 1024 / files).toFixed(3).padStart(7)}  ${k}`);
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
