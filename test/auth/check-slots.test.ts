// Password checks share a few slots, taken in turn by client: a flood of failed logins from one
// address can neither take the whole libuv pool (file I/O shares it) nor make a login from
// another address wait behind all of its checks.
import * as net from 'node:net';
import test from 'ava';
import { VirtualAuthorizer } from '../../src/auth';
import { inCheckSlot, passwordCheckLoad } from '../../src/auth/hash-slots';
import { LineClient } from '../helpers/line-client';
import { eventually, startServer } from '../helpers/server';

test.serial('slots: never more checks at once than the slots (half the pool: 2), and waiting clients take turns', async (t) => {
  let now = 0;
  let most = 0;
  const order: string[] = [];
  const release: Array<() => void> = [];
  const check = (name: string) => () =>
    new Promise<void>((resolve) => {
      now++;
      most = Math.max(most, now);
      order.push(name);
      release.push(() => {
        now--;
        resolve();
      });
    });
  const all: Array<Promise<void>> = [];
  for (let i = 0; i < 6; i++) all.push(inCheckSlot('192.0.2.1', check(`a${i}`)));
  all.push(inCheckSlot('2001:db8::1', check('b')));
  await eventually(() => order.length === 2, 'two running');
  t.deepEqual(passwordCheckLoad(), { running: 2, waiting: 5 });
  while (release.length) {
    release.shift()!();
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(all);
  t.is(most, 2);
  t.deepEqual(order.slice(0, 4), ['a0', 'a1', 'a2', 'b'], "the other client's check is the first to run after the flood's next one");
  t.deepEqual(passwordCheckLoad(), { running: 0, waiting: 0 });
});

test.serial('over the wire: a login from another address is answered while a flood of failed logins from one still has checks waiting', async (t) => {
  // scrypt at its default cost (16 MiB, tens of ms a check), as users and the unknown name's dummy have.
  const users = new VirtualAuthorizer();
  users.addUser('alice', 'secret', '/tmp');
  const s = await startServer(t, { authorizer: users, authFailedTimeout: 0 });
  const flood: net.Socket[] = [];
  t.teardown(() => flood.forEach((c) => c.destroy()));
  for (let i = 0; i < 60; i++) {
    const c = net.connect(s.port, '127.0.0.1');
    c.on('error', () => {});
    c.resume();
    c.write('USER nobody\r\nPASS wrong\r\n'.repeat(3));
    flood.push(c);
  }
  await eventually(() => passwordCheckLoad().waiting >= 30, `the flood's checks waiting (${passwordCheckLoad().waiting})`, 30_000);
  const alice = await LineClient.open(s.port, '127.0.0.1', '127.0.0.2');
  t.teardown(() => alice.close());
  await alice.login('alice', 'secret');
  const left = passwordCheckLoad().waiting;
  t.true(left >= 10, `alice was let in with ${left} of the flood's checks still waiting (first come, first served she waited for them all)`);
  t.true(passwordCheckLoad().running <= 2);
});
