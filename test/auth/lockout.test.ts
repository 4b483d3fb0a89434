import * as os from 'node:os';
import test from 'ava';
import {
  AuthenticationFailedError,
  AuthorizerUnavailableError,
  MemoryLockoutStore,
  VirtualAuthorizer,
  withLockout,
  type Authorizer,
  type LockoutOptions,
} from '../../src/auth';
import { addressKey } from '../../src/auth/lockout';
import { LineClient } from '../helpers/line-client';
import { startServer } from '../helpers/server';

/** Accepts alice/right; counts the password checks it was asked for. */
function stub(): Authorizer & { checks: number; down: boolean } {
  const a = {
    checks: 0,
    down: false,
    async validateAuthentication(user: string, password: string): Promise<void> {
      a.checks++;
      if (a.down) throw new AuthorizerUnavailableError();
      if (user !== 'alice' || password !== 'right') throw new AuthenticationFailedError();
    },
    getHomeDir: () => '/srv/alice',
    hasPerm: () => true,
    getPerms: () => 'elr',
    getMsgLogin: () => 'hi',
    getMsgQuit: () => 'bye',
  };
  return a;
}

/** A lockout on a fake clock whose sleeps are recorded and advance the clock. */
function harness(opts: LockoutOptions = {}) {
  const inner = stub();
  const clock = { now: 1_000_000 };
  const sleeps: number[] = [];
  const store = new MemoryLockoutStore(opts.maxEntries ?? 10000, 3_600_000);
  const auth = withLockout(inner, {
    clock: () => clock.now,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.now += ms;
    },
    store,
    ...opts,
  });
  const attempt = async (user: string, password: string, address = '192.0.2.1'): Promise<'ok' | 'refused'> => {
    try {
      await auth.validateAuthentication(user, password, { address, port: 1234 });
      return 'ok';
    } catch (err) {
      if (err instanceof AuthenticationFailedError) return 'refused';
      throw err;
    }
  };
  return { inner, clock, sleeps, store, auth, attempt };
}

test('delays grow exponentially from delayBase and stop at delayMax', async (t) => {
  const h = harness({ maxFailures: 100, delayBase: 0.5, delayMax: 3 });
  for (let i = 0; i < 7; i++) t.is(await h.attempt('alice', 'wrong'), 'refused');
  // No wait before the first attempt; then 0.5, 1, 2 s, capped at 3 s.
  t.deepEqual(h.sleeps, [500, 1000, 2000, 3000, 3000, 3000]);
  for (let i = 1; i < h.sleeps.length; i++) t.true(h.sleeps[i] >= h.sleeps[i - 1]);
  // The wait comes before the check, so a correct password after failures waits too.
  t.is(await h.attempt('alice', 'right'), 'ok');
  t.is(h.sleeps[h.sleeps.length - 1], 3000);
});

test('after maxFailures the key is banned: refused without a password check, after the same delay; the ban ends', async (t) => {
  const h = harness({ maxFailures: 3, banSeconds: 900, delayBase: 1, delayMax: 10 });
  for (let i = 0; i < 3; i++) await h.attempt('alice', 'wrong');
  t.is(h.inner.checks, 3);
  const before = h.sleeps.length;
  t.is(await h.attempt('alice', 'right'), 'refused');
  t.is(h.inner.checks, 3, 'the password was not checked');
  t.is(h.sleeps.length, before + 1, 'a banned attempt waits too');
  t.is(h.sleeps[h.sleeps.length - 1], h.auth.delayFor(3));
  // Another address, same user name: the user key is banned as well.
  t.is(await h.attempt('alice', 'right', '198.51.100.9'), 'refused');
  t.is(h.inner.checks, 3);

  h.clock.now += 900_000;
  t.is(await h.attempt('alice', 'right'), 'ok');
  t.is(h.inner.checks, 4);
});

test('attempts sent at once count as they would one after another: no more password checks than maxFailures, then the ban', async (t) => {
  const h = harness({ maxFailures: 3, banSeconds: 900, delayBase: 1, delayMax: 10 });
  // The inner check takes a while, as scrypt does: every attempt is in flight at the same time.
  const slow = h.inner.validateAuthentication.bind(h.inner);
  h.inner.validateAuthentication = async (u, p, c) => {
    await new Promise((r) => setTimeout(r, 20));
    return slow(u, p, c);
  };
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => h.attempt('alice', i === 29 ? 'right' : 'wrong')));
  t.is(h.inner.checks, 3, 'three passwords checked, as three sequential attempts would have');
  t.is(results.filter((r) => r === 'ok').length, 0, 'the last, right, password came after the ban');
  // The checked attempts waited as sequential ones would have: none, then 1 s, then 2 s.
  t.deepEqual(h.sleeps.slice(0, 2).sort((a, b) => a - b), [1000, 2000]);
  t.is(await h.attempt('alice', 'right'), 'refused', 'banned');
});

test('logins at once below maxFailures all go ahead, and a success then clears the failures before it', async (t) => {
  const h = harness({ maxFailures: 5, banSeconds: 900, delayBase: 0, delayMax: 0 });
  // A client opening several connections with the right password at once (FileZilla's transfers).
  const ok = await Promise.all(Array.from({ length: 4 }, () => h.attempt('alice', 'right')));
  t.deepEqual(ok, ['ok', 'ok', 'ok', 'ok']);
  t.is(h.inner.checks, 4);
  // Two wrong at once, then the right one: it resets the counts they left.
  await Promise.all([h.attempt('alice', 'wrong'), h.attempt('alice', 'wrong')]);
  t.is(await h.attempt('alice', 'right'), 'ok');
  t.is(h.store.get('user:alice', h.clock.now), undefined, 'nothing left counted after a success');
});

test('a successful login resets the counts of its address and user name', async (t) => {
  const h = harness({ maxFailures: 3 });
  await h.attempt('alice', 'wrong');
  await h.attempt('alice', 'wrong');
  t.is(await h.attempt('alice', 'right'), 'ok');
  const before = h.sleeps.length;
  t.is(await h.attempt('alice', 'wrong'), 'refused');
  t.is(h.sleeps.length, before, 'no wait: the count started over');
  await h.attempt('alice', 'wrong');
  t.is(await h.attempt('alice', 'right'), 'ok', 'two failures since the reset: not banned');
});

test('failures outside the window are forgotten', async (t) => {
  const h = harness({ maxFailures: 3, window: 60, delayBase: 0 });
  await h.attempt('alice', 'wrong');
  await h.attempt('alice', 'wrong');
  h.clock.now += 61_000;
  await h.attempt('alice', 'wrong');
  t.is(await h.attempt('alice', 'right'), 'ok');
});

test('an unavailable authorizer is passed through and not counted', async (t) => {
  const h = harness({ maxFailures: 2 });
  h.inner.down = true;
  for (let i = 0; i < 4; i++) {
    await t.throwsAsync(h.attempt('alice', 'wrong'), { instanceOf: AuthorizerUnavailableError });
  }
  h.inner.down = false;
  t.deepEqual(h.sleeps, []);
  t.is(await h.attempt('alice', 'right'), 'ok');
});

test("keys: 'address' bans addresses only, so one user's name cannot be locked by others", async (t) => {
  const h = harness({ maxFailures: 2, keys: 'address' });
  await h.attempt('alice', 'wrong', '203.0.113.1');
  await h.attempt('alice', 'wrong', '203.0.113.1');
  t.is(await h.attempt('alice', 'right', '203.0.113.1'), 'refused');
  t.is(await h.attempt('alice', 'right', '203.0.113.2'), 'ok');
});

test('IPv6 clients count by their /64 (ipv6Prefix): a fresh address per guess is no escape; another /64 and IPv4 are apart; ::ffff:a.b.c.d is its IPv4', async (t) => {
  const h = harness({ maxFailures: 3, keys: 'address' });
  await h.attempt('alice', 'wrong', '2001:db8:1:2::1');
  await h.attempt('alice', 'wrong', '2001:db8:1:2:ffff:ffff:ffff:fffe');
  await h.attempt('alice', 'wrong', '2001:0db8:0001:0002:0:0:0:3%eth0');
  t.is(h.inner.checks, 3);
  t.is(await h.attempt('alice', 'right', '2001:db8:1:2:abcd::99'), 'refused', 'the same /64, another address: banned');
  t.is(h.inner.checks, 3, 'without a password check');
  t.is(await h.attempt('alice', 'right', '2001:db8:1:3::1'), 'ok', 'the next /64');
  t.is(await h.attempt('alice', 'right', '192.0.2.1'), 'ok');
  // A mapped IPv4 address is the IPv4 client it is.
  await h.attempt('alice', 'wrong', '::ffff:198.51.100.7');
  await h.attempt('alice', 'wrong', '198.51.100.7');
  await h.attempt('alice', 'wrong', '::ffff:c633:6407');
  t.is(await h.attempt('alice', 'right', '198.51.100.7'), 'refused');
  // ipv6Prefix 128: each address on its own, as before.
  const exact = harness({ maxFailures: 1, keys: 'address', ipv6Prefix: 128 });
  await exact.attempt('alice', 'wrong', '2001:db8::1');
  t.is(await exact.attempt('alice', 'right', '2001:db8::2'), 'ok');
  t.is(await exact.attempt('alice', 'right', '2001:db8::1'), 'refused');
});

test('addressKey: one key per network, whatever the spelling', (t) => {
  t.is(addressKey('2001:db8::1', 64), '2001:db8:0:0:0:0:0:0/64');
  t.is(addressKey('2001:DB8:0:0:1::', 48), '2001:db8:0:0:0:0:0:0/48');
  t.is(addressKey('2001:db8:ab:cd12::', 60), '2001:db8:ab:cd10:0:0:0:0/60');
  t.is(addressKey('::1', 128), '0:0:0:0:0:0:0:1/128');
  t.is(addressKey('64:ff9b::192.0.2.1', 128), '192.0.2.1', 'NAT64: the IPv4 client it carries');
  t.is(addressKey('2001:db8::192.0.2.1', 128), '2001:db8:0:0:0:0:c000:201/128');
  t.is(addressKey('::ffff:10.1.2.3', 64), '10.1.2.3');
  t.is(addressKey('10.1.2.3', 64), '10.1.2.3');
  t.is(addressKey(undefined, 64), 'unknown');
});

test('memory is bounded: cycling user names and addresses keeps at most maxEntries keys', async (t) => {
  const h = harness({ maxFailures: 5000, maxEntries: 50, delayBase: 0 });
  // One address cycling through user names: its own key is touched every time and survives.
  for (let i = 0; i < 1000; i++) await h.attempt(`user${i}`, 'wrong', '192.0.2.66');
  t.true(h.store.size <= 50, `${h.store.size} keys`);
  t.is(h.store.get('addr:192.0.2.66', h.clock.now)?.failures, 1000);
  // Many addresses and names: still bounded.
  for (let i = 0; i < 1000; i++) await h.attempt(`name${i}`, 'wrong', `10.0.${i >> 8}.${i & 255}`);
  t.true(h.store.size <= 50, `${h.store.size} keys`);
});

test('a full store keeps running bans: failures from fresh addresses and names do not push a ban out', async (t) => {
  const h = harness({ maxFailures: 3, banSeconds: 900, maxEntries: 50, delayBase: 0 });
  // alice is banned by failures from three addresses (her user key), then the store fills
  // many times over with one failure each from other names and addresses.
  for (let i = 0; i < 3; i++) await h.attempt('alice', 'wrong', `198.51.100.${i + 1}`);
  const checks = h.inner.checks;
  t.is(await h.attempt('alice', 'right', '198.51.100.9'), 'refused');
  t.is(h.inner.checks, checks, 'banned: no password check');
  h.clock.now += 60_000;
  for (let i = 0; i < 500; i++) await h.attempt(`junk${i}`, 'wrong', `10.1.${i >> 8}.${i & 255}`);
  t.true(h.store.size <= 50, `${h.store.size} keys`);
  t.is(await h.attempt('alice', 'right', '198.51.100.10'), 'refused', 'the ban outlived the spray');
  t.is(h.inner.checks, checks + 500, 'still no password check for alice');
  // Once the ban has run out, the key can go like any other, and alice logs in.
  h.clock.now += 900_000;
  t.is(await h.attempt('alice', 'right', '198.51.100.11'), 'ok');
});

test('a store full of bans still counts a new key: the oldest ban goes, never the key just put', (t) => {
  const store = new MemoryLockoutStore(3, 3_600_000);
  const now = 1_000_000;
  for (const k of ['a', 'b', 'c']) store.ban(k, now + 900_000);
  store.get('a', now);
  const r = store.addFailure('new', now, 600_000);
  t.is(r.failures, 1);
  t.is(store.get('new', now)?.failures, 1, 'the new key is kept');
  t.is(store.get('a', now), undefined, 'the oldest ban went');
  t.truthy(store.get('c', now)?.bannedUntil);
});

test('bans and delays are logged', async (t) => {
  const records: Array<{ level: string; msg?: string; fields: Record<string, unknown> }> = [];
  const at = (level: string) => (fields: object, msg?: string) => records.push({ level, msg, fields: fields as Record<string, unknown> });
  const h = harness({ maxFailures: 2, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } });
  await h.attempt('alice', 'wrong');
  await h.attempt('alice', 'wrong');
  await h.attempt('alice', 'right');
  const bans = records.filter((r) => r.level === 'warn');
  t.deepEqual(bans.map((r) => r.fields.key).sort(), ['addr:192.0.2.1', 'user:alice']);
  t.true(records.some((r) => r.level === 'info' && /banned/.test(r.msg ?? '')));
});

test('options are checked', (t) => {
  const bad = (opts: LockoutOptions, key: string): void => {
    t.is((t.throws(() => withLockout(stub(), opts)) as { key?: string }).key, key);
  };
  bad({ maxFailures: 0 }, 'lockout.maxFailures');
  bad({ maxFailures: 2.5 }, 'lockout.maxFailures');
  bad({ delayMax: -1 }, 'lockout.delayMax');
  bad({ window: 0 }, 'lockout.window');
  bad({ keys: 'user' as never }, 'lockout.keys');
  bad({ ipv6Prefix: 0 }, 'lockout.ipv6Prefix');
  bad({ ipv6Prefix: 129 }, 'lockout.ipv6Prefix');
  bad({ ipv6Prefix: 56.5 }, 'lockout.ipv6Prefix');
});

test('over the wire: after the ban, the right password gets 530 too', async (t) => {
  const inner = new VirtualAuthorizer({ scrypt: { ln: 4, r: 8, p: 1 } });
  inner.addUser('alice', 'right', os.tmpdir());
  const sleeps: number[] = [];
  const auth = withLockout(inner, { maxFailures: 2, sleep: async (ms) => void sleeps.push(ms), keys: 'address' });
  const s = await startServer(t, { authorizer: auth });
  const c = await LineClient.open(s.port);
  for (const pw of ['wrong', 'wrong', 'right']) {
    t.is((await c.cmd('USER alice')).code, 331);
    t.is((await c.cmd(`PASS ${pw}`)).code, 530);
  }
  t.deepEqual(sleeps, [500, 1000], 'waited before the 2nd and the (banned) 3rd attempt');
  c.close();
  t.is(auth.getPerms('alice'), 'elr');
});
