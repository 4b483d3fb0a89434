import test from 'ava';
import { IdleWatch, checkPeriod, type WatchedTransfer } from '../../src/ftp/data/idle-watch';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function entry(limitMs: number): WatchedTransfer & { expired: number } {
  const w = {
    lastMove: Date.now(),
    limitMs,
    expired: 0,
    expire: () => {
      w.expired++;
    },
  };
  return w;
}

test('a transfer with no progress for its limit expires once, and is dropped', async (t) => {
  const watch = new IdleWatch();
  const w = entry(100);
  watch.add(w);
  await sleep(40);
  t.is(w.expired, 0, 'not idle for 100 ms yet');
  const deadline = Date.now() + 2000;
  while (w.expired === 0 && Date.now() < deadline) await sleep(5);
  t.is(w.expired, 1);
  t.is(watch.size, 0);
  await sleep(150);
  t.is(w.expired, 1, 'never called twice');
});

test('progress keeps a transfer alive; another one without progress expires meanwhile', async (t) => {
  const watch = new IdleWatch();
  const moving = entry(100);
  const stuck = entry(100);
  watch.add(moving);
  watch.add(stuck);
  const end = Date.now() + 400;
  while (Date.now() < end) {
    moving.lastMove = Date.now();
    await sleep(10);
  }
  t.is(moving.expired, 0, 'bytes kept moving for 400 ms: never idle');
  t.is(stuck.expired, 1);
  watch.delete(moving);
  await sleep(250);
  t.is(moving.expired, 0, 'deleted: no longer watched');
  t.is(watch.size, 0);
});

test('a small limit added to a watch running with a large one is checked at its own pace', async (t) => {
  const watch = new IdleWatch();
  const slow = entry(60_000);
  watch.add(slow); // looks every 1 s
  const fast = entry(80);
  const added = Date.now();
  watch.add(fast);
  const deadline = Date.now() + 2000;
  while (fast.expired === 0 && Date.now() < deadline) await sleep(5);
  t.is(fast.expired, 1);
  t.true(Date.now() - added < 600, `expired ${Date.now() - added} ms after it was added, not at the 1 s check`);
  watch.delete(slow);
});

test('the check period: a quarter of the limit, between 10 ms and 1 s', (t) => {
  t.is(checkPeriod(20), 10);
  t.is(checkPeriod(400), 100);
  t.is(checkPeriod(300_000), 1000);
});
