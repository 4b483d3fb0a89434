/**
 * A real HAProxy in front of a test server: a config in a temp folder, `haproxy -f cfg -db` as a
 * child, killed by its PID in teardown. Ready when its frontend port is listening (read from
 * /proc/net/tcp, so no probe connection reaches the server under test).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';

export interface HaproxyOptions {
  /** The ftpdlib control port HAProxy relays to, on 127.0.0.1. */
  backendPort: number;
  /** send-proxy (v1), send-proxy-v2 (v2), or none. */
  send: 'v1' | 'v2' | 'none';
}

export interface Haproxy {
  /** The frontend port on 127.0.0.1. */
  port: number;
  pid: number;
  /** What HAProxy wrote on stderr so far. */
  output(): string;
}

export function haproxyAvailable(): boolean {
  return spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0;
}

/** A port free right now on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Whether something listens on 127.0.0.1:port (state 0A in /proc/net/tcp). */
function listening(port: number): boolean {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((line) => {
      const f = line.trim().split(/\s+/);
      return f[1] === hex && f[3] === '0A';
    });
}

export async function startHaproxy(t: ExecutionContext, opts: HaproxyOptions): Promise<Haproxy> {
  if (!haproxyAvailable()) throw new Error('haproxy not found: apt-get install haproxy (.ci/run does)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-haproxy-'));
  const port = await freePort();
  const send = opts.send === 'v1' ? ' send-proxy' : opts.send === 'v2' ? ' send-proxy-v2' : '';
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    [
      'global',
      '    maxconn 200',
      'defaults',
      '    mode tcp',
      '    timeout connect 5s',
      '    timeout client 60s',
      '    timeout server 60s',
      'frontend ftp',
      `    bind 127.0.0.1:${port}`,
      '    default_backend ftpdlib',
      'backend ftpdlib',
      `    server s1 127.0.0.1:${opts.backendPort}${send}`,
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 10_000;
  while (!listening(port)) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${port} within 10 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port, pid: child.pid!, output: () => out };
}
