#!/usr/bin/env node
// How much of a login's CPU is Node's: two minimal FTP login servers (a greeting, then 331, 230
// and 221 for USER, PASS and QUIT) taking turns with ftpdlib and, where installed, pyftpdlib.
//
//   node src/native/bench/login-floor.js [--pairs 3] [--seconds 3] [--clients 20]
//        [--serve socket|handle]
//
// socket: the login on Node's net.Socket, as every Node server makes it.
// handle: the same on the libuv TCP handle alone (read with onread, written with a WriteWrap,
//         closed with close()), which is what a server could do that took its control
//         connections bare, as ftpdlib takes its passive data connections (src/ftp/data/connection.ts).
// Each server gets a 2 s unmeasured pass, then `--seconds` of `ftpbench logins` (bench/run.js
// builds .bench/ftpbench); server CPU per login from /proc/PID/stat (10 ms ticks).
// ftpdlib runs built (npm run build), once as it is and once with FTPDLIB_NO_BARE_CONTROL=1. This is a measurement script, not a test: the handle
// server uses process.binding('stream_wrap'), Node's internals, and does no error handling
// beyond what a loopback login needs.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};

if (opt('serve')) serve(opt('serve'));
else compare();

function serve(mode) {
  const replies = { USER: '331 Password.\r\n', PASS: '230 Logged in.\r\n', QUIT: '221 Goodbye.\r\n' };
  const lines = (state, text, answer) => {
    state.buf += text;
    let i;
    while ((i = state.buf.indexOf('\n')) >= 0) {
      const verb = state.buf.slice(0, Math.min(i, 4)).toUpperCase();
      state.buf = state.buf.slice(i + 1);
      if (answer(replies[verb] ?? '502 Not here.\r\n', verb === 'QUIT')) return;
    }
  };
  let srv;
  if (mode === 'socket') {
    srv = net.createServer({ noDelay: true }, (s) => {
      const state = { buf: '' };
      s.setEncoding('latin1');
      s.on('error', () => {});
      s.on('data', (d) =>
        lines(state, d, (r, last) => {
          if (!last) return s.write(r), false;
          s.end(r);
          s.destroySoon();
          return true;
        }),
      );
      s.write('220 Ready.\r\n');
    });
  } else {
    const { WriteWrap, streamBaseState, kReadBytesOrError, kArrayBufferOffset } = process.binding('stream_wrap');
    srv = net.createServer({ pauseOnConnect: true });
    srv.on('listening', () => {
      srv._handle.onconnection = (status, h) => {
        if (status < 0 || !h) return;
        const state = { buf: '', closed: false };
        const write = (text) => {
          const req = new WriteWrap();
          req.handle = h;
          req.oncomplete = () => {};
          req.async = false;
          h.writeLatin1String(req, text);
        };
        const close = () => {
          if (!state.closed) (state.closed = true), h.close();
        };
        h.onread = (ab) => {
          const n = streamBaseState[kReadBytesOrError];
          if (n < 0) return close();
          if (n === 0) return;
          lines(state, Buffer.from(ab, streamBaseState[kArrayBufferOffset], n).toString('latin1'), (r, last) => {
            write(r);
            if (last) close();
            return last;
          });
        };
        h.setNoDelay(true);
        write('220 Ready.\r\n');
        h.readStart();
      };
    });
  }
  srv.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: srv.address().port }) + '\n'));
}

function compare() {
  const root = path.resolve(__dirname, '..', '..', '..');
  const ftpbench = path.join(root, '.bench', 'ftpbench');
  if (!fs.existsSync(ftpbench)) throw new Error(`${ftpbench} missing: run the benchmark once (node bench/run.js --quick) to build it`);
  const pairs = Number(opt('pairs', 3));
  const seconds = Number(opt('seconds', 3));
  const clients = Number(opt('clients', 20));
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'login-floor-'));
  const servers = [
    { name: 'net.Socket', cmd: [process.execPath, __filename, '--serve', 'socket'] },
    { name: 'TCP handle', cmd: [process.execPath, __filename, '--serve', 'handle'] },
  ];
  const built = path.join(root, 'dist', 'src');
  if (fs.existsSync(path.join(built, 'index.js'))) {
    const { writeFtpdlibServer } = require(path.join(root, 'bench', 'server-script.js'));
    const js = writeFtpdlibServer(path.join(root, '.bench', 'run', 'login-floor-ftpdlib.js'));
    const cmd = [process.execPath, js, '--port', '0', '--root', dir, '--auth', 'plain'];
    servers.push({ name: 'ftpdlib', cmd, env: { FTPDLIB_IMPL: built, MALLOC_ARENA_MAX: '2' } });
    // The same build with its control connections on net.Socket (src/ftp/control.ts).
    servers.push({ name: 'ftpdlib, net.Socket', cmd, env: { FTPDLIB_IMPL: built, MALLOC_ARENA_MAX: '2', FTPDLIB_NO_BARE_CONTROL: '1' } });
  }
  if (spawnSync('/usr/bin/python3', ['-c', 'import pyftpdlib']).status === 0) {
    servers.push({ name: 'pyftpdlib', cmd: ['/usr/bin/python3', path.join(root, 'bench', 'servers', 'pyftpdlib_server.py'), '--port', '0', '--root', dir] });
  }
  const results = Object.fromEntries(servers.map((s) => [s.name, []]));
  const ticks = (pid) => {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  };
  const hz = 100;
  const logins = (port, secs) => JSON.parse(spawnSync(ftpbench, ['logins', '--port', String(port), '--clients', String(clients), '--seconds', String(secs)], { encoding: 'utf8' }).stdout);
  const run = (s) =>
    new Promise((resolve, reject) => {
      const ch = spawn(s.cmd[0], s.cmd.slice(1), { env: { ...process.env, ...(s.env || {}) }, stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      ch.stdout.on('data', (d) => {
        out += d;
        const m = /"port":\s*(\d+)/.exec(out);
        if (!m || s.started) return;
        s.started = true;
        logins(m[1], 2);
        const t0 = ticks(ch.pid);
        const r = logins(m[1], seconds);
        const ms = ((ticks(ch.pid) - t0) * 1000) / hz / r.logins;
        ch.kill();
        resolve({ perSecond: r.logins_per_s, ms });
      });
      ch.on('error', reject);
    });
  (async () => {
    for (let p = 0; p < pairs; p++) {
      for (const s of p % 2 ? [...servers].reverse() : servers) {
        s.started = false;
        const r = await run(s);
        results[s.name].push(r);
        console.log(`${s.name.padEnd(20)} ${Math.round(r.perSecond)} logins/s, ${r.ms.toFixed(3)} ms of server CPU per login`);
      }
    }
    const med = (a) => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)];
    console.log('\nmedians:');
    for (const s of servers) console.log(`${s.name.padEnd(20)} ${Math.round(med(results[s.name].map((r) => r.perSecond)))} logins/s, ${med(results[s.name].map((r) => r.ms)).toFixed(3)} ms per login`);
    fs.rmSync(dir, { recursive: true, force: true });
  })();
}
