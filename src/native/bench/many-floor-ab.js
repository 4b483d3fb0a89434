'use strict';
// A/B of the floor (many-floor.js) and ftpdlib's benchmark server under `ftpbench many`, rounds taking turns.
// Needs `npm run build` and the client bench/run.js builds (.bench/ftpbench; any benchmark run makes it).
//   node src/native/bench/many-floor-ab.js [--rounds 8] [--event] [--pin] [--servers floor,ftpdlib] [--floor-engine run|direct|stream] [--out FILE]
// Per server and round: unmeasured `many` passes for >= 1 s (as bench/run.js before each round),
// then one measured pass of 100 x 10 RETR of 1 MiB with --sync. Around the measured phase
// (between "ready" and "done"): SIGUSR2 toggles the server's loop-delay monitor (its report is
// the p99 - 1 ms), and the main thread's /proc/PID/task/PID/schedstat (run, wait ns) and
// nonvoluntary switches, plus all threads' run time, are read.
// --event: ftpbench many --event-threads 2. --pin: servers on CPU 0, client on CPU 1 (taskset).
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { writeFtpdlibServer } = require('../../../bench/server-script.js');

const REPO = path.join(__dirname, '..', '..', '..');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'many-floor-'));

const argv = process.argv.slice(2);
const val = (n, d) => {
  const i = argv.indexOf(n);
  return i >= 0 ? argv[i + 1] : d;
};
const ROUNDS = Number(val('--rounds', '8'));
const EVENT = argv.includes('--event');
const PIN = argv.includes('--pin');
const NAMES = val('--servers', 'floor,ftpdlib').split(',');
const FLOOR_ENGINE = val('--floor-engine', 'run');
const OUT = val('--out', path.join(WORK, `result-${EVENT ? 'event' : 'threads'}${PIN ? '-pin' : ''}.json`));
const CLIENT = path.join(REPO, '.bench', 'ftpbench');
if (!fs.existsSync(CLIENT)) throw new Error(`${CLIENT} is missing: run the benchmark once (node bench/run.js --quick) to build it`);
const ROOT = path.join(WORK, 'root');
fs.mkdirSync(ROOT);
fs.writeFileSync(path.join(ROOT, 'small.bin'), require('crypto').randomBytes(1024 * 1024));
// bench/servers/ftpdlib.ts as plain JavaScript, where bench/run.js puts it (two folders below the repository)
const FTPDLIB_SERVER = writeFtpdlibServer(path.join(REPO, '.bench', 'run', 'ftpdlib-server.js'));
const ULIMIT = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';

const DEFS = {
  floor: { cmd: 'node', args: ['--expose-gc', path.join(__dirname, 'many-floor.js'), '--root', ROOT, '--engine', FLOOR_ENGINE], env: {}, cwd: WORK },
  ftpdlib: {
    // bench/run.js's ftpdlib-sendfile: the transpiled bench/servers/ftpdlib.ts against dist/src
    cmd: 'node',
    args: ['--expose-gc', FTPDLIB_SERVER, '--port', '0', '--root', ROOT, '--pasv', '20000-20999', '--auth', 'plain'],
    env: { FTPDLIB_IMPL: path.join(REPO, 'dist', 'src') },
    cwd: REPO,
  },
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const started = [];

function pinned(side, cmd, args) {
  return PIN ? ['taskset', ['-c', side === 'server' ? '0' : '1', cmd, ...args]] : [cmd, args];
}

async function startServer(name) {
  const d = DEFS[name];
  const [cmd, args] = pinned('server', '/bin/sh', ['-c', ULIMIT, 'sh', process.execPath, ...d.args]);
  const p = spawn(cmd, args, { cwd: d.cwd, env: { ...process.env, MALLOC_ARENA_MAX: '2', ...d.env }, stdio: ['pipe', 'pipe', 'inherit'] });
  started.push(p);
  const s = { name, proc: p, pid: p.pid, lines: [], waiters: [] };
  onJsonLines(p.stdout, (j) => {
    const w = s.waiters.shift();
    if (w) w(j);
    else s.lines.push(j);
  });
  p.stdin.on('error', () => {});
  const j = await nextLine(s);
  s.port = j.port;
  return s;
}

/** Call `fn` with each line of `stream` that parses as JSON, in order (waiting for what it returns). */
function onJsonLines(stream, fn) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', async (d) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; ) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let j;
      try {
        j = JSON.parse(line);
      } catch {
        continue;
      }
      const r = fn(j);
      if (r) await r;
    }
  });
}

function nextLine(s) {
  if (s.lines.length) return Promise.resolve(s.lines.shift());
  return new Promise((r) => s.waiters.push(r));
}

async function eld(s) {
  s.lines = s.lines.filter((j) => !j.eld);
  process.kill(s.pid, 'SIGUSR2');
  const j = await Promise.race([nextLine(s), sleep(3000).then(() => null)]);
  return j && j.eld ? j.eld : null;
}

function sched(pid) {
  const f = fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ');
  const st = fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  const inv = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(st)[1]);
  let all = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      all += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* gone */
    }
  }
  return { run: Number(f[0]), wait: Number(f[1]), inv, all, at: process.hrtime.bigint() };
}

function pass(s) {
  return new Promise((resolve) => {
    const args = ['many', '--port', String(s.port), '--user', 'bench', '--pass', 'bench', '--file', 'small.bin', '--clients', '100', '--count', '10', ...(EVENT ? ['--event-threads', '2'] : []), '--sync', '--timeout', '180'];
    const ch = spawn(...pinned('client', CLIENT, args), { stdio: ['pipe', 'pipe', 'pipe'] });
    started.push(ch);
    let err = '';
    let last = null;
    let s0 = null;
    let s1 = null;
    let loop = null;
    onJsonLines(ch.stdout, async (j) => {
      if (j.phase === 'ready') {
        await eld(s); // monitor on
        s0 = sched(s.pid);
        ch.stdin.write('go\n');
      } else if (j.phase === 'done') {
        s1 = sched(s.pid);
        loop = await eld(s); // report, monitor off
        ch.stdin.end('quit\n');
      } else last = j;
    });
    ch.stderr.on('data', (d) => (err += d));
    ch.on('close', (code) => {
      if (!last || code !== 0 || !s1) return resolve({ error: err.trim() || `exit ${code}` });
      const wall = Number(s1.at - s0.at);
      resolve({
        files_per_s: last.files_per_s,
        files: last.files,
        errors: last.errors,
        client_cpu_pct: last.client_cpu_pct,
        p99_ms: last.p99_ms,
        eld_p99: loop && loop.p99,
        eld_max: loop && loop.max,
        loop_run_pct: ((s1.run - s0.run) / wall) * 100,
        loop_wait_pct: ((s1.wait - s0.wait) / wall) * 100,
        loop_ms_per_file: (s1.run - s0.run) / 1e6 / last.files,
        proc_ms_per_file: (s1.all - s0.all) / 1e6 / last.files,
        invol: s1.inv - s0.inv,
        phase_ms: wall / 1e6,
        gc_ms: loop && loop.gc ? loop.gc.gc_ms : null,
      });
    });
  });
}

async function warm(s, seconds) {
  const t0 = Date.now();
  let r;
  do r = await pass(s);
  while (!r.error && Date.now() - t0 < seconds * 1000);
  return r;
}

const med = (a) => {
  const b = [...a].sort((x, y) => x - y);
  return b.length % 2 ? b[(b.length - 1) / 2] : (b[b.length / 2 - 1] + b[b.length / 2]) / 2;
};
const f = (x, d = 1) => (x === null || x === undefined ? '-' : x.toFixed(d));

async function main() {
  const servers = [];
  for (const n of NAMES) servers.push(await startServer(n));
  console.log(`servers: ${servers.map((s) => `${s.name} pid ${s.pid} port ${s.port}`).join(', ')}; client ${EVENT ? '--event-threads 2' : 'threads'}${PIN ? '; pinned: servers CPU 0, client CPU 1' : ''}; floor engine ${FLOOR_ENGINE}`);
  for (const s of servers) {
    const r = await warm(s, 3);
    console.log(`warm-up ${s.name}: ${r.error ? 'ERROR ' + r.error : f(r.files_per_s, 0)}`);
    s.rounds = [];
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? servers : [...servers].reverse();
    for (const s of order) {
      await warm(s, 1);
      const r = await pass(s);
      r.round = round;
      s.rounds.push(r);
      console.log(`round ${round} ${s.name}: ${r.error ? 'ERROR ' + r.error : `${f(r.files_per_s, 0)} files/s, eld p99 ${f(r.eld_p99, 2)} ms (max ${f(r.eld_max, 1)}), loop run ${f(r.loop_run_pct)}% wait ${f(r.loop_wait_pct)}%, loop ${f(r.loop_ms_per_file, 3)} ms/file, process ${f(r.proc_ms_per_file, 3)} ms/file, invol ${r.invol}, client ${f(r.client_cpu_pct)}%`}`);
    }
  }
  console.log('\nserver | files/s median (range) | eld p99 per round | p99<10 | loop ms/file med | proc ms/file med | loop run % med | loop wait % med (range) | invol med | client CPU % med');
  for (const s of servers) {
    const ok = s.rounds.filter((r) => !r.error);
    const col = (k) => ok.map((r) => r[k]);
    const rng = (k, d) => `${f(Math.min(...col(k)), d)}-${f(Math.max(...col(k)), d)}`;
    console.log(
      `${s.name} | ${f(med(col('files_per_s')), 0)} (${rng('files_per_s', 0)}) | ${ok.map((r) => f(r.eld_p99, 1)).join(', ')} | ${ok.filter((r) => r.eld_p99 < 10).length}/${ok.length} | ${f(med(col('loop_ms_per_file')), 3)} | ${f(med(col('proc_ms_per_file')), 3)} | ${f(med(col('loop_run_pct')))} | ${f(med(col('loop_wait_pct')))} (${rng('loop_wait_pct', 0)}) | ${med(col('invol'))} | ${f(med(col('client_cpu_pct')))}`,
    );
  }
  fs.writeFileSync(OUT, JSON.stringify({ event: EVENT, pin: PIN, floorEngine: FLOOR_ENGINE, servers: servers.map((s) => ({ name: s.name, rounds: s.rounds })) }, null, 1));
  console.log(`json: ${OUT}`);
}

function cleanup() {
  for (const p of started) {
    try {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    } catch {
      /* gone */
    }
  }
}
main()
  .catch((e) => console.error(e))
  .finally(async () => {
    cleanup();
    await sleep(500);
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    process.exit(0);
  });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => {
  cleanup();
  process.exit(1);
});
process.on('exit', cleanup);
process.on('uncaughtException', (e) => {
  console.error(e);
  cleanup();
  process.exit(1);
});
