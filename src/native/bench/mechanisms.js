#!/usr/bin/env node
// Measures the native engine's mechanisms over loopback, without FTP.
//
//   node src/native/bench/mechanisms.js [--size-mib 2048] [--recv-mib 1024]
//        [--reps 3] [--dir /tmp] [--recv-dir DIR] [--only send|receive] [--json]
//        [--concurrency C] [--threads N] [--match TEXT]
//
// --concurrency C runs C transfers at once per case, each of the full size; --threads N
// sets the engine's I/O thread count; --match keeps the cases whose label has TEXT.
//
// send:    a page-cached file -> engine -> loopback -> `peer read` (1 MiB recv buffer)
// receive: `peer write` (1 MiB sends) -> loopback -> engine -> a file in --dir
// For each mechanism and size it reports MB/s (median of --reps, and the range) and the CPU
// seconds of the server process (the engine's thread and the idle event loop)
// and of the peer process. The stream engine (fallback.ts) is the baseline.
// This is a measurement script, not a test: run it on a quiet machine.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

require('ts-node').register({ transpileOnly: true });
const native = require('../index.ts');
const { streamEngine } = require('../fallback.ts');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const MiB = 1024 * 1024;
const sendBytes = Number(opt('size-mib', 2048)) * MiB;
const recvBytes = Number(opt('recv-mib', 1024)) * MiB;
const reps = Number(opt('reps', 3));
const dir = opt('dir', os.tmpdir());
const recvDir = opt('recv-dir', dir);
const only = opt('only', '');
const asJson = args.includes('--json');
const concurrency = Number(opt('concurrency', 1));
const threads = opt('threads', '');
const match = opt('match', '');

if (!native.available) {
  console.error(`native engine not available: ${native.reason}`);
  process.exit(1);
}

if (threads) native.configureNative({ threads: Number(threads) });

const peer = path.join(os.tmpdir(), `ftpdlib-bench-peer-${process.pid}`);
execFileSync('cc', ['-O2', '-o', peer, path.join(__dirname, 'peer.c')]);

const K = 1024;
// 'default' is the native engine with no per-request options (configureNative's defaults).
const sendCasesAll = [
  ['stream', {}],
  ['default', {}],
  ['sendfile', { chunkSize: 64 * K }],
  ['sendfile', { chunkSize: 1 * MiB }],
  ['sendfile', { chunkSize: 16 * MiB }],
  ['sendfile', { chunkSize: 16 * MiB, sendBufferSize: 4 * MiB }],
  ['sendfile', { chunkSize: 16 * MiB, cork: false }],
  ['splice', { pipeSize: 64 * K, chunkSize: 64 * K }],
  ['splice', { pipeSize: 256 * K, chunkSize: 256 * K }],
  ['splice', { pipeSize: 1 * MiB, chunkSize: 1 * MiB }],
  ['splice', { pipeSize: 4 * MiB, chunkSize: 4 * MiB }],
  ['copy', { chunkSize: 64 * K }],
  ['copy', { chunkSize: 256 * K }],
  ['copy', { chunkSize: 1 * MiB }],
  ['copy', { chunkSize: 4 * MiB }],
];
const recvCasesAll = [
  ['stream', {}],
  ['default', {}],
  ['splice', { pipeSize: 64 * K, chunkSize: 64 * K }],
  ['splice', { pipeSize: 256 * K, chunkSize: 256 * K }],
  ['splice', { pipeSize: 1 * MiB, chunkSize: 1 * MiB }],
  ['copy', { chunkSize: 64 * K }],
  ['copy', { chunkSize: 96 * K }],
  ['copy', { chunkSize: 128 * K }],
  ['copy', { chunkSize: 256 * K }],
  ['copy', { chunkSize: 1 * MiB }],
  ['copy', { chunkSize: 4 * MiB }],
  ['copy', { chunkSize: 1 * MiB, receiveBufferSize: 4 * MiB }],
];

const keep = ([mech, o]) => !match || label(mech, o).includes(match);
const sendCases = sendCasesAll.filter(keep);
const recvCases = recvCasesAll.filter(keep);

function label(mech, o) {
  return [mech, o.chunkSize && `chunk ${o.chunkSize / K}K`, o.pipeSize && `pipe ${o.pipeSize / K}K`,
    o.sendBufferSize && `SO_SNDBUF ${o.sendBufferSize / K}K`, o.receiveBufferSize && `SO_RCVBUF ${o.receiveBufferSize / K}K`,
    o.cork === false && 'no cork']
    .filter(Boolean).join(', ');
}

function handle(fd, offset) {
  return {
    fd,
    offset,
    createReadStream: () => fs.createReadStream('', { fd, start: offset, autoClose: false }),
    createWriteStream: () => fs.createWriteStream('', { fd, start: offset, autoClose: false }),
    close: async () => {},
  };
}

function runPeer(argv) {
  return new Promise((resolve, reject) => {
    const p = spawn(peer, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`peer exited ${code}`))));
  });
}

async function many(server, direction, mech, o, fd) {
  if (concurrency === 1) return once(server, direction, mech, o, fd, 0, direction === 'send' ? sendBytes : recvBytes);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const total = direction === 'send' ? sendBytes : recvBytes;
  const each = await Promise.all(
    Array.from({ length: concurrency }, () => once(server, direction, mech, o, fd, 0, total, true)),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { mbps: (total * concurrency) / 1e6 / secs, server: (cpu.user + cpu.system) / 1e6, peer: each.reduce((a, r) => a + r.peer, 0) };
}

async function once(server, direction, mech, o, fd, offset, want, concurrent = false) {
  // With several receives at once each needs its own file.
  let own = null;
  if (concurrent && direction === 'receive') {
    own = path.join(recvDir, `ftpdlib-bench-recv-${process.pid}-${Math.random().toString(36).slice(2)}.bin`);
    fd = fs.openSync(own, 'w');
  }
  try {
    return await once1(server, direction, mech, o, fd, offset, want, concurrent);
  } finally {
    if (own) {
      fs.closeSync(fd);
      fs.unlinkSync(own);
    }
  }
}

async function once1(server, direction, mech, o, fd, offset, want, concurrent) {
  const port = server.address().port;
  const conn = concurrent ? null : new Promise((r) => server.once('connection', r));
  const peerDone = direction === 'send'
    ? runPeer(['read', String(port), String(MiB)])
    : runPeer(['write', String(port), String(want), String(MiB)]);
  const socket = concurrent ? await pending(peerDone) : await conn;
  const req = {
    direction, socket, tls: false, ascii: false, handle: handle(fd, offset),
    signal: new AbortController().signal,
    native: mech === 'stream' || mech === 'default' ? undefined : {
      ...(direction === 'send' ? { sendMechanism: mech } : { receiveMechanism: mech }), ...o,
    },
  };
  const engine = mech === 'stream' ? streamEngine : native.nativeEngine;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const res = await engine.run(req);
  socket.end();
  const p = await peerDone;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  socket.destroy();
  if (res.bytes !== want || p.bytes !== want) throw new Error(`${mech}: moved ${res.bytes}/${p.bytes}, wanted ${want}`);
  return { mbps: want / 1e6 / secs, server: (cpu.user + cpu.system) / 1e6, peer: p.user + p.sys };
}

// With several peers connecting at once, take connections in arrival order.
const queue = [];
function pending() {
  return new Promise((resolve) => queue.push(resolve));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  if (concurrency > 1) server.on('connection', (s) => queue.shift()(s));
  const rows = [];

  if (only !== 'receive') {
    const file = path.join(dir, `ftpdlib-bench-${sendBytes}.bin`);
    if (!fs.existsSync(file) || fs.statSync(file).size !== sendBytes) {
      const block = require('node:crypto').randomBytes(8 * MiB);
      const fd = fs.openSync(file, 'w');
      for (let o = 0; o < sendBytes; o += block.length) fs.writeSync(fd, block, 0, Math.min(block.length, sendBytes - o), o);
      fs.closeSync(fd);
    }
    execFileSync('sh', ['-c', `cat '${file}' > /dev/null`]); // into the page cache
    const fd = fs.openSync(file, 'r');
    // Reps are interleaved (case 1..n, then again) so that a busy machine
    // slows every case alike rather than a few.
    const runs = sendCases.map(() => []);
    for (let i = 0; i < reps; i++) {
      for (const [k, [mech, o]] of sendCases.entries()) runs[k].push(await many(server, 'send', mech, o, fd));
    }
    for (const [k, [mech, o]] of sendCases.entries()) rows.push(summary('send', label(mech, o), runs[k]));
    fs.closeSync(fd);
  }
  if (only !== 'send') {
    const file = path.join(recvDir, `ftpdlib-bench-recv-${process.pid}.bin`);
    const runs = recvCases.map(() => []);
    for (let i = 0; i < reps; i++) {
      for (const [k, [mech, o]] of recvCases.entries()) {
        const fd = fs.openSync(file, 'w');
        try {
          runs[k].push(await many(server, 'receive', mech, o, fd));
        } finally {
          fs.closeSync(fd);
          fs.unlinkSync(file);
        }
      }
    }
    for (const [k, [mech, o]] of recvCases.entries()) rows.push(summary('receive', label(mech, o), runs[k]));
  }
  server.close();
  fs.rmSync(peer, { force: true });
  if (asJson) console.log(JSON.stringify(rows, null, 2));
  else rows.forEach(print);
}

function summary(direction, mechanism, runs) {
  return {
    direction,
    mechanism,
    mbps: median(runs.map((r) => r.mbps)),
    minMbps: Math.min(...runs.map((r) => r.mbps)),
    maxMbps: Math.max(...runs.map((r) => r.mbps)),
    serverCpu: median(runs.map((r) => r.server)),
    peerCpu: median(runs.map((r) => r.peer)),
  };
}

function print(r) {
  const gb = ((r.direction === 'send' ? sendBytes : recvBytes) * concurrency) / 1024 / MiB;
  console.log(`${r.direction.padEnd(8)} ${r.mechanism.padEnd(42)} ${r.mbps.toFixed(0).padStart(6)} MB/s ` +
    `(${r.minMbps.toFixed(0)}-${r.maxMbps.toFixed(0)})  ` +
    `server ${r.serverCpu.toFixed(2)} CPU-s  peer ${r.peerCpu.toFixed(2)} CPU-s  (${gb} GiB)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
