import test, { type ExecutionContext } from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PASS, USER, startServer, waitForNoSessions } from '../helpers/server';

// The benchmark's load client (bench/client/ftpbench.c), mode "many": its figures are only worth
// what it counts. Both of its drivers, a thread per session and epoll threads that each drive a
// share of the sessions (--event, --event-threads), must download every file whole, report errors
// instead of hanging, and QUIT.

const SRC = path.join(__dirname, '..', '..', 'bench', 'client', 'ftpbench.c');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpbench-test-'));
const BIN = path.join(dir, 'ftpbench');
test.before(() => {
  execFileSync('cc', ['-O2', '-pthread', '-o', BIN, SRC]);
});
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

interface ManyResult {
  mode: string;
  client: string;
  event_threads: number;
  clients: number;
  files: number;
  errors: number;
  bytes: number;
  p50_ms: number;
  p99_ms: number;
  file_p99_ms: number;
  first_error: string;
}

function runMany(port: number, args: string[]): Promise<ManyResult> {
  return new Promise((resolve, reject) => {
    execFile(
      BIN,
      ['many', '--port', String(port), '--user', USER, '--pass', PASS, '--timeout', '60', ...args],
      { timeout: 70_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`ftpbench: ${err.message} ${stderr}`));
        resolve(JSON.parse(stdout.trim().split('\n').pop() as string) as ManyResult);
      },
    );
  });
}

const SIZE = 300 * 1024 + 7;

async function fullRun(t: ExecutionContext, driver: string[], expectClient: string, expectThreads: number): Promise<void> {
  const s = await startServer(t);
  fs.writeFileSync(path.join(s.root, 'small.bin'), Buffer.alloc(SIZE, 7));
  let sent = 0;
  let sentBytes = 0;
  s.server.on('fileSent', (_p: string, info: { bytes: number; ok: boolean }) => {
    if (info.ok) sent++;
    sentBytes += info.bytes;
  });
  const r = await runMany(s.port, ['--file', 'small.bin', '--clients', '12', '--count', '7', ...driver]);
  t.is(r.client, expectClient);
  t.is(r.event_threads, expectThreads);
  t.is(r.errors, 0, r.first_error);
  t.is(r.files, 84);
  t.is(r.bytes, 84 * SIZE, 'every byte of every file counted');
  t.true(r.p50_ms > 0 && r.p99_ms >= r.p50_ms && r.file_p99_ms >= r.p99_ms, JSON.stringify(r));
  await waitForNoSessions(s.server);
  t.is(sent, 84, 'the server sent 84 whole files');
  t.is(sentBytes, 84 * SIZE);
}

test('many, a thread per session: 12 sessions x 7 downloads, every byte counted, every session QUITs', (t) =>
  fullRun(t, [], 'threads', 0));

test('many --event, one thread for all sessions: 12 x 7 downloads, every byte counted, every session QUITs', (t) =>
  fullRun(t, ['--event'], 'event', 1));

test('many --event-threads 5, sessions shared unevenly by 5 threads: 12 x 7 downloads, every byte counted', (t) =>
  fullRun(t, ['--event-threads', '5'], 'event', 5));

test('many --event: a refused RETR is an error of its session, which stops there; the client reports it and exits', async (t) => {
  const s = await startServer(t);
  // no small.bin: every RETR gets 550
  const r = await runMany(s.port, ['--file', 'missing.bin', '--clients', '5', '--count', '3', '--event']);
  t.is(r.files, 0);
  t.is(r.errors, 5, 'one error per session, each stopped at its first refusal');
  t.regex(r.first_error, /^RETR: 550 /);
  await waitForNoSessions(s.server);
});

test('many --event: a wrong password fails that login, and no download is counted for it', async (t) => {
  const s = await startServer(t);
  fs.writeFileSync(path.join(s.root, 'small.bin'), Buffer.alloc(1000, 1));
  const r = await runMany(s.port, ['--file', 'small.bin', '--clients', '3', '--count', '2', '--event', '--pass', 'wrong']);
  t.is(r.files, 0);
  t.is(r.errors, 3);
  t.regex(r.first_error, /^login: 530 /);
  await waitForNoSessions(s.server);
});
