// Running the CLI as a subprocess (not a test file: ava runs *.test.ts only).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';
import { Client } from 'basic-ftp';

export const ROOT = path.join(__dirname, '..', '..');
const START_TIMEOUT_MS = 45_000;

/**
 * `node bin/ftpdlib.js` from the source runs ts-node, which transpiles the whole server at every
 * start (seconds of CPU each time). So the tests do what `npm run build` does, once per test
 * process: the source is transpiled into a temp copy of the package (package.json, bin/, conf/,
 * dist/src/, and a link to the native build), and each test runs that copy's bin/ftpdlib.js.
 * Packages resolve from the checkout's node_modules through NODE_PATH.
 */
let built: string | undefined;

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
/** The package built once per test process (package.json, bin/, conf/, dist/src/, the native build): its folder. */
export function buildOnce(): string {
  if (built) return built;
  const ts = require('typescript') as typeof import('typescript');
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-cli-build-'));
  // Readable by everyone: the runAs test drops to nobody, who must still load the code.
  fs.chmodSync(out, 0o755);
  process.on('exit', () => fs.rmSync(out, { recursive: true, force: true }));
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(out, 'package.json'));
  fs.mkdirSync(path.join(out, 'bin'));
  fs.copyFileSync(path.join(ROOT, 'bin', 'ftpdlib.js'), path.join(out, 'bin', 'ftpdlib.js'));
  fs.cpSync(path.join(ROOT, 'conf'), path.join(out, 'conf'), { recursive: true });
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) return e.name === 'build' || e.name === 'node_modules' ? [] : walk(p);
      return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
    });
  for (const file of walk(path.join(ROOT, 'src'))) {
    const rel = path.relative(ROOT, file);
    const js = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
    const dest = path.join(out, 'dist', rel.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, js);
  }
  const nativeBuild = path.join(ROOT, 'src', 'native', 'build');
  if (fs.existsSync(nativeBuild)) {
    fs.mkdirSync(path.join(out, 'src', 'native'), { recursive: true });
    fs.symlinkSync(nativeBuild, path.join(out, 'src', 'native', 'build'));
  }
  built = out;
  return out;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Cli {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<Exit>;
  /** Wait until `stream` matches `re` (checked against everything written so far); fails if the process exits first. */
  waitFor(stream: 'stdout' | 'stderr', re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

/** Start `node bin/ftpdlib.js ...args` from the source. Killed by PID at teardown if still running. */
export function spawnCli(t: ExecutionContext, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Cli {
  const copy = buildOnce();
  // Under `setpriv --pdeathsig KILL` where it exists (util-linux): the daemon is killed with the
  // test process even when ava ends that process without running teardowns (a test that timed
  // out), where a daemon and its workers were left running before.
  const argv = [process.execPath, path.join(copy, 'bin', 'ftpdlib.js'), ...args];
  const child = spawn(SETPRIV ?? argv[0], SETPRIV ? ['--pdeathsig', 'KILL', ...argv] : argv.slice(1), {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules'), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  const waiters = new Set<() => void>();
  const wake = (): void => waiters.forEach((w) => w());
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out.stdout += d;
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    out.stderr += d;
    wake();
  });
  let done = false;
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      done = true;
      resolve({ code, signal });
      wake();
    }),
  );
  t.teardown(() => {
    if (!done && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  const describe = (): string => `\n--- stdout\n${out.stdout.slice(-2000)}\n--- stderr\n${out.stderr.slice(-2000)}`;
  return {
    child,
    pid: child.pid!,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    exited,
    waitFor(stream, re, timeoutMs = START_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`timed out waiting for ${re} on ${stream}${describe()}`)), timeoutMs);
        const finish = (err: Error | null, m?: RegExpMatchArray): void => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve(m!);
        };
        const check = (): void => {
          const m = re.exec(out[stream]);
          if (m) finish(null, m);
          else if (done) finish(new Error(`exited before ${re} appeared on ${stream}${describe()}`));
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Run the CLI to completion. */
export async function runCli(t: ExecutionContext, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Exit & { stdout: string; stderr: string }> {
  const cli = spawnCli(t, args, opts);
  const timer = setTimeout(() => process.kill(cli.pid, 'SIGKILL'), START_TIMEOUT_MS);
  const exit = await cli.exited;
  clearTimeout(timer);
  return { ...exit, stdout: cli.stdout(), stderr: cli.stderr() };
}

/** Start the daemon and wait for the line that gives its port. */
export async function startDaemon(t: ExecutionContext, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Cli & { port: number }> {
  const cli = spawnCli(t, args, opts);
  const m = await cli.waitFor('stderr', /on ftp:\/\/\S+:(\d+)\//);
  return { ...cli, port: Number(m[1]) };
}

export function tmpDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A basic-ftp client logged in; closed at teardown. */
export async function login(t: ExecutionContext, port: number, user: string, password: string): Promise<Client> {
  const c = new Client(10_000);
  t.teardown(() => c.close());
  await c.access({ host: '127.0.0.1', port, user, password });
  return c;
}

// Poll a condition on the filesystem (the daemon writes its log file synchronously, but from another process).
export { eventually } from '../helpers/server';
