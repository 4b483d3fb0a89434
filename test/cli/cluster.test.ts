// server.workers: a primary that listens and hands connections to worker processes.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { Client, FTPError, enterPassiveModeIPv4 } from 'basic-ftp';
import { startHaproxy } from '../helpers/haproxy';
import { certs } from '../helpers/tls';
import { LineClient } from '../helpers/line-client';
import { eventually, login, startDaemon, tmpDir, type Cli } from './_daemon';

type Daemon = Cli & { port: number };

interface LogRecord {
  pid: number;
  msg: string;
  [key: string]: unknown;
}

/** The daemon's bunyan records so far (every process writes to the same stdout). */
function records(d: Daemon): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of d.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogRecord);
    } catch {
      // a line still being written
    }
  }
  return out;
}

/** The pids that wrote `recs`, each once, sorted. */
function distinctPids(recs: LogRecord[]): number[] {
  return [...new Set(recs.map((r) => r.pid))].sort();
}

/** The worker pids the banner names. */
async function workerPids(d: Daemon): Promise<number[]> {
  const m = await d.waitFor('stderr', /workers: \d+ \(pids ([\d, ]+)\)/);
  return m[1].split(', ').map(Number);
}

function writeConfig(dir: string, server: string, more = ''): string {
  const file = path.join(dir, 'ftpdlib.yaml');
  fs.mkdirSync(path.join(dir, 'home'), { recursive: true });
  fs.writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: 0, authFailedTimeout: 0, ${server} }\n` +
      `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n` +
      `    - { name: alice, password: pw, home: home, perm: elradfmw }\n` +
      `logging: { level: info }\n${more}`,
  );
  return file;
}

/** A control connection that has read its first reply line. */
function rawConnect(t: ExecutionContext, port: number): Promise<{ socket: net.Socket; reply: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    t.teardown(() => socket.destroy());
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) resolve({ socket, reply: buf.slice(0, nl) });
    });
    socket.on('close', () => reject(new Error(`closed before a whole reply line (got ${JSON.stringify(buf)})`)));
  });
}

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

async function download(c: Client, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await c.downloadTo(
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
    name,
  );
  return Buffer.concat(chunks);
}

/** A passive port range above the kernel's ephemeral ports, so that nothing else takes them. */
function passiveRange(size: number): [number, number] {
  const first = 61000 + Math.floor(Math.random() * (65000 - 61000 - size));
  return [first, first + size - 1];
}

test('2 workers, 50 clients over PASV sharing one passive range: every transfer arrives whole, both workers serve', async (t) => {
  const dir = tmpDir(t);
  const [first, last] = passiveRange(64);
  const file = writeConfig(dir, `workers: 2, passivePorts: [${first}, ${last}], maxConnections: 100`);
  const shared = crypto.randomBytes(256 * 1024 + 1);
  fs.writeFileSync(path.join(dir, 'home', 'shared.bin'), shared);
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  t.is(pids.length, 2);
  // The primary's descriptors: each connection's is closed once handed over.
  const primaryFds = (): number => fs.readdirSync(`/proc/${d.pid}/fd`).length;
  const fdsBefore = primaryFds();

  const one = async (i: number): Promise<void> => {
    const c = await login(t, d.port, 'alice', 'pw');
    c.prepareTransfer = enterPassiveModeIPv4; // PASV, not EPSV
    const mine = crypto.randomBytes(1 + ((i * 7919) % (192 * 1024)));
    await c.uploadFrom(Readable.from([mine]), `up-${i}.bin`);
    t.is(sha(await download(c, `up-${i}.bin`)), sha(mine), `client ${i}: its upload came back whole`);
    t.is(sha(await download(c, 'shared.bin')), sha(shared), `client ${i}: the shared file arrived whole`);
    const names = (await c.list()).map((f) => f.name);
    t.true(names.includes(`up-${i}.bin`));
    c.close();
  };
  await Promise.all(Array.from({ length: 50 }, (_, i) => one(i)));
  for (let i = 0; i < 50; i++) t.true(fs.existsSync(path.join(dir, 'home', `up-${i}.bin`)));

  // Each session's records carry the pid of the worker that served it (bunyan's pid field).
  await eventually(() => records(d).filter((r) => r.msg === 'disconnected').length >= 50, 'every session ended');
  t.is(primaryFds(), fdsBefore, 'the primary holds no descriptor of a connection it handed over');
  const connected = records(d).filter((r) => r.msg === 'connected');
  t.is(connected.length, 50);
  // The primary hands plain connections over as TCP handles; the workers serve them bare.
  t.true(connected.every((r) => r.bare === true), 'every session served on the TCP handle');
  const perWorker = new Map<number, number>();
  for (const r of connected) perWorker.set(r.pid, (perWorker.get(r.pid) ?? 0) + 1);
  t.deepEqual([...perWorker.keys()].sort(), [...pids].sort(), 'both workers, and only they, served sessions');
  for (const [pid, n] of perWorker) t.true(n >= 10, `worker ${pid} served ${n} of 50`);
  // Every transfer record comes from the worker whose session asked for it.
  const transfers = records(d).filter((r) => r.msg === 'transfer');
  t.true(transfers.length >= 150, `${transfers.length} transfer records`);
  const sessions = new Set(connected.map((r) => `${r.pid}/${r.session}`));
  for (const r of transfers) t.true(sessions.has(`${r.pid}/${r.session}`));
  t.deepEqual(
    records(d)
      .filter((r) => (r.level as number) >= 50)
      .map((r) => r.msg),
    [],
    'no errors logged',
  );
});

test('maxConnectionsPerIp 3 holds across 2 workers: the 4th connection gets 421; a closed one frees its place', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, 'workers: 2, maxConnectionsPerIp: 3');
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  const open: Array<{ socket: net.Socket; reply: string }> = [];
  for (let i = 0; i < 3; i++) {
    const c = await rawConnect(t, d.port);
    t.regex(c.reply, /^220 /);
    open.push(c);
  }
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 3, 'three sessions logged');
  const served = new Set(records(d).filter((r) => r.msg === 'connected').map((r) => r.pid));
  t.deepEqual([...served].sort(), [...pids].sort(), 'the three are spread over both workers: no worker alone had 3');

  const fourth = await rawConnect(t, d.port);
  t.regex(fourth.reply, /^421 Too many connections from the same IP address/);

  open[0].socket.write('QUIT\r\n');
  await new Promise((r) => open[0].socket.once('close', r));
  // The worker reports the end to the primary; then a new connection is welcome again.
  let again = '';
  await eventually(() => records(d).filter((r) => r.msg === 'disconnected').length === 1, 'the session ended');
  for (let attempt = 0; attempt < 50; attempt++) {
    const c = await rawConnect(t, d.port);
    again = c.reply;
    if (again.startsWith('220')) break;
    c.socket.destroy();
    await new Promise((r) => setTimeout(r, 50));
  }
  t.regex(again, /^220 /);
});

test('2 workers: clients that send all their commands and half-close get every reply, then the FIN', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, 'workers: 2');
  const d = await startDaemon(t, ['--config', file]);
  await workerPids(d);
  const one = (i: number): Promise<{ text: string; fin: boolean }> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ port: d.port, host: '127.0.0.1', allowHalfOpen: true });
      t.teardown(() => socket.destroy());
      let text = '';
      let fin = false;
      socket.setEncoding('utf8');
      socket.on('data', (s: string) => (text += s));
      socket.on('end', () => (fin = true));
      socket.on('error', reject);
      socket.on('close', () => resolve({ text, fin }));
      // Sent at once with the FIN, as `printf ... | nc -N` does: PASS and MKD take the worker
      // longer than the FIN takes to arrive.
      socket.end(`USER alice\r\nPASS pw\r\nPWD\r\nMKD d${i}\r\nSYST\r\n`);
    });
  const all = await Promise.all([0, 1, 2, 3].map(one));
  for (const [i, r] of all.entries()) {
    t.true(r.fin, `client ${i}: the server's FIN`);
    t.deepEqual(
      r.text.split('\r\n').filter(Boolean).map((l) => l.slice(0, 3)),
      ['220', '331', '230', '257', '257', '215'],
      `client ${i}`,
    );
    t.true(fs.statSync(path.join(dir, 'home', `d${i}`)).isDirectory());
  }
});

/**
 * Make the process `pid` unable to open any descriptor: its soft RLIMIT_NOFILE goes down to its
 * lowest free descriptor number. A descriptor sent to it is then dropped by the kernel (the
 * message's ancillary data is truncated) and Node answers the sender with a NACK. Returns a
 * function that puts the limit back (if the process is still there).
 */
function starveOfDescriptors(pid: number): () => void {
  const used = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number));
  let lowest = 0;
  while (used.has(lowest)) lowest++;
  const soft = /Max open files\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1];
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${lowest}:`]);
  return () => {
    if (fs.existsSync(`/proc/${pid}`)) execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:`]);
  };
}

const handoverWarnings = (d: Daemon): LogRecord[] => records(d).filter((r) => r.msg === 'a worker could not take a connection (out of descriptors?)');

test('a worker out of descriptors: the connections it cannot take go to the other worker, and no place is lost', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, 'workers: 2, maxConnections: 4');
  const d = await startDaemon(t, ['--config', file]);
  const [starved, other] = await workerPids(d);
  const restore = starveOfDescriptors(starved);
  t.teardown(restore);

  // Four at once, the server's maximum. The primary offers each to the worker with the fewest
  // connections: from the second on that is the starved one, which refuses it; the other serves
  // all four.
  const clients: Client[] = [];
  for (let i = 0; i < 4; i++) clients.push(await login(t, d.port, 'alice', 'pw'));
  for (const c of clients) t.is((await c.send('NOOP')).code, 200);
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 4, 'four sessions logged');
  t.deepEqual(distinctPids(records(d).filter((r) => r.msg === 'connected')), [other], 'all four served by the worker with descriptors');
  const warned = handoverWarnings(d);
  t.true(warned.length >= 3, `${warned.length} refusals logged`);
  t.true(warned.every((r) => r.workerPid === starved && r.pid === d.pid));

  // The refused hand-overs were not counted twice: a fifth connection is one too many...
  const fifth = await rawConnect(t, d.port);
  t.regex(fifth.reply, /^421 Too many connections/);
  // ...and once the four are gone, four fit again.
  for (const c of clients) c.close();
  await eventually(() => records(d).filter((r) => r.msg === 'disconnected').length === 4, 'the four sessions ended');
  restore();
  const again: Client[] = [];
  for (let i = 0; i < 4; i++) again.push(await login(t, d.port, 'alice', 'pw'));
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 8, 'four more sessions logged');
  const later = records(d).filter((r) => r.msg === 'connected').slice(4);
  t.deepEqual(distinctPids(later), [starved, other].sort(), 'with its descriptors back, the first worker serves again');
  for (const c of again) c.close();
});

test('both workers out of descriptors: the client gets 421 after four tries, and the connection is not counted', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, 'workers: 2, maxConnections: 2');
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  const restores = pids.map(starveOfDescriptors);
  t.teardown(() => restores.forEach((r) => r()));
  for (let i = 0; i < 3; i++) {
    const c = await rawConnect(t, d.port);
    t.regex(c.reply, /^421 Service not available/, `connection ${i}`);
  }
  await eventually(() => handoverWarnings(d).length === 12, 'four refusals per connection logged');
  const warned = handoverWarnings(d);
  t.deepEqual(
    warned.map((r) => r.attempts),
    [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4],
  );
  for (let i = 1; i < warned.length; i++) {
    if (warned[i].attempts !== 1) t.not(warned[i].workerPid, warned[i - 1].workerPid, 'each new try goes to the other worker');
  }
  restores.forEach((r) => r());
  // Three refused connections left no count behind: both places of maxConnections are free.
  const a = await login(t, d.port, 'alice', 'pw');
  const b = await login(t, d.port, 'alice', 'pw');
  const third = await rawConnect(t, d.port);
  t.regex(third.reply, /^421 Too many connections/);
  a.close();
  b.close();
});

/** A daemon with 2 workers and an implicit-FTPS port (from the banner); `server` adds to its config. */
async function implicitDaemon(t: ExecutionContext, server: string): Promise<{ d: Daemon; implicitPort: number }> {
  const dir = tmpDir(t);
  const { cert, key } = certs();
  const file = writeConfig(dir, `workers: 2, implicitTlsPort: 0, tls: { certFile: ${JSON.stringify(cert)}, keyFile: ${JSON.stringify(key)} }, ${server}`);
  const d = await startDaemon(t, ['--config', file]);
  const m = await d.waitFor('stderr', /implicit on port (\d+)/);
  return { d, implicitPort: Number(m[1]) };
}

/** An implicit-FTPS login (TLS from the first byte) with basic-ftp. */
async function implicitLogin(t: ExecutionContext, port: number): Promise<Client> {
  const c = new Client(10_000);
  t.teardown(() => c.close());
  await c.access({ host: '127.0.0.1', port, user: 'alice', password: 'pw', secure: 'implicit', secureOptions: { rejectUnauthorized: false } });
  return c;
}

test('implicit FTPS with a worker out of descriptors: its connections go to the other worker, and no place is lost', async (t) => {
  const { d, implicitPort } = await implicitDaemon(t, 'maxConnections: 4');
  const [starved, other] = await workerPids(d);
  const restore = starveOfDescriptors(starved);
  t.teardown(restore);

  // Connections to the implicit port go over as sockets (TLS is the worker's), not TCP handles.
  const clients: Client[] = [];
  for (let i = 0; i < 4; i++) clients.push(await implicitLogin(t, implicitPort));
  for (const c of clients) t.is((await c.send('NOOP')).code, 200, 'a session over TLS');
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 4, 'four sessions logged');
  const connected = records(d).filter((r) => r.msg === 'connected');
  t.true(connected.every((r) => r.implicitTls === true && r.bare === false));
  t.deepEqual(distinctPids(connected), [other], 'all four served by the worker with descriptors');
  const warned = handoverWarnings(d);
  t.true(warned.length >= 3, `${warned.length} refusals logged`);
  t.true(warned.every((r) => r.workerPid === starved && r.attempts === 1), 'each refused once, then taken by the other worker');

  // No place counted twice: a fifth connection is one too many, and after QUIT four fit again.
  const fifth = await rawConnect(t, d.port);
  t.regex(fifth.reply, /^421 Too many connections/);
  for (const c of clients) c.close();
  await eventually(() => records(d).filter((r) => r.msg === 'disconnected').length === 4, 'the four sessions ended');
  restore();
  const again: Client[] = [];
  for (let i = 0; i < 4; i++) again.push(await implicitLogin(t, implicitPort));
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 8, 'four more sessions logged');
  t.deepEqual(distinctPids(records(d).filter((r) => r.msg === 'connected').slice(4)), [starved, other].sort(), 'with its descriptors back, the first worker serves again');
  for (const c of again) c.close();
});

test('implicit FTPS, both workers out of descriptors: four tries alternate between the workers, then 421, and nothing is held', async (t) => {
  const { d, implicitPort } = await implicitDaemon(t, 'maxConnections: 2');
  const pids = await workerPids(d);
  const primaryFds = (): number => fs.readdirSync(`/proc/${d.pid}/fd`).length;
  const fdsBefore = primaryFds();
  const restores = pids.map(starveOfDescriptors);
  t.teardown(() => restores.forEach((r) => r()));
  // The refusal comes before any TLS, as every refusal on the implicit port does: a plain reply.
  for (let i = 0; i < 2; i++) {
    const c = await rawConnect(t, implicitPort);
    t.regex(c.reply, /^421 Service not available/, `connection ${i}`);
    c.socket.destroy();
  }
  await eventually(() => handoverWarnings(d).length === 8, 'four refusals per connection logged');
  const warned = handoverWarnings(d);
  t.deepEqual(
    warned.map((r) => r.attempts),
    [1, 2, 3, 4, 1, 2, 3, 4],
  );
  for (let i = 1; i < warned.length; i++) {
    if (warned[i].attempts !== 1) t.not(warned[i].workerPid, warned[i - 1].workerPid, 'each new try goes to the other worker');
  }
  await eventually(() => primaryFds() === fdsBefore, 'the primary closed both refused connections');
  restores.forEach((r) => r());
  // Both places of maxConnections are free.
  const a = await implicitLogin(t, implicitPort);
  const b = await implicitLogin(t, implicitPort);
  const third = await rawConnect(t, d.port);
  t.regex(third.reply, /^421 Too many connections/);
  a.close();
  b.close();
});

test('kill -9 of a worker: the primary logs it, starts a new one, and new logins work', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, 'workers: 2');
  fs.writeFileSync(path.join(dir, 'home', 'a.txt'), 'A');
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  // A session on the other worker keeps working through it all.
  const before = await login(t, d.port, 'alice', 'pw');
  await eventually(() => records(d).some((r) => r.msg === 'connected'), 'the first session is logged');
  const survivor = records(d).find((r) => r.msg === 'connected')!.pid;
  const victim = pids.find((p) => p !== survivor)!;
  process.kill(victim, 'SIGKILL');
  await eventually(
    () => records(d).some((r) => r.msg === 'worker exited; starting a new one' && r.pid === d.pid && r.workerPid === victim && r.signal === 'SIGKILL'),
    'the primary logs the exit',
  );
  await eventually(() => records(d).some((r) => r.msg === 'worker ready' && r.worker === 3), 'a new worker is ready');
  const fresh = records(d).find((r) => r.msg === 'replacement worker started')!.workerPid as number;
  t.false([victim, survivor].includes(fresh));
  // Several logins at once: the least busy workers get them, the new one included.
  const clients = await Promise.all(Array.from({ length: 4 }, () => login(t, d.port, 'alice', 'pw')));
  for (const c of clients) t.deepEqual((await c.list()).map((f) => f.name), ['a.txt']);
  const servedBy = records(d)
    .filter((r) => r.msg === 'connected')
    .slice(1)
    .map((r) => r.pid);
  t.is(servedBy.length, 4);
  t.true(servedBy.includes(fresh), 'the new worker serves sessions');
  t.false(servedBy.includes(victim));
  t.deepEqual(
    (await before.list()).map((f) => f.name),
    ['a.txt'],
    'the session on the surviving worker still works',
  );
});

test('a worker dies while the config file is half-edited: no replacement until it loads, the other worker serves; SIGHUP after the fix starts one', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, 'workers: 2');
  fs.writeFileSync(path.join(dir, 'home', 'a.txt'), 'A');
  const good = fs.readFileSync(file, 'utf8');
  const d = await startDaemon(t, ['--config', file]);
  const [victim, survivor] = await workerPids(d);
  fs.writeFileSync(file, `${good}server: { port: [half-edited\n`);
  process.kill(victim, 'SIGKILL');
  await eventually(
    () => records(d).some((r) => r.msg === 'the config file does not load: no replacement worker until it does (SIGHUP retries at once)' && r.pid === d.pid),
    'the primary says why it keeps the replacement back',
  );
  t.false(records(d).some((r) => r.msg === 'replacement worker started'), 'no worker started on the broken file');
  // Logins go to the surviving worker meanwhile.
  for (let i = 0; i < 3; i++) t.deepEqual((await (await login(t, d.port, 'alice', 'pw')).list()).map((f) => f.name), ['a.txt']);
  t.deepEqual(distinctPids(records(d).filter((r) => r.msg === 'connected')), [survivor]);
  // Fixed, then SIGHUP: the replacement starts at once and serves.
  fs.writeFileSync(file, good);
  process.kill(d.pid, 'SIGHUP');
  await eventually(() => records(d).some((r) => r.msg === 'worker ready' && r.worker === 3), 'a replacement is ready after the fix');
  t.false(records(d).some((r) => r.msg === 'worker exited during start'));
});

test('SIGTERM to the primary: workers drain, a running download completes, exit 0', async (t) => {
  const dir = tmpDir(t);
  // 384 KiB/s: the download takes about two seconds, and SIGTERM arrives in its first moments.
  const file = writeConfig(dir, 'workers: 2, writeLimit: 393216, closeGracePeriod: 20');
  const content = crypto.randomBytes(768 * 1024);
  fs.writeFileSync(path.join(dir, 'home', 'big.bin'), content);
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  const c = await login(t, d.port, 'alice', 'pw');
  const chunks: Buffer[] = [];
  let signalled = false;
  await c.downloadTo(
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        if (!signalled) {
          signalled = true;
          process.kill(d.pid, 'SIGTERM');
        }
        cb();
      },
    }),
    'big.bin',
  );
  t.true(signalled);
  t.true(Buffer.concat(chunks).equals(content), 'the whole file arrived');
  t.deepEqual(await d.exited, { code: 0, signal: null });
  const stopped = records(d).filter((r) => r.msg === 'stopping: letting transfers finish');
  t.deepEqual(distinctPids(stopped), [d.pid, ...pids].sort(), 'the primary and both workers drained');
  t.true(records(d).some((r) => r.msg === 'all workers stopped' && r.pid === d.pid));
  for (const pid of pids) t.throws(() => process.kill(pid, 0), undefined, `worker ${pid} is gone`);
});

test('lockout counts failures over all workers: the ban holds whichever worker a client reaches', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, 'workers: 2', 'lockout: { maxFailures: 2, delayBase: 0, banSeconds: 60, keys: address }\n');
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  const attempt = async (password: string): Promise<number | undefined> => {
    const c = new Client(10_000);
    t.teardown(() => c.close());
    try {
      await c.access({ host: '127.0.0.1', port: d.port, user: 'alice', password });
      return 230;
    } catch (err) {
      return (err as FTPError).code;
    } finally {
      c.close();
    }
  };
  t.is(await attempt('wrong'), 530);
  t.is(await attempt('wrong'), 530);
  // One failure on each worker: counted apart, neither would have banned.
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 2, 'two sessions logged');
  t.deepEqual(distinctPids(records(d).filter((r) => r.msg === 'connected')), [...pids].sort());
  t.is(await attempt('pw'), 530, 'banned: the right password is refused');
  t.is(await attempt('pw'), 530, 'on the other worker too');
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 4, 'four sessions logged');
  t.deepEqual(distinctPids(records(d).filter((r) => r.msg === 'connected')), [...pids].sort());
});

/** The daemon of `file` (2 workers) with two sessions of alice, checked to be one on each worker. */
async function aliceOnBothWorkers(t: ExecutionContext, file: string): Promise<{ d: Daemon; a: Client; b: Client }> {
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  const a = await login(t, d.port, 'alice', 'pw');
  const b = await login(t, d.port, 'alice', 'pw');
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 2, 'two sessions logged');
  t.deepEqual(distinctPids(records(d).filter((r) => r.msg === 'connected')), [...pids].sort(), 'one session on each worker');
  return { d, a, b };
}

test('maxSessions holds across 2 workers: the 3rd login of a user with 2 sessions gets 530; after a QUIT a login works', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'ftpdlib.yaml');
  fs.mkdirSync(path.join(dir, 'home'), { recursive: true });
  fs.writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: 0, authFailedTimeout: 0, workers: 2 }\n` +
      `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n` +
      `    - { name: alice, password: pw, home: home, perm: elradfmw, limits: { maxSessions: 2 } }\n` +
      `logging: { level: info }\n`,
  );
  const { d, a, b } = await aliceOnBothWorkers(t, file);

  // The third login, whichever worker serves it, is refused; its connection stays.
  const c = new Client(10_000);
  t.teardown(() => c.close());
  const err = await c.access({ host: '127.0.0.1', port: d.port, user: 'alice', password: 'pw' }).then(
    () => null,
    (e: FTPError) => e,
  );
  t.is(err?.code, 530);
  t.regex(err?.message ?? '', /Too many sessions for this user/);
  c.close();

  await a.send('QUIT');
  a.close();
  await eventually(() => records(d).filter((r) => r.msg === 'disconnected').length >= 2, 'the QUIT session ended');
  // The release reaches the primary right after the session's logout: a new login gets in.
  let ok = false;
  for (let attempt = 0; attempt < 50 && !ok; attempt++) {
    const e = new Client(10_000);
    t.teardown(() => e.close());
    ok = await e.access({ host: '127.0.0.1', port: d.port, user: 'alice', password: 'pw' }).then(
      () => true,
      () => false,
    );
    if (!ok) await new Promise((r) => setTimeout(r, 50));
  }
  t.true(ok, 'a login after the QUIT works');
  t.deepEqual((await b.list()).map((f) => f.name), [], 'the other session still works');
});

test('a user\'s writeLimit is divided over both workers: two downloads on two workers stay within it together, and the one left gets all of it', async (t) => {
  const LIMIT = 256 * 1024;
  const dir = tmpDir(t);
  const file = path.join(dir, 'ftpdlib.yaml');
  fs.mkdirSync(path.join(dir, 'home'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'home', 'big.bin'), crypto.randomBytes(8 * 1024 * 1024));
  fs.writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: 0, authFailedTimeout: 0, workers: 2 }\n` +
      `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n` +
      `    - { name: alice, password: pw, home: home, perm: elradfmw, limits: { writeLimit: ${LIMIT} } }\n` +
      `logging: { level: info }\n`,
  );
  const { a, b } = await aliceOnBothWorkers(t, file);
  const counts = [0, 0];
  const download = (c: Client, i: number): Promise<unknown> =>
    c
      .downloadTo(
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            counts[i] += chunk.length;
            cb();
          },
        }),
        'big.bin',
      )
      .catch((err: unknown) => err);
  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const rate = async (which: number[], ms: number): Promise<number> => {
    const sum = (): number => which.reduce((n, i) => n + counts[i], 0);
    const before = sum();
    const started = Date.now();
    await pause(ms);
    return ((sum() - before) * 1000) / (Date.now() - started);
  };
  const da = download(a, 0);
  await pause(800);
  const db = download(b, 1);
  await pause(800);
  // Each worker dividing alone gave each download the whole limit: 2x together.
  const together = await rate([0, 1], 2500);
  t.true(together <= LIMIT * 1.4, `the two downloads together at ${Math.round(together)} B/s, the limit ${LIMIT}`);
  t.true(together >= LIMIT * 0.25, `the two downloads together at only ${Math.round(together)} B/s`);
  a.close();
  await da;
  await pause(800);
  const alone = await rate([1], 2000);
  t.log(`together ${(together / LIMIT).toFixed(2)}x the limit, the one left ${(alone / LIMIT).toFixed(2)}x`);
  t.true(alone >= LIMIT * 0.75, `the download left alone at ${Math.round(alone)} B/s, half the limit is ${LIMIT / 2}`);
  t.true(alone <= LIMIT * 1.4, `the download left alone at ${Math.round(alone)} B/s, the limit ${LIMIT}`);
  b.close();
  await db;
});

test('maxSessions set by a reload counts the sessions of the user logged in while it had no limit, on both workers', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'ftpdlib.yaml');
  fs.mkdirSync(path.join(dir, 'home'), { recursive: true });
  const config = (limits: string): void =>
    fs.writeFileSync(
      file,
      `server: { host: 127.0.0.1, port: 0, authFailedTimeout: 0, workers: 2 }\n` +
        `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n` +
        `    - { name: alice, password: pw, home: home, perm: elradfmw${limits} }\n` +
        `logging: { level: info }\n`,
    );
  config('');
  // No limit: the workers count these logins without asking the primary, and tell it later.
  const { d, a, b } = await aliceOnBothWorkers(t, file);

  config(', limits: { maxSessions: 2 }');
  process.kill(d.pid, 'SIGHUP');
  await eventually(() => records(d).filter((r) => r.msg === 'configuration reloaded').length === 2, 'both workers reloaded');
  const refused = await t.throwsAsync(login(t, d.port, 'alice', 'pw'));
  t.is((refused as FTPError).code, 530, 'the two sessions from before the limit count');

  await a.send('QUIT');
  a.close();
  // Its logout reaches the primary (summed with others, within 0.1 s): a login gets in again.
  let ok = false;
  for (let attempt = 0; attempt < 50 && !ok; attempt++) {
    ok = await login(t, d.port, 'alice', 'pw').then(
      (c) => {
        c.close();
        return true;
      },
      () => false,
    );
    if (!ok) await new Promise((r) => setTimeout(r, 50));
  }
  t.true(ok, 'a login after the QUIT works');
  t.deepEqual((await b.list()).map((f) => f.name), [], 'the other session still works');
});

test('metrics with 2 workers: the primary serves /metrics, the sum of both workers', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, 'workers: 2, metrics: { port: 0 }');
  const content = crypto.randomBytes(100_000);
  fs.writeFileSync(path.join(dir, 'home', 'f.bin'), content);
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  const mport = Number((await d.waitFor('stderr', /metrics: http:\/\/127\.0\.0\.1:(\d+)\/metrics/))[1]);

  const failed = new Client(10_000);
  t.teardown(() => failed.close());
  const err = await failed.access({ host: '127.0.0.1', port: d.port, user: 'alice', password: 'wrong' }).then(
    () => null,
    (e: FTPError) => e,
  );
  t.is(err?.code, 530);
  const a = await login(t, d.port, 'alice', 'pw');
  const b = await login(t, d.port, 'alice', 'pw');
  t.true((await download(b, 'f.bin')).equals(content));
  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 3, 'three sessions logged');
  t.deepEqual(distinctPids(records(d).filter((r) => r.msg === 'connected')), [...pids].sort(), 'sessions on both workers');

  const body = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: mport, path: '/metrics' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`status ${res.statusCode}`))));
      })
      .on('error', reject);
  });
  const sample = (series: string): number | undefined => {
    const line = body.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  t.is(sample('ftpdlib_sessions_total'), 3);
  t.is(sample('ftpdlib_logins_total{result="ok"}'), 2);
  t.is(sample('ftpdlib_logins_total{result="failed"}'), 1);
  t.is(sample('ftpdlib_sent_bytes_total'), content.length);
  t.is(sample('ftpdlib_transfers_total{command="RETR",result="ok"}'), 1);
  t.is(sample('ftpdlib_transfer_duration_seconds_count{command="RETR"}'), 1);
  t.true((sample('ftpdlib_sessions_open') ?? 0) >= 2, 'the two logged-in sessions are open');
  t.truthy(body.match(/^process_resident_memory_bytes /m), 'the workers’ process metrics, summed');
  a.close();
  b.close();
});

test('PROXY protocol with 2 workers behind HAProxy: maxConnectionsPerIp 1 counts each real client', async (t) => {
  const dir = tmpDir(t);
  const file = writeConfig(dir, "workers: 2, maxConnectionsPerIp: 1, proxyProtocol: v2, trustedProxies: ['127.0.0.1']");
  const d = await startDaemon(t, ['--config', file]);
  const pids = await workerPids(d);
  const hp = await startHaproxy(t, { backendPort: d.port, send: 'v2' });
  const open = async (from: string): Promise<LineClient> => {
    const c = await LineClient.connect(hp.port, '127.0.0.1', from);
    t.teardown(() => c.close());
    return c;
  };

  const first = await open('127.0.0.2');
  t.is((await first.read())?.code, 220);
  // A login: the worker got the session with the bytes after the header, and read no header again.
  await first.login('alice', 'pw');
  const second = await open('127.0.0.2');
  const refused = await second.read();
  t.is(refused?.code, 421);
  t.regex(refused?.text ?? '', /Too many connections from the same IP address/);
  const other = await open('127.0.0.3');
  t.is((await other.read())?.code, 220);
  await other.login('alice', 'pw');

  await eventually(() => records(d).filter((r) => r.msg === 'connected').length === 2, 'two sessions logged');
  const connected = records(d).filter((r) => r.msg === 'connected');
  t.deepEqual(connected.map((r) => String(r.remote).split(':')[0]).sort(), ['127.0.0.2', '127.0.0.3'], 'sessions of the real clients');
  t.deepEqual(distinctPids(connected), [...pids].sort(), 'one on each worker');
  // A port that reads PROXY headers hands sockets over (the primary read the header).
  t.true(connected.every((r) => r.bare === false));

  // The end of the session is found (by the client the header named) and reported: its place is free again.
  t.is((await first.cmd('QUIT')).code, 221);
  await eventually(() => records(d).filter((r) => r.msg === 'disconnected').length >= 1, 'the session ended');
  let again: number | undefined;
  for (let attempt = 0; attempt < 50; attempt++) {
    const c = await open('127.0.0.2');
    again = (await c.read())?.code;
    c.close();
    if (again === 220) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is(again, 220);
});
