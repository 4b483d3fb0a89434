// The daemon: argv, config file, signals, exit codes. It builds the same FtpServer an embedder builds.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import bunyan from 'bunyan';
import type Logger from 'bunyan';
import type { FtpServer } from './ftp/server';
import { ConfigError } from './config/errors';
import { createDaemonLogger, type DaemonLogger } from './config/logging';
import {
  ConfigFileError,
  buildFromConfig,
  changedServerOptions,
  configuredHomes,
  engineConfig,
  explainServerError,
  formatEffectiveConfig,
  loadConfigFile,
  type BuildOptions,
  type BuiltConfig,
  type ConfiguredHome,
  type LoadedConfig,
  type LockoutConfig,
  type RunAsConfig,
} from './config/file';

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

/**
 * The server and the authorizers are loaded when a command needs them: --help, check-config of a
 * file with errors and hash-password stay quick (they matter most when run from source).
 */
function serverClass(): typeof FtpServer {
  return (require('./ftp/server') as typeof import('./ftp/server')).FtpServer;
}

/** The multi-process mode (server.workers). */
function clusterModule(): typeof import('./cluster') {
  return require('./cluster') as typeof import('./cluster');
}

/** The config --demo runs (the same file `npm start` names). */
export const DEMO_CONFIG = path.join(ROOT, 'conf', 'demo.yaml');

/** Exit codes, as --help documents them. */
export const EXIT = { ok: 0, config: 1, listen: 2, root: 3 } as const;

const HELP = `Usage: ftpdlib --config FILE [-i ADDR] [-p PORT] [-n ADDR] [-r FROM-TO] [-D | -V] [--no-sendfile] [--workers N]
       ftpdlib [options]                 (pyftpdlib's command line: serve one folder)
       ftpdlib --demo                    (the same as --config conf/demo.yaml)
       ftpdlib check-config FILE         (check a config file, print it as it will be used)
       ftpdlib hash-password             (reads a password on stdin, prints its scrypt hash)
       ftpdlib make-cert DIR             (writes a self-signed cert.pem and key.pem for a first FTPS start)

Serve files over FTP and FTPS.

With a config file:
  -c, --config FILE      the YAML config file: server options, users, lockout, logging
                         (every option, with its default: conf/ftpdlib.example.yaml).
                         -i, -p, -n, -r, -D, -V, --no-sendfile and --workers override its
                         values; the other flags below cannot be combined with it.
      --workers N        (--config) serve with N processes, or auto for one per core
                         (server.workers; default 1): a primary process listens, applies
                         maxConnections and maxConnectionsPerIp over all of them and hands
                         each connection to the least busy worker; a worker that dies is
                         replaced
      --demo             serve ./demo-root on 127.0.0.1:2121 as user demo, password demo,
                         read-write, with FTPS on a self-signed certificate when openssl works

  check-config FILE      check FILE (and its users file) and print the effective config as
                         YAML, defaults filled in and passwords masked; exit 0. On errors,
                         print each as FILE:LINE: key.path: what was expected, and exit 1.

Without a config file (pyftpdlib's flags):
  -i, --interface ADDR   address to listen on (default: all, IPv6 and IPv4)
  -p, --port PORT        port (default 2121)
  -w, --write            grant write access to the user (default: read-only)
  -d, --directory DIR    folder to serve (default: the current folder)
  -n, --nat-address ADDR the public address to announce in PASV replies (behind NAT)
  -r, --range FROM-TO    passive ports, e.g. 60000-65535
  -u, --username NAME    log in as NAME (default: anonymous login)
  -P, --password PASS    the user's password (needs --username)
  -D, --debug            log every command (bunyan JSON at debug level)
  -V, --verbose          log sessions, commands and transfers (info level)
      --no-sendfile      move data over streams only (no zero-copy engine)
      --tls-cert FILE    PEM certificate: enables FTPS (AUTH TLS); needs --tls-key
      --tls-key FILE     PEM private key
      --tls-required     refuse logins and transfers without TLS
      --implicit-port N  also serve implicit FTPS on port N
  -v, --version          print the version
  -h, --help             this help

Signals:
  SIGTERM, SIGINT        stop accepting, let transfers finish (server.closeGracePeriod), exit 0;
                         a second signal exits at once
  SIGHUP                 (--config) read the config file again: users (and usersFile) are
                         replaced, logging.level applies, certificates are reloaded; running
                         sessions keep going. A file with errors is refused (logged) and the
                         running config stays. Other server options need a restart.
  SIGUSR2                reopen logging.file (after log rotation moved it)
                         With workers, signals go to the primary: SIGHUP and SIGUSR2 are
                         passed on to every worker, SIGTERM lets every worker drain.

Privileges: with server.runAs { user, group } the daemon, started as root, listens (ports below
1024 included) and then runs as that user and group. With workers, the primary (which never
reads from a client) stays root and each worker runs as that user and group.

Exit codes: 0 stopped by a signal (or a command done), 1 bad config file or options,
2 cannot listen (port in use, no permission for a port below 1024, address not here),
3 a folder to serve is missing or unreadable.`;

function fail(code: number, msg: string): never {
  process.stderr.write(`ftpdlib: ${msg}\n`);
  process.exit(code);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** A self-signed certificate and key for a first FTPS start, made with the system's openssl. */
export function makeCertFiles(certFile: string, keyFile: string): void {
  fs.mkdirSync(path.dirname(certFile), { recursive: true });
  fs.mkdirSync(path.dirname(keyFile), { recursive: true });
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '825',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1', '-keyout', keyFile, '-out', certFile],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  if (r.error || r.status !== 0) throw new Error(`openssl failed: ${r.error?.message ?? r.stderr.toString().trim()}`);
  fs.chmodSync(keyFile, 0o600);
}

/** A self-signed cert.pem and key.pem in `dir`. */
export function makeCert(dir: string): { certFile: string; keyFile: string } {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  makeCertFiles(certFile, keyFile);
  return { certFile, keyFile };
}

type Args = ReturnType<typeof parse>;

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
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
      workers: { type: 'string' },
      version: { type: 'boolean', short: 'v' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }).values;
}

/**
 * Run by an npm script (`npm start`): stop as on SIGTERM when npm is gone. npm 11 exits on a
 * SIGTERM without passing it on, and the server, reparented, went on serving with nobody to stop
 * it. Checked once a second (the parent's pid changes when it exits).
 */
function stopWithNpm(stop: () => void): void {
  if (!process.env.npm_lifecycle_event) return;
  const parent = process.ppid;
  // Only when the parent is npm itself (the variable is inherited by anything an npm script starts).
  let cmdline = '';
  try {
    cmdline = fs.readFileSync(`/proc/${parent}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!/(^|[/\0])npm([\0 ]|-cli\.js|$)/.test(cmdline)) return;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    stop();
  }, 1000);
  timer.unref();
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'make-cert') {
    if (!argv[1]) fail(EXIT.config, 'make-cert needs a folder');
    try {
      const { certFile, keyFile } = makeCert(path.resolve(argv[1]));
      process.stdout.write(`wrote ${certFile} and ${keyFile}\n`);
    } catch (err) {
      fail(EXIT.config, (err as Error).message);
    }
    return;
  }
  if (argv[0] === 'hash-password') {
    const pw = await readStdin();
    if (!pw) fail(EXIT.config, 'no password on standard input');
    const { hashPassword } = require('./auth/password') as typeof import('./auth/password');
    process.stdout.write(`${await hashPassword(pw)}\n`);
    return;
  }
  if (argv[0] === 'check-config') {
    if (!argv[1] || argv.length > 2) fail(EXIT.config, 'usage: ftpdlib check-config FILE');
    checkConfig(argv[1]);
    return;
  }
  let args: Args;
  try {
    args = parse(argv);
  } catch (err) {
    fail(EXIT.config, `${(err as Error).message}\n\n${HELP}`);
  }
  if (args.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (args.version) {
    process.stdout.write(`ftpdlib ${VERSION}\n`);
    return;
  }
  if (args.config !== undefined || args.demo) {
    if (args.config !== undefined && args.demo) fail(EXIT.config, '--demo and --config cannot be combined (--demo is --config conf/demo.yaml)');
    const refused = (['write', 'directory', 'username', 'password', 'tls-cert', 'tls-key', 'tls-required', 'implicit-port'] as const).filter(
      (k) => args[k] !== undefined,
    );
    if (refused.length) {
      fail(EXIT.config, `${refused.map((k) => `--${k}`).join(', ')}: set in the config file instead (flags that combine with --config: -i, -p, -n, -r, -D, -V, --no-sendfile, --workers)`);
    }
    await runWithConfig(args.config ?? DEMO_CONFIG, args);
    return;
  }
  if (args.workers !== undefined) fail(EXIT.config, '--workers needs --config (or set server.workers in the config file)');
  await runWithFlags(args);
}

// ---------------------------------------------------------------------------------------------
// check-config

function quietLogger(): Logger {
  return bunyan.createLogger({ name: 'ftpdlib', streams: [] });
}

function checkConfig(file: string): void {
  let cfg: LoadedConfig;
  try {
    cfg = loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigFileError) fail(EXIT.config, `${file} has errors:\n${err.message}`);
    throw err;
  }
  let built: BuiltConfig;
  try {
    built = buildFromConfig(cfg, { logger: quietLogger(), watch: false });
  } catch (err) {
    if (err instanceof ConfigFileError) fail(EXIT.config, `${file} has errors:\n${err.message}`);
    throw err;
  }
  const tls = cfg.server.tls;
  const selfSigned = cfg.demo?.selfSignedCert && tls && !(fs.existsSync(tls.certFile) && fs.existsSync(tls.keyFile));
  if (selfSigned) process.stderr.write(`ftpdlib: note: ${tls.certFile} will be made at start (demo.selfSignedCert)\n`);
  try {
    // The constructor reads the certificate files: a missing key is found here, not at start.
    if (tls && !selfSigned) new (serverClass())(built.options);
  } catch (err) {
    const e = explainServerError(cfg, err);
    void built.close();
    if (e instanceof ConfigFileError) fail(EXIT.config, `${file} has errors:\n${e.message}`);
    throw err;
  }
  void built.close();
  for (const problem of homeProblems(configuredHomes(cfg))) {
    process.stderr.write(`ftpdlib: warning: ${problem} (the daemon would exit with 3 unless demo.createHomes)\n`);
  }
  process.stdout.write(formatEffectiveConfig(cfg));
  process.exitCode = EXIT.ok;
}

// ---------------------------------------------------------------------------------------------
// The daemon with a config file

/** Flags that override the file, applied to every load (the first and each SIGHUP). */
function applyFlags(cfg: LoadedConfig, args: Args): void {
  if (args.port !== undefined) cfg.server.port = Number(args.port);
  if (args.interface !== undefined) cfg.server.host = args.interface;
  if (args['nat-address'] !== undefined) cfg.server.masqueradeAddress = args['nat-address'];
  if (args.range !== undefined) {
    const m = /^(\d+)-(\d+)$/.exec(args.range)!;
    cfg.server.passivePorts = [Number(m[1]), Number(m[2])];
  }
  if (args['no-sendfile']) cfg.server.useSendfile = false;
  if (args.workers !== undefined) cfg.workers = args.workers === 'auto' ? 'auto' : Number(args.workers);
  if (args.debug) cfg.logging.level = 'debug';
  else if (args.verbose) cfg.logging.level = 'info';
}

/** The flag that set a server option, to name in errors instead of the file's line. */
function flagFor(key: string, args: Args): string | undefined {
  const flags: Record<string, [keyof Args, string]> = {
    port: ['port', '--port'],
    host: ['interface', '--interface'],
    masqueradeAddress: ['nat-address', '--nat-address'],
    passivePorts: ['range', '--range'],
  };
  const top = /^[^.[ ]+/.exec(key)?.[0] ?? key;
  const f = flags[top];
  return f && args[f[0]] !== undefined ? f[1] : undefined;
}

function checkFlags(args: Args): void {
  if (args.port !== undefined) {
    const port = Number(args.port);
    if (!/^\d+$/.test(args.port) || port > 65535) fail(EXIT.config, `--port: expected 0-65535, got ${args.port}`);
  }
  if (args.range !== undefined && !/^(\d+)-(\d+)$/.test(args.range)) fail(EXIT.config, `--range: expected FROM-TO, got ${args.range}`);
  if (args.workers !== undefined && args.workers !== 'auto' && !(/^\d+$/.test(args.workers) && Number(args.workers) >= 1 && Number(args.workers) <= 1024)) {
    fail(EXIT.config, `--workers: expected an integer from 1 to 1024, or auto, got ${args.workers}`);
  }
}

function loadOrExit(file: string): LoadedConfig {
  try {
    return loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigFileError) fail(EXIT.config, `${file} has errors:\n${err.message}`);
    throw err;
  }
}

/** Missing or unreadable homes, as messages naming the user and the config line. */
function homeProblems(homes: ConfiguredHome[]): string[] {
  const out: string[] = [];
  for (const h of homes) {
    try {
      if (!fs.statSync(h.home).isDirectory()) {
        out.push(`cannot serve ${h.home} (user ${h.user}, ${h.where}): not a folder`);
        continue;
      }
      fs.accessSync(h.home, fs.constants.R_OK | fs.constants.X_OK);
    } catch (err) {
      out.push(`cannot serve ${h.home} (user ${h.user}, ${h.where}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return out;
}

/** demo.createHomes: make missing homes, with demo.readme as README.txt. */
function createHomes(cfg: LoadedConfig): void {
  if (!cfg.demo?.createHomes) return;
  for (const h of configuredHomes(cfg)) {
    if (fs.existsSync(h.home)) continue;
    fs.mkdirSync(h.home, { recursive: true });
    if (cfg.demo.readme) fs.writeFileSync(path.join(h.home, 'README.txt'), cfg.demo.readme);
  }
}

/** demo.selfSignedCert: make server.tls's files when missing; without openssl, no FTPS. */
function prepareSelfSigned(cfg: LoadedConfig): void {
  const tls = cfg.server.tls;
  if (!cfg.demo?.selfSignedCert || !tls) return;
  if (fs.existsSync(tls.certFile) && fs.existsSync(tls.keyFile)) return;
  try {
    makeCertFiles(tls.certFile, tls.keyFile);
  } catch {
    delete cfg.server.tls;
    delete cfg.server.implicitTlsPort;
    cfg.server.tlsControlRequired = false;
    cfg.server.tlsDataRequired = false;
  }
}

/** Give up root for runAs, after the listeners are bound. Throws when that is not possible. */
function dropPrivileges(runAs: RunAsConfig): void {
  if (typeof process.getuid !== 'function' || typeof process.setuid !== 'function') throw new Error('server.runAs: not supported on this platform');
  if (process.getuid() !== 0) {
    if (os.userInfo().username === runAs.user) return;
    throw new Error(`server.runAs: switching to user ${runAs.user} needs the daemon to start as root (it runs as uid ${process.getuid()})`);
  }
  try {
    // Drop root's supplementary groups too, or the process keeps them after setuid.
    (process as unknown as { initgroups(user: string, group: string): void }).initgroups(runAs.user, runAs.group);
    process.setgid!(runAs.group);
    process.setuid(runAs.user);
  } catch (err) {
    throw new Error(`server.runAs: cannot switch to user ${runAs.user}, group ${runAs.group}: ${(err as Error).message}`);
  }
  if (process.getuid() === 0 || process.geteuid!() === 0) throw new Error('server.runAs: still root after setuid');
}

/**
 * What SIGHUP and SIGUSR2 will need after `runAs` dropped root, checked as the user the daemon now
 * runs as: reading the config file, its usersFile or htpasswd file, the TLS files and the postgres
 * TLS files (refused at start when unreadable: a reload would fail and leave removed users and old
 * passwords valid, and renewed certificates unloaded), and writing the log file (a warning:
 * SIGUSR2 could not reopen it after a rotation).
 */
export function runAsReloadProblems(file: string, cfg: LoadedConfig): { refuse: string[]; warn: string[] } {
  const refuse: string[] = [];
  const warn: string[] = [];
  const readable = (key: string, p: string | undefined): void => {
    if (p === undefined) return;
    try {
      fs.accessSync(p, fs.constants.R_OK);
    } catch (err) {
      refuse.push(`${key} (${p}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  readable('the config file', file);
  const a = cfg.authorizer as { type: string; usersFile?: string; file?: string; ssl?: unknown };
  if (a.type === 'virtual') readable('authorizer.usersFile', a.usersFile);
  if (a.type === 'htpasswd') readable('authorizer.file', a.file);
  if (a.type === 'postgres' && a.ssl && typeof a.ssl === 'object') {
    const ssl = a.ssl as { caFile?: string; certFile?: string; keyFile?: string };
    readable('authorizer.ssl.caFile', ssl.caFile);
    readable('authorizer.ssl.certFile', ssl.certFile);
    readable('authorizer.ssl.keyFile', ssl.keyFile);
  }
  const tls = cfg.server.tls;
  if (tls) {
    readable('server.tls.certFile', tls.certFile);
    readable('server.tls.keyFile', tls.keyFile);
    readable('server.tls.caFile', tls.caFile);
  }
  if (cfg.logging.file) {
    try {
      fs.accessSync(cfg.logging.file, fs.constants.W_OK);
    } catch (err) {
      warn.push(`logging.file (${cfg.logging.file}): ${(err as NodeJS.ErrnoException).code}; SIGUSR2 cannot reopen it after a rotation`);
    }
  }
  return { refuse, warn };
}

function urlHost(address: string): string {
  if (address === '::' || address === '0.0.0.0' || address === '') return '127.0.0.1';
  return address.includes(':') ? `[${address}]` : address;
}

function listenError(err: unknown, port: number, host: string | undefined): never {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  // The error of the listener that failed: the control port's, or server.metrics.port's.
  if (typeof e.port === 'number') port = e.port;
  if (typeof e.address === 'string') host = e.address;
  if (e.code === 'EADDRINUSE') fail(EXIT.listen, `port ${port} is already in use`);
  if (e.code === 'EACCES') fail(EXIT.listen, `no permission to listen on port ${port} (ports below 1024 need root or CAP_NET_BIND_SERVICE)`);
  if (e.code === 'EADDRNOTAVAIL') fail(EXIT.listen, `address ${host} is not on this machine`);
  throw err;
}

/** The config's authorizer, logger and FtpServer; a problem exits 1 naming the file's line (or the flag). */
function buildOrExit(file: string, cfg: LoadedConfig, args: Args, opts: BuildOptions = {}): { built: BuiltConfig; server: FtpServer } {
  let built: BuiltConfig;
  try {
    built = buildFromConfig(cfg, opts);
  } catch (err) {
    if (err instanceof ConfigFileError) fail(EXIT.config, `${file} has errors:\n${err.message}`);
    const e = err as NodeJS.ErrnoException;
    if (e.syscall === 'open' && cfg.logging.file) fail(EXIT.config, `logging.file: cannot open ${cfg.logging.file}: ${e.code}`);
    throw err;
  }
  try {
    return { built, server: new (serverClass())(built.options) };
  } catch (err) {
    if (err instanceof ConfigError && flagFor(err.key, args)) fail(EXIT.config, `${flagFor(err.key, args)}: ${err.message.slice(err.key.length + 2)}`);
    const e = explainServerError(cfg, err);
    if (e instanceof ConfigFileError) fail(EXIT.config, `${file} has errors:\n${e.message}`);
    throw err;
  }
}

function lockoutSizing(l: LockoutConfig): { maxEntries: number; keepMs: number } {
  return { maxEntries: l.maxEntries, keepMs: Math.max(l.window, l.banSeconds) * 1000 };
}

/**
 * server.engine, before this process's first transfer starts an I/O thread: the priority and
 * count of the zero-copy engine's I/O threads (process-wide, so the daemon's and not a server's).
 */
function applyEngine(cfg: LoadedConfig): void {
  const e = engineConfig(cfg);
  const native = require('./native') as typeof import('./native');
  native.configureNative({ ioNice: e.ioNice, soloThread: e.soloThread, ...(e.ioThreads === 'auto' ? {} : { threads: e.ioThreads }) });
}

/** server.workers as a number of processes (auto: one per core). */
function workerCount(cfg: LoadedConfig): number {
  return cfg.workers === 'auto' ? os.availableParallelism() : (cfg.workers ?? 1);
}

async function runWithConfig(file: string, args: Args): Promise<void> {
  checkFlags(args);
  let cfg = loadOrExit(file);
  applyFlags(cfg, args);
  // A worker runs this same command line, from here on without listening: the primary hands it connections.
  const worker = clusterModule().isClusterWorker();
  if (!worker && workerCount(cfg) > 1) return runPrimary(file, cfg, args);
  applyEngine(cfg);
  prepareSelfSigned(cfg);
  // A worker's lockout counts live in the primary: one count and one ban over all workers.
  const lockoutStore = worker && cfg.lockout ? new (clusterModule().IpcLockoutStore)(lockoutSizing(cfg.lockout)) : undefined;
  const { built, server } = buildOrExit(file, cfg, args, lockoutStore ? { lockoutStore } : {});
  const { logger } = built;
  let addr: { address: string; port: number } | undefined;
  if (!worker) {
    try {
      addr = await server.listen();
    } catch (err) {
      listenError(err, cfg.server.port ?? 21, cfg.server.host);
    }
  }
  const exitAfterClose = async (code: number, msg: string): Promise<never> => {
    process.stderr.write(`ftpdlib: ${msg}\n`);
    await server.close().catch(() => undefined);
    await built.close();
    process.exit(code);
  };
  if (cfg.runAs) {
    try {
      dropPrivileges(cfg.runAs);
    } catch (err) {
      await exitAfterClose(EXIT.config, (err as Error).message);
    }
    logger.info({ uid: process.getuid!(), gid: process.getgid!(), user: cfg.runAs.user, group: cfg.runAs.group }, 'privileges dropped');
    const after = runAsReloadProblems(file, cfg);
    for (const w of after.warn) logger.warn(`server.runAs: user ${cfg.runAs.user} cannot write ${w}`);
    if (after.refuse.length) {
      await exitAfterClose(
        EXIT.config,
        `server.runAs: user ${cfg.runAs.user} cannot read what SIGHUP rereads, so a reload would keep removed users and old passwords valid:\n  ${after.refuse.join('\n  ')}\n(make them readable by ${cfg.runAs.user} or group ${cfg.runAs.group}, e.g. chgrp ${cfg.runAs.group} + chmod 640)`,
      );
    }
  }
  // Homes are checked as the user the daemon now runs as: what it can read is what it can serve.
  try {
    createHomes(cfg);
  } catch (err) {
    await exitAfterClose(EXIT.root, `demo.createHomes: ${(err as Error).message}`);
  }
  const problems = homeProblems(configuredHomes(cfg));
  if (problems.length) await exitAfterClose(EXIT.root, problems.join('\nftpdlib: '));

  // Handlers first: the banner tells whoever started the daemon that signals are understood.
  const stop = installSignals(server, built, () => cfg, (next) => (cfg = next), args);
  if (worker) {
    const native = (require('./ftp/data/engines') as typeof import('./ftp/data/engines')).nativeStatus();
    logger.info({ engine: server.options.useSendfile && native.available ? 'native' : 'stream', nativeReason: native.reason }, 'worker serving');
    clusterModule().serveForPrimary(server, stop);
    return;
  }
  printBanner(cfg, server, addr!.address, addr!.port);
}

/**
 * server.workers > 1: this process (the primary) listens and hands each connection to a worker
 * (cluster.ts). Each worker runs this same command line and serves them (runWithConfig above).
 */
async function runPrimary(file: string, cfg: LoadedConfig, args: Args): Promise<void> {
  const workers = workerCount(cfg);
  prepareSelfSigned(cfg);
  let log: DaemonLogger;
  try {
    log = createDaemonLogger(cfg.logging);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    fail(EXIT.config, `logging.file: cannot open ${cfg.logging.file}: ${e.code ?? e.message}`);
  }
  const { logger } = log;
  // What each worker will build (options, authorizer, certificates) is checked here first: a
  // mistake is reported once, with its line, before anything listens.
  const { built, server } = buildOrExit(file, cfg, args, { logger, watch: false });
  await built.close();
  const o = server.options;
  const { ClusterPrimary, WorkerStartError, sharedLockoutStore } = clusterModule();
  const primary = new ClusterPrimary({
    lockoutStore: cfg.lockout ? sharedLockoutStore(lockoutSizing(cfg.lockout)) : undefined,
    workers,
    host: o.host,
    port: o.port,
    implicitTlsPort: o.implicitTlsPort,
    maxConnections: o.maxConnections,
    maxConnectionsPerIp: o.maxConnectionsPerIp,
    tcpNoDelay: o.tcpNoDelay,
    log: logger,
    // The workers do not listen for metrics: the primary serves all of theirs, summed.
    metrics: o.metrics,
    // The primary reads the PROXY header: maxConnectionsPerIp counts the clients, not the proxy.
    proxy:
      o.proxyProtocol === false ? null : { mode: o.proxyProtocol, trustedProxies: [...o.trustedProxies], timeoutMs: o.proxyProtocolTimeout * 1000 },
    configProblem: () => {
      try {
        loadConfigFile(cfg.file);
        return null;
      } catch (err) {
        return err instanceof ConfigFileError ? err.message : (err as Error).message;
      }
    },
  });
  let addrs: Awaited<ReturnType<typeof primary.listen>>;
  try {
    addrs = await primary.listen();
  } catch (err) {
    listenError(err, cfg.server.port ?? 21, cfg.server.host);
  }
  // With runAs the primary keeps root: it never reads from a client, and a replacement worker
  // must be able to read what the first ones read as root (the key file) before switching user.
  if (cfg.runAs) logger.info({ user: cfg.runAs.user, group: cfg.runAs.group }, 'the primary keeps its user; each worker switches');

  const exit = (code: number): never => {
    log.close();
    process.exit(code);
  };
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) {
      primary.kill();
      exit(EXIT.ok);
    }
    stopping = true;
    logger.info({ signal: sig, workers: primary.workerPids }, 'stopping: letting transfers finish');
    void primary.stop(sig).then(() => {
      logger.info('all workers stopped');
      exit(EXIT.ok);
    });
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  stopWithNpm(() => onSignal('SIGTERM'));
  process.on('SIGHUP', () => {
    // Each worker reloads and logs how that went; the primary only takes logging.level for its own records.
    try {
      const next = loadConfigFile(cfg.file);
      applyFlags(next, args);
      logger.level(next.logging.level);
    } catch {
      // the workers report the file's errors
    }
    logger.info({ workers: primary.workerPids }, 'SIGHUP: passed on to the workers');
    primary.forward('SIGHUP');
    primary.retryReplacements();
  });
  process.on('SIGUSR2', () => {
    if (log.file) {
      try {
        log.reopen();
        logger.info({ file: log.file.path }, 'log file reopened');
      } catch (err) {
        logger.error({ err }, 'cannot reopen the log file; still writing to the old one');
      }
    }
    primary.forward('SIGUSR2');
  });

  try {
    await primary.start();
  } catch (err) {
    // The worker has said why on stderr (a home that cannot be served, runAs, ...): exit with its code.
    await primary.stop();
    process.stderr.write(`ftpdlib: ${(err as Error).message}; stopped\n`);
    exit(err instanceof WorkerStartError && err.exitCode ? err.exitCode : EXIT.config);
  }
  if (stopping) return;
  printBanner(cfg, server, addrs.control.address, addrs.control.port, {
    implicitPort: addrs.implicit?.port ?? null,
    workerPids: primary.workerPids,
    metrics: primary.metricsAddress(),
  });
}

/** The banner's line on how files move: the zero-copy engine and its I/O threads, or streams and why. */
function transfersLine(cfg: LoadedConfig, server: FtpServer, cluster: boolean): string {
  if (!server.options.useSendfile) return 'transfers: streams (useSendfile is off)';
  const engines = require('./ftp/data/engines') as typeof import('./ftp/data/engines');
  const native = engines.nativeStatus();
  if (!native.available) return `transfers: streams (${native.reason})`;
  // From server.engine, which applyEngine gave this process (or a primary's workers); auto is
  // the library's own count, which nativeStatus reports until something sets another.
  const e = engineConfig(cfg);
  const threads = e.ioThreads === 'auto' ? (native.ioThreads ?? 1) : e.ioThreads;
  const solo = e.soloThread && e.ioNice > 0 ? ' (a transfer running alone: at nice +0)' : '';
  return `transfers: zero-copy engine where it applies, ${threads} I/O thread${threads === 1 ? '' : 's'} at nice +${e.ioNice}${solo}${cluster ? ' in each worker' : ''}`;
}

/** `cluster`: the primary's facts when there are workers (its FtpServer only checked the options, it does not listen). */
function printBanner(
  cfg: LoadedConfig,
  server: FtpServer,
  address: string,
  port: number,
  cluster?: { implicitPort: number | null; workerPids: number[]; metrics: import('node:net').AddressInfo | null },
): void {
  const host = urlHost(address);
  const lines = [`ftpdlib ${VERSION} listening on ftp://${host}:${port}/ (config ${cfg.file})`];
  if (cluster) lines.push(`workers: ${cluster.workerPids.length} (pids ${cluster.workerPids.join(', ')})`);
  const homes = configuredHomes(cfg);
  if (cfg.demo?.printLogin) {
    for (const h of homes) {
      const mode = /[adfmwMT]/.test(h.perm) ? 'read-write' : 'read-only';
      const who =
        h.user === 'anonymous' && h.plainPassword === undefined
          ? 'anonymous (any password)'
          : `user ${h.user}, password ${h.plainPassword ?? '(as configured)'}`;
      lines.push(`log in as ${who}: ${h.home} (${mode})`);
    }
  }
  if (server.options.tls) {
    const implicit = cluster ? (cluster.implicitPort !== null ? { port: cluster.implicitPort } : null) : server.implicitAddress();
    lines.push(`FTPS: explicit (AUTH TLS) with ${server.options.tls.certFile}${implicit ? `; implicit on port ${implicit.port}` : ''}`);
  }
  lines.push(transfersLine(cfg, server, cluster !== undefined));
  const demoUser = cfg.demo?.printLogin ? homes.find((h) => h.plainPassword !== undefined) : undefined;
  const metrics = cluster ? cluster.metrics : server.metricsAddress();
  if (metrics) lines.push(`metrics: http://${urlHost(metrics.address)}:${metrics.port}/metrics`);
  if (demoUser) {
    const cred = `${encodeURIComponent(demoUser.user)}:${encodeURIComponent(demoUser.plainPassword!)}`;
    lines.push(`try: curl ftp://${cred}@${host}:${port}/`);
    if (server.options.tls) lines.push(`     curl --ssl-reqd -k ftp://${cred}@${host}:${port}/`);
  }
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** Returns `stop`: drain and exit 0 (a worker calls it when its primary asks). */
function installSignals(
  server: FtpServer,
  built: BuiltConfig,
  current: () => LoadedConfig,
  setCurrent: (c: LoadedConfig) => void,
  args: Args,
): (reason: string) => void {
  const { logger } = built;
  let stopping = false;
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal: reason }, 'stopping: letting transfers finish');
    server
      .close()
      .then(() => built.close())
      .then(
        () => process.exit(EXIT.ok),
        () => process.exit(EXIT.ok),
      );
  };
  // A second signal exits at once. (A worker's stop from its primary is not a signal: Ctrl-C reaches
  // both the primary, which passes it on, and the worker, and that is one stop, not two.)
  let signalled = false;
  const onSignal = (sig: string): void => {
    if (signalled) process.exit(EXIT.ok);
    signalled = true;
    stop(sig);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  stopWithNpm(() => onSignal('SIGTERM'));

  let reloading: Promise<void> = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(() => reload(server, built, current, setCurrent, args)).catch((err) => logger.error({ err }, 'reload failed'));
  });
  process.on('SIGUSR2', () => {
    if (!built.log?.file) {
      logger.info('SIGUSR2: logging to stdout, nothing to reopen');
      return;
    }
    try {
      built.log.reopen();
      logger.info({ file: built.log.file.path }, 'log file reopened');
    } catch (err) {
      logger.error({ err }, 'cannot reopen the log file; still writing to the old one');
    }
  });
  return stop;
}

/** SIGHUP: read the file again; swap users, apply the log level, reload certificates. */
async function reload(server: FtpServer, built: BuiltConfig, current: () => LoadedConfig, setCurrent: (c: LoadedConfig) => void, args: Args): Promise<void> {
  const { logger } = built;
  const prev = current();
  let next: LoadedConfig;
  try {
    next = loadConfigFile(prev.file);
  } catch (err) {
    if (!(err instanceof ConfigFileError)) throw err;
    logger.error({ errors: err.message.split('\n') }, 'reload refused: the config file has errors; the running config stays');
    return;
  }
  applyFlags(next, args);
  prepareSelfSigned(next);
  try {
    createHomes(next);
  } catch (err) {
    logger.error({ err }, 'reload refused: demo.createHomes failed');
    return;
  }
  const problems = homeProblems(configuredHomes(next));
  if (problems.length) {
    logger.error({ errors: problems }, 'reload refused: folders cannot be served; the running config stays');
    return;
  }
  try {
    await built.reloadUsers(next);
  } catch (err) {
    if (!(err instanceof ConfigFileError)) throw err;
    logger.error({ errors: err.message.split('\n') }, 'reload refused: the config file has errors; the running config stays');
    return;
  }
  const restart = changedServerOptions(prev, next).map((k) => `server.${k}`);
  if (JSON.stringify(prev.runAs) !== JSON.stringify(next.runAs)) restart.push('server.runAs');
  if (JSON.stringify(prev.lockout) !== JSON.stringify(next.lockout)) restart.push('lockout');
  if (next.logging.level !== prev.logging.level) logger.level(next.logging.level);
  if (next.logging.file !== prev.logging.file) {
    if (built.log?.file && next.logging.file) {
      try {
        built.log.file.reopen(next.logging.file);
      } catch (err) {
        logger.error({ err }, 'cannot open the new logging.file; still writing to the old one');
      }
    } else {
      restart.push('logging.file');
    }
  }
  if (restart.length) logger.warn({ options: restart }, 'these changes need a restart; the running values stay');
  if (server.options.tls) {
    try {
      server.reloadCertificates();
    } catch (err) {
      logger.error({ err }, 'cannot reload the certificates; the running ones stay');
    }
  }
  setCurrent(next);
  logger.info({ file: next.file, users: configuredHomes(next).length, type: next.authorizer.type }, 'configuration reloaded');
}

// ---------------------------------------------------------------------------------------------
// The daemon with pyftpdlib's flags

async function runWithFlags(args: Args): Promise<void> {
  const dir = path.resolve(args.directory ?? '.');
  try {
    if (!fs.statSync(dir).isDirectory()) fail(EXIT.root, `${dir} is not a folder`);
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
  } catch (err) {
    fail(EXIT.root, `cannot serve ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const port = args.port !== undefined ? Number(args.port) : 2121;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(EXIT.config, `--port: expected 0-65535, got ${args.port}`);
  let passivePorts: [number, number] | undefined;
  if (args.range) {
    const m = /^(\d+)-(\d+)$/.exec(args.range);
    if (!m) fail(EXIT.config, `--range: expected FROM-TO, got ${args.range}`);
    passivePorts = [Number(m[1]), Number(m[2])];
  }
  const { VirtualAuthorizer } = require('./auth/virtual') as typeof import('./auth/virtual');
  const auth = new VirtualAuthorizer();
  const perm = args.write ? 'elradfmwMT' : 'elr';
  const user = args.username;
  const password = args.password;
  if (password !== undefined && user === undefined) fail(EXIT.config, '--password needs --username');
  if (user !== undefined) {
    if (password === undefined) fail(EXIT.config, '--username needs --password');
    auth.addUser(user, password, dir, { perm });
  } else {
    auth.addAnonymous(dir, { perm });
  }
  let tlsFiles: { certFile: string; keyFile: string } | undefined;
  if (args['tls-cert'] || args['tls-key']) {
    if (!args['tls-cert'] || !args['tls-key']) fail(EXIT.config, '--tls-cert and --tls-key go together');
    tlsFiles = { certFile: path.resolve(args['tls-cert']), keyFile: path.resolve(args['tls-key']) };
  }
  if ((args['tls-required'] || args['implicit-port']) && !tlsFiles) fail(EXIT.config, '--tls-required and --implicit-port need --tls-cert and --tls-key');
  const implicitPort = args['implicit-port'] !== undefined ? Number(args['implicit-port']) : undefined;
  const level = args.debug ? 'debug' : args.verbose ? 'info' : 'warn';
  const logger = bunyan.createLogger({ name: 'ftpdlib', level, serializers: bunyan.stdSerializers });
  let server: FtpServer;
  try {
    server = new (serverClass())({
      host: args.interface ?? '::',
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
    if (err instanceof ConfigError) fail(EXIT.config, err.message);
    throw err;
  }
  let addr;
  try {
    addr = await server.listen();
  } catch (err) {
    listenError(err, port, args.interface);
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) process.exit(EXIT.ok);
    stopping = true;
    logger.info({ signal: sig }, 'stopping');
    server.close().then(
      () => process.exit(EXIT.ok),
      () => process.exit(EXIT.ok),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  stopWithNpm(() => stop('SIGTERM'));
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  const who = user === undefined ? 'anonymous (any password)' : `user ${user}, password (as given)`;
  process.stderr.write(
    `ftpdlib ${VERSION} serving ${dir} on ftp://${host}:${addr.port}/ (${perm.length > 3 ? 'read-write' : 'read-only'})\n` +
      `log in as ${who}` +
      (tlsFiles ? `\nFTPS: explicit (AUTH TLS) with ${tlsFiles.certFile}` : '') +
      (server.implicitAddress() ? `; implicit on port ${server.implicitAddress()!.port}` : '') +
      '\n',
  );
}
