#!/usr/bin/env node
'use strict';
// npm run bench [-- --quick] [--only=name,...] [--json[=FILE]] [--rounds=N] [--keep]
//
// Measures ftpdlib (zero-copy and stream paths) against the installed peer FTP servers in one
// run, interleaved per scenario, with the C client in bench/client/ftpbench.c. Peers are
// installed by `bash bench/setup.sh`; any that is missing is skipped with the reason.
// Never fails the build: exits 0 unless it was interrupted.

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { spawn, spawnSync } = require('child_process');

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
const opt = { quick: false, only: null, json: null, rounds: null, keep: false, ftpdlibAuth: 'plain' };
for (const a of argv) {
  if (a === '--quick') opt.quick = true;
  else if (a.startsWith('--only=')) opt.only = a.slice(7).split(',').map((s) => s.trim()).filter(Boolean);
  else if (a === '--json') opt.json = true;
  else if (a.startsWith('--json=')) opt.json = path.resolve(a.slice(7));
  else if (a.startsWith('--rounds=')) opt.rounds = Math.max(1, Math.min(5, Number(a.slice(9)) || 1));
  else if (a === '--keep') opt.keep = true;
  else if (a.startsWith('--ftpdlib-auth=')) opt.ftpdlibAuth = a.slice(15) === 'scrypt' ? 'scrypt' : 'plain';
  else if (a === '--help' || a === '-h') {
    console.log('usage: node bench/run.js [--quick] [--only=ftpdlib,vsftpd,...] [--json[=FILE]] [--rounds=N]');
    console.log('servers: ftpdlib-sendfile ftpdlib-stream pyftpdlib vsftpd proftpd pure-ftpd ftp-srv');
    console.log('(--only=ftpdlib selects both ftpdlib variants)');
    console.log('--ftpdlib-auth=scrypt: keep VirtualAuthorizer\'s default scrypt hashing (default here: plain, like the peers\' cheap checks)');
    process.exit(0);
  } else {
    console.error(`unknown option ${a} (try --help)`);
    process.exit(0);
  }
}

const CFG = opt.quick
  ? { retrBytes: 1024 * MiB, storBytes: 256 * MiB, manyClients: 20, manyCount: 20, idle: 100, loginClients: 20, loginSeconds: 2, rounds: 1, clientTimeout: 60 }
  : { retrBytes: 2048 * MiB, storBytes: 2048 * MiB, manyClients: 100, manyCount: 10, idle: 500, loginClients: 20, loginSeconds: 5, rounds: 3, clientTimeout: 180 };
if (opt.rounds) CFG.rounds = opt.rounds;

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

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- /proc accounting
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

function treePss(root) {
  let kb = 0;
  const pids = treePids(root);
  for (const p of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* exited meanwhile */
    }
  }
  return { kb, procs: pids.length };
}

// ---------------------------------------------------------------- client
function buildClient() {
  const need = !exists(CLIENT) || fs.statSync(CLIENT).mtimeMs < fs.statSync(CLIENT_SRC).mtimeMs;
  if (!need) return null;
  fs.mkdirSync(BENCH, { recursive: true });
  const r = spawnSync('cc', ['-O2', '-pthread', '-o', CLIENT, CLIENT_SRC], { encoding: 'utf8' });
  if (r.status !== 0) return `cc failed: ${(r.stderr || r.error || '').toString().slice(0, 2000)}`;
  return null;
}

// Runs the client; resolves with its (last) JSON line. onLine gets every parsed line.
function runClient(args, { onLine, stdinPipe = false, timeoutS = CFG.clientTimeout } = {}) {
  return new Promise((resolve) => {
    const ch = spawn(CLIENT, [...args, '--timeout', String(timeoutS)], { stdio: [stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
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

// ---------------------------------------------------------------- data files and roots
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

function makeRoot(name, big, small, owner) {
  const dir = path.join(BENCH, 'roots', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.linkSync(big, path.join(dir, 'big.bin')); // hard links: one inode, one warm page cache
  fs.linkSync(small, path.join(dir, 'small.bin'));
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  return dir;
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
  const dist = path.join(ROOT, 'dist', 'src', 'index.js');
  let newestSrc = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'build') walk(p);
      } else if (e.name.endsWith('.ts')) newestSrc = Math.max(newestSrc, fs.statSync(p).mtimeMs);
    }
  };
  walk(path.join(ROOT, 'src'));
  if (exists(dist) && fs.statSync(dist).mtimeMs >= newestSrc) {
    try {
      const ts = require(path.join(ROOT, 'node_modules', 'typescript'));
      const src = fs.readFileSync(path.join(__dirname, 'servers', 'ftpdlib.ts'), 'utf8');
      const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020, esModuleInterop: true } }).outputText;
      const out = path.join(RUN, 'ftpdlib-server.js');
      fs.writeFileSync(out, js);
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

const SERVERS = [
  {
    name: 'ftpdlib-sendfile',
    ours: true,
    node: true,
    prepare(ctx) {
      const impl = ctx.ftpdlibImpl;
      if (impl.reason) return impl;
      return { note: impl.how, ...wrapUlimit(impl.cmd, [...impl.pre, '--port', '0', '--root', ctx.root, '--pasv', ctx.pasv.join('-'), '--auth', opt.ftpdlibAuth]), env: impl.env, ready: 'json' };
    },
  },
  {
    name: 'ftpdlib-stream',
    ours: true,
    node: true,
    prepare(ctx) {
      const impl = ctx.ftpdlibImpl;
      if (impl.reason) return impl;
      return { ...wrapUlimit(impl.cmd, [...impl.pre, '--port', '0', '--root', ctx.root, '--pasv', ctx.pasv.join('-'), '--stream', '--auth', opt.ftpdlibAuth]), env: impl.env, ready: 'json' };
    },
  },
  {
    name: 'pyftpdlib',
    prepare(ctx) {
      const py = '/usr/bin/python3';
      const r = spawnSync(py, ['-c', 'import pyftpdlib, sys; sys.stdout.write(pyftpdlib.__ver__)'], { encoding: 'utf8' });
      if (r.status !== 0) return { reason: 'python3-pyftpdlib is not installed (bash bench/setup.sh)' };
      ctx.version = r.stdout;
      return { ...wrapUlimit(py, [path.join(__dirname, 'servers', 'pyftpdlib_server.py'), '--port', '0', '--root', ctx.root, '--pasv', ctx.pasv.join('-')]), ready: 'json' };
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
      const dir = path.join(RUN, 'vsftpd');
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
          'idle_session_timeout=600', 'data_connection_timeout=600', '',
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
      if (!ctx.user) return { reason: 'unix user bench does not exist (bash bench/setup.sh)' };
      const hash = shadowHash('bench');
      if (!hash) return { reason: 'cannot read the password hash of bench from /etc/shadow' };
      const dir = path.join(RUN, 'proftpd');
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
          'MaxConnectionsPerHost none', 'MaxLoginAttempts 1000', 'TimeoutIdle 600', 'TimeoutLogin 600', '',
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
      const dir = path.join(RUN, 'pure-ftpd');
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
      return { ...wrapUlimit(process.execPath, ['--expose-gc', path.join(__dirname, 'servers', 'ftpsrv.js'), '--port', String(ctx.port), '--root', ctx.root, '--pasv', ctx.pasv.join('-')]), ready: 'json' };
    },
  },
];

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

async function startServer(def, index, common) {
  const s = { name: def.name, def, ours: !!def.ours, results: {} };
  const ctx = {
    root: makeRoot(def.name, common.big, common.small, def.unixUser ? common.user : common.user),
    port: await freePort(),
    pasv: [20000 + index * 1000, 20000 + index * 1000 + 999], // below the ephemeral range (32768+)
    user: common.user,
    ftpdlibImpl: common.ftpdlibImpl,
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
  const proc = spawn(p.cmd, p.args, {
    cwd: ROOT,
    env: { ...process.env, ...(p.env || {}) },
    // stdin: vsftpd reports config errors on fd 0; pure-ftpd takes a socket on fd 0 for inetd
    // mode, so the others get /dev/null there (the Node/Python wrappers get a pipe)
    stdio: [p.stdinLog ? logFd : p.ready === 'json' ? 'pipe' : 'ignore', p.ready === 'json' ? 'pipe' : logFd, logFd],
  });
  s.proc = proc;
  s.pid = proc.pid;
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
      let ok = false;
      while (!ok && !s.exited && Date.now() < deadline) {
        ok = await banner(s.port);
        if (!ok) await sleep(100);
      }
      if (!ok) throw new Error('no 220 banner');
    }
  } catch (e) {
    const tail = safeRead(logFile).trim().split('\n').slice(-4).join(' | ');
    s.skip = `failed to start (${e.message}${s.exited ? `, exit ${s.exited.code ?? s.exited.sig}` : ''}): ${tail}`;
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

function banner(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (v) => {
      c.destroy();
      resolve(v);
    };
    c.setTimeout(2000, () => done(false));
    c.on('data', (d) => {
      got += d;
      if (/^220[ -]/.test(got)) {
        c.write('QUIT\r\n');
        setTimeout(() => done(true), 20);
      }
    });
    c.on('error', () => done(false));
  });
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

// Node servers (ftpdlib, ftp-srv): a full GC before a PSS sample, so the figure is retained memory
async function settleGc(s) {
  if (!s.def.node || s.exited || !s.proc.stdin) return;
  s.lines = s.lines.filter((j) => j.gc === undefined);
  s.proc.stdin.write('gc\n');
  await Promise.race([nextLine(s), sleep(3000)]);
  await sleep(200);
}

// ---------------------------------------------------------------- scenarios
const common = { args: (s) => ['--port', String(s.port), '--user', 'bench', '--pass', 'bench'] };

const SCENARIOS = [
  {
    key: 'idle',
    title: () => `${CFG.idle} idle logged-in sessions: server PSS (all processes)`,
    better: 'kib_per_session',
    lowerIsBetter: true,
    async run(s) {
      await sleep(300);
      await settleGc(s);
      const before = treePss(s.pid);
      let sample = null;
      const r = await runClient(['idle', ...common.args(s), '--sessions', String(CFG.idle)], {
        stdinPipe: true,
        onLine: (j, ch) => {
          if (j.ready === undefined) return;
          // let forked sessions settle, then sample, then tell the client to QUIT
          setTimeout(async () => {
            await settleGc(s);
            sample = treePss(s.pid);
            ch.stdin.end('quit\n');
          }, 1000);
        },
      });
      if (r.error) return r;
      if (!sample) return { error: 'no sample' };
      if (r.ready !== CFG.idle) return { error: `${r.ready}/${CFG.idle} sessions opened: ${r.first_error}` };
      return {
        kib_per_session: (sample.kb - before.kb) / r.ready,
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
    title: () => `STOR of ${fmtBytes(CFG.storBytes)} (client sends from memory), MB/s`,
    better: 'mbps',
    async run(s, round) {
      const name = `up-${round}.bin`;
      const file = path.join(s.root, name);
      const { r, cpu } = await runMeasured(s, ['stor', ...common.args(s), '--file', name, '--bytes', String(CFG.storBytes)]);
      let size = -1;
      try {
        size = fs.statSync(file).size;
      } catch {
        /* missing */
      }
      fs.rmSync(file, { force: true }); // drop its dirty pages before the next server writes
      if (r.error) return r;
      if (size !== CFG.storBytes) return { error: `stored file has ${size} bytes, expected ${CFG.storBytes}` };
      return { mbps: r.mbps, seconds: r.seconds, server_cpu_s: cpu, mb_per_cpu_s: cpu > 0 ? r.bytes / 1e6 / cpu : null, client_cpu_pct: r.client_cpu_pct, server_cpu_pct: (cpu / r.seconds) * 100 };
    },
  },
  {
    key: 'many',
    title: () => `${CFG.manyClients} clients x ${CFG.manyCount} RETR of 1 MiB (logged in once each), files/s`,
    better: 'files_per_s',
    async run(s) {
      let loop = null;
      const { r, cpu } = await runMeasured(s, ['many', ...common.args(s), '--file', 'small.bin', '--clients', String(CFG.manyClients), '--count', String(CFG.manyCount)], {
        beforeGo: () => eld(s), // reset the histogram once everyone is logged in
        afterDone: async () => {
          loop = await eld(s);
        },
      });
      if (r.error) return r;
      const want = CFG.manyClients * CFG.manyCount;
      if (r.files !== want) return { error: `${r.files}/${want} files, ${r.errors} errors: ${r.first_error}` };
      return { files_per_s: r.files_per_s, p50_ms: r.p50_ms, p99_ms: r.p99_ms, server_cpu_s: cpu, cpu_ms_per_file: (cpu / r.files) * 1e3, client_cpu_pct: r.client_cpu_pct, eld: loop };
    },
  },
  {
    key: 'logins',
    title: () => `${CFG.loginClients} clients looping connect/USER/PASS/QUIT for ${CFG.loginSeconds} s, logins/s`,
    better: 'logins_per_s',
    async run(s) {
      const c0 = treeCpu(s.pid);
      const r = await runClient(['logins', ...common.args(s), '--clients', String(CFG.loginClients), '--seconds', String(CFG.loginSeconds)]);
      await sleep(300); // let the last session processes exit and be reaped (forking servers)
      const cpu = treeCpu(s.pid) - c0;
      if (r.error) return r;
      if (r.errors > 0 && r.logins === 0) return { error: r.first_error };
      return { logins_per_s: r.logins_per_s, p50_ms: r.p50_ms, p99_ms: r.p99_ms, errors: r.errors, server_cpu_s: cpu, cpu_ms_per_login: r.logins ? (cpu / r.logins) * 1e3 : null, client_cpu_pct: r.client_cpu_pct };
    },
  },
];

// The reported round: the median by the scenario's main metric (with an even count, the worse of
// the two middle rounds); rounds that failed only count when all failed.
function medianRound(list, sc) {
  const ok = list.filter((r) => !r.error);
  if (!ok.length) return list[list.length - 1];
  const sorted = [...ok].sort((a, b) => (sc.lowerIsBetter ? b[sc.better] - a[sc.better] : a[sc.better] - b[sc.better]));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

// ---------------------------------------------------------------- output
function fmtBytes(n) {
  return n >= 1024 * MiB ? `${n / 1024 / MiB} GiB` : `${n / MiB} MiB`;
}
function num(v, d = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  return Number(v).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

function table(headers, rows) {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  return [line(headers), w.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line)].join('\n');
}

function printScenario(sc, servers) {
  const ran = servers.filter((s) => !s.skip);
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
    many: ['files/s', 'vs best peer', 'p50 ms', 'p99 ms', 'server CPU ms/file', 'client CPU%', 'loop delay p99 ms'],
    idle: ['KiB/session', 'vs best peer', 'PSS before MiB', 'PSS total MiB', 'processes', 'open s'],
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
      case 'many':
        return [s.name, num(r.files_per_s), ratio(r.files_per_s), num(r.p50_ms, 2), num(r.p99_ms, 2), num(r.cpu_ms_per_file, 2), num(r.client_cpu_pct), r.eld ? num(r.eld.p99, 2) : '-'];
      case 'idle':
        return [s.name, num(r.kib_per_session, 1), ratio(r.kib_per_session), num(r.pss_before_mib, 1), num(r.pss_total_mib, 1), num(r.procs), num(r.open_seconds, 2)];
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
}

// ---------------------------------------------------------------- main
async function main() {
  const t0 = Date.now();
  fs.mkdirSync(RUN, { recursive: true });
  fs.mkdirSync(path.join(BENCH, 'data'), { recursive: true });
  log(`# ftpdlib benchmark (${opt.quick ? 'quick' : 'full'}): ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, node ${process.version}`);

  const cerr = buildClient();
  if (cerr) {
    log(`cannot build the client: ${cerr}\nbenchmark skipped.`);
    return;
  }

  let selected = SERVERS;
  if (opt.only) {
    selected = SERVERS.filter((d) => opt.only.some((o) => d.name === o || (o === 'ftpdlib' && d.ours)));
    if (!selected.length) {
      log(`--only matched no server; known: ${SERVERS.map((d) => d.name).join(', ')}`);
      return;
    }
  }

  const big = path.join(BENCH, 'data', `big-${CFG.retrBytes}.bin`);
  const small = path.join(BENCH, 'data', 'small-1MiB.bin');
  log(`preparing ${fmtBytes(CFG.retrBytes)} test file and warming the page cache...`);
  ensureFile(big, CFG.retrBytes);
  ensureFile(small, MiB);
  warmCache(big);
  warmCache(small);

  const ctx = { big, small, user: unixUser('bench'), ftpdlibImpl: selected.some((d) => d.ours) ? ftpdlibImpl() : { reason: 'not selected' } };
  const servers = [];
  for (let i = 0; i < selected.length; i++) {
    const s = await startServer(selected[i], SERVERS.indexOf(selected[i]), ctx);
    servers.push(s);
    if (s.skip) log(`  skip ${s.name}: ${s.skip}`);
    else log(`  started ${s.name} pid ${s.pid} port ${s.port}${s.version ? ` (version ${s.version})` : ''}${s.note ? ` [${s.note}]` : ''}`);
  }
  const live = () => servers.filter((s) => !s.skip);
  if (!live().length) {
    log('no server could be started; nothing to measure.');
    return;
  }

  // warm-up (not measured): a few RETRs each, so JITs and caches are not measured cold
  for (const s of live()) await runClient(['many', ...common.args(s), '--file', 'small.bin', '--clients', '2', '--count', '5'], { timeoutS: 30 });

  log(`\nrounds per scenario: ${CFG.rounds} (servers interleaved within each round; reported figure = the median round by the scenario's main metric)`);
  for (const sc of SCENARIOS) {
    for (let round = 1; round <= CFG.rounds; round++) {
      for (const s of live()) {
        if (s.exited) {
          s.results[sc.key] = s.results[sc.key] || { error: `server exited (${s.exited.code ?? s.exited.sig})` };
          continue;
        }
        let r;
        try {
          r = await sc.run(s, round);
        } catch (e) {
          r = { error: e.message };
        }
        r.round = round;
        (s.all = s.all || {})[sc.key] = [...((s.all || {})[sc.key] || []), r];
        s.results[sc.key] = medianRound(s.all[sc.key], sc);
        process.stdout.write(`  ${sc.key} round ${round} ${s.name}: ${r.error ? 'ERROR ' + r.error : num(r[sc.better], sc.key === 'idle' ? 1 : 0)}\n`);
      }
    }
    printScenario(sc, servers);
  }

  for (const s of live()) await stopServer(s);

  log('\nnotes:');
  log(`- client: bench/client/ftpbench.c (cc -O2, threads, recv(MSG_TRUNC) discards RETR data in the kernel, STOR sends with sendfile() from a memfd); "client CPU%" is its user+sys time over the measured wall time (100% = one core). Client and server share the ${os.cpus().length} cores.`);
  log("- server CPU and PSS are summed over the whole process tree: CPU = own time (max of /proc/PID/stat utime+stime and the sum of its threads' schedstat run time, the latter because stat's 10 ms ticks round short sessions to 0) + cutime+cstime, over the listener and every live descendant (reaped sessions land in their parent's cutime/cstime), sampled right after the client logged in and right after the measured phase (client --sync), so logins and QUITs are outside transfer figures; PSS = sum of smaps_rollup Pss over all processes of the tree. On loopback part of the receiving side's TCP work runs in the sender's context, so CPU splits between client and server only approximately.");
  log('- idle: KiB/session = (tree PSS with the sessions open - tree PSS just before) / sessions, sampled 1 s after the last login; the Node servers (ftpdlib, ftp-srv) run with --expose-gc and get a full GC before each of the two samples. Limits raised for this: vsftpd max_clients=0 max_per_ip=0; proftpd MaxInstances 5000, MaxClients/MaxClientsPerHost/MaxConnectionsPerHost none; pure-ftpd -c 5000 -C 5000; pyftpdlib max_cons=0 max_cons_per_ip=0; every server started with ulimit -n ' + NOFILE + ' (or the hard limit if lower: ' + spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim() + ' here).');
  log(`- vsftpd/proftpd/pure-ftpd check an MD5-crypt hash for bench (set by setup.sh; Debian's default yescrypt costs ~30 ms of CPU per login); pyftpdlib and ftp-srv compare plain text in memory; ftpdlib ${opt.ftpdlibAuth === 'plain' ? 'runs VirtualAuthorizer with allowPlaintextPasswords (its default scrypt costs ~55 ms of CPU per login here: --ftpdlib-auth=scrypt)' : "keeps VirtualAuthorizer's default scrypt hashing"}. proftpd runs with DelayEngine off, TCPBackLog 255 (its maximum).`);
  log(`- loop delay = perf_hooks.monitorEventLoopDelay p99 (1 ms sampling, minus the 1 ms interval) of Node servers during "many".`);
  log(`total time ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  if (opt.json) {
    const file = opt.json === true ? path.join(BENCH, `results-${new Date().toISOString().replace(/[:.]/g, '-')}.json`) : opt.json;
    const out = {
      date: new Date().toISOString(),
      mode: opt.quick ? 'quick' : 'full',
      config: CFG,
      machine: { cores: os.cpus().length, model: os.cpus()[0] && os.cpus()[0].model, memGiB: os.totalmem() / 2 ** 30, kernel: os.release(), node: process.version },
      servers: servers.map((s) => ({ name: s.name, ours: s.ours, skipped: s.skip || null, version: s.version || null, note: s.note || null, reported: s.results, rounds: s.all || {} })),
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
