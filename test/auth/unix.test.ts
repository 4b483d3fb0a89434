/**
 * System users (UnixAuthorizer + AsUserFileSystem) through real clients, with real
 * accounts: the before hook creates throwaway users (useradd -m, chpasswd) and the
 * after hook removes them (userdel -r). Needs root and the ftpdlib_unix addon
 * (npm run build:native with libcrypt-dev installed); skipped otherwise.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { Client, FTPError } from 'basic-ftp';
import { ConfigError, UnixAuthorizer, type UnixAuthorizerOptions } from '../../src';
import { AsUserFileSystem } from '../../src/fs/as-user';
import { shadowRefusal, mostCommonHash } from '../../src/auth/unix';
import { available as nativeAvailable, engineStats } from '../../src/native';
import { unixAddon, unixAddonReason } from '../../src/native/unix';
import { codeOf, fsContract, getFile, putFile } from '../helpers/fs-contract';
import { LineClient } from '../helpers/line-client';
import { startServer, type TestServer } from '../helpers/server';
import { fetch, upload } from '../commands/_support';
import bunyan from 'bunyan';
import { buildFromConfig, loadConfigFile } from '../../src/config/file';
import { LockoutAuthorizer } from '../../src/auth/lockout';

const isRoot = typeof process.geteuid === 'function' && process.geteuid() === 0;
const hasUseradd = ((): boolean => {
  try {
    execFileSync('useradd', ['--help'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return (err as { status?: number }).status !== undefined && (err as { code?: string }).code !== 'ENOENT';
  }
})();
const canRun = isRoot && hasUseradd && unixAddon() !== null;
/** Registers nothing when the suite cannot run (test, test.serial and the hooks alike). */
const noop = (): void => undefined;
const test: TestFn = canRun
  ? anyTest
  : (Object.assign(noop, { serial: noop, before: noop, after: Object.assign(noop, { always: noop }) }) as unknown as TestFn);
if (!canRun) {
  anyTest('system users: cannot run here', (t) => {
    const why = !isRoot ? 'not root' : !hasUseradd ? 'no useradd' : unixAddonReason();
    // CI (root, libcrypt-dev installed by .ci/run) must run them: a missing piece there is a failure.
    if (process.env.CI === 'true' || process.env.FTPDLIB_NATIVE_REQUIRED === '1') t.fail(`system-user tests could not run: ${why}`);
    else t.log(`not run: ${why}`);
    t.pass();
  });
}

interface SysUser {
  name: string;
  password: string;
  uid: number;
  gid: number;
  home: string;
}

const tag = randomBytes(3).toString('hex');
const made: string[] = [];
const users: Record<'alice' | 'bob' | 'locked' | 'noshell' | 'expired' | 'sys' | 'quota', SysUser> = {} as never;

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

function addUser(key: keyof typeof users, opts: { shell?: string; system?: boolean; sha512?: boolean } = {}): SysUser {
  const name = `ftpdt_${tag}_${key}`.slice(0, 32);
  const password = `pw-${randomBytes(6).toString('hex')}`;
  sh('useradd', ['-m', '-s', opts.shell ?? '/bin/bash', ...(opts.system ? ['-r'] : []), name]);
  made.push(name);
  sh('chpasswd', opts.sha512 ? ['-c', 'SHA512'] : [], `${name}:${password}\n`);
  const pw = sh('getent', ['passwd', name]).trim().split(':');
  const u = { name, password, uid: Number(pw[2]), gid: Number(pw[3]), home: pw[5] };
  users[key] = u;
  return u;
}

function shadowHash(name: string): string {
  return sh('getent', ['shadow', name]).split(':')[1];
}

if (canRun) {
  test.before(() => {
    addUser('alice');
    addUser('bob', { sha512: true });
    addUser('locked');
    sh('usermod', ['-L', users.locked.name]);
    addUser('noshell', { shell: '/usr/sbin/nologin' });
    addUser('expired');
    sh('chage', ['-E', '0', users.expired.name]);
    addUser('sys', { system: true });
    addUser('quota');
    const { alice, bob } = users;
    // In alice's home: a file of bob's she may not read, a directory of root's she may not write.
    fs.writeFileSync(path.join(alice.home, 'bobs-secret.txt'), 'SECRET');
    fs.chownSync(path.join(alice.home, 'bobs-secret.txt'), bob.uid, bob.gid);
    fs.chmodSync(path.join(alice.home, 'bobs-secret.txt'), 0o600);
    fs.mkdirSync(path.join(alice.home, 'readonly'), { mode: 0o755 });
    fs.chmodSync(path.join(alice.home, 'readonly'), 0o755);
    fs.writeFileSync(path.join(bob.home, 'public.txt'), 'PUBLIC');
    fs.chownSync(path.join(bob.home, 'public.txt'), bob.uid, bob.gid);
  });

  test.after.always(() => {
    for (const name of made) {
      try {
        sh('userdel', ['-r', name]);
      } catch {
        // userdel complains about a missing mail spool; the user is gone all the same.
      }
    }
  });
}

/** A server whose sessions act as the system users; `opts` go to the authorizer. */
async function serve(t: ExecutionContext, opts: UnixAuthorizerOptions = {}): Promise<{ s: TestServer; auth: UnixAuthorizer }> {
  const auth = new UnixAuthorizer(opts);
  const s = await startServer(t, auth.serverOptions());
  return { s, auth };
}

async function client(t: ExecutionContext, s: TestServer, user: SysUser | { name: string; password: string }): Promise<Client> {
  const c = new Client(10000);
  t.teardown(() => c.close());
  await c.access({ host: s.host, port: s.port, user: user.name, password: user.password });
  return c;
}

/** The reply code a failed basic-ftp call carries. */
async function ftpCode(t: ExecutionContext, p: Promise<unknown>): Promise<number | undefined> {
  const err = await t.throwsAsync(p);
  return err instanceof FTPError ? err.code : undefined;
}

async function loginCode(t: ExecutionContext, s: TestServer, user: string, password: string): Promise<number> {
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  const u = await c.cmd(`USER ${user}`);
  t.is(u.code, 331);
  return (await c.cmd(`PASS ${password}`)).code;
}

function sink(): { stream: Writable; text: () => string; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
    text: () => Buffer.concat(chunks).toString('utf8'),
    bytes: () => Buffer.concat(chunks),
  };
}

test('the test accounts carry the hashes they should: yescrypt by default, sha512-crypt with -c SHA512', (t) => {
  t.regex(shadowHash(users.alice.name), /^\$y\$/);
  t.regex(shadowHash(users.bob.name), /^\$6\$/);
  t.regex(shadowHash(users.locked.name), /^!\$y\$/);
  t.true(users.sys.uid < 1000);
});

test('login: yescrypt and sha512-crypt users log in and land in their passwd home', async (t) => {
  const { s } = await serve(t);
  const a = await client(t, s, users.alice);
  t.is(await a.pwd(), '/');
  await a.uploadFrom(Readable.from([Buffer.from('hi')]), 'login-probe.txt');
  t.true(fs.existsSync(path.join(users.alice.home, 'login-probe.txt')), 'alice is rooted at her home');
  const b = await client(t, s, users.bob);
  const out = sink();
  await b.downloadTo(out.stream, 'public.txt');
  t.is(out.text(), 'PUBLIC', 'bob is rooted at his home');
});

test('login: a wrong password and an unknown user get 530', async (t) => {
  const { s } = await serve(t);
  t.is(await loginCode(t, s, users.alice.name, 'not-the-password'), 530);
  t.is(await loginCode(t, s, users.bob.name, users.alice.password), 530);
  t.is(await loginCode(t, s, `ftpdt_${tag}_nobody`, 'whatever'), 530);
});

test('login: locked, expired and shell-less accounts are refused with the right password', async (t) => {
  const { s } = await serve(t);
  t.is(await loginCode(t, s, users.locked.name, users.locked.password), 530, 'usermod -L');
  t.is(await loginCode(t, s, users.expired.name, users.expired.password), 530, 'chage -E 0');
  t.is(await loginCode(t, s, users.noshell.name, users.noshell.password), 530, '/usr/sbin/nologin is not in /etc/shells');
  // What refused the shell-less user was the shell check: without it, the same login works.
  const relaxed = await serve(t, { requireValidShell: false });
  t.is(await loginCode(t, relaxed.s, users.noshell.name, users.noshell.password), 230);
  t.is(await loginCode(t, relaxed.s, users.locked.name, users.locked.password), 530, 'still locked');
});

test('login: root, system accounts and rejectedUsers are refused; allowedUsers admits only its users', async (t) => {
  const { s } = await serve(t);
  t.is(await loginCode(t, s, 'root', 'anything'), 530);
  t.is(await loginCode(t, s, users.sys.name, users.sys.password), 530, `uid ${users.sys.uid} < 1000`);
  const rejecting = await serve(t, { rejectedUsers: [users.alice.name] });
  t.is(await loginCode(t, rejecting.s, users.alice.name, users.alice.password), 530, 'in rejectedUsers');
  t.is(await loginCode(t, rejecting.s, users.bob.name, users.bob.password), 230);
  const allowing = await serve(t, { allowedUsers: [users.sys.name] });
  t.is(await loginCode(t, allowing.s, users.sys.name, users.sys.password), 230, 'a system account named in allowedUsers');
  t.is(await loginCode(t, allowing.s, users.alice.name, users.alice.password), 530, 'not in allowedUsers');
});

test.serial('refusals take as long as a wrong password (same crypt work)', async (t) => {
  const auth = new UnixAuthorizer();
  const client = { address: '127.0.0.1', port: 1 };
  const cases = {
    wrong: users.alice.name,
    unknown: `ftpdt_${tag}_ghost`,
    locked: users.locked.name,
    root: 'root',
    noshell: users.noshell.name,
  };
  await auth.validateAuthentication(cases.unknown, 'x', client).catch(() => undefined); // makes the dummy hash
  const times: Record<string, number[]> = {};
  // Interleaved rounds, so that whatever else the machine does weighs on every case alike.
  for (let round = 0; round < 7; round++) {
    for (const [what, user] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      await auth.validateAuthentication(user, 'wrong', client).catch(() => undefined);
      (times[what] ??= []).push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  // Ratios within a round (measured back to back), then their median: robust to a busy machine.
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const wrong = median(times.wrong);
  t.log(Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v).toFixed(1)])));
  t.true(wrong > 5, `a yescrypt check costs real time (${wrong} ms)`);
  for (const what of ['unknown', 'locked', 'root', 'noshell']) {
    const ratio = median(times[what].map((ms, i) => ms / times.wrong[i]));
    // Without the dummy check a refusal takes well under a millisecond: a ratio near 0.
    t.true(ratio > 0.4 && ratio < 2.5, `${what}: ${ratio.toFixed(2)}x the time of a wrong password`);
  }
});

test('acting as the user: STOR and MKD create entries owned by the user', async (t) => {
  const { s } = await serve(t);
  const c = await client(t, s, users.alice);
  await c.ensureDir('/made-by-alice');
  await c.uploadFrom(Readable.from([Buffer.from('from alice')]), 'owned.txt');
  const file = fs.statSync(path.join(users.alice.home, 'made-by-alice', 'owned.txt'));
  t.is(file.uid, users.alice.uid);
  t.is(file.gid, users.alice.gid);
  const dir = fs.statSync(path.join(users.alice.home, 'made-by-alice'));
  t.is(dir.uid, users.alice.uid);
  t.is(dir.gid, users.alice.gid);
});

test('type: unix in the config file: the built options log a system user in, and a STOR is owned by that user', async (t) => {
  const { alice } = users;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-unix-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ftpdlib.yaml');
  fs.writeFileSync(
    file,
    [
      'authorizer:',
      '  type: unix',
      `  allowedUsers: [${alice.name}]`,
      '  globalPerm: elradfmw',
      '  msgLogin: Welcome from the config file.',
      'lockout: { maxFailures: 5, delayBase: 0 }',
      '',
    ].join('\n'),
  );
  const built = buildFromConfig(loadConfigFile(file), { logger: bunyan.createLogger({ name: 'test', streams: [] }) });
  t.teardown(() => built.close());
  // Lockout and the reload point are still in the chain; the per-user filesystem came with them.
  t.true(built.options.authorizer instanceof LockoutAuthorizer);
  t.is(typeof built.options.fileSystem, 'function');
  const s = await startServer(t, built.options);
  const c = await client(t, s, alice);
  await c.uploadFrom(Readable.from([Buffer.from('via the config file')]), 'from-config.txt');
  const st = fs.statSync(path.join(alice.home, 'from-config.txt'));
  t.is(st.uid, alice.uid);
  t.is(st.gid, alice.gid);
  t.is(fs.readFileSync(path.join(alice.home, 'from-config.txt'), 'utf8'), 'via the config file');
  // allowedUsers came through too: bob is refused.
  t.is(await loginCode(t, s, users.bob.name, users.bob.password), 530);
});

test('a config reload (SIGHUP) keeps logged-in system users\' letters; a user the new config refuses loses them', async (t) => {
  const { alice, bob } = users;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-unix-reload-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ftpdlib.yaml');
  const write = (allowed: string[], perm: string): void =>
    fs.writeFileSync(file, ['authorizer:', '  type: unix', `  allowedUsers: [${allowed.join(', ')}]`, `  globalPerm: ${perm}`, ''].join('\n'));
  write([alice.name, bob.name], 'elradfmw');
  const built = buildFromConfig(loadConfigFile(file), { logger: bunyan.createLogger({ name: 'test', streams: [] }) });
  t.teardown(() => built.close());
  const auth = built.options.authorizer;
  const client = { address: '127.0.0.1', port: 40000 };
  await auth.validateAuthentication(alice.name, alice.password, client);
  await auth.validateAuthentication(bob.name, bob.password, client);
  t.true(await auth.hasPerm(alice.name, 'w', '/'));
  // The reload narrows the letters and drops bob.
  write([alice.name], 'elr');
  await built.reloadUsers(loadConfigFile(file));
  t.true(await auth.hasPerm(alice.name, 'r', '/'), 'alice keeps a session, with the new letters');
  t.false(await auth.hasPerm(alice.name, 'w', '/'));
  t.is(await auth.getHomeDir(alice.name), alice.home);
  t.false(await auth.hasPerm(bob.name, 'r', '/'), 'bob, no longer allowed, loses every letter');
});

test('acting as the user: a file of another user with mode 600 cannot be RETR\'d, though the server is root', async (t) => {
  const { s } = await serve(t);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(users.alice.name, users.alice.password);
  const list = await fetch(c, 'NLST');
  t.true(list.data.toString().includes('bobs-secret.txt'), 'listed: the directory is hers');
  const r = await fetch(c, 'RETR bobs-secret.txt');
  t.is(r.first.code, 550);
  t.is(r.data.length, 0);
});

test('acting as the user: MKD, STOR and RNTO into a directory the user cannot write get 550', async (t) => {
  const { s } = await serve(t);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(users.alice.name, users.alice.password);
  t.is((await c.cmd('MKD readonly/sub')).code, 550);
  t.is((await upload(c, 'STOR readonly/file.txt', 'x')).first.code, 550);
  t.is((await upload(c, 'STOR mv.txt', 'x')).final?.code, 226);
  t.is((await c.cmd('RNFR mv.txt')).code, 350);
  t.is((await c.cmd('RNTO readonly/mv.txt')).code, 550);
  t.false(fs.existsSync(path.join(users.alice.home, 'readonly', 'sub')));
  t.false(fs.existsSync(path.join(users.alice.home, 'readonly', 'file.txt')));
  t.is((await c.cmd('MKD fine')).code, 257, 'her own directory takes it');
});

test.serial('acting as the user: RETR and STOR still take the zero-copy engine', async (t) => {
  if (!nativeAvailable) {
    t.log('native engine not built: nothing to prove');
    t.pass();
    return;
  }
  const { s } = await serve(t);
  const c = await client(t, s, users.alice);
  const body = randomBytes(1024 * 1024 + 1);
  const before = engineStats();
  await c.uploadFrom(Readable.from([body]), 'big.bin');
  const out = sink();
  await c.downloadTo(out.stream, 'big.bin');
  const after = engineStats();
  t.true(out.bytes().equals(body));
  t.is(after.jobs - before.jobs, 2, 'both transfers ran in the engine');
  const records = s.records.filter((r) => r.msg === 'transfer');
  t.deepEqual(
    records.map((r) => r.engine !== 'stream'),
    [true, true],
    `transfer log: ${records.map((r) => String(r.engine)).join(', ')}`,
  );
  t.is(fs.statSync(path.join(users.alice.home, 'big.bin')).uid, users.alice.uid);
});

test('anonymous maps to a system user, read-only, acting as that user', async (t) => {
  const { s } = await serve(t, { anonymousUser: users.bob.name });
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login('anonymous', 'guest@example.com');
  const r = await fetch(c, 'RETR public.txt');
  t.is(r.data.toString(), 'PUBLIC', "in bob's home");
  t.is((await upload(c, 'STOR new.txt', 'x')).first.code, 550, 'no write letters');
  t.is((await c.cmd('MKD d')).code, 550);
  const none = await serve(t);
  t.is(await loginCode(t, none.s, 'anonymous', 'x'), 530, 'no anonymousUser, no anonymous');
});

test('limits.maxSessions applies to every system user: the second login of one gets 530, another user still logs in', async (t) => {
  const { s, auth } = await serve(t, { limits: { maxSessions: 1 } });
  const first = await LineClient.open(s.port);
  t.teardown(() => first.close());
  await first.login(users.alice.name, users.alice.password);
  t.deepEqual(auth.getLimits(users.alice.name), { maxSessions: 1 });
  const second = await LineClient.open(s.port);
  t.teardown(() => second.close());
  t.is((await second.cmd(`USER ${users.alice.name}`)).code, 331);
  const refused = await second.cmd(`PASS ${users.alice.password}`);
  t.is(refused.code, 530);
  t.is(refused.text, 'Too many sessions for this user.');
  t.is((await second.cmd('NOOP')).code, 200, 'the connection stays');
  t.is(await loginCode(t, s, users.bob.name, users.bob.password), 230, 'counted per user');
  t.is((await first.cmd('QUIT')).code, 221);
  await first.whenClosed();
  await second.login(users.alice.name, users.alice.password);
  t.is((await second.cmd('PWD')).code, 257);
});

test('userLimits.quotaBytes for one system user: the STOR crossing it gets 552 and keeps what fits', async (t) => {
  const { quota } = users;
  // What the home holds already (the skeleton's dotfiles) counts against the quota.
  let used = 0;
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isFile()) used += fs.lstatSync(p).size;
      else if (e.isDirectory()) walk(p);
    }
  };
  walk(quota.home);
  const { s, auth } = await serve(t, { limits: { maxSessions: 5 }, userLimits: { [quota.name]: { quotaBytes: used + 100 } } });
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(quota.name, quota.password);
  t.deepEqual(auth.getLimits(quota.name), { quotaBytes: used + 100 }, 'userLimits replace limits');
  const r = await upload(c, 'STOR over.bin', randomBytes(1000));
  t.true([125, 150].includes(r.first.code), String(r.first.code));
  t.is(r.final?.code, 552);
  t.is(r.final?.text, 'Quota exceeded.');
  const made = fs.statSync(path.join(quota.home, 'over.bin'));
  t.is(made.size, 100);
  t.is(made.uid, quota.uid, 'written as the user');
  t.is((await upload(c, 'STOR more.bin', 'x')).first.code, 552, 'at the quota: refused before any 150');
  t.false(fs.existsSync(path.join(quota.home, 'more.bin')));
});

test('construction: ConfigError for bad options and for a server not running as root', (t) => {
  const code = (fn: () => unknown): string | undefined => (t.throws(fn) as { code?: string } | undefined)?.code;
  t.is(code(() => new UnixAuthorizer({ allowedUsers: ['root'], rejectedUsers: ['root'] })), 'FTPD_ERR_CONFIG');
  t.is(code(() => new UnixAuthorizer({ allowedUsers: [`ftpdt_${tag}_ghost`] })), 'FTPD_ERR_CONFIG');
  t.is(code(() => new UnixAuthorizer({ allowedUsers: [users.noshell.name] })), 'FTPD_ERR_CONFIG', 'allowed user without a valid shell');
  t.is(code(() => new UnixAuthorizer({ anonymousUser: 'root' })), 'FTPD_ERR_CONFIG');
  t.is(code(() => new UnixAuthorizer({ globalPerm: 'elrX' })), 'FTPD_ERR_CONFIG');
  const keyOf = (opts: unknown): string | undefined => (t.throws(() => new UnixAuthorizer(opts as UnixAuthorizerOptions), { instanceOf: ConfigError }) as ConfigError).key;
  t.is(keyOf({ limits: { maxSessions: -1 } }), 'limits.maxSessions');
  t.is(keyOf({ userLimits: { [users.alice.name]: { quota: 1 } } }), `userLimits.${users.alice.name}.quota`);
  t.is(keyOf({ userLimits: [] }), 'userLimits');
  const real = process.geteuid;
  process.geteuid = () => 1000;
  try {
    const err = t.throws(() => new UnixAuthorizer(), { instanceOf: ConfigError });
    t.regex(err?.message ?? '', /root/);
  } finally {
    process.geteuid = real;
  }
});

test('shadowRefusal follows pam_unix', (t) => {
  const day = 20000;
  const now = day * 86_400_000 + 1000;
  const base = { hash: '$y$x', lastChange: day - 10, min: 0, max: 99999, warn: 7, inactive: -1, expire: -1 };
  t.is(shadowRefusal(base, now), undefined);
  t.is(shadowRefusal({ ...base, expire: 0 }, now), 'account expired');
  t.is(shadowRefusal({ ...base, expire: day }, now), 'account expired');
  t.is(shadowRefusal({ ...base, expire: day + 1 }, now), undefined);
  t.is(shadowRefusal({ ...base, lastChange: 0 }, now), 'password must be changed');
  t.is(shadowRefusal({ ...base, max: 5 }, now), 'password expired');
  t.is(shadowRefusal({ ...base, max: 5, inactive: 2 }, now), 'account inactive');
  t.is(shadowRefusal({ ...base, max: 10 }, now), undefined, 'expires at the end of the day');
  t.is(shadowRefusal({ ...base, lastChange: -1, max: 5 }, now), undefined, 'no aging without a last change');
});

test('mostCommonHash picks the scheme and cost most users have', (t) => {
  const text = [
    'root:*:1:0:99999:7:::',
    'a:$y$j9T$saltA$hashA:1:0:99999:7:::',
    'b:$6$saltB$hashB:1:0:99999:7:::',
    'c:$y$j9T$saltC$hashC:1:0:99999:7:::',
    'd:!$6$saltD$hashD:1:0:99999:7:::',
    'e:$6$rounds=9000$saltE$hashE:1:0:99999:7:::',
  ].join('\n');
  t.is(mostCommonHash(text), '$y$j9T$saltA$hashA');
  t.is(mostCommonHash('root:*:1::::::\n'), undefined);
});

// The FileSystem contract, with every call made as alice in a sandbox she owns.
async function aliceSandbox(t: ExecutionContext): Promise<{ root: string; outside: string }> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-asuser-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(root);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'SECRET');
  for (const p of [base, root, outside, path.join(outside, 'secret.txt')]) fs.chownSync(p, users.alice.uid, users.alice.gid);
  return { root, outside };
}

function asAlice(root: string): AsUserFileSystem {
  return new AsUserFileSystem(root, { uid: users.alice.uid, gid: users.alice.gid, groups: [users.alice.gid] });
}

if (canRun) fsContract(test, 'as-user', async (t) => asAlice((await aliceSandbox(t)).root));

test('as-user: symlinks out of the root are refused like LocalFileSystem does, inside ones followed', async (t) => {
  const { root, outside } = await aliceSandbox(t);
  const fsys = asAlice(root);
  fs.symlinkSync(outside, path.join(root, 'out'));
  fs.symlinkSync(path.join(root, 'in.txt'), path.join(root, 'abs-in'));
  fs.writeFileSync(path.join(root, 'in.txt'), 'IN');
  t.is(await codeOf(t, fsys.stat('/out/secret.txt')), 'FTPD_ERR_JAIL');
  t.is(await codeOf(t, fsys.openRead('/out/secret.txt', 0)), 'FTPD_ERR_JAIL');
  t.is(await codeOf(t, fsys.openWrite('/out/new.txt', {})), 'FTPD_ERR_JAIL');
  t.is((await getFile(fsys, '/abs-in')).toString(), 'IN');
  t.is((await fsys.lstat('/out')).kind, 'symlink');
  await fsys.unlink('/out');
  t.true(fs.existsSync(path.join(outside, 'secret.txt')));
});

test('as-user: a folder swapped for an outside symlink between the check and the call: nothing outside is written, made or removed', async (t) => {
  const ops: Array<[string, (f: AsUserFileSystem) => Promise<unknown>]> = [
    ['STOR a new file', (f) => putFile(f, '/d/new.txt', 'PWNED')],
    ['MKD', (f) => f.mkdir('/d/made')],
    ['DELE', (f) => f.unlink('/d/secret.txt')],
    ['SITE CHMOD', (f) => f.chmod('/d/secret.txt', 0o666)],
  ];
  for (const [name, op] of ops) {
    const { root, outside } = await aliceSandbox(t);
    fs.mkdirSync(path.join(root, 'd'));
    fs.writeFileSync(path.join(root, 'd', 'secret.txt'), 'inside');
    fs.chownSync(path.join(root, 'd'), users.alice.uid, users.alice.gid);
    fs.chownSync(path.join(root, 'd', 'secret.txt'), users.alice.uid, users.alice.gid);
    fs.chmodSync(path.join(outside, 'secret.txt'), 0o600);
    const fsys = asAlice(root);
    // The swap right after the jail's check (follow or entry), as an FTP client racing RNFR/RNTO could.
    const jail = (fsys as unknown as { jail: { follow: (p: string) => Promise<unknown>; entry: (p: string, s: string) => Promise<unknown> } }).jail;
    let swapped = false;
    const swap = async <T>(v: T): Promise<T> => {
      if (!swapped) {
        swapped = true;
        fs.renameSync(path.join(root, 'd'), path.join(root, 'd-moved'));
        fs.symlinkSync(outside, path.join(root, 'd'));
      }
      return v;
    };
    const follow = jail.follow.bind(jail);
    const entry = jail.entry.bind(jail);
    jail.follow = async (p) => swap(await follow(p));
    jail.entry = async (p, s) => swap(await entry(p, s));
    const code = await op(fsys).then(() => 'done', (err: { code?: string }) => String(err.code));
    t.true(swapped, name);
    t.true(code === 'FTPD_ERR_JAIL' || code === 'ENOENT', `${name}: ${code}`);
    t.deepEqual(fs.readdirSync(outside), ['secret.txt'], name);
    t.is(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8'), 'SECRET', name);
    t.is(fs.statSync(path.join(outside, 'secret.txt')).mode & 0o777, 0o600, name);
  }
});

test('as-user: the pool threads go back to root after acting as the user', async (t) => {
  const { root } = await aliceSandbox(t);
  const fsys = asAlice(root);
  await Promise.all(Array.from({ length: 40 }, (_, i) => putFile(fsys, `/f${i}.txt`, `n${i}`)));
  for (let i = 0; i < 40; i++) t.is(fs.statSync(path.join(root, `f${i}.txt`)).uid, users.alice.uid);
  // Node's own fs calls run on the same pool: they must still be root's.
  const mine = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-root-'));
  t.teardown(() => fs.rmSync(mine, { recursive: true, force: true }));
  await Promise.all([
    ...Array.from({ length: 40 }, (_, i) => fs.promises.writeFile(path.join(mine, `r${i}`), 'r')),
    ...Array.from({ length: 40 }, (_, i) => fsys.stat(`/f${i}.txt`)),
  ]);
  for (let i = 0; i < 40; i++) t.is(fs.statSync(path.join(mine, `r${i}`)).uid, 0);
  const secret = path.join(mine, 'root-only');
  fs.writeFileSync(secret, 'x', { mode: 0o600 });
  fs.chmodSync(mine, 0o700);
  t.is((await fs.promises.readFile(secret, 'utf8')), 'x', 'root still reads its own 0600 files');
  t.is(await codeOf(t, new AsUserFileSystem(mine, { uid: users.alice.uid, gid: users.alice.gid }).stat('/root-only')), 'EACCES');
});
