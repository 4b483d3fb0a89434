import test from 'ava';
import { IdleList, type IdleNode } from '../../src/ftp/idle-list';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Node = IdleNode & { name: string };
const node = (name: string): Node => ({ name, idlePrev: null, idleNext: null, idleAt: -1 });

/** A list whose expiries are recorded in order, with the time each came after `t0`. */
function recorder(ms: number): { list: IdleList<Node>; expired: Array<{ name: string; at: number }>; t0: number } {
  const expired: Array<{ name: string; at: number }> = [];
  const t0 = Date.now();
  const list = new IdleList<Node>(ms, (n) => expired.push({ name: n.name, at: Date.now() - t0 }));
  return { list, expired, t0 };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(5);
}

test('nodes expire once each, in the order they were last touched, not before their time', async (t) => {
  const { list, expired } = recorder(120);
  const a = node('a');
  const b = node('b');
  const c = node('c');
  list.touch(a);
  await sleep(30);
  list.touch(b);
  list.touch(c);
  list.touch(a); // a is now the last touched
  t.is(list.size, 3);
  await until(() => expired.length === 3);
  t.deepEqual(
    expired.map((e) => e.name),
    ['b', 'c', 'a'],
  );
  t.true(expired[0].at >= 145, `b expired at ${expired[0].at} ms, touched at ~30 ms with 120 ms to wait`);
  t.is(list.size, 0);
  t.is(a.idleAt, -1, 'an expired node is out of the list');
  await sleep(150);
  t.is(expired.length, 3, 'never expired twice');
});

test('touching a node again and again keeps it; another one expires meanwhile', async (t) => {
  const { list, expired } = recorder(100);
  const busy = node('busy');
  const quiet = node('quiet');
  list.touch(busy);
  list.touch(quiet);
  const end = Date.now() + 400;
  while (Date.now() < end) {
    list.touch(busy);
    await sleep(20);
  }
  t.deepEqual(
    expired.map((e) => e.name),
    ['quiet'],
  );
  await until(() => expired.length === 2);
  t.deepEqual(
    expired.map((e) => e.name),
    ['quiet', 'busy'],
  );
});

test('a removed node never expires; removing twice, or a node never added, is harmless', async (t) => {
  const { list, expired } = recorder(60);
  const a = node('a');
  const b = node('b');
  list.touch(a);
  list.touch(b);
  list.remove(a);
  list.remove(a);
  list.remove(node('stranger'));
  t.is(list.size, 1);
  await until(() => expired.length === 1);
  await sleep(100);
  t.deepEqual(
    expired.map((e) => e.name),
    ['b'],
  );
  // A node touched again after it expired is back in the list.
  list.touch(b);
  await until(() => expired.length === 2);
  t.deepEqual(
    expired.map((e) => e.name),
    ['b', 'b'],
  );
});

test('an expiry that touches another node arms the timer again for it', async (t) => {
  const expired: string[] = [];
  const later = node('later');
  const list: IdleList<Node> = new IdleList<Node>(50, (n) => {
    expired.push(n.name);
    if (n.name === 'first') list.touch(later);
  });
  list.touch(node('first'));
  await until(() => expired.length === 2);
  t.deepEqual(expired, ['first', 'later']);
});

test('clear() forgets every node and stops the timer', async (t) => {
  const { list, expired } = recorder(40);
  const a = node('a');
  list.touch(a);
  list.touch(node('b'));
  list.clear();
  t.is(list.size, 0);
  t.is(a.idleAt, -1);
  await sleep(120);
  t.deepEqual(expired, []);
});
