'use strict';
// The floor: the least a Node.js server must do to serve `ftpbench many` (plain FTP, loopback).
//   node src/native/bench/many-floor.js --root DIR [--engine run|direct|stream]   (after npm run build)
// Prints {"port": N} once listening. SIGUSR2 (or "eld" on stdin): prints {"eld": {...}} and
// toggles perf_hooks.monitorEventLoopDelay (resolution 1 ms, minus 1 ms), exactly as
// bench/servers/ftpdlib.ts does (same module: bench/gc-window.js's phaseReporter).
//
// Per session: the control connection served bare (libuv handle, --control bare, default) or as a
// net.Socket (--control socket), TCP_NODELAY on; one passive listener made at the
// first EPSV and kept for the session (as ftpdlib keeps its listener); data connections taken
// bare from the listener (libuv's TCP handle, no net.Socket: ftpdlib's acceptBare).
// Per file (engine run|direct): EPSV -> 229 (one write); RETR -> openSync, 150 (one write),
// engine job (sendfile on an I/O thread, TCP_CORK, FIN); on its callback: closeSync(file),
// handle.close() (data socket), 226 (one write).
// --engine stream: fs.createReadStream piped into a net.Socket made on the data handle
// (a second, heavier floor, without the native addon).
const net = require('net');
const fs = require('fs');
const path = require('path');

const REPO = path.join(__dirname, '..', '..', '..');

const arg = (n, d) => {
  const i = process.argv.indexOf(n);
  return i >= 0 ? process.argv[i + 1] : d;
};
const ROOT = path.resolve(arg('--root', '.'));
const ENGINE = arg('--engine', 'run');

const { phaseReporter } = require(path.join(REPO, 'bench', 'gc-window.js'));
const phase = phaseReporter();
const report = () => process.stdout.write(JSON.stringify(phase()) + '\n');
process.on('SIGUSR2', report);
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  if (d.includes('eld')) report();
});
process.stdin.on('error', () => {});

let native = null;
let addon = null;
if (ENGINE !== 'stream') {
  // the project's built engine, with its defaults (sendfile, 16 MiB count, cork, ioNice 10, soloThread)
  native = require(path.join(REPO, 'dist', 'src', 'native', 'index.js'));
  if (!native.nativeEngine) throw new Error('native engine not available: ' + native.reason);
  if (ENGINE === 'direct') addon = require(path.join(REPO, 'src', 'native', 'build', 'Release', 'ftpdlib_native.node'));
}
const SIGNAL = { aborted: false, reason: undefined, addEventListener() {}, removeEventListener() {} };

class Session {
  constructor(ctl) {
    this.ctl = ctl; // write(text), end(text)
    this.buf = '';
    this.pasv = null; // kept listener
    this.port = 0;
    this.conn = null; // accepted bare TCP handle waiting for RETR
    this.fileFd = -1; // RETR waiting for its connection
    ctl.write('220 floor\r\n');
  }

  onData(d) {
    this.buf += d;
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i).trim();
      this.buf = this.buf.slice(i + 1);
      this.command(line);
    }
  }

  command(line) {
    const sp = line.indexOf(' ');
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    switch (verb) {
      case 'USER':
        return this.ctl.write('331 ok\r\n');
      case 'PASS':
        return this.ctl.write('230 ok\r\n');
      case 'TYPE':
        return this.ctl.write('200 ok\r\n');
      case 'EPSV':
        return this.epsv();
      case 'RETR':
        return this.retr(line.slice(sp + 1));
      case 'QUIT':
        this.ctl.end('221 bye\r\n');
        return;
      default:
        return this.ctl.write('502 no\r\n');
    }
  }

  epsv() {
    if (this.pasv) {
      this.ctl.write(`229 ok (|||${this.port}|)\r\n`);
      return;
    }
    const srv = net.createServer({ pauseOnConnect: true });
    this.pasv = srv;
    srv.on('error', () => {});
    srv.listen(0, '127.0.0.1', () => {
      this.port = srv.address().port;
      // take connections bare (src/ftp/data/connection.ts takeAccepted): no net.Socket
      srv._handle.onconnection = (status, handle) => {
        if (status < 0 || !handle) return;
        if (this.conn) this.conn.close();
        this.conn = handle;
        if (this.fileFd >= 0) this.send();
      };
      this.ctl.write(`229 ok (|||${this.port}|)\r\n`);
    });
  }

  retr(name) {
    let fd;
    try {
      fd = fs.openSync(path.join(ROOT, name), 'r');
    } catch {
      this.ctl.write('550 no\r\n');
      return;
    }
    this.fileFd = fd;
    this.ctl.write('150 ok\r\n');
    if (this.conn) this.send();
  }

  send() {
    const h = this.conn;
    const fd = this.fileFd;
    this.conn = null;
    this.fileFd = -1;
    const done = () => {
      fs.closeSync(fd);
      h.close();
      this.ctl.write('226 ok\r\n');
    };
    if (ENGINE === 'run') {
      native.nativeEngine
        .run({ direction: 'send', socket: null, fd: h.fd, tls: false, handle: { fd, offset: 0 }, ascii: false, signal: SIGNAL, finish: true })
        .then(done, done);
    } else if (ENGINE === 'direct') {
      // the addon's start() as src/native/index.ts calls it for a plain RETR with the defaults
      addon.start(h.fd, fd, 0, 0, 0, 16 << 20, 256 << 10, 0, 0, 0, false, (kind) => {
        if (kind !== 0) done();
      }, true, true);
    } else {
      const s = new net.Socket({ handle: h, pauseOnCreate: true, readable: true, writable: true, allowHalfOpen: false });
      s.on('error', () => {});
      const rs = fs.createReadStream(null, { fd, autoClose: true, highWaterMark: 1 << 20 });
      rs.pipe(s);
      s.on('finish', () => {
        s.destroy();
        this.ctl.write('226 ok\r\n');
      });
    }
  }

  closeAll() {
    if (this.conn) this.conn.close();
    if (this.fileFd >= 0) fs.closeSync(this.fileFd);
    if (this.pasv) this.pasv.close();
  }
}

// Control connections: --control bare (default; libuv's TCP handle with Node's stream_wrap
// write requests, as ftpdlib's BareControl, src/ftp/control.ts) or --control socket (net.Socket).
// TCP_NODELAY on both (ftpdlib sets it; without it a 226 waits behind the 150's delayed ACK).
const CONTROL = arg('--control', 'bare');
const W = CONTROL === 'bare' ? process.binding('stream_wrap') : null;
const noop = () => {};
function bareControl(h) {
  let sess = null;
  const ctl = {
    write(text) {
      const req = new W.WriteWrap();
      req.handle = h;
      req.oncomplete = noop;
      h.writeLatin1String(req, text);
    },
    end(text) {
      ctl.write(text);
      const req = new W.ShutdownWrap();
      req.handle = h;
      req.oncomplete = () => {};
      h.shutdown(req);
    },
  };
  h.onread = (ab) => {
    const n = W.streamBaseState[W.kReadBytesOrError];
    if (n > 0) sess.onData(Buffer.from(ab, W.streamBaseState[W.kArrayBufferOffset], n).latin1Slice());
    else if (n < 0) {
      h.readStop();
      h.close();
      sess.closeAll();
    }
  };
  h.setNoDelay(true);
  sess = new Session(ctl);
  h.readStart();
}
function socketControl(sock) {
  sock.setNoDelay(true);
  sock.setEncoding('latin1');
  const sess = new Session({ write: (t) => sock.write(t), end: (t) => sock.end(t) });
  sock.on('data', (d) => sess.onData(d));
  sock.on('error', () => {});
  sock.on('close', () => sess.closeAll());
}
const server = net.createServer(socketControl);
server.listen(Number(arg('--port', '0')), '127.0.0.1', () => {
  if (W) {
    server._handle.onconnection = (status, h) => {
      if (status >= 0 && h) bareControl(h);
    };
  }
  process.stdout.write(JSON.stringify({ port: server.address().port, engine: ENGINE, control: CONTROL }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
