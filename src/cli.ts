// The daemon: argv, signals, exit codes. It builds the same FtpServer an embedder builds.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import bunyan from 'bunyan';
import { FtpServer } from './ftp/server';
import { VirtualAuthorizer } from './auth/virtual';
import { hashPassword } from './auth/password';
import { ConfigError } from './config/errors';

/** The package root: the nearest folder above this file whose package.json is ftpdlib's (src/ and dist/src/ alike). */
const ROOT: string = (() => {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      if (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === 'ftpdlib') return dir;
    } catch {
      // not here
    }
    if (path.dirname(dir) === dir) return process.cwd();
  }
})();

const VERSION: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;

const HELP = `Usage: ftpdlib [options]
       ftpdlib --demo
       ftpdlib hash-password            (reads a password on stdin, prints its scrypt hash)
       ftpdlib make-cert DIR            (writes a self-signed cert.pem and key.pem for a first FTPS start)

Serve a folder over FTP (pyftpdlib's command line, with the same flags).

  -i, --interface ADDR   address to listen on (default: all, IPv6 and IPv4)
  -p, --port PORT        port (default 2121)
  -w, --write            grant write access to the user (default: read-only)
  -d, --directory DIR    folder to serve (default: the current folder)
  -n, --nat-address ADDR the public address to announce in PASV replies (behind NAT)
  -r, --range FROM-TO    passive ports, e.g. 60000-65535
  -u, --username NAME    log in as NAME (default: anonymous login)
  -P, --password PASS    the user's password (needs --username)
  -D, --debug            log every command (bunyan JSON on stdout at debug level)
  -V, --verbose          log sessions, commands and transfers (info level)
      --demo             serve ./demo-root on 127.0.0.1:2121 as user demo, password demo, read-write
      --no-sendfile      move data over streams only (no zero-copy engine)
      --tls-cert FILE    PEM certificate: enables FTPS (AUTH TLS); needs --tls-key
      --tls-key FILE     PEM private key
      --tls-required     refuse logins and transfers without TLS
      --implicit-port N  also serve implicit FTPS on port N
  -v, --version          print the version
  -h, --help             this help

Exit codes: 0 stopped by a signal, 1 bad options, 2 cannot listen (port in use, no permission), 3 bad folder.`;

function fail(code: number, msg: string): never {
  process.stderr.write(`ftpdlib: ${msg}\n`);
  process.exit(code);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** A self-signed certificate for a first FTPS start, made with the system's openssl. */
export function makeCert(dir: string): { certFile: string; keyFile: string } {
  fs.mkdirSync(dir, { recursive: true });
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '825',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1', '-keyout', keyFile, '-out', certFile],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  if (r.error || r.status !== 0) throw new Error(`openssl failed: ${r.error?.message ?? r.stderr.toString().trim()}`);
  fs.chmodSync(keyFile, 0o600);
  return { certFile, keyFile };
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'make-cert') {
    if (!argv[1]) fail(1, 'make-cert needs a folder');
    try {
      const { certFile, keyFile } = makeCert(path.resolve(argv[1]));
      process.stdout.write(`wrote ${certFile} and ${keyFile}\n`);
    } catch (err) {
      fail(1, (err as Error).message);
    }
    return;
  }
  if (argv[0] === 'hash-password') {
    const pw = await readStdin();
    if (!pw) fail(1, 'no password on standard input');
    process.stdout.write(`${await hashPassword(pw)}\n`);
    return;
  }
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        interface: { type: 'string', short: 'i' },
        port: { type: 'string', short: 'p' },
        write: { type: 'boolean', short: 'w' },
        directory: { type: 'string', short: 'd' },
        'nat-address': { type: 'string', short: 'n' },
        range: { type: 'string', short: 'r' },
        username: { type: 'string', short: 'u' },
        password: { type: 'string', short: 'P' },
        debug: { type: 'boolean', short: 'D' },
        verbose: { type: 'boolean', short: 'V' },
        demo: { type: 'boolean' },
        'no-sendfile': { type: 'boolean' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-required': { type: 'boolean' },
        'implicit-port': { type: 'string' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    fail(1, `${(err as Error).message}\n\n${HELP}`);
  }
  if (args.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (args.version) {
    process.stdout.write(`ftpdlib ${VERSION}\n`);
    return;
  }

  const demo = args.demo === true;
  const dir = path.resolve(args.directory ?? (demo ? path.join(ROOT, 'demo-root') : '.'));
  if (demo && !fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'README.txt'), 'Welcome to ftpdlib. Upload, download, rename and delete files here.\n');
  }
  try {
    if (!fs.statSync(dir).isDirectory()) fail(3, `${dir} is not a folder`);
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
  } catch (err) {
    fail(3, `cannot serve ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const port = args.port !== undefined ? Number(args.port) : 2121;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(1, `--port: expected 0-65535, got ${args.port}`);
  let passivePorts: [number, number] | undefined;
  if (args.range) {
    const m = /^(\d+)-(\d+)$/.exec(args.range);
    if (!m) fail(1, `--range: expected FROM-TO, got ${args.range}`);
    passivePorts = [Number(m[1]), Number(m[2])];
  }
  const auth = new VirtualAuthorizer();
  const perm = args.write || demo ? 'elradfmwMT' : 'elr';
  let user = args.username;
  let password = args.password;
  if (demo) {
    user = 'demo';
    password = 'demo';
  }
  if (password !== undefined && user === undefined) fail(1, '--password needs --username');
  if (user !== undefined) {
    if (password === undefined) fail(1, '--username needs --password');
    auth.addUser(user, password, dir, { perm });
  } else {
    auth.addAnonymous(dir, { perm });
  }
  let tlsFiles: { certFile: string; keyFile: string } | undefined;
  if (args['tls-cert'] || args['tls-key']) {
    if (!args['tls-cert'] || !args['tls-key']) fail(1, '--tls-cert and --tls-key go together');
    tlsFiles = { certFile: path.resolve(args['tls-cert']), keyFile: path.resolve(args['tls-key']) };
  } else if (demo) {
    // The demo offers explicit FTPS with a self-signed certificate when openssl is there.
    const dirTls = path.join(path.dirname(dir), '.demo-tls');
    try {
      tlsFiles = fs.existsSync(path.join(dirTls, 'cert.pem'))
        ? { certFile: path.join(dirTls, 'cert.pem'), keyFile: path.join(dirTls, 'key.pem') }
        : makeCert(dirTls);
    } catch {
      tlsFiles = undefined;
    }
  }
  if ((args['tls-required'] || args['implicit-port']) && !tlsFiles) fail(1, '--tls-required and --implicit-port need --tls-cert and --tls-key');
  const implicitPort = args['implicit-port'] !== undefined ? Number(args['implicit-port']) : undefined;
  const level = args.debug ? 'debug' : args.verbose ? 'info' : 'warn';
  const logger = bunyan.createLogger({ name: 'ftpdlib', level, serializers: bunyan.stdSerializers });
  let server: FtpServer;
  try {
    server = new FtpServer({
      host: args.interface ?? (demo ? '127.0.0.1' : '::'),
      port,
      authorizer: auth,
      passivePorts,
      masqueradeAddress: args['nat-address'],
      useSendfile: !args['no-sendfile'],
      tls: tlsFiles,
      tlsControlRequired: args['tls-required'] === true,
      tlsDataRequired: args['tls-required'] === true,
      implicitTlsPort: implicitPort,
      logger,
    });
  } catch (err) {
    if (err instanceof ConfigError) fail(1, err.message);
    throw err;
  }
  try {
    const addr = await server.listen();
    const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
    const who = user === undefined ? 'anonymous (any password)' : `user ${user}, password ${demo ? password : '(as given)'}`;
    process.stderr.write(
      `ftpdlib ${VERSION} serving ${dir} on ftp://${host}:${addr.port}/ (${perm.length > 3 ? 'read-write' : 'read-only'})\n` +
        `log in as ${who}` +
        (tlsFiles ? `\nFTPS: explicit (AUTH TLS) with ${tlsFiles.certFile}` : '') +
        (server.implicitAddress() ? `; implicit on port ${server.implicitAddress()!.port}` : '') +
        (demo ? `\ntry: curl ftp://demo:demo@127.0.0.1:${addr.port}/` : '') +
        (demo && tlsFiles ? `\n     curl --ssl-reqd -k ftp://demo:demo@127.0.0.1:${addr.port}/` : '') +
        '\n',
    );
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') fail(2, `port ${port} is already in use`);
    if (e.code === 'EACCES') fail(2, `no permission to listen on port ${port} (ports below 1024 need root or CAP_NET_BIND_SERVICE)`);
    if (e.code === 'EADDRNOTAVAIL') fail(2, `address ${args.interface} is not on this machine`);
    throw err;
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) process.exit(0);
    stopping = true;
    logger.info({ signal: sig }, 'stopping');
    server.close().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
