// The daemon's signals and privileges: SIGTERM drains, SIGHUP reloads users, SIGUSR2 reopens the log, runAs drops root.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import { Client, FTPError } from 'basic-ftp';
import { makeCert } from '../../src/cli';
import { loggedIn } from '../helpers/data-client';
import { readAll } from '../helpers/line-client';
import { eventually, login, runCli, startDaemon, tmpDir } from './_daemon';

function writeConfig(dir: string, text: string): string {
  const file = path.join(dir, 'ftpdlib.yaml');
  fs.writeFileSync(file, text);
  return file;
}

const users = (...names: string[]): string => names.map((n) => `- { name: ${n}, password: pw-${n}, home: home, perm: elr }\n`).join('');

test('SIGTERM lets a running download finish, then the process exits 0', async (t) => {
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'home'));
  const content = crypto.randomBytes(768 * 1024);
  fs.writeFileSync(path.join(dir, 'home', 'big.bin'), content);
  // 384 KiB/s: the download takes about two seconds, and SIGTERM arrives in its first moments.
  const file = writeConfig(
    dir,
    `server: { host: 127.0.0.1, port: 0, writeLimit: 393216, closeGracePeriod: 20 }\n` +
      `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n${users('alice').replace(/^/gm, '    ').trimEnd()}\n` +
      `logging: { level: info }\n`,
  );
  const d = await startDaemon(t, ['--config', file]);
  const c = await login(t, d.port, 'alice', 'pw-alice');
  const chunks: Buffer[] = [];
  let signalled = false;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      if (!signalled) {
        signalled = true;
        process.kill(d.pid, 'SIGTERM');
      }
      cb();
    },
  });
  await c.downloadTo(sink, 'big.bin');
  t.true(signalled);
  t.true(Buffer.concat(chunks).equals(content), 'the whole file arrived');
  t.deepEqual(await d.exited, { code: 0, signal: null });
  t.regex(d.stdout(), /"signal":"SIGTERM".*stopping/);
});

/** The SHA-256 fingerprint of the certificate a new explicit-FTPS connection gets. */
async function certificateOf(t: ExecutionContext, port: number): Promise<string> {
  const c = new Client(10_000);
  t.teardown(() => c.close());
  await c.access({ host: '127.0.0.1', port, user: 'alice', password: 'pw-alice', secure: true, secureOptions: { rejectUnauthorized: false } });
  const fingerprint = (c.ftp.socket as TLSSocket).getPeerCertificate().fingerprint256;
  c.close();
  return fingerprint;
}

test('SIGHUP reloads the users file and the certificate: a new user can log in, a running session keeps working', async (t) => {
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'home'));
  fs.writeFileSync(path.join(dir, 'home', 'a.txt'), 'A');
  fs.writeFileSync(path.join(dir, 'users.yaml'), users('alice'));
  makeCert(path.join(dir, 'tls'));
  const file = writeConfig(
    dir,
    `server: { host: 127.0.0.1, port: 0, authFailedTimeout: 0, tls: { certFile: tls/cert.pem, keyFile: tls/key.pem } }\n` +
      `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  usersFile: users.yaml\n` +
      `logging: { level: info }\n`,
  );
  const d = await startDaemon(t, ['--config', file]);
  const alice = await login(t, d.port, 'alice', 'pw-alice');
  const refused = await t.throwsAsync(login(t, d.port, 'bob', 'pw-bob'));
  t.is((refused as FTPError).code, 530);
  const before = await certificateOf(t, d.port);

  fs.writeFileSync(path.join(dir, 'users.yaml'), users('alice', 'bob'));
  makeCert(path.join(dir, 'tls'));
  process.kill(d.pid, 'SIGHUP');
  await d.waitFor('stdout', /configuration reloaded/);
  t.not(await certificateOf(t, d.port), before, 'new connections get the new certificate');

  const bob = await login(t, d.port, 'bob', 'pw-bob');
  t.deepEqual(
    (await bob.list()).map((f) => f.name),
    ['a.txt'],
  );
  t.deepEqual(
    (await alice.list()).map((f) => f.name),
    ['a.txt'],
    'the session opened before the reload still works',
  );

  // A broken file is refused: the running users stay.
  fs.writeFileSync(path.join(dir, 'users.yaml'), '- { name: carol, home: home, perm: elrq }\n');
  process.kill(d.pid, 'SIGHUP');
  await d.waitFor('stdout', /reload refused.*|.*reload refused/);
  t.regex(d.stdout(), /users\.yaml:1: users\[0\]\.perm: unknown permission letter/);
  await t.notThrowsAsync(login(t, d.port, 'bob', 'pw-bob'));
});

test('SIGHUP during a rate-limited download: the download completes whole with 226, and the new user can log in', async (t) => {
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'home'));
  const content = crypto.randomBytes(512 * 1024);
  fs.writeFileSync(path.join(dir, 'home', 'big.bin'), content);
  fs.writeFileSync(path.join(dir, 'users.yaml'), users('alice'));
  // 256 KiB/s: the 512 KiB download takes about two seconds; the reload happens in its first moments.
  const file = writeConfig(
    dir,
    `server: { host: 127.0.0.1, port: 0, authFailedTimeout: 0, writeLimit: 262144 }\n` +
      `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  usersFile: users.yaml\n` +
      `logging: { level: info }\n`,
  );
  const d = await startDaemon(t, ['--config', file]);
  const refused = await t.throwsAsync(login(t, d.port, 'bob', 'pw-bob'));
  t.is((refused as FTPError).code, 530);

  const c = await login(t, d.port, 'alice', 'pw-alice');
  const hash = crypto.createHash('sha256');
  let received = 0;
  let firstChunk!: () => void;
  const started = new Promise<void>((resolve) => (firstChunk = resolve));
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      received += chunk.length;
      firstChunk();
      cb();
    },
  });
  let done = false;
  const download = c.downloadTo(sink, 'big.bin').finally(() => (done = true));
  await started;

  fs.writeFileSync(path.join(dir, 'users.yaml'), users('alice', 'bob'));
  process.kill(d.pid, 'SIGHUP');
  await d.waitFor('stdout', /configuration reloaded/);
  t.false(done, 'the download was still running when the reload was done');
  t.true(received < content.length);

  const reply = await download;
  t.is(reply.code, 226);
  t.is(received, content.length);
  t.is(hash.digest('hex'), crypto.createHash('sha256').update(content).digest('hex'), 'the whole file arrived');

  const bob = await login(t, d.port, 'bob', 'pw-bob');
  t.deepEqual(
    (await bob.list()).map((f) => f.name),
    ['big.bin'],
  );
  t.notRegex(d.stdout(), /reload refused/);
});

test('--config with -p and -D overriding the file; SIGUSR2 reopens logging.file after it was moved away', async (t) => {
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'home'));
  const log = path.join(dir, 'ftpdlib.log');
  const file = writeConfig(
    dir,
    `server: { host: 127.0.0.1, port: 2121 }\n` +
      `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n${users('alice').replace(/^/gm, '    ').trimEnd()}\n` +
      `logging: { level: warn, file: ftpdlib.log }\n`,
  );
  const d = await startDaemon(t, ['--config', file, '-p', '0', '-D']);
  t.not(d.port, 2121);
  // "listening" is an info record: it is there because -D overrode the file's level: warn.
  await eventually(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('"msg":"listening"'), 'the log file has the start record');
  t.is(d.stdout(), '', 'nothing on stdout when logging to a file');

  fs.renameSync(log, `${log}.1`);
  process.kill(d.pid, 'SIGUSR2');
  await eventually(() => fs.existsSync(log), 'a new log file appears');
  await eventually(() => fs.readFileSync(log, 'utf8').includes('log file reopened'), 'the new file has the reopen record');

  const c = await login(t, d.port, 'alice', 'pw-alice');
  await c.list();
  await eventually(() => fs.readFileSync(log, 'utf8').includes('"user":"alice"'), "alice's commands are in the new file");
  t.false(fs.readFileSync(`${log}.1`, 'utf8').includes('alice'), 'the moved file got nothing after the reopen');
  for (const line of fs.readFileSync(log, 'utf8').trim().split('\n')) t.notThrows(() => JSON.parse(line), line);
});

/**
 * A folder for a runAs daemon (readable by nobody, with home/), or null when the tests do not run
 * as root: then runAs cannot be tried, which CI (root) counts as a failure.
 */
function runAsDir(t: ExecutionContext): string | null {
  if (process.getuid?.() !== 0) {
    if (process.env.CI === 'true') t.fail('runAs needs the tests to run as root');
    else t.log('not root: not run');
    t.pass();
    return null;
  }
  const dir = tmpDir(t);
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'home'), { mode: 0o755 });
  return dir;
}

/** A config whose daemon drops to nobody:nogroup and serves alice (pw-alice) from dir/home. */
function runAsAliceConfig(dir: string): string {
  return writeConfig(
    dir,
    `server:\n  host: 127.0.0.1\n  port: 0\n  runAs: { user: nobody, group: nogroup }\n` +
      `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n${users('alice').replace(/^/gm, '    ').trimEnd()}\n` +
      `logging: { level: info }\n`,
  );
}

test('runAs: started as root, the daemon listens and then runs as nobody:nogroup', async (t) => {
  const dir = runAsDir(t);
  if (dir === null) return;
  fs.writeFileSync(path.join(dir, 'home', 'a.txt'), 'A');
  const file = runAsAliceConfig(dir);
  const d = await startDaemon(t, ['--config', file]);
  const status = fs.readFileSync(`/proc/${d.pid}/status`, 'utf8');
  const field = (name: string): string[] => new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)![1].trim().split(/\s+/);
  t.deepEqual(field('Uid'), ['65534', '65534', '65534', '65534']);
  t.deepEqual(field('Gid'), ['65534', '65534', '65534', '65534']);
  t.deepEqual(field('Groups'), ['65534'], "root's supplementary groups are gone");
  t.regex(d.stdout(), /privileges dropped/);
  const c = await login(t, d.port, 'alice', 'pw-alice');
  t.deepEqual(
    (await c.list()).map((f) => f.name),
    ['a.txt'],
  );
});

test('runAs: a config file or usersFile the dropped user cannot read stops the start (SIGHUP could not reread it)', async (t) => {
  const dir = runAsDir(t);
  if (dir === null) return;
  const head = `server:\n  host: 127.0.0.1\n  port: 0\n  runAs: { user: nobody, group: nogroup }\nlogging: { level: info }\n`;
  // The config file itself, root's and 0600 (a normal choice for a file holding hashes).
  const file = writeConfig(dir, `${head}authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n${users('alice').replace(/^/gm, '    ').trimEnd()}\n`);
  fs.chmodSync(file, 0o600);
  let r = await runCli(t, ['--config', file]);
  t.is(r.code, 1);
  t.regex(r.stderr, /server\.runAs: user nobody cannot read what SIGHUP rereads/);
  t.regex(r.stderr, /the config file \(.*ftpdlib\.yaml\): EACCES/);
  // Its usersFile, the same.
  fs.chmodSync(file, 0o644);
  fs.writeFileSync(path.join(dir, 'users.yaml'), users('bob'), { mode: 0o600 });
  writeConfig(dir, `${head}authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  usersFile: users.yaml\n`);
  r = await runCli(t, ['--config', file]);
  t.is(r.code, 1);
  t.regex(r.stderr, /authorizer\.usersFile \(.*users\.yaml\): EACCES/);
  // Readable by the group the daemon drops to: it starts.
  fs.chownSync(path.join(dir, 'users.yaml'), 0, 65534);
  fs.chmodSync(path.join(dir, 'users.yaml'), 0o640);
  const d = await startDaemon(t, ['--config', file]);
  await (await login(t, d.port, 'bob', 'pw-bob')).list();
  t.pass();
});

test('runAs: a folder the dropped user may read but not search is refused with 550 before any 150 (LIST, MLSD, NLST), and STAT says 550', async (t) => {
  const dir = runAsDir(t);
  if (dir === null) return;
  // r-- for nobody: its names can be read, no entry in it can be stat'ed.
  const folder = path.join(dir, 'home', 'names-only');
  fs.mkdirSync(folder);
  fs.writeFileSync(path.join(folder, 'a.txt'), 'A');
  fs.chmodSync(folder, 0o744);
  const file = runAsAliceConfig(dir);
  const d = await startDaemon(t, ['--config', file]);
  const c = await loggedIn(d.port, 'alice', 'pw-alice');
  t.teardown(() => c.close());
  for (const verb of ['LIST', 'MLSD', 'NLST']) {
    const data = await c.epsvConnect();
    const r = await c.cmd(`${verb} names-only`);
    t.is(r.code, 550, `${verb}: ${r.code} ${r.text}`);
    data.destroy();
  }
  t.is((await c.cmd('STAT names-only')).code, 550);
  // The session goes on, and a folder it can search lists as before.
  const data = await c.epsvConnect();
  const r = await c.cmd('NLST');
  t.is(r.code, 125, 'the data connection is already open');
  t.is((await readAll(data)).toString(), 'names-only\r\n');
  t.is((await c.read())?.code, 226);
});
