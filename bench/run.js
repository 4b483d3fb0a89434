#!/usr/bin/env node
'use strict';
// npm run bench [-- --quick] [--only=name,...] [--scenarios=key,...] [--json[=FILE]] [--rounds=N] [--keep] [--pin] [--own-sessions]
//
// Measures ftpdlib (zero-copy and stream paths) against the installed peer FTP servers in one
// run, interleaved per scenario, with the C client in bench/client/ftpbench.c. Peers are
// installed by `bash bench/setup.sh`; any that is missing is skipped with the reason.
// Never fails the build: exits 0 unless it was interrupted.
// The FTPS scenarios (tls-retr, tls-stor) run against separate "-tls" instances of the servers
// (explicit FTPS, PROT P, TLS required) with ftpbench --tls as the client (the default; needs
// OpenSSL's headers at build time, else curl) or curl (--tls-client=curl).

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { spawn, spawnSync } = require('child_process');
const { orderRound } = require('./order.js');
const { num, table } = require('./format.js');
const { writeFtpdlibServer } = require('./server-script.js');
const { pooledLoop } = require('./gc-window.js');
const { loopPooledLine } = require('./pool.js');

const ROOT = path.resolve(__dirname, '..');
const BENCH = path.join(ROOT, '.bench');
const RUN = path.join(BENCH, 'run');
const CLIENT_SRC = path.join(__dirname, 'client', 'ftpbench.c');
const CLIENT = path.join(BENCH, 'ftpbench');
const PEER_ROOT = path.join(BENCH, 'root'); // dpkg -x of proftpd / pure-ftpd
const PEER_LIBS = path.join(PEER_ROOT, 'usr', 'lib', 'x86_64-linux-gnu');
const NOFILE = 65536; // or the hard limit, if lower
const MiB = 1024 * 1024;

// ---------------------------------------------------------------- options
const argv = process.argv.slice(2);
const opt = { quick: false, only: null, scenarios: null, json: null, rounds: null, keep: false, ftpdlibAuth: 'plain', warmup: true, arenaMax: true, memoryTrim: true, ioNice: null, ioThreads: null, solo: null, congestion: null, tlsClient: 'ftpbench', pin: false, ownSessions: false };
for (const a of argv) {
  if (a === '--quick') opt.quick = true;
  else if (a.startsWith('--only=')) opt.only = a.slice(7).split(',').map((s) => s.trim()).filter(Boolean);
  else if (a.startsWith('--scenarios=')) {
    opt.scenarios = [];
    for (const k of a.slice(12).split(',').map((x) => x.trim()).filter(Boolean)) {
      if (k === 'tls') opt.scenarios.push('tls-retr', 'tls-stor');
      else if (k === 'plain') opt.scenarios.push('idle', 'retr', 'stor', 'many', 'logins');
      else opt.scenarios.push(k);
    }
  } else if (a === '--json') opt.json = true;
  else if (a.startsWith('--json=')) opt.json = path.resolve(a.slice(7));
  else if (a.startsWith('--rounds=')) opt.rounds = Math.max(1, Math.min(5, Number(a.slice(9)) || 1));
  else if (a === '--keep') opt.keep = true;
  else if (a === '--pin') opt.pin = true;
  else if (a === '--own-sessions') opt.ownSessions = true;
  else if (a === '--no-warmup') opt.warmup = false;
  else if (a === '--no-arena-max') opt.arenaMax = false;
  else if (a.startsWith('--ftpdlib-auth=')) opt.ftpdlibAuth = a.slice(15) === 'scrypt' ? 'scrypt' : 'plain';
  else if (a === '--no-memory-trim') opt.memoryTrim = false;
  else if (a.startsWith('--ftpdlib-io-nice=')) {
    opt.ioNice = Number(a.slice(18));
    if (!Number.isInteger(opt.ioNice) || opt.ioNice < 0 || opt.ioNice > 19) {
      console.error('--ftpdlib-io-nice: an integer from 0 to 19 expected');
      process.exit(2);
    }
  }
  else if (a === '--ftpdlib-solo=0' || a === '--ftpdlib-solo=1') opt.solo = a.endsWith('1');
  else if (a.startsWith('--ftpdlib-congestion=')) {
    opt.congestion = a.slice(21);
    if (!/^[a-z][a-z0-9_]{0,14}$/.test(opt.congestion)) {
      console.error('--ftpdlib-congestion: auto, system or an algorithm name expected');
      process.exit(2);
    }
  }
  else if (a.startsWith('--tls-client=')) {
    opt.tlsClient = a.slice(13);
    if (opt.tlsClient !== 'curl' && opt.tlsClient !== 'ftpbench') {
      console.error('--tls-client: curl or ftpbench expected');
      process.exit(2);
    }
  }
  else if (a.startsWith('--ftpdlib-io-threads=')) {
    opt.ioThreads = Number(a.slice(21));
    if (!Number.isInteger(opt.ioThreads) || opt.ioThreads < 1 || opt.ioThreads > 16) {
      console.error('--ftpdlib-io-threads: an integer from 1 to 16 expected');
      process.exit(2);
    }
  }
  else if (a === '--help' || a === '-h') {
    console.log('usage: node bench/run.js [--quick] [--only=ftpdlib,vsftpd,...] [--scenarios=retr,tls-retr,...] [--json[=FILE]] [--rounds=N]');
    console.log('--quick: smaller sizes, one round, only a 0.5 s warm-up right before it, and only the plain scenarios (not many-event) unless --scenarios says otherwise');
    console.log('servers: ftpdlib-sendfile ftpdlib-stream pyftpdlib vsftpd proftpd pure-ftpd ftp-srv');
    console.log('         and their FTPS instances ftpdlib-tls ftpdlib-stream-tls pyftpdlib-tls vsftpd-tls proftpd-tls pure-ftpd-tls ftp-srv-tls');
    console.log('(--only=ftpdlib selects every ftpdlib variant; --only=vsftpd selects vsftpd and vsftpd-tls)');
    console.log('scenarios: idle retr stor many many-event logins tls-retr tls-stor (aliases: plain = idle retr stor many logins, tls = the last two)');
    console.log('--ftpdlib-auth=scrypt: keep VirtualAuthorizer\'s default scrypt hashing (default here: plain, like the peers\' cheap checks)');
    console.log('--no-memory-trim: run ftpdlib with memoryTrimDelay 0 and heapReduceDelay 0 (it never gives freed memory back to the kernel)');
    console.log('--ftpdlib-io-nice=N: run ftpdlib\'s engine I/O thread N nice steps below the process (configureNative ioNice; default: the library\'s, 10)');
    console.log('--ftpdlib-io-threads=N: give ftpdlib\'s engine N I/O threads (configureNative threads; default: the library\'s)');
    console.log('--ftpdlib-congestion=auto|system|NAME: ftpdlib\'s dataCongestionControl (default: the library\'s, auto: data connections on loopback listeners, and downloads of 16 MiB or more to a loopback peer, under CUBIC when the system default is BBR; system: the machine\'s for every connection, as the peers have it)');
    console.log('--ftpdlib-solo=0|1: a transfer running alone on its own I/O thread at full priority, or not (configureNative soloThread; default: the library\'s, 1)');
    console.log('--no-warmup: measure "many" and "logins" without the unmeasured warm-up passes each server gets first and before each round (cold JIT of the Node and Python servers)');
    console.log('--tls-client=ftpbench|curl: the client of tls-retr and tls-stor (default ftpbench --tls, which is not the bottleneck; curl reads one record per call and ran at 96-100% of a core; ftpbench falls back to curl when it was built without OpenSSL)');
    console.log('--pin: run every server on the first cores and the clients on the last (taskset), so the client takes no CPU from the server (on 2 cores: one each)');
    console.log('--own-sessions: start every server in a session of its own (setsid), as systemd starts a service: Linux then shares the CPU between the server\'s scheduling group and the client\'s before sharing it between their threads (autogroup)');
    console.log('--no-arena-max: run the Node servers with glibc\'s default malloc arenas instead of MALLOC_ARENA_MAX=2 (what conf/ftpdlib.service sets)');
    process.exit(0);
  } else {
    console.error(`unknown option ${a} (try --help)`);
    process.exit(0);
  }
}

const CFG = opt.quick
  ? { retrBytes: 512 * MiB, storBytes: 128 * MiB, tlsBytes: 128 * MiB, manyClients: 20, manyCount: 20, idle: 100, loginClients: 20, loginSeconds: 1, rounds: 1, clientTimeout: 60 }
  : { retrBytes: 2048 * MiB, storBytes: 2048 * MiB, tlsBytes: 1024 * MiB, manyClients: 100, manyCount: 10, idle: 500, loginClients: 20, loginSeconds: 5, rounds: 3, clientTimeout: 180 };
if (opt.rounds) CFG.rounds = opt.rounds;
// The short, noisy scenarios get 5 rounds in a full run (--rounds sets all): "many" (about a second
// per round; its rounds on this 2-vCPU machine spread by a third either way), and the plain RETR
// and STOR of 2 GiB (one download of the same server moved 1,642-3,726 MB/s in three back-to-back
// tries on the fifteenth session's machine: the vCPU's speed, which the host sets, decides more than
// the server does; src/native/bench/RESULTS.md, "RETR: the sending thread is busy").
const LONG_ROUNDS = opt.rounds || opt.quick ? CFG.rounds : 5;
const FIVE_ROUNDS = new Set(['many', 'many-event', 'retr', 'stor']);
const roundsOf = (sc) => (FIVE_ROUNDS.has(sc.key) ? LONG_ROUNDS : CFG.rounds);
/** Unmeasured warm-up per server and scenario (see main): passes are repeated for this long. */
const WARMUP_SECONDS = 3; // not in --quick runs, whose one round has the pass below only
// unmeasured pass before each measured round of the warmed scenarios (half as long in --quick,
// a smoke test that must stay under a minute on a 2-core machine)
const ROUND_WARMUP_SECONDS = opt.quick ? 0.5 : 1;

// ---------------------------------------------------------------- small helpers
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(...a);
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

function exists(p) {
  try {
    fs.accessSync(p);
    return true;
  } catch {
    return false;
  }
}

function unixUser(name) {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return { uid: Number(r.stdout), gid: Number(g.stdout) };
}

function shadowHash(name) {
  try {
    const line = fs.readFileSync('/etc/shadow', 'utf8').split('\n').find((l) => l.startsWith(name + ':'));
    return line ? line.split(':')[1] : null;
  } catch {
    return null;
  }
}

/**
 * A free control port for server number `slot`, from 30000-32767: below the ephemeral range
 * (32768+ here), where the client's thousands of connections draw their local ports, and above
 * the passive ranges (20000-29999). A port taken from the ephemeral range (bind to 0, close) can
 * be handed to one of those connections before the server binds it, and a readiness probe whose
 * own local port happens to equal it connects to itself.
 */
function freePort(slot, skip = 0) {
  const tryPort = (port) =>
    new Promise((resolve) => {
      const s = net.createServer();
      s.on('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  return (async () => {
    for (let i = skip; i < 20; i++) {
      const port = 30000 + ((slot * 20 + i) % 2768);
      if (await tryPort(port)) return port;
    }
    throw new Error(`no free control port for server slot ${slot} in 30000-32767`);
  })();
}

// ---------------------------------------------------------------- /proc accounting
/** The machine's CPU time so far (clock ticks), and the part stolen by the hypervisor. */
function cpuTimes() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { total: f.reduce((a, b) => a + b, 0), steal: f[7] || 0 };
  } catch {
    return null;
  }
}

// CPU of a server = own CPU (utime+stime, see ownCpu) + cutime+cstime summed over the root process and every live
// descendant. A session process that exits and is reaped moves its whole time (own + its reaped
// children) into its parent's cutime/cstime, so the sum is conserved across forks and exits and
// the difference between two samples is the CPU the whole tree used in between (short-lived
// processes included, provided their parents wait() for them, which all peers do).
// Memory = Pss from /proc/PID/smaps_rollup summed over the same set (PSS splits shared pages
// between the processes that map them, so summing over forked sessions does not double count).
function procTable() {
  const byParent = new Map();
  const stat = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let s;
    try {
      s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const pid = Number(d);
    const ppid = Number(f[1]);
    stat.set(pid, { ppid, own: (Number(f[11]) + Number(f[12])) / CLK_TCK, children: (Number(f[13]) + Number(f[14])) / CLK_TCK });
    if (!byParent.has(ppid)) byParent.set(ppid, []);
    byParent.get(ppid).push(pid);
  }
  return { byParent, stat };
}

function treePids(root, table = procTable()) {
  const out = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop();
    if (!table.stat.has(p)) continue;
    out.push(p);
    for (const c of table.byParent.get(p) || []) stack.push(c);
  }
  return out;
}

// Own CPU of a live process: /proc/PID/stat utime+stime is in 10 ms ticks, too coarse for the
// many short sessions of a forking server, so it is taken from the threads' schedstat run time
// (ns) when that is larger (stat still wins when exited threads make it larger).
function ownCpu(pid, statSeconds) {
  let ns = 0;
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* thread gone */
      }
    }
  } catch {
    return statSeconds;
  }
  return Math.max(statSeconds, ns / 1e9);
}

function treeCpu(root) {
  const t = procTable();
  let sec = 0;
  for (const p of treePids(root, t)) {
    const st = t.stat.get(p);
    sec += ownCpu(p, st.own) + st.children;
  }
  return sec;
}

// kb: Pss; anonKb: Pss_Anon + Pss_Shmem, the memory no file backs. The idle figure is taken on the
// second: a server's file-backed pages (its binary, its libraries) come and go with the page cache
// and the host's pageout, not with its sessions (pyftpdlib's Pss_File fell by 645 KiB between
// its baseline and its first round of 500 sessions, and stayed there; ftpdlib's moved by up to
// 1.8 MiB between rounds), which swung the total by more than a session costs.
function treePss(root) {
  let kb = 0;
  let anonKb = 0;
  const pids = treePids(root);
  for (const p of pids) {
    try {
      const t = fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      const field = (name) => {
        const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(t);
        return m ? Number(m[1]) : 0;
      };
      kb += field('Pss');
      anonKb += field('Pss_Anon') + field('Pss_Shmem');
    } catch {
      /* exited meanwhile */
    }
  }
  return { kb, anonKb, procs: pids.length };
}

// ---------------------------------------------------------------- client
function buildClient() {
  const need = !exists(CLIENT) || fs.statSync(CLIENT).mtimeMs < fs.statSync(CLIENT_SRC).mtimeMs;
  if (need) {
    fs.mkdirSync(BENCH, { recursive: true });
    // with OpenSSL's headers (libssl-dev) the client gets --tls; without them, or if that build
    // fails, a plain one (the FTPS scenarios then use curl)
    let r = null;
    if (exists('/usr/include/openssl/ssl.h')) r = spawnSync('cc', ['-O2', '-pthread', '-DFTPBENCH_TLS', '-o', CLIENT, CLIENT_SRC, '-lssl', '-lcrypto'], { encoding: 'utf8' });
    if (!r || r.status !== 0) {
      if (r) clientTlsNote = `ftpbench built without TLS: cc -DFTPBENCH_TLS failed: ${(r.stderr || r.error || '').toString().split('\n').slice(0, 3).join(' ')}`;
      r = spawnSync('cc', ['-O2', '-pthread', '-o', CLIENT, CLIENT_SRC], { encoding: 'utf8' });
    }
    if (r.status !== 0) return `cc failed: ${(r.stderr || r.error || '').toString().slice(0, 2000)}`;
  }
  // does this build speak TLS? (a build without it refuses --tls with "built without OpenSSL")
  const p = spawnSync(CLIENT, ['retr', '--port', '1', '--tls', '--timeout', '5'], { encoding: 'utf8' });
  clientTls = !/built without OpenSSL/.test(p.stderr || '');
  if (!clientTls && !clientTlsNote) clientTlsNote = 'ftpbench built without TLS (no /usr/include/openssl/ssl.h: apt-get install libssl-dev)';
  return null;
}
/**
 * --pin: every server on the first cores and the clients on the last (taskset), so the client
 * takes no CPU from the server: the nearest this machine comes to a client on another machine.
 * Forking servers' session processes and the Node servers' threads inherit the mask.
 */
const PIN = (() => {
  if (!opt.pin) return null;
  const n = os.cpus().length;
  if (n < 2 || spawnSync('taskset', ['-c', '0', 'true']).status !== 0) {
    console.error('--pin needs at least 2 cores and taskset (util-linux)');
    process.exit(2);
  }
  return { server: n === 2 ? '0' : `0-${n - 2}`, client: String(n - 1) };
})();
/** [cmd, args] that runs cmd on the given side's cores under --pin, else cmd itself. */
function pinned(side, cmd, args) {
  return PIN ? ['taskset', ['-c', PIN[side], cmd, ...args]] : [cmd, args];
}

let clientTls = false;
let clientTlsNote = null;
// the FTPS scenarios' client: ftpbench --tls when asked for and built with TLS, else curl
const tlsWithFtpbench = () => opt.tlsClient === 'ftpbench' && clientTls;

// Runs the client; resolves with its (last) JSON line. onLine gets every parsed line.
function runClient(args, { onLine, stdinPipe = false, timeoutS = CFG.clientTimeout } = {}) {
  return new Promise((resolve) => {
    const ch = spawn(...pinned('client', CLIENT, [...args, '--timeout', String(timeoutS)]), { stdio: [stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    track.clients.add(ch.pid);
    let out = '';
    let err = '';
    let last = null;
    const kill = setTimeout(() => ch.kill('SIGKILL'), (timeoutS + 10) * 1000);
    ch.stdout.setEncoding('utf8');
    ch.stdout.on('data', (d) => {
      out += d;
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        try {
          const j = JSON.parse(line);
          if (j.closed === undefined && j.phase === undefined) last = j;
          if (onLine) onLine(j, ch);
        } catch {
          /* ignore */
        }
      }
    });
    ch.stderr.on('data', (d) => (err += d));
    ch.on('close', (code) => {
      clearTimeout(kill);
      track.clients.delete(ch.pid);
      if (last && code === 0) resolve(last);
      else resolve({ error: (err.trim() || `client exited with ${code}`).split('\n').slice(-2).join(' ') , partial: last });
    });
  });
}

// Runs the client with --sync and samples the server tree's CPU right after login ("ready")
// and right after the measured phase ("done"), so logins and QUITs are not counted.
async function runMeasured(s, args, { beforeGo, afterDone } = {}) {
  let c0 = null;
  let cpu = null;
  const r = await runClient([...args, '--sync'], {
    stdinPipe: true,
    onLine: (j, ch) => {
      if (j.phase === 'ready') {
        Promise.resolve(beforeGo && beforeGo()).then(() => {
          c0 = treeCpu(s.pid);
          ch.stdin.write('go\n');
        });
      } else if (j.phase === 'done') {
        if (c0 !== null) cpu = treeCpu(s.pid) - c0;
        Promise.resolve(afterDone && afterDone()).then(() => ch.stdin.end('quit\n'));
      }
    },
  });
  if (!r.error && cpu === null) r.error = 'client did not reach the end of the measured phase';
  return { r, cpu };
}

// ---------------------------------------------------------------- curl (FTPS client)
// ftpbench.c speaks no TLS, so the FTPS scenarios use curl: explicit FTPS (AUTH TLS), PBSZ 0 +
// PROT P (--ssl-reqd = TLS on control and data), EPSV. curl runs under bash, whose `times` reports
// the CPU its reaped child used (getrusage RUSAGE_CHILDREN, ms resolution) on fd 3. -v goes to
// stderr: it shows the TLS version/cipher of each connection and that PROT P was accepted.
const CURL_W = '%{size_download} %{size_upload} %{time_pretransfer} %{time_starttransfer} %{time_total} %{response_code}\\n';

function runCurl(args, timeoutS = CFG.clientTimeout) {
  return new Promise((resolve) => {
    const script = 'curl "$@"; rc=$?; times >&3; exit $rc';
    const ch = spawn(...pinned('client', 'bash', ['-c', script, 'bash', '-s', '-v', '--ssl-reqd', '-k', '--max-time', String(timeoutS), '--user', 'bench:bench', '-w', CURL_W, ...args]), {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout or ^C can end bash and curl together
    });
    track.clients.add(-ch.pid);
    let out = '';
    let times = '';
    let errTail = '';
    const seen = { ssl: [], prot: null, lines: [] };
    const kill = setTimeout(() => {
      try {
        process.kill(-ch.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, (timeoutS + 10) * 1000);
    ch.stdout.setEncoding('utf8');
    ch.stdout.on('data', (d) => (out += d));
    ch.stdio[3].setEncoding('utf8');
    ch.stdio[3].on('data', (d) => (times += d));
    ch.stderr.setEncoding('utf8');
    ch.stderr.on('data', (d) => {
      errTail += d;
      let i;
      while ((i = errTail.indexOf('\n')) >= 0) {
        const line = errTail.slice(0, i).replace(/\r$/, '');
        errTail = errTail.slice(i + 1);
        let m;
        if ((m = /^\* SSL connection using (\S+) \/ (\S+)/.exec(line))) seen.ssl.push(`${m[1]} ${m[2]}`);
        if (/^< \d{3}[ -]/.test(line) && seen.prot === 'sent') seen.prot = line.slice(2, 5);
        if (/^> PROT P/.test(line)) seen.prot = 'sent';
        if (/^[<>] /.test(line) || /^\* (?!  )/.test(line)) seen.lines = [...seen.lines.slice(-5), line];
      }
    });
    ch.on('close', (code) => {
      clearTimeout(kill);
      track.clients.delete(-ch.pid);
      // `times`: line 1 = the shell's own user/sys, line 2 = its children's (curl)
      const t = times.trim().split('\n')[1] || '';
      const sec = (x) => {
        const m = /^(\d+)m([\d.]+)s$/.exec(x);
        return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
      };
      const [u, sy] = t.split(/\s+/).map(sec);
      const f = out.trim().split(/\s+/).map(Number);
      const w = { size_download: f[0], size_upload: f[1], time_pretransfer: f[2], time_starttransfer: f[3], time_total: f[4], response_code: f[5] };
      const r = { code, w, curl_cpu_s: u + sy, ssl: seen.ssl, prot: seen.prot };
      if (code !== 0) r.error = `curl exit ${code}: ${seen.lines.slice(-3).join(' | ')}`;
      else if (seen.prot !== '200') r.error = `PROT P was not accepted (${seen.prot}): ${seen.lines.slice(-3).join(' | ')}`;
      else if (seen.ssl.length < 2) r.error = `the data connection did not use TLS (${seen.ssl.length} TLS handshakes seen)`;
      else if (!(u + sy >= 0)) r.error = `no CPU figure for curl (times said ${JSON.stringify(times)})`;
      resolve(r);
    });
  });
}

// One curl session against a -tls server; server CPU = the tree's CPU from just before curl
// starts to just after it exits (plus a moment for forking servers to reap the session), so it
// includes the session's login, two TLS handshakes and QUIT; the scenarios subtract the median
// of those costs measured on tiny files (tlsSetup) to approximate the transfer alone.
async function curlMeasured(s, args) {
  const c0 = treeCpu(s.pid);
  const r = await runCurl(args);
  await sleep(s.def.forking ? 300 : 100);
  r.server_cpu_s = treeCpu(s.pid) - c0;
  return r;
}

const curlUrl = (s, name) => `ftp://127.0.0.1:${s.port}/${name}`;

// Warm-up of a -tls server, which is also its check: 5 RETRs of a 1 KiB file over FTPS. They
// give the fixed cost of one curl session (process start, login, TLS handshakes, QUIT), later
// subtracted from the transfer figures: server CPU = the tree's CPU over all 5 / 5 (a reaped
// session's CPU reaches the parent's cutime in 10 ms clock ticks, too coarse to take one by
// one), curl CPU = the median of the 5 (getrusage, ms resolution). Returns an error or null.
async function tlsWarmup(s) {
  const runs = [];
  const c0 = treeCpu(s.pid);
  for (let i = 0; i < 5; i++) {
    let r = await runCurl(['-o', '/dev/null', curlUrl(s, 'tiny.bin')]);
    // ftp-srv 4.6 answers AUTH TLS with 234 before it puts TLS on the connection: a ClientHello
    // that arrives in between is read as a command ("wrong version number"); once more then
    if (r.error && /wrong version number/.test(r.error)) {
      s.tlsCheckRetries = (s.tlsCheckRetries || 0) + 1;
      r = await runCurl(['-o', '/dev/null', curlUrl(s, 'tiny.bin')]);
    }
    if (r.error) return r.error;
    if (r.w.size_download !== 1024) return `tiny.bin: received ${r.w.size_download} bytes, expected 1024`;
    runs.push(r);
  }
  await sleep(s.def.forking ? 300 : 100);
  const server = (treeCpu(s.pid) - c0) / runs.length;
  const med = (f) => runs.map(f).sort((a, b) => a - b)[2];
  s.tlsSetup = { server_cpu_s: server, curl_cpu_s: med((r) => r.curl_cpu_s), session_s: med((r) => r.w.time_total), control: runs[0].ssl[0], data: runs[0].ssl[1], curl_cpu_runs: runs.map((r) => r.curl_cpu_s) };
  return null;
}

function tlsResult(s, m, bytes) {
  const secs = m.w.time_total - m.w.time_pretransfer; // from the first command after login (PASV/EPSV...) to the 226
  const cpu = Math.max(0, m.server_cpu_s - s.tlsSetup.server_cpu_s);
  const ccpu = Math.max(0, m.curl_cpu_s - s.tlsSetup.curl_cpu_s);
  return {
    mbps: bytes / 1e6 / secs,
    seconds: secs,
    server_cpu_s: cpu,
    mb_per_cpu_s: cpu > 0 ? bytes / 1e6 / cpu : null,
    server_cpu_pct: (cpu / secs) * 100,
    client_cpu_pct: (ccpu / secs) * 100,
    client_cpu_s: ccpu,
    raw: { server_cpu_s: m.server_cpu_s, curl_cpu_s: m.curl_cpu_s, curl_time_total: m.w.time_total, curl_time_pretransfer: m.w.time_pretransfer },
    tls: m.ssl[1],
  };
}

// tls-retr / tls-stor with ftpbench --tls --sync: server CPU sampled right after login and right
// after the transfer (runMeasured), like the plain scenarios, so nothing is subtracted
function ftpbenchTlsResult(r, cpu) {
  return {
    mbps: r.mbps,
    seconds: r.seconds,
    server_cpu_s: cpu,
    mb_per_cpu_s: cpu > 0 ? r.bytes / 1e6 / cpu : null,
    server_cpu_pct: (cpu / r.seconds) * 100,
    client_cpu_pct: r.client_cpu_pct,
    client_cpu_s: r.client_cpu_s,
    client: 'ftpbench',
    tls: `${r.tls_version} ${r.tls_cipher}${r.tls_data_resumed ? ', resumed' : ', NOT resumed'}${r.tls_login_retries ? `, login retried ${r.tls_login_retries}x` : ''}`,
    tls_data_resumed: r.tls_data_resumed,
    tls_control_version: r.tls_control_version,
    tls_login_retries: r.tls_login_retries,
  };
}

// ---------------------------------------------------------------- data files and roots
/**
 * The size of an uploaded file (-1 when it is missing), which is then removed: that drops its
 * dirty pages before the next server writes.
 */
function takeUpload(file) {
  let size = -1;
  try {
    size = fs.statSync(file).size;
  } catch {
    /* missing */
  }
  fs.rmSync(file, { force: true });
  return size;
}

function ensureFile(file, size) {
  if (exists(file) && fs.statSync(file).size === size) return;
  const block = Buffer.alloc(MiB);
  let x = 0x9e3779b9;
  for (let i = 0; i < block.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block.writeUInt32LE(x >>> 0, i);
  }
  const fd = fs.openSync(file + '.tmp', 'w');
  for (let off = 0; off < size; off += MiB) {
    block.writeUInt32LE(off / MiB, 0); // no two blocks identical
    fs.writeSync(fd, block, 0, Math.min(MiB, size - off));
  }
  fs.closeSync(fd);
  fs.renameSync(file + '.tmp', file);
}

function warmCache(file) {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * MiB);
  while (fs.readSync(fd, buf, 0, buf.length, null) > 0) {
    /* read it all once */
  }
  fs.closeSync(fd);
}

/** The machine's default TCP congestion control (net.ipv4.tcp_congestion_control), or 'unknown'. */
function systemCongestion() {
  try {
    return fs.readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

// The hosts of these machines page out page cache nobody has read for about a minute (DAMON:
// pageout of cold unmapped pages, up to 128 MiB/s; /sys/kernel/mm/damon/admin), so a file
// warmed once at the start is partly back on disk minutes later: two thirds of the 2 GiB file
// were, 8 minutes after a run. Each measured round that reads a file re-reads it first when
// fincore (util-linux) finds pages missing, or always when fincore is not there.
function residentBytes(file) {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--raw', '-o', 'RES', file], { encoding: 'utf8' });
  const n = r.status === 0 ? Number(r.stdout.trim()) : NaN;
  return Number.isFinite(n) ? n : null;
}

/** Make `file` wholly page-cached; returns the share of it that was before (null: unknown). */
function rewarm(file) {
  const size = fs.statSync(file).size;
  const before = residentBytes(file);
  if (before === null || before < size) warmCache(file);
  return before === null ? null : Math.min(1, before / size);
}

// The same hosts take back the guest's free memory (free page reporting), and the guest's next
// use of it waits while the host backs each page again: a 2 GiB write into the page cache took
// 5.1–5.4 s after 20 s without writes, 0.29 s right after another. Before each measured upload
// the benchmark writes and deletes as much as the upload will write, so the upload finds backed
// memory whichever server it is, and however long the machine idled before it.
function prefault(bytes) {
  const file = path.join(BENCH, 'data', 'prefault.bin');
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(8 * MiB);
  try {
    for (let done = 0; done < bytes; done += buf.length) fs.writeSync(fd, buf, 0, Math.min(buf.length, bytes - done));
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

function makeRoot(name, files, owner) {
  const dir = path.join(BENCH, 'roots', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  // hard links: one inode, one warm page cache
  for (const [as, file] of Object.entries(files)) fs.linkSync(file, path.join(dir, as));
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  return dir;
}

// FTPS material: a self-signed EC P-256 certificate shared by every -tls server, in .bench/tls
// (combined.pem = certificate + key, for servers that want one file).
function ensureCert() {
  const dir = path.join(BENCH, 'tls');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const combined = path.join(dir, 'combined.pem');
  if (!exists(cert) || !exists(key)) {
    fs.mkdirSync(dir, { recursive: true });
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
    if (r.status !== 0) return { reason: `openssl req failed: ${(r.stderr || r.error || '').toString().trim().split('\n').pop()}` };
  }
  fs.writeFileSync(combined, fs.readFileSync(cert, 'utf8') + fs.readFileSync(key, 'utf8'), { mode: 0o600 });
  return { cert, key, combined };
}

function curlInfo() {
  const r = spawnSync('curl', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) return { reason: 'curl is not installed (bash bench/setup.sh)' };
  const first = r.stdout.split('\n')[0];
  if (!/\bftps\b/.test(r.stdout)) return { reason: `this curl has no FTPS support: ${first}` };
  return { version: first.split(' ').slice(0, 2).join(' '), ssl: (/ (OpenSSL|GnuTLS|wolfSSL|mbedTLS)\/\S+/.exec(first) || [''])[0].trim() };
}

// ---------------------------------------------------------------- servers
// Each returns { reason } when it cannot run here, or { cmd, args, env, stdin, readiness }.
function wrapUlimit(cmd, args) {
  // raise the descriptor limit for the server (500 idle sessions + data sockets)
  return { cmd: '/bin/sh', args: ['-c', `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"`, 'sh', cmd, ...args] };
}

function ftpdlibImpl() {
  const index = path.join(ROOT, 'src', 'index.ts');
  if (!exists(index)) return { reason: 'src/index.ts does not exist yet' };
  const text = fs.readFileSync(index, 'utf8');
  if (!/FtpServer/.test(text) && !/export \* from/.test(text)) return { reason: 'src/index.ts does not export FtpServer yet' };
  // Prefer a build (no TypeScript compiler in the server's memory) when it is newer than src/.
  // The build is incremental (tsc emits only the files that changed), so "newer" means the
  // newest file of dist/src against the newest .ts of src/, not dist/src/index.js alone.
  const dist = path.join(ROOT, 'dist', 'src', 'index.js');
  const newest = (dir, ext) => {
    let t = 0;
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'node_modules' && e.name !== 'build') walk(p);
        } else if (e.name.endsWith(ext)) t = Math.max(t, fs.statSync(p).mtimeMs);
      }
    };
    walk(dir);
    return t;
  };
  // `npm run build` stamps dist/.built when tsc succeeds: an incremental build leaves a file whose
  // output did not change with its old time, so a source touched and saved unchanged looked newer
  // than the build, and the benchmark measured ts-node (the TypeScript compiler in its memory).
  const stamp = path.join(ROOT, 'dist', '.built');
  const built = Math.max(newest(path.join(ROOT, 'dist', 'src'), '.js'), exists(stamp) ? fs.statSync(stamp).mtimeMs : 0);
  if (exists(dist) && built >= newest(path.join(ROOT, 'src'), '.ts')) {
    try {
      const out = writeFtpdlibServer(path.join(RUN, 'ftpdlib-server.js'));
      return { how: 'dist/src (built), plain node', cmd: process.execPath, pre: ['--expose-gc', out], env: { FTPDLIB_IMPL: path.join(ROOT, 'dist', 'src') } };
    } catch (e) {
      /* fall through to ts-node */
    }
  }
  const tsnode = path.join(ROOT, 'node_modules', 'ts-node', 'register', 'transpile-only.js');
  if (!exists(tsnode)) return { reason: 'ts-node is not installed in the root project (npm install)' };
  return {
    how: 'src/ via ts-node transpile-only (its PSS includes the TypeScript compiler; `npm run build` first for a leaner process)',
    cmd: process.execPath,
    pre: ['--expose-gc', '-r', 'ts-node/register/transpile-only', path.join(__dirname, 'servers', 'ftpdlib.ts')],
    env: { FTPDLIB_IMPL: path.join(ROOT, 'src'), TS_NODE_PROJECT: path.join(ROOT, 'tsconfig.json') },
  };
}

const trimArgs = () => [...(opt.memoryTrim ? [] : ['--memory-trim-delay', '0', '--heap-reduce-delay', '0']), ...(opt.ioNice === null ? [] : ['--io-nice', String(opt.ioNice)]), ...(opt.ioThreads === null ? [] : ['--io-threads', String(opt.ioThreads)]), ...(opt.solo === null ? [] : ['--solo', opt.solo ? '1' : '0']), ...(opt.congestion === null ? [] : ['--congestion', opt.congestion])];

const SERVERS = [
  {
    name: 'ftpdlib-sendfile',
    ours: true,
    node: true,
    prepare(ctx) {
      const impl = ctx.ftpdlibImpl;
      if (impl.reason) return impl;
      const tls = ctx.tls ? ['--tls-cert', ctx.tls.cert, '--tls-key', ctx.tls.key] : [];
      return { note: impl.how, ...wrapUlimit(impl.cmd, [...impl.pre, '--port', '0', '--root', ctx.root, '--pasv', ctx.pasv.join('-'), '--auth', opt.ftpdlibAuth, ...trimArgs(), ...tls]), env: impl.env, ready: 'json' };
    },
  },
  {
    name: 'ftpdlib-stream',
    ours: true,
    node: true,
    prepare(ctx) {
      const impl = ctx.ftpdlibImpl;
      if (impl.reason) return impl;
      const tls = ctx.tls ? ['--tls-cert', ctx.tls.cert, '--tls-key', ctx.tls.key] : [];
      return { ...wrapUlimit(impl.cmd, [...impl.pre, '--port', '0', '--root', ctx.root, '--pasv', ctx.pasv.join('-'), '--stream', '--auth', opt.ftpdlibAuth, ...trimArgs(), ...tls]), env: impl.env, ready: 'json' };
    },
  },
  {
    name: 'pyftpdlib',
    prepare(ctx) {
      const py = '/usr/bin/python3';
      const r = spawnSync(py, ['-c', 'import pyftpdlib, sys; sys.stdout.write(pyftpdlib.__ver__)'], { encoding: 'utf8' });
      if (r.status !== 0) return { reason: 'python3-pyftpdlib is not installed (bash bench/setup.sh)' };
      ctx.version = r.stdout;
      let tls = [];
      if (ctx.tls) {
        const o = spawnSync(py, ['-c', 'import OpenSSL, sys; sys.stdout.write(OpenSSL.__version__)'], { encoding: 'utf8' });
        if (o.status !== 0) return { reason: 'TLS_FTPHandler needs PyOpenSSL: python3-openssl is not installed (bash bench/setup.sh)' };
        ctx.version += ` + PyOpenSSL ${o.stdout}`;
        tls = ['--tls-cert', ctx.tls.cert, '--tls-key', ctx.tls.key];
      }
      return { ...wrapUlimit(py, [path.join(__dirname, 'servers', 'pyftpdlib_server.py'), '--port', '0', '--root', ctx.root, '--pasv', ctx.pasv.join('-'), ...tls]), ready: 'json' };
    },
  },
  {
    name: 'vsftpd',
    forking: true,
    unixUser: true,
    prepare(ctx) {
      if (!exists('/usr/sbin/vsftpd')) return { reason: 'vsftpd is not installed (bash bench/setup.sh)' };
      if (!ctx.user) return { reason: 'unix user bench does not exist (bash bench/setup.sh)' };
      if (!exists('/etc/pam.d/vsftpd')) return { reason: '/etc/pam.d/vsftpd is missing' };
      const dir = path.join(RUN, ctx.name);
      fs.mkdirSync(path.join(dir, 'empty'), { recursive: true });
      fs.chmodSync(path.join(dir, 'empty'), 0o555);
      const conf = path.join(dir, 'vsftpd.conf');
      fs.writeFileSync(
        conf,
        [
          'listen=YES', 'listen_ipv6=NO', 'listen_address=127.0.0.1', `listen_port=${ctx.port}`, 'background=NO',
          'anonymous_enable=NO', 'local_enable=YES', 'write_enable=YES', 'local_umask=022', `local_root=${ctx.root}`,
          'pam_service_name=vsftpd', 'seccomp_sandbox=NO', 'pasv_enable=YES', `pasv_min_port=${ctx.pasv[0]}`, `pasv_max_port=${ctx.pasv[1]}`,
          'max_clients=0', 'max_per_ip=0', // 0 = unlimited: 500 idle sessions come from one IP
          'xferlog_enable=NO', 'dirmessage_enable=NO', `secure_chroot_dir=${path.join(dir, 'empty')}`, 'delay_failed_login=0',
          'idle_session_timeout=600', 'data_connection_timeout=600',
          // FTPS instance: TLS required for login and data (PROT P); data connections must resume
          // the control connection's TLS session (require_ssl_reuse=YES, vsftpd's default)
          ...(ctx.tls
            ? ['ssl_enable=YES', `rsa_cert_file=${ctx.tls.cert}`, `rsa_private_key_file=${ctx.tls.key}`, 'force_local_logins_ssl=YES',
               'force_local_data_ssl=YES', 'require_ssl_reuse=YES']
            : []),
          '',
        ].join('\n'),
      );
      // vsftpd reports config errors on fd 0, so fd 0 is the log file
      return { ...wrapUlimit('/usr/sbin/vsftpd', [conf]), stdinLog: true, ready: 'banner' };
    },
  },
  {
    name: 'proftpd',
    forking: true,
    unixUser: true,
    prepare(ctx) {
      const bin = path.join(PEER_ROOT, 'usr', 'sbin', 'proftpd');
      if (!exists(bin)) return { reason: 'proftpd is not unpacked in .bench/root (bash bench/setup.sh)' };
      const modDir = path.join(PEER_ROOT, 'usr', 'lib', 'proftpd');
      if (ctx.tls && !exists(path.join(modDir, 'mod_tls.so'))) return { reason: 'mod_tls is not in proftpd-core: proftpd-mod-crypto is not unpacked in .bench/root (bash bench/setup.sh)' };
      if (!ctx.user) return { reason: 'unix user bench does not exist (bash bench/setup.sh)' };
      const hash = shadowHash('bench');
      if (!hash) return { reason: 'cannot read the password hash of bench from /etc/shadow' };
      const dir = path.join(RUN, ctx.name);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'passwd'), `bench:${hash}:${ctx.user.uid}:${ctx.user.gid}::${ctx.root}:/bin/sh\n`, { mode: 0o600 });
      fs.writeFileSync(path.join(dir, 'group'), `bench:x:${ctx.user.gid}:\n`, { mode: 0o600 });
      const conf = path.join(dir, 'proftpd.conf');
      fs.writeFileSync(
        conf,
        [
          'ServerType standalone', 'ServerName "proftpd bench"', 'ServerIdent on "proftpd bench"', 'DefaultAddress 127.0.0.1',
          'SocketBindTight on', `Port ${ctx.port}`, 'UseIPv6 off', 'User nobody', 'Group nogroup', 'Umask 022',
          `PidFile ${dir}/proftpd.pid`, `ScoreboardFile ${dir}/proftpd.scoreboard`, `SystemLog ${dir}/system.log`,
          'TransferLog none', 'WtmpLog off', 'UseReverseDNS off', 'DelayEngine off', 'ControlsEngine off', 'AuthPAM off',
          'AuthOrder mod_auth_file.c', `AuthUserFile ${dir}/passwd`, `AuthGroupFile ${dir}/group`, 'RequireValidShell off',
          'DefaultRoot ~', 'AllowOverwrite on', `PassivePorts ${ctx.pasv[0]} ${ctx.pasv[1]}`,
          'MaxInstances 5000', 'TCPBackLog 255', 'MaxClients none', 'MaxClientsPerHost none', 'MaxClientsPerUser none',
          'MaxConnectionsPerHost none', 'MaxLoginAttempts 1000', 'TimeoutIdle 600', 'TimeoutLogin 600',
          // FTPS instance: mod_tls from proftpd-mod-crypto (unpacked next to proftpd-core), TLS
          // required on control and data; session reuse on data connections stays required (default)
          ...(ctx.tls
            ? [`ModulePath ${modDir}`, 'LoadModule mod_tls.c', 'TLSEngine on', 'TLSRequired on', 'TLSProtocol TLSv1.2 TLSv1.3',
               `TLSECCertificateFile ${ctx.tls.cert}`, `TLSECCertificateKeyFile ${ctx.tls.key}`, `TLSLog ${dir}/tls.log`]
            : []),
          '',
        ].join('\n'),
      );
      return { ...wrapUlimit(bin, ['-n', '-q', '-c', conf]), env: { LD_LIBRARY_PATH: PEER_LIBS }, ready: 'banner' };
    },
  },
  {
    name: 'pure-ftpd',
    forking: true,
    unixUser: true,
    prepare(ctx) {
      const bin = path.join(PEER_ROOT, 'usr', 'sbin', 'pure-ftpd');
      const pw = path.join(PEER_ROOT, 'usr', 'bin', 'pure-pw');
      if (!exists(bin) || !exists(pw)) return { reason: 'pure-ftpd is not unpacked in .bench/root (bash bench/setup.sh)' };
      if (!ctx.user) return { reason: 'unix user bench does not exist (bash bench/setup.sh)' };
      const hash = shadowHash('bench');
      if (!hash) return { reason: 'cannot read the password hash of bench from /etc/shadow' };
      const dir = path.join(RUN, ctx.name);
      fs.mkdirSync(dir, { recursive: true });
      // virtual user (puredb) whose home, with /./ = chroot, is this server's private root
      fs.writeFileSync(path.join(dir, 'passwd'), `bench:${hash}:${ctx.user.uid}:${ctx.user.gid}::${ctx.root}/./::::::::::::\n`, { mode: 0o600 });
      const mk = spawnSync(pw, ['mkdb', path.join(dir, 'pdb'), '-f', path.join(dir, 'passwd')], { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: PEER_LIBS } });
      if (mk.status !== 0) return { reason: `pure-pw mkdb failed: ${mk.stderr}` };
      return {
        ...wrapUlimit(bin, [
          '-S', `127.0.0.1,${ctx.port}`, '-l', `puredb:${path.join(dir, 'pdb')}`, '-E', '-H',
          '-c', '5000', '-C', '5000', // max clients / max per IP (defaults 50 / unlimited)
          '-p', `${ctx.pasv[0]}:${ctx.pasv[1]}`, '-I', '600', '-g', path.join(dir, 'pure-ftpd.pid'),
          // FTPS instance: -Y 3 = TLS required on control and data; -2 = certificate file (a
          // combined cert+key PEM) instead of the built-in /etc/ssl/private/pure-ftpd.pem
          ...(ctx.tls ? ['-Y', '3', '-2', ctx.tls.combined] : []),
        ]),
        env: { LD_LIBRARY_PATH: PEER_LIBS },
        ready: 'banner',
      };
    },
  },
  {
    name: 'ftp-srv',
    node: true,
    prepare(ctx) {
      const pkg = path.join(BENCH, 'node_modules', 'ftp-srv', 'package.json');
      if (!exists(pkg)) return { reason: 'ftp-srv is not installed in .bench (bash bench/setup.sh)' };
      ctx.version = JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
      const tls = ctx.tls ? ['--tls-cert', ctx.tls.cert, '--tls-key', ctx.tls.key] : [];
      return { ...wrapUlimit(process.execPath, ['--expose-gc', path.join(__dirname, 'servers', 'ftpsrv.js'), '--port', String(ctx.port), '--root', ctx.root, '--pasv', ctx.pasv.join('-'), ...tls]), ready: 'json' };
    },
  },
];

// FTPS instances: the same servers with TLS required (explicit FTPS, PROT P), used only by the
// tls-* scenarios. Two ftpdlib rows: ftpdlib-tls (the engine seals and opens the records after
// Node's handshake, src/ftp/data/tls-gate.ts) and ftpdlib-stream-tls (Node's TLS socket all the
// way). `plain` names the row of the plain tables they are compared with.
const TLS_OF = { 'ftpdlib-sendfile': 'ftpdlib-tls', 'ftpdlib-stream': 'ftpdlib-stream-tls', pyftpdlib: 'pyftpdlib-tls', vsftpd: 'vsftpd-tls', proftpd: 'proftpd-tls', 'pure-ftpd': 'pure-ftpd-tls', 'ftp-srv': 'ftp-srv-tls' };
for (const [plain, name] of Object.entries(TLS_OF)) {
  const d = SERVERS.find((x) => x.name === plain);
  SERVERS.push({ ...d, name, plain, base: plain.startsWith('ftpdlib-') ? 'ftpdlib' : plain, tls: true });
}

// ---------------------------------------------------------------- process tracking / cleanup
const track = { servers: new Map(), clients: new Set() };

function killTree(pid, sig) {
  const pids = treePids(pid);
  for (const p of pids.reverse()) {
    try {
      process.kill(p, sig);
    } catch {
      /* gone */
    }
  }
  return pids.length;
}

async function stopServer(s) {
  if (!s.proc || s.exited) return;
  const kids = treePids(s.pid);
  try {
    process.kill(s.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
  for (let i = 0; i < 30 && !s.exited; i++) await sleep(100);
  // forked session processes may outlive the listener: end them by PID
  for (const p of kids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  track.servers.delete(s.pid);
}

function emergencyStop() {
  for (const pid of track.clients) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const pid of track.servers.keys()) killTree(pid, 'SIGKILL');
}
process.on('exit', emergencyStop);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping servers`);
    emergencyStop();
    process.exit(130);
  });
}

// The Node servers run with glibc's malloc limited to 2 arenas, as conf/ftpdlib.service runs the
// daemon: V8's compiler threads otherwise each keep an arena of freed memory (2-3 MB here, which
// "idle" charged to the sessions; no measurable CPU cost, src/native/bench/RESULTS.md). ftp-srv
// gets the same; --no-arena-max runs both with glibc's default (8 arenas per core).
const NODE_SERVER_ENV = { MALLOC_ARENA_MAX: '2' };

async function startServer(def, index, common, attempt = 0) {
  const s = { name: def.name, def, ours: !!def.ours, tls: !!def.tls, results: {} };
  if (def.tls && common.tls.reason) {
    s.skip = common.tls.reason;
    return s;
  }
  const files = def.tls ? { 'big.bin': common.tlsBig, 'small.bin': common.small, 'tiny.bin': common.tiny } : { 'big.bin': common.big, 'small.bin': common.small };
  const tlsIndex = Object.values(TLS_OF).indexOf(def.name);
  const ctx = {
    name: def.name,
    root: makeRoot(def.name, files, common.user),
    port: await freePort(def.tls ? 20 + tlsIndex : index, attempt * 5),
    // below the ephemeral range (32768+): plain servers 20000-26999, FTPS instances 27000-29799
    // (400 each; control ports come from freePort, 30000 and up)
    pasv: def.tls ? [27000 + tlsIndex * 400, 27000 + tlsIndex * 400 + 399] : [20000 + index * 1000, 20000 + index * 1000 + 999],
    user: common.user,
    ftpdlibImpl: common.ftpdlibImpl,
    tls: def.tls ? common.tls : null,
  };
  s.root = ctx.root;
  let p;
  try {
    p = def.prepare(ctx);
  } catch (e) {
    p = { reason: `prepare failed: ${e.message}` };
  }
  if (p.reason) {
    s.skip = p.reason;
    return s;
  }
  s.note = p.note;
  s.version = ctx.version;
  const logFile = path.join(RUN, `${def.name}.log`);
  const logFd = fs.openSync(logFile, 'w');
  s.logFile = logFile;
  const proc = spawn(...pinned('server', p.cmd, p.args), {
    cwd: ROOT,
    // --own-sessions: setsid, a scheduling group (autogroup) of its own, as a systemd service has.
    detached: opt.ownSessions,
    env: { ...process.env, ...(def.node && opt.arenaMax ? NODE_SERVER_ENV : {}), ...(p.env || {}) },
    // stdin: vsftpd reports config errors on fd 0; pure-ftpd takes a socket on fd 0 for inetd
    // mode, so the others get /dev/null there (the Node/Python wrappers get a pipe)
    stdio: [p.stdinLog ? logFd : p.ready === 'json' ? 'pipe' : 'ignore', p.ready === 'json' ? 'pipe' : logFd, logFd],
  });
  s.proc = proc;
  s.pid = proc.pid;
  s.spawnedAt = Date.now();
  track.servers.set(proc.pid, s);
  proc.on('exit', (code, sig) => {
    s.exited = { code, sig };
  });
  s.lines = [];
  s.waiters = [];
  if (p.ready === 'json') {
    let buf = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let j = null;
        try {
          j = JSON.parse(line);
        } catch {
          fs.appendFileSync(logFile, line + '\n');
          continue;
        }
        const w = s.waiters.shift();
        if (w) w(j);
        else s.lines.push(j);
      }
    });
  }
  if (proc.stdin && !p.stdinLog) proc.stdin.on('error', () => {});
  const deadline = Date.now() + 30000;
  try {
    if (p.ready === 'json') {
      const j = await Promise.race([
        nextLine(s),
        (async () => {
          while (!s.exited && Date.now() < deadline) await sleep(50);
          return null;
        })(),
      ]);
      if (!j || !j.port) throw new Error('did not report its port');
      s.port = j.port;
    } else {
      s.port = ctx.port;
      let probe = { ok: false, why: 'not probed' };
      while (!probe.ok && !s.exited && Date.now() < deadline) {
        probe = await banner(s.port);
        if (!probe.ok) await sleep(100);
      }
      if (!probe.ok) throw new Error(`no 220 banner (last probe: ${probe.why})`);
    }
  } catch (e) {
    const tail = safeRead(logFile).trim().split('\n').slice(-4).join(' | ');
    s.skip = `failed to start (${e.message}${s.exited ? `, exit ${s.exited.code ?? s.exited.sig}` : ''}): ${tail}`;
    // Alive but not answering (pure-ftpd, now and then: every probe reset for 30 s) is worth
    // one more start on another port; a server that exited said why and would do it again.
    s.retryable = !s.exited;
    await stopServer(s);
    return s;
  }
  return s;
}

function safeRead(f) {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

function nextLine(s) {
  if (s.lines.length) return Promise.resolve(s.lines.shift());
  return new Promise((r) => s.waiters.push(r));
}

/** Connects, reads the greeting: { ok, why } (why: what the last attempt saw, for the error). */
function banner(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (ok, why) => {
      c.destroy();
      resolve({ ok, why });
    };
    c.setTimeout(2000, () => done(false, got ? `no 220 in ${JSON.stringify(got.slice(0, 80))}` : `connected (local port ${c.localPort}), nothing read in 2 s`));
    c.on('data', (d) => {
      got += d;
      if (/^220[ -]/.test(got)) {
        c.write('QUIT\r\n');
        setTimeout(() => done(true, '220'), 20);
      }
    });
    c.on('error', (e) => done(false, e.code || e.message));
  });
}

/**
 * A Node server's main thread (the event loop) as the scheduler saw it, from
 * /proc/PID/task/PID/schedstat: { run: ns on a CPU, wait: ns ready to run but waiting for one,
 * at: when read }, or null where the file is missing.
 */
function loopSched(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ');
    return { run: Number(f[0]), wait: Number(f[1]), at: process.hrtime.bigint() };
  } catch {
    return null;
  }
}

// Event-loop delay of a Node server: SIGUSR2 makes it print {"eld":{...}} and reset.
async function eld(s) {
  if (!s.def.node || s.exited) return null;
  s.lines = s.lines.filter((j) => !j.eld);
  try {
    process.kill(s.pid, 'SIGUSR2');
  } catch {
    return null;
  }
  const j = await Promise.race([nextLine(s), sleep(3000).then(() => null)]);
  return j && j.eld ? j.eld : null;
}

// ---------------------------------------------------------------- scenarios
/**
 * How long a server has been quiet when its idle samples are taken (full runs): past ftpdlib's
 * heapReduceDelay (5 s), the two settle steps and the malloc trim that follow it, so the figure
 * is that of a server left idle, as deployed ones are; the same wait for every server. --quick
 * samples after 0.6 s: past ftpdlib's memoryTrimDelay (0.5 s, malloc trim) but before V8 is
 * asked. No server is forced to collect garbage first: each is measured as it holds its memory
 * when nothing happens (src/native/bench/RESULTS.md).
 */
const IDLE_QUIET_MS = opt.quick ? 600 : 6500;
/** Seconds a server is up before its first idle baseline (not with --quick). */
const IDLE_SETTLE_S = 12;
/**
 * How long a server has been quiet before its first idle baseline (full runs): past ftpdlib's
 * heap sequence after the start-up probe's login, and past the 2 s its trimmer leaves between
 * two malloc trims (with 1.5 s one run's stream server had its baseline taken before a trim
 * that interval had deferred, and came out at -7.3 KiB per session).
 */
const IDLE_BASE_QUIET_MS = opt.quick ? IDLE_QUIET_MS : 7000;

const common = { args: (s) => ['--port', String(s.port), '--user', 'bench', '--pass', 'bench'] };

/**
 * Opens CFG.idle logged-in sessions on `s`; once they have been quiet for IDLE_QUIET_MS, the
 * tree's PSS, which `after` gets (and may act on) before the sessions QUIT.
 */
function openIdle(s, after) {
  return runClient(['idle', ...common.args(s), '--sessions', String(CFG.idle)], {
    stdinPipe: true,
    onLine: (j, ch) => {
      if (j.ready === undefined) return;
      // let forked sessions settle, then sample, then tell the client to QUIT
      setTimeout(
        async () => {
          await after(treePss(s.pid));
          ch.stdin.end('quit\n');
        },
        IDLE_QUIET_MS,
      );
    },
  });
}

/**
 * After the idle rounds (it would raise an allocator's high-water mark under the rounds'
 * shared baseline): CFG.idle sessions, then CFG.idle more while the first stay open. The
 * second batch's PSS per session is what one more session costs once the server has grown
 * for the first: V8's one-time growth in a server's first burst (young generation, compiled
 * code) is not in it.
 */
async function idleNext(s) {
  let next = null;
  let failure = null;
  const r = await openIdle(s, async (first) => {
    const r2 = await openIdle(s, async (second) => {
      next = (second.anonKb - first.anonKb) / CFG.idle;
    });
    if (r2.error || r2.ready !== CFG.idle) failure = r2.error || `${r2.ready}/${CFG.idle} more sessions opened: ${r2.first_error}`;
  });
  if (r.error || r.ready !== CFG.idle) failure ??= r.error || `${r.ready}/${CFG.idle} sessions opened: ${r.first_error}`;
  return failure ? { error: failure } : { kib_per_session: next };
}

// "many": 100 sessions x 10 downloads of 1 MiB. The threaded client (ftpbench many) gives each
// session a thread of its own; "many-event" drives the same sessions from one epoll thread per
// core (--event-threads), so that the client's wake-ups take less of the cores the server shares
// with it. One thread was not enough: it ran at 80% of a core and held ftpdlib to 2,557-2,811
// files/s against 3,043-3,210 with the threaded client and 2,784-3,332 with two.
const EVENT_THREADS = os.cpus().length;
function manyScenario(key, event) {
  return {
    key,
    cache: (f) => f.small,
    warmup: true,
    title: () => `${CFG.manyClients} clients x ${CFG.manyCount} RETR of 1 MiB (logged in once each), files/s${event ? `, the clients driven by ${EVENT_THREADS} epoll thread${EVENT_THREADS > 1 ? 's' : ''} (ftpbench many --event-threads ${EVENT_THREADS})` : ''}`,
    better: 'files_per_s',
    async run(s) {
      // The Node servers' loop-delay monitor runs between two eld() calls only (it toggles):
      // on once everyone is logged in, off with the report when the last file is in.
      // The loop thread's schedstat over the same phase tells a loop that was busy from one that
      // was ready to run and waited for a CPU (the client's 100 threads share this machine).
      let loop = null;
      let monitoring = false;
      let sched0 = null;
      let sched = null;
      const { r, cpu } = await runMeasured(s, ['many', ...common.args(s), '--file', 'small.bin', '--clients', String(CFG.manyClients), '--count', String(CFG.manyCount), ...(event ? ['--event-threads', String(EVENT_THREADS)] : [])], {
        beforeGo: async () => {
          monitoring = (await eld(s)) !== null;
          if (monitoring) sched0 = loopSched(s.pid);
        },
        afterDone: async () => {
          if (!monitoring) return;
          const sched1 = sched0 && loopSched(s.pid);
          if (sched1) {
            const wall = Number(sched1.at - sched0.at);
            sched = { run_pct: ((sched1.run - sched0.run) / wall) * 100, wait_pct: ((sched1.wait - sched0.wait) / wall) * 100 };
          }
          monitoring = false;
          loop = await eld(s);
        },
      });
      if (monitoring) await eld(s); // the client failed mid-way: turn the monitor off again
      if (r.error) return r;
      const want = CFG.manyClients * CFG.manyCount;
      if (r.files !== want) return { error: `${r.files}/${want} files, ${r.errors} errors: ${r.first_error}` };
      // The collector's figures over the same phase, per file (bench/gc-window.js).
      let gc = null;
      if (loop && loop.gc) {
        gc = { ...loop.gc, alloc_kib_per_file: loop.gc.allocated_bytes / 1024 / r.files };
        delete loop.gc;
      }
      return { files_per_s: r.files_per_s, client: r.client, event_threads: r.event_threads, p50_ms: r.p50_ms, p99_ms: r.p99_ms, file_p50_ms: r.file_p50_ms, file_p99_ms: r.file_p99_ms, server_cpu_s: cpu, cpu_ms_per_file: (cpu / r.files) * 1e3, client_cpu_pct: r.client_cpu_pct, eld: loop, loop_sched: sched, gc };
    },
  };
}

const SCENARIOS = [
  {
    key: 'idle',
    title: () => `${CFG.idle} idle logged-in sessions: server memory (anonymous PSS, all processes)`,
    better: 'kib_per_session',
    lowerIsBetter: true,
    async run(s) {
      // The server has been quiet before its baseline, as the sessions are before their sample:
      // ftpdlib gives freed memory back after 0.5 s (malloc) and 5 s (V8) without activity.
      await sleep(s.idleBase ? IDLE_QUIET_MS : IDLE_BASE_QUIET_MS);
      // And up for IDLE_SETTLE_S: V8 shrinks a Node server's heap about 8 s after start-up
      // (its memory reducer). The servers start together and take turns, so without this the
      // first Node server's baseline came before that shrink and the others' after it: its
      // sessions then looked cheaper by several KiB each (src/native/bench/RESULTS.md).
      if (!s.idleBase && !opt.quick) await sleep(Math.max(0, IDLE_SETTLE_S * 1000 - (Date.now() - s.spawnedAt)));
      // The baseline is the server as it was before its first idle sessions, in every round: memory
      // an allocator kept from an earlier round (Python's does) is still the process's memory.
      const now = treePss(s.pid);
      if (!s.idleBase) s.idleBase = now;
      const before = s.idleBase;
      let sample = null;
      const r = await openIdle(s, async (at) => {
        sample = at;
      });
      if (r.error) return r;
      if (!sample) return { error: 'no sample' };
      if (r.ready !== CFG.idle) return { error: `${r.ready}/${CFG.idle} sessions opened: ${r.first_error}` };
      return {
        kib_per_session: (sample.anonKb - before.anonKb) / r.ready,
        total_kib_per_session: (sample.kb - before.kb) / r.ready,
        pss_before_mib: before.kb / 1024,
        pss_total_mib: sample.kb / 1024,
        procs: sample.procs,
        open_seconds: r.open_seconds,
        client_cpu_s: r.client_cpu_s,
      };
    },
  },
  {
    key: 'retr',
    firstUnmeasured: true,
    cache: (f) => f.big,
    title: () => `RETR of one ${fmtBytes(CFG.retrBytes)} file (page cache warm), MB/s`,
    better: 'mbps',
    async run(s) {
      const { r, cpu } = await runMeasured(s, ['retr', ...common.args(s), '--file', 'big.bin']);
      if (r.error) return r;
      if (r.bytes !== CFG.retrBytes) return { error: `received ${r.bytes} bytes, expected ${CFG.retrBytes}` };
      return { mbps: r.mbps, seconds: r.seconds, server_cpu_s: cpu, mb_per_cpu_s: cpu > 0 ? r.bytes / 1e6 / cpu : null, client_cpu_pct: r.client_cpu_pct, server_cpu_pct: (cpu / r.seconds) * 100 };
    },
  },
  {
    key: 'stor',
    firstUnmeasured: true,
    title: () => `STOR of ${fmtBytes(CFG.storBytes)} (client sends from memory), MB/s`,
    better: 'mbps',
    async run(s, round) {
      const name = `up-${round}.bin`;
      const file = path.join(s.root, name);
      const { r, cpu } = await runMeasured(s, ['stor', ...common.args(s), '--file', name, '--bytes', String(CFG.storBytes)], { beforeGo: () => prefault(CFG.storBytes) });
      const size = takeUpload(file);
      if (r.error) return r;
      if (size !== CFG.storBytes) return { error: `stored file has ${size} bytes, expected ${CFG.storBytes}` };
      return { mbps: r.mbps, seconds: r.seconds, server_cpu_s: cpu, mb_per_cpu_s: cpu > 0 ? r.bytes / 1e6 / cpu : null, client_cpu_pct: r.client_cpu_pct, server_cpu_pct: (cpu / r.seconds) * 100 };
    },
  },
  {
    key: 'tls-retr',
    firstUnmeasured: true,
    tls: true,
    cache: (f) => f.tlsBig,
    title: () => `FTPS (explicit, PROT P) RETR of one ${fmtBytes(CFG.tlsBytes)} file with ${tlsWithFtpbench() ? 'ftpbench --tls' : 'curl'} (page cache warm), MB/s`,
    better: 'mbps',
    async run(s) {
      if (tlsWithFtpbench()) {
        const { r, cpu } = await runMeasured(s, ['retr', '--tls', ...common.args(s), '--file', 'big.bin']);
        if (r.error) return r;
        if (r.bytes !== CFG.tlsBytes) return { error: `received ${r.bytes} bytes, expected ${CFG.tlsBytes}` };
        return ftpbenchTlsResult(r, cpu);
      }
      const m = await curlMeasured(s, ['-o', '/dev/null', curlUrl(s, 'big.bin')]);
      if (m.error) return { error: m.error };
      if (m.w.size_download !== CFG.tlsBytes) return { error: `received ${m.w.size_download} bytes, expected ${CFG.tlsBytes}` };
      return tlsResult(s, m, CFG.tlsBytes);
    },
  },
  {
    key: 'tls-stor',
    firstUnmeasured: true,
    tls: true,
    cache: (f) => f.tlsBig, // curl's source
    title: () => (tlsWithFtpbench()
      ? `FTPS (explicit, PROT P) STOR of ${fmtBytes(CFG.tlsBytes)} with ftpbench --tls (client sends from memory), MB/s`
      : `FTPS (explicit, PROT P) STOR of ${fmtBytes(CFG.tlsBytes)} with curl -T (source file page-cached), MB/s`),
    better: 'mbps',
    async run(s, round) {
      const name = `up-${round}.bin`;
      const file = path.join(s.root, name);
      if (tlsWithFtpbench()) {
        const { r, cpu } = await runMeasured(s, ['stor', '--tls', ...common.args(s), '--file', name, '--bytes', String(CFG.tlsBytes)], { beforeGo: () => prefault(CFG.tlsBytes) });
        const size = takeUpload(file);
        if (r.error) return r;
        if (size !== CFG.tlsBytes) return { error: `stored file has ${size} bytes, expected ${CFG.tlsBytes}` };
        return ftpbenchTlsResult(r, cpu);
      }
      prefault(CFG.tlsBytes);
      const m = await curlMeasured(s, ['-T', s.tlsSource, curlUrl(s, name)]);
      const size = takeUpload(file);
      if (m.error) return { error: m.error };
      if (m.w.size_upload !== CFG.tlsBytes || size !== CFG.tlsBytes) return { error: `stored file has ${size} bytes (curl sent ${m.w.size_upload}), expected ${CFG.tlsBytes}` };
      return tlsResult(s, m, CFG.tlsBytes);
    },
  },
  manyScenario('many', false),
  manyScenario('many-event', true),
  {
    key: 'logins',
    warmup: true,
    title: () => `${CFG.loginClients} clients looping connect/USER/PASS/QUIT for ${CFG.loginSeconds} s, logins/s`,
    better: 'logins_per_s',
    async run(s, round) {
      const c0 = treeCpu(s.pid);
      // round 0: the first warm-up pass; -1: the pass right before a measured round
      const seconds = round === 0 ? Math.min(2, CFG.loginSeconds) : round < 0 ? ROUND_WARMUP_SECONDS : CFG.loginSeconds;
      const r = await runClient(['logins', ...common.args(s), '--clients', String(CFG.loginClients), '--seconds', String(seconds)]);
      await sleep(300); // let the last session processes exit and be reaped (forking servers)
      const cpu = treeCpu(s.pid) - c0;
      if (r.error) return r;
      if (r.errors > 0 && r.logins === 0) return { error: r.first_error };
      return { logins_per_s: r.logins_per_s, p50_ms: r.p50_ms, p99_ms: r.p99_ms, errors: r.errors, server_cpu_s: cpu, cpu_ms_per_login: r.logins ? (cpu / r.logins) * 1e3 : null, client_cpu_pct: r.client_cpu_pct };
    },
  },
];

/**
 * The reported round: the median by the scenario's main metric (with an even count, the worse
 * of the two middle rounds), a failed round counting as the worst: a server that failed most of its
 * rounds has failed the scenario (one clean round out of three is not its figure), and one that
 * failed a minority gets the worse of its other two.
 */
function medianRound(list, sc) {
  const ranked = [...list].sort((a, b) => {
    if (a.error || b.error) return (a.error ? 1 : 0) - (b.error ? 1 : 0);
    return sc.lowerIsBetter ? a[sc.better] - b[sc.better] : b[sc.better] - a[sc.better];
  });
  const failed = list.filter((r) => r.error).length;
  const m = ranked[Math.floor(ranked.length / 2)];
  if (m.error && failed < list.length) return { ...m, error: `${m.error} (failed ${failed} of ${list.length} rounds)` };
  return m;
}

// ---------------------------------------------------------------- output
function fmtBytes(n) {
  return n >= 1024 * MiB ? `${n / 1024 / MiB} GiB` : `${n / MiB} MiB`;
}
function printScenario(sc, servers) {
  const ran = servers.filter((s) => !s.skip && !!sc.tls === s.tls);
  // a peer with a non-positive figure (e.g. PSS that shrank while sessions were open) cannot be "best"
  const peers = ran.filter((s) => !s.ours && s.results[sc.key] && !s.results[sc.key].error && s.results[sc.key][sc.better] > 0);
  const vals = peers.map((s) => s.results[sc.key][sc.better]);
  const best = vals.length ? (sc.lowerIsBetter ? Math.min(...vals) : Math.max(...vals)) : null;
  const bestPeer = best === null ? null : peers[vals.indexOf(best)].name;
  const ratio = (v) => {
    if (best === null || v === null || v === undefined || !(v > 0)) return '-';
    const x = sc.lowerIsBetter ? best / v : v / best;
    return `${x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)}x`;
  };
  const cols = {
    retr: ['MB/s', 'vs best peer', 'MB/server-CPU-s', 'server CPU%', 'client CPU%'],
    stor: ['MB/s', 'vs best peer', 'MB/server-CPU-s', 'server CPU%', 'client CPU%'],
    'tls-retr': ['MB/s', 'vs best peer', 'MB/server-CPU-s', 'server CPU%', tlsWithFtpbench() ? 'client CPU%' : 'curl CPU%', 'curl session setup CPU ms (server/curl)', 'data connection TLS'],
    'tls-stor': ['MB/s', 'vs best peer', 'MB/server-CPU-s', 'server CPU%', tlsWithFtpbench() ? 'client CPU%' : 'curl CPU%', 'curl session setup CPU ms (server/curl)', 'data connection TLS'],
    get 'many-event'() {
      return this.many;
    },
    many: ['files/s', 'vs best peer', 'RETR p50 ms', 'RETR p99 ms', 'file p50 ms', 'file p99 ms', 'server CPU ms/file', 'client CPU%', 'loop delay p99 ms', 'loop on CPU %', 'loop waiting %', 'GC KiB/file', 'survived KiB/scavenge', 'scavenge p50/max ms'],
    idle: ['KiB/session', 'vs best peer', `next ${CFG.idle}: KiB/session`, 'all PSS KiB/session', 'PSS before MiB', 'PSS total MiB', 'processes', 'open s'],
    logins: ['logins/s', 'vs best peer', 'p50 ms', 'p99 ms', 'server CPU ms/login', 'client CPU%'],
  }[sc.key];
  const rows = ran.map((s) => {
    const r = s.results[sc.key];
    if (!r) return [s.name, 'not run', ...cols.slice(1).map(() => '')];
    if (r.error) return [s.name, 'ERROR', ...cols.slice(1).map(() => '')];
    switch (sc.key) {
      case 'retr':
      case 'stor':
        return [s.name, num(r.mbps), ratio(r.mbps), num(r.mb_per_cpu_s), num(r.server_cpu_pct), num(r.client_cpu_pct)];
      case 'tls-retr':
      case 'tls-stor':
        return [s.name, num(r.mbps), ratio(r.mbps), num(r.mb_per_cpu_s), num(r.server_cpu_pct), num(r.client_cpu_pct),
          `${num(s.tlsSetup.server_cpu_s * 1e3)}/${num(s.tlsSetup.curl_cpu_s * 1e3)}`, r.tls || '-'];
      case 'many':
      case 'many-event':
        return [s.name, num(r.files_per_s), ratio(r.files_per_s), num(r.p50_ms, 2), num(r.p99_ms, 2), num(r.file_p50_ms, 2), num(r.file_p99_ms, 2), num(r.cpu_ms_per_file, 2), num(r.client_cpu_pct), r.eld ? num(r.eld.p99, 2) : '-', r.loop_sched ? num(r.loop_sched.run_pct) : '-', r.loop_sched ? num(r.loop_sched.wait_pct) : '-',
          r.gc ? num(r.gc.alloc_kib_per_file, 1) : '-', r.gc && r.gc.survived_bytes !== null ? num(r.gc.survived_bytes / 1024) : '-',
          r.gc && r.gc.scavenges ? `${num(r.gc.scavenge_ms_p50, 1)}/${num(r.gc.scavenge_ms_max, 1)}` : '-'];
      case 'idle':
        return [s.name, num(r.kib_per_session, 1), ratio(r.kib_per_session), s.idleNext ? (s.idleNext.error ? 'ERROR' : num(s.idleNext.kib_per_session, 1)) : '-', num(r.total_kib_per_session, 1), num(r.pss_before_mib, 1), num(r.pss_total_mib, 1), num(r.procs), num(r.open_seconds, 2)];
      case 'logins':
        return [s.name, num(r.logins_per_s), ratio(r.logins_per_s), num(r.p50_ms, 2), num(r.p99_ms, 2), num(r.cpu_ms_per_login, 2), num(r.client_cpu_pct)];
      default:
        return [s.name];
    }
  });
  log(`\n## ${sc.title()}`);
  log(`   ratio = ${sc.lowerIsBetter ? 'best peer / value' : 'value / best peer'} (>1 = better than the best peer${bestPeer ? `, ${bestPeer}` : ''})`);
  log(table(['server', ...cols], rows));
  for (const s of ran) {
    const r = s.results[sc.key];
    if (r && r.error) log(`   ${s.name}: ${r.error}`);
  }
  // The table's loop figure is the median round's p99, which rests on that round's 80-300
  // samples; every round's samples together give the p99 over the whole scenario.
  if (sc.key === 'many' || sc.key === 'many-event') {
    for (const s of ran) {
      const rounds = ((s.all || {})[sc.key] || []).filter((r) => !r.error && r.eld);
      const p = pooledLoop(rounds.map((r) => r.eld));
      if (p) log(`   ${s.name}'s loop delay, ${loopPooledLine(p)}; p99 under 10 ms in ${rounds.filter((r) => r.eld.p99 < 10).length} of ${rounds.length} rounds`);
    }
  }
}

// FTPS next to plain, same run: each -tls row beside the plain row of the same server
function printTlsSummary(servers) {
  const rows = [];
  for (const t of servers.filter((s) => s.tls && !s.skip)) {
    const p = servers.find((s) => s.name === t.def.plain && !s.skip);
    const get = (s, k, f) => (s && s.results[k] && !s.results[k].error ? s.results[k][f] : null);
    const rel = (a, b) => (a > 0 && b > 0 ? `${(a / b).toFixed(2)}x` : '-');
    const pr = get(p, 'retr', 'mbps');
    const tr = get(t, 'tls-retr', 'mbps');
    const ps = get(p, 'stor', 'mbps');
    const ts = get(t, 'tls-stor', 'mbps');
    rows.push([`${t.name} vs ${t.def.plain}`, num(pr), num(tr), rel(tr, pr), num(get(p, 'retr', 'mb_per_cpu_s')), num(get(t, 'tls-retr', 'mb_per_cpu_s')),
      num(ps), num(ts), rel(ts, ps), num(get(p, 'stor', 'mb_per_cpu_s')), num(get(t, 'tls-stor', 'mb_per_cpu_s')), num(get(t, 'tls-retr', 'client_cpu_pct')), num(get(t, 'tls-stor', 'client_cpu_pct'))]);
  }
  if (!rows.length) return;
  const tc = tlsWithFtpbench() ? 'ftpbench --tls' : 'curl';
  log(`\n## FTPS next to plain FTP (this run: plain RETR ${fmtBytes(CFG.retrBytes)} / STOR ${fmtBytes(CFG.storBytes)} with ftpbench, FTPS ${fmtBytes(CFG.tlsBytes)} each with ${tc})`);
  log(table(['server', 'RETR MB/s plain', 'FTPS', 'FTPS/plain', 'RETR MB/CPU-s plain', 'FTPS', 'STOR MB/s plain', 'FTPS', 'FTPS/plain', 'STOR MB/CPU-s plain', 'FTPS', `${tlsWithFtpbench() ? 'client' : 'curl'} CPU% RETR`, `${tlsWithFtpbench() ? 'client' : 'curl'} CPU% STOR`], rows));
}

// ---------------------------------------------------------------- main
async function main() {
  const t0 = Date.now();
  fs.mkdirSync(RUN, { recursive: true });
  fs.mkdirSync(path.join(BENCH, 'data'), { recursive: true });
  log(`# ftpdlib benchmark (${opt.quick ? 'quick' : 'full'}): ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, node ${process.version}`);
  const load0 = os.loadavg();
  const stat0 = cpuTimes();
  if (load0[0] > 0.5 * os.cpus().length) log(`WARNING: load average ${load0.map((x) => x.toFixed(2)).join(' ')} on ${os.cpus().length} cores before the run: other work competes for the CPU and the figures will be noisy`);

  const cerr = buildClient();
  if (cerr) {
    log(`cannot build the client: ${cerr}\nbenchmark skipped.`);
    return;
  }

  // --quick alone runs the plain scenarios (the FTPS ones start a second set of servers and
  // need a minute more): --quick --scenarios=tls or =plain,tls for those.
  // "many-event" neither (a second look at "many", which --quick already smoke-tests; with it the
  // quick run would pass a minute).
  const scenarios = opt.scenarios
    ? SCENARIOS.filter((sc) => opt.scenarios.includes(sc.key))
    : opt.quick
      ? SCENARIOS.filter((sc) => !sc.tls && sc.key !== 'many-event')
      : SCENARIOS;
  if (!scenarios.length) {
    log(`--scenarios matched no scenario; known: ${SCENARIOS.map((sc) => sc.key).join(', ')} (or plain, tls)`);
    return;
  }
  const wantPlain = scenarios.some((sc) => !sc.tls);
  const wantTls = scenarios.some((sc) => sc.tls);
  let selected = SERVERS.filter((d) => (d.tls ? wantTls : wantPlain));
  if (opt.only) {
    selected = selected.filter((d) => opt.only.some((o) => d.name === o || d.base === o || (o === 'ftpdlib' && d.ours)));
    if (!selected.length) {
      log(`--only matched no server of the selected scenarios; known: ${SERVERS.map((d) => d.name).join(', ')}`);
      return;
    }
  }
  const anyPlain = selected.some((d) => !d.tls);
  const anyTls = selected.some((d) => d.tls);

  const big = path.join(BENCH, 'data', `big-${CFG.retrBytes}.bin`);
  const tlsBig = path.join(BENCH, 'data', `big-${CFG.tlsBytes}.bin`);
  const small = path.join(BENCH, 'data', 'small-1MiB.bin');
  const tiny = path.join(BENCH, 'data', 'tiny-1KiB.bin');
  ensureFile(small, MiB);
  warmCache(small);
  if (anyPlain) {
    log(`preparing ${fmtBytes(CFG.retrBytes)} test file and warming the page cache...`);
    ensureFile(big, CFG.retrBytes);
    warmCache(big);
  }
  let tls = { reason: 'not selected' };
  if (anyTls) {
    log(`preparing ${fmtBytes(CFG.tlsBytes)} FTPS test file (RETR source, and curl's STOR source) and warming the page cache...`);
    ensureFile(tlsBig, CFG.tlsBytes);
    ensureFile(tiny, 1024);
    warmCache(tlsBig);
    const ci = curlInfo();
    tls = ci.reason ? ci : ensureCert();
    if (!tls.reason) tls.curl = ci;
  }

  const ctx = { big, small, tlsBig, tiny, tls, user: unixUser('bench'), ftpdlibImpl: selected.some((d) => d.ours) ? ftpdlibImpl() : { reason: 'not selected' } };
  // All servers start at once (each has its own ports: control ports by slot, passive ranges by
  // index), and are reported in order; one at a time took 3-6 s of a quick run.
  const started = await Promise.all(
    selected.map(async (def) => {
      const lines = [];
      let s = await startServer(def, SERVERS.indexOf(def), ctx);
      if (s.skip && s.retryable) {
        lines.push(`  ${s.name} ${s.skip}; starting it once more`);
        s = await startServer(def, SERVERS.indexOf(def), ctx, 1);
        if (!s.skip) s.note = [s.note, 'second start'].filter(Boolean).join(', ');
      }
      if (s.skip) lines.push(`  skip ${s.name}: ${s.skip}`);
      else lines.push(`  started ${s.name} pid ${s.pid} port ${s.port}${s.version ? ` (version ${s.version})` : ''}${s.note ? ` [${s.note}]` : ''}`);
      return { s, lines };
    }),
  );
  const servers = started.map(({ s, lines }) => {
    lines.forEach((l) => log(l));
    return s;
  });
  const live = () => servers.filter((s) => !s.skip);
  if (!live().length) {
    log('no server could be started; nothing to measure.');
    return;
  }

  // warm-up (not measured): a few RETRs each, so JITs and caches are not measured cold; the -tls
  // servers get three tiny FTPS RETRs with curl, which also check that FTPS works end to end
  for (const s of live()) {
    if (!s.tls) {
      await runClient(['many', ...common.args(s), '--file', 'small.bin', '--clients', '2', '--count', '5'], { timeoutS: 30 });
      continue;
    }
    s.tlsSource = tlsBig;
    const err = await tlsWarmup(s);
    if (err) {
      s.skip = `FTPS check failed: ${err}`;
      log(`  skip ${s.name}: ${s.skip}`);
      await stopServer(s);
    } else {
      log(`  ${s.name}: FTPS ok, control ${s.tlsSetup.control}, data ${s.tlsSetup.data}; one curl session costs ${num(s.tlsSetup.server_cpu_s * 1e3, 1)} ms server CPU, ${num(s.tlsSetup.curl_cpu_s * 1e3, 1)} ms curl CPU`);
    }
  }

  log(`\nrounds per scenario: ${CFG.rounds}${LONG_ROUNDS !== CFG.rounds ? `, ${LONG_ROUNDS} for ${[...FIVE_ROUNDS].map((k) => `"${k}"`).join(', ')}` : ''} (servers interleaved within each round, in orders where each round starts with another server and each server follows another one than in the round before: the rows of a Williams design, bench/order.js${opt.quick || !opt.warmup ? '' : '; before round 1 of retr, stor, tls-retr and tls-stor one transfer on the first server, not counted, so that no measured transfer is the first of its kind in the run'}; reported figure = the median round by the scenario's main metric, a failed round ranking last: a server that failed most rounds shows an error)`);
  for (const sc of scenarios) {
    const scStart = Date.now();
    let lastTurn = null; // the server whose turn came last in this scenario
    if (sc.warmup && opt.warmup && !opt.quick) {
      // One unmeasured pass per server first: a server that has run for a while is what users
      // meet, and a few hundred milliseconds of cold JIT (Node) or cold caches would otherwise
      // decide these short scenarios. Forking servers gain nothing from it (a process per session).
      for (const s of live().filter((x) => !!sc.tls === x.tls && !x.exited)) {
        // Repeated until it has run WARMUP_SECONDS, the same time for every server.
        const t0 = Date.now();
        const passes = [];
        do {
          let r;
          try {
            r = await sc.run(s, 0);
          } catch (e) {
            r = { error: e.message };
          }
          passes.push(r);
          if (r.error) break;
        } while (Date.now() - t0 < WARMUP_SECONDS * 1000);
        (s.warm = s.warm || {})[sc.key] = passes;
        const shown = passes.map((r) => (r.error ? 'ERROR ' + r.error : num(r[sc.better], 0))).join(', ');
        process.stdout.write(`  ${sc.key} warm-up ${s.name}: ${shown} (not counted)\n`);
      }
    }
    if (sc.firstUnmeasured && opt.warmup && !opt.quick) {
      // One transfer of the scenario before its first measured one, not counted: the first
      // upload of a run was 243–558 MB/s in three of four full runs (final40–43) where the same
      // server's other rounds made 1,002–1,865, and the first download was its server's slowest
      // in five of six (final38–43). That transfer was always ftpdlib's, the first server of
      // round 1; now every measured transfer follows another one.
      const first = live().find((x) => !!sc.tls === x.tls && !x.exited);
      if (first) {
        if (sc.cache) rewarm(sc.cache(ctx));
        let r;
        try {
          r = await sc.run(first, 0);
        } catch (e) {
          r = { error: e.message };
        }
        (first.warm = first.warm || {})[sc.key] = [r];
        lastTurn = first.name;
        process.stdout.write(`  ${sc.key} before round 1, on ${first.name}: ${r.error ? 'ERROR ' + r.error : num(r[sc.better], 0)} (not counted)\n`);
      }
    }
    for (let round = 1; round <= roundsOf(sc); round++) {
      // Each round starts with another server: whoever goes first in a round meets the machine
      // as the previous scenario left it (on these VMs a first 2 GiB upload also waits for the
      // host to back the guest's freed memory again), and a fixed order gave that to ftpdlib
      // every time. And each server follows a different one from round to round (bench/order.js),
      // so what one turn leaves behind does not always land on the same next server.
      const turn = live().filter((x) => !!sc.tls === x.tls);
      let position = 0;
      for (const s of orderRound(turn, round)) {
        position++;
        if (s.exited) {
          s.results[sc.key] = s.results[sc.key] || { error: `server exited (${s.exited.code ?? s.exited.sig})` };
          continue;
        }
        // (--quick leaves it out for the forking servers: a process per session keeps nothing
        // warm, and their slow logins made it the longest part of a quick run.)
        if (sc.warmup && opt.warmup && !(opt.quick && s.def.forking)) {
          // And a short pass right before each measured round: the servers take turns, so each
          // round would otherwise follow a wait while the others ran, and a V8 server that sat
          // idle can lose its optimized code (src/native/bench/RESULTS.md, "Slower after idling").
          const t0 = Date.now();
          let r;
          do {
            try {
              r = await sc.run(s, -1);
            } catch (e) {
              r = { error: e.message };
            }
          } while (!r.error && Date.now() - t0 < ROUND_WARMUP_SECONDS * 1000);
        }
        const resident = sc.cache ? rewarm(sc.cache(ctx)) : null;
        let r;
        try {
          r = await sc.run(s, round);
        } catch (e) {
          r = { error: e.message };
        }
        r.round = round;
        // Where the turn came: its place in the round, and whose measured turn came right
        // before it (the uncounted first transfer's server, for the first turn of round 1).
        r.position = position;
        r.after = lastTurn;
        lastTurn = s.name;
        if (resident !== null) r.resident_before = resident;
        (s.all = s.all || {})[sc.key] = [...((s.all || {})[sc.key] || []), r];
        s.results[sc.key] = medianRound(s.all[sc.key], sc);
        const cold = resident !== null && resident < 0.995 ? ` (${Math.round(resident * 100)}% of the file was page-cached: read again before the round)` : '';
        process.stdout.write(`  ${sc.key} round ${round} ${s.name}: ${r.error ? 'ERROR ' + r.error : num(r[sc.better], sc.key === 'idle' ? 1 : 0)}${cold}\n`);
      }
    }
    if (sc.key === 'idle' && !opt.quick) {
      for (const s of live().filter((x) => !x.tls && !x.exited)) {
        await sleep(IDLE_QUIET_MS);
        try {
          s.idleNext = await idleNext(s);
        } catch (e) {
          s.idleNext = { error: e.message };
        }
        const n = s.idleNext;
        process.stdout.write(`  idle next ${CFG.idle} ${s.name}: ${n.error ? 'ERROR ' + n.error : num(n.kib_per_session, 1)}\n`);
      }
    }
    printScenario(sc, servers);
    log(`   (${sc.key}: ${((Date.now() - scStart) / 1000).toFixed(1)} s, warm-ups and every server's rounds)`);
  }
  if (wantTls) printTlsSummary(servers);

  for (const s of live()) await stopServer(s);

  log('\nnotes:');
  log(opt.warmup
    ? `- warm-up: before the measured rounds of "many" and "logins" every server ran the scenario unmeasured, ${opt.quick ? '' : `repeated for ${WARMUP_SECONDS} s ("logins" passes of at most 2 s), and again `}for ${ROUND_WARMUP_SECONDS} s right before each of its measured rounds${opt.quick ? ' (the forking servers vsftpd, proftpd and pure-ftpd not, in --quick: a process per session keeps nothing warm)' : ''} (servers take turns, and a V8 server idle meanwhile can lose its optimized code), so the figures are those of running servers, not of a cold or just re-woken JIT; --no-warmup measures without either.`
    : '- warm-up: none (--no-warmup): "many" and "logins" include the Node and Python servers\' cold start.');
  log(`- client: bench/client/ftpbench.c (cc -O2, threads, recv(MSG_TRUNC) discards RETR data in the kernel, STOR sends with sendfile() from a memfd); "client CPU%" is its user+sys time over the measured wall time (100% = one core). Client and server share the ${os.cpus().length} cores.`);
  log('- uploads: right before each upload (stor, tls-stor) the benchmark writes and deletes a file as large as the upload, so that the upload finds memory the host has backed (these VMs hand free memory back to the host, and a 2 GiB write after 20 s without writes took 5.1–5.4 s here, right after another 0.29 s).');
  log(`- page cache: each measured round of retr, tls-retr, tls-stor and many first re-reads its file if any of it has left the page cache (${residentBytes(__filename) === null ? 'fincore not found: always re-read' : 'fincore'}): the hosts of these machines page out file pages unread for about a minute (DAMON), so one warm-up at the start would not hold; a round line says how much of the file was found cached when it was not all.`);
  log("- server CPU and PSS are summed over the whole process tree: CPU = own time (max of /proc/PID/stat utime+stime and the sum of its threads' schedstat run time, the latter because stat's 10 ms ticks round short sessions to 0) + cutime+cstime, over the listener and every live descendant (reaped sessions land in their parent's cutime/cstime), sampled right after the client logged in and right after the measured phase (client --sync), so logins and QUITs are outside transfer figures; PSS = sum of smaps_rollup Pss over all processes of the tree. On loopback part of the receiving side's TCP work runs in the sender's context, so CPU splits between client and server only approximately.");
  log('- idle: KiB/session = (tree anonymous PSS with the sessions open - the same before the server\'s first round of idle sessions) / sessions, anonymous PSS being smaps_rollup Pss_Anon + Pss_Shmem: the memory no file backs (a server\'s code pages come and go with the page cache and the host\'s pageout, not with its sessions; "all PSS" beside it counts them too), sampled ' + IDLE_QUIET_MS / 1000 + ' s after the last login, the baseline ' + IDLE_BASE_QUIET_MS / 1000 + ' s after the server last did anything' + (opt.quick ? '' : ' and at least ' + IDLE_SETTLE_S + ' s after it started (V8 shrinks a Node server\'s heap ~8 s after start-up; without the wait the first server measured would get its baseline before that and the others after)') + ' (the baseline of round 1 for all rounds: an allocator that keeps freed memory, as Python does, would otherwise show 0 from round 2 on); no server is made to collect garbage before a sample (ftpdlib returns memory by itself once quiet: memoryTrimDelay, heapReduceDelay).' + (opt.quick ? '' : ' "next ' + CFG.idle + '" (after the rounds, outside the ratio) = (tree anonymous PSS with ' + 2 * CFG.idle + ' sessions open - with the first ' + CFG.idle + ') / ' + CFG.idle + ', the second batch opened while the first stays open: what one more session costs without the one-time growth of a server\'s first burst.') + ' Limits raised for this: vsftpd max_clients=0 max_per_ip=0; proftpd MaxInstances 5000, MaxClients/MaxClientsPerHost/MaxConnectionsPerHost none; pure-ftpd -c 5000 -C 5000; pyftpdlib max_cons=0 max_cons_per_ip=0; ftpdlib maxConnections 5000; every server started with ulimit -n ' + NOFILE + ' (or the hard limit if lower: ' + spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim() + ' here).');
  log(`- vsftpd/proftpd/pure-ftpd check an MD5-crypt hash for bench (set by setup.sh; Debian's default yescrypt costs ~30 ms of CPU per login); pyftpdlib and ftp-srv compare plain text in memory; ftpdlib ${opt.ftpdlibAuth === 'plain' ? 'runs VirtualAuthorizer with allowPlaintextPasswords (its default scrypt costs ~55 ms of CPU per login here: --ftpdlib-auth=scrypt)' : "keeps VirtualAuthorizer's default scrypt hashing"}. proftpd runs with DelayEngine off, TCPBackLog 255 (its maximum).`);
  if (anyTls) {
    log(`- FTPS (tls-retr, tls-stor): separate "-tls" instances of the servers with TLS required on control and data (ftpdlib tlsControlRequired+tlsDataRequired: ftpdlib-tls moves the records of file transfers in its engine (nativeTls), ftpdlib-stream-tls through Node's TLS socket; vsftpd force_local_logins_ssl/force_local_data_ssl=YES, require_ssl_reuse=YES; proftpd mod_tls from proftpd-mod-crypto, TLSRequired on, session reuse required (default); pure-ftpd -Y 3 -2 combined.pem; pyftpdlib TLS_FTPHandler with tls_control_required/tls_data_required; ftp-srv tls option, which cannot refuse plain sessions: curl --ssl-reqd enforces it), one self-signed EC P-256 certificate (.bench/tls). ${tlsWithFtpbench() ? 'Check and warm-up of each -tls server' : 'Client'}: ${tls.curl ? tls.curl.version + ' (' + tls.curl.ssl + ')' : 'curl'} -s -v --ssl-reqd -k (AUTH, PBSZ 0, PROT P, EPSV); the run checks that PROT P got 200 and both connections did a TLS handshake.${tlsWithFtpbench() ? '' : ` RETR writes to -o /dev/null; STOR is curl -T of the page-cached ${fmtBytes(CFG.tlsBytes)} RETR file (a little cheaper for curl than -T - from a pipe of zeros, measured here).`}`);
    if (!tlsWithFtpbench()) log('- FTPS MB/s = bytes / (curl time_total - time_pretransfer), i.e. from EPSV to the 226. Server CPU = process-tree CPU from just before curl starts to just after it exits, and curl CPU = its getrusage (bash `times`), each minus the cost of a curl session that RETRs a 1 KiB file (login, 2 TLS handshakes, QUIT; the "session setup" column: server = mean of 5, curl = median of 5), to approximate the transfer alone like the plain tables. A session of a forking server reaches the parent cutime in 10 ms clock ticks, so the FTPS CPU figures carry +-10 ms per transfer. curl is single-threaded and does the client side of TLS in the same core budget: when curl CPU% is near 100 the client, not the server, is the limit.');
    if (tlsWithFtpbench()) {
      log(`- FTPS client of this run: ftpbench --tls (--tls-client=ftpbench), not curl: ${spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout.trim() || 'OpenSSL'} libssl; AUTH TLS, PBSZ 0, PROT P, TYPE I, EPSV (PASV on 5xx); no certificate verification; a control handshake that fails is retried twice with the ClientHello sent 20/100 ms after the 234 (ftp-srv 4.6 answers 234 before it puts TLS on the connection, and a ClientHello that arrives in between is read as a command: "wrong version number"; the "data connection TLS" column says "login retried" when it happened, always before the measured phase); the data connection's handshake starts right after RETR/STOR is sent and resumes the control connection's session (SSL_get1_session after the login's replies, SSL_set_session); the "data connection TLS" column says whether the server resumed it. RETR: SSL_read into 1 MiB with read-ahead (1 MiB read buffer) until close_notify/EOF, data discarded; STOR: SSL_write of 1 MiB from memory, then close_notify, FIN, the 226. MB/s, server CPU and client CPU as in the plain retr/stor tables (--sync: server CPU from right after login to right after the 226; client CPU = ftpbench's getrusage over RETR/STOR sent to the 226, data handshake included); nothing is subtracted. The "curl session setup" column is still the curl warm-up check of each -tls server (5 curl sessions on a 1 KiB file), not used in the figures.`);
    } else {
      log(`- FTPS client of this run: curl${opt.tlsClient === 'ftpbench' ? ` (--tls-client=ftpbench was asked for, but ${clientTlsNote || 'ftpbench has no TLS'}: curl instead)` : ' (--tls-client=curl)'}.`);
    }
  }
  log(opt.arenaMax
    ? '- the Node servers (ftpdlib, ftp-srv) run with MALLOC_ARENA_MAX=2, as conf/ftpdlib.service runs the daemon (--no-arena-max: glibc default).'
    : '- the Node servers run with glibc\'s default malloc arenas (--no-arena-max).');
  if (opt.ownSessions) log('- --own-sessions: every server was started in a session of its own (setsid), a scheduling group apart from the client\'s, as systemd starts a service; Linux shared the CPU between the groups first, then between each group\'s threads.');
  if (PIN) log(`- --pin: every server ran on core(s) ${PIN.server} and the clients on core ${PIN.client} (taskset), so no client took CPU from a server; each server had ${PIN.server === '0' ? 'one core' : 'those cores'} instead of the machine.`);
  if (opt.ioThreads !== null) log(`- ftpdlib's engine runs ${opt.ioThreads} I/O thread(s) (--ftpdlib-io-threads).`);
  if (opt.solo !== null) log(`- ftpdlib's engine ${opt.solo ? 'gives' : 'does not give'} a transfer running alone its own I/O thread at full priority (--ftpdlib-solo; the library's default gives it).`);
  if (opt.ioNice !== null) log(`- ftpdlib's engine I/O thread runs ${opt.ioNice} nice steps below the process (--ftpdlib-io-nice; the library's default is 10).`);
  {
    const cc = systemCongestion();
    const mode = opt.congestion ?? 'auto';
    const what =
      mode === 'system' ? "the machine's, as the peers'"
        : mode !== 'auto' ? `${mode} for every data connection`
        : cc.startsWith('bbr') ? `every connection accepted on a loopback passive listener (every data connection here) under CUBIC (else Reno) from its start, never paced; the rest under ${cc} (src/native/bench/RESULTS.md, "Loopback data connections never paced")`
        : `the machine's (not BBR, so auto changes nothing)`;
    log(`- TCP congestion control: this machine's default is ${cc} (net.ipv4.tcp_congestion_control); the peers' connections and the clients' use it. ftpdlib's data connections: dataCongestionControl ${mode}${opt.congestion === null ? " (the library's default)" : ' (--ftpdlib-congestion)'}: ${what}. Over loopback a BBR sender is held near the rate it estimates, and a sender bound by its own CPU (every loopback download) ran at about half the MB/s, with twice the spread, under BBR as under CUBIC, ftpdlib's engine and proftpd alike (src/native/bench/RESULTS.md, "RETR under BBR"); --ftpdlib-congestion=system runs ftpdlib under the machine's default, as the peers run.`);
  }
  log(opt.memoryTrim
    ? '- ftpdlib runs with its default memoryTrimDelay (0.5 s) and heapReduceDelay (5 s): once connections and transfers pause that long it gives the memory malloc freed back to the kernel (malloc_trim), and then asks V8 to shrink its heap, as a deployed server does; --no-memory-trim turns both off.'
    : '- ftpdlib runs with memoryTrimDelay 0 and heapReduceDelay 0 (--no-memory-trim): it never gives freed memory back.');
  log('- many: "RETR" latency = from sending RETR to reading the 226 (data connection already open); "file" latency = from sending EPSV (PASV where EPSV is refused) to the 226, connecting included: the whole download of one file. The 100 clients log in before the measured phase, at most 16 at a time (ftpbench --login-concurrency): all 100 at once overflowed vsftpd\'s listen backlog of 32, and with SYN cookies a client whose ACK was dropped waited 30 s for a greeting, which failed most of vsftpd\'s rounds until 2026-11-30.');
  log('- GC = what V8\'s collector did in a Node server during "many" (v8.GCProfiler, bench/gc-window.js): heap bytes allocated per file, the mean bytes left in the young generation after a scavenge, and the median and longest scavenge pause. Unlike CPU time, these move with the code, not with the machine\'s load.');
  log(`- loop delay = perf_hooks.monitorEventLoopDelay p99 (1 ms sampling, minus the 1 ms interval) of Node servers during "many". loop on CPU / waiting = the share of that phase the server's main thread ran, and was ready to run but waited for a CPU (/proc/PID/task/PID/schedstat; ${PIN ? 'the clients ran on a core of their own (--pin)' : "the client's threads run on the same cores"}).`);
  log(`- load average before the run ${load0.map((x) => x.toFixed(2)).join(' ')}, after ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (${os.cpus().length} cores; the benchmark itself adds about 1-2)`);
  const stat1 = cpuTimes();
  const steal = stat0 && stat1 && stat1.total > stat0.total ? ((stat1.steal - stat0.steal) / (stat1.total - stat0.total)) * 100 : null;
  if (steal !== null) {
    log(`- CPU steal during the run: ${steal.toFixed(1)}% of the machine's CPU time went to other virtual machines on the host (/proc/stat); every server lost it alike, as rounds are interleaved, but absolute figures drop with it`);
  }
  log(`total time ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  if (opt.json) {
    const file = opt.json === true ? path.join(BENCH, `results-${new Date().toISOString().replace(/[:.]/g, '-')}.json`) : opt.json;
    const out = {
      date: new Date().toISOString(),
      mode: opt.quick ? 'quick' : 'full',
      config: CFG,
      loadavg: { before: load0, after: os.loadavg() },
      cpu_steal_pct: steal,
      machine: { cores: os.cpus().length, model: os.cpus()[0] && os.cpus()[0].model, memGiB: os.totalmem() / 2 ** 30, kernel: os.release(), node: process.version },
      scenarios: scenarios.map((sc) => sc.key),
      // loopback_listeners: 'auto' sets its choice on loopback passive listeners (since the
      // thirty-fourth session; before, only downloads of 16 MiB or more were switched).
      congestion: { system: systemCongestion(), ftpdlib: opt.congestion ?? 'auto', ...((opt.congestion ?? 'auto') === 'auto' ? { loopback_listeners: true } : {}) },
      placement: { pin: PIN, own_sessions: opt.ownSessions },
      tls_client: anyTls && tlsWithFtpbench() ? { ftpbench: '--tls', openssl: spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout.trim(), cert: 'self-signed EC P-256', warmup_check: tls.curl ? { curl: tls.curl } : null } : anyTls && tls.curl ? { curl: tls.curl, cert: 'self-signed EC P-256', flags: '-s -v --ssl-reqd -k' } : null,
      servers: servers.map((s) => ({ name: s.name, ours: s.ours, tls: s.tls, plain_counterpart: s.def.plain || null, skipped: s.skip || null, version: s.version || null, note: s.note || null, tls_session_setup: s.tlsSetup || null, reported: s.results, rounds: s.all || {}, warmup: s.warm || {}, idle_next: s.idleNext || null })),
    };
    fs.writeFileSync(file, JSON.stringify(out, null, 2));
    log(`raw numbers written to ${file}`);
  }
  if (!opt.keep) fs.rmSync(path.join(BENCH, 'roots'), { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`benchmark aborted: ${e && e.stack ? e.stack : e}`);
    process.exit(0);
  },
);
