import test from 'ava';
import { FtpServer, VirtualAuthorizer } from '../../src';
import { MemoryTrimmer } from '../../src/ftp/memory-trim';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait until `runs` has `n` entries or 2 s pass (timers only ever fire late on a busy machine). */
async function until(runs: number[], n: number): Promise<void> {
  const deadline = Date.now() + 2000;
  while (runs.length < n && Date.now() < deadline) await sleep(5);
}

/** A trimmer with a fake trim that records when it ran. */
function make(quietMs: number, minIntervalMs: number, result = 1) {
  const runs: number[] = [];
  const reported: number[] = [];
  const started = Date.now();
  const trimmer = new MemoryTrimmer(
    quietMs,
    () => {
      runs.push(Date.now() - started);
      return result;
    },
    (r) => reported.push(r),
    minIntervalMs,
  );
  return { trimmer, runs, reported };
}

// The delays are long next to a timer's lateness on a busy machine: a "not yet" check runs well
// inside the quiet period, and a "has run" check polls.
test('one trim once activity has been quiet for the delay, not before', async (t) => {
  const { trimmer, runs, reported } = make(300, 10);
  t.teardown(() => trimmer.stop());
  trimmer.note();
  await sleep(100);
  trimmer.note(); // pushes the quiet period out again
  const second = Date.now();
  await sleep(150);
  t.deepEqual(runs, [], 'last activity 150 ms ago: not quiet for 300 ms yet');
  await until(runs, 1);
  t.is(runs.length, 1);
  t.true(Date.now() - second >= 295, 'ran a quiet period after the last note, not after the first');
  t.deepEqual(reported, [1], 'the result reaches the callback');
  t.is(trimmer.trims, 1);
  await sleep(400);
  t.is(runs.length, 1, 'nothing noted since: no second trim');
});

test('steady activity defers the trim; the minimum interval spaces trims', async (t) => {
  const { trimmer, runs } = make(300, 1000);
  t.teardown(() => trimmer.stop());
  // a note every 10 ms for 500 ms: never quiet for 300 ms
  const end = Date.now() + 500;
  while (Date.now() < end) {
    trimmer.note();
    await sleep(10);
  }
  t.deepEqual(runs, []);
  await until(runs, 1);
  t.is(runs.length, 1, 'quiet at last: one trim');
  trimmer.note();
  await sleep(450);
  t.is(runs.length, 1, 'quiet again, but within 1 s of the last trim');
  await until(runs, 2);
  t.is(runs.length, 2, 'the second trim runs once the interval has passed');
  t.true(runs[1] - runs[0] >= 995, `trims ${runs[1] - runs[0]} ms apart`);
});

test('stop() cancels a pending trim and ignores later activity', async (t) => {
  const { trimmer, runs } = make(20, 0);
  trimmer.note();
  trimmer.stop();
  trimmer.note();
  await sleep(80);
  t.deepEqual(runs, []);
  t.is(trimmer.trims, 0);
});

/** A trimmer whose heap reducer answers `room` (then `later` on the next calls) and records when it was asked. */
function withHeap(quietMs: number, room: number, settleMs: number, later = -1) {
  const events: string[] = [];
  const reported: Array<[number, number]> = [];
  const trimmer = new MemoryTrimmer(
    quietMs,
    () => {
      events.push('trim');
      return 1;
    },
    (r, _ms, heap) => reported.push([r, heap]),
    0,
    {
      reduce: () => {
        events.push('reduce');
        return events.filter((e) => e === 'reduce').length === 1 ? room : later;
      },
      settleMs,
    },
  );
  return { trimmer, events, reported };
}

test('with room in the heap: asks V8 first, and the malloc trim follows once the collection had time', async (t) => {
  const { trimmer, events, reported } = withHeap(50, 4 << 20, 300);
  t.teardown(() => trimmer.stop());
  trimmer.note();
  const deadline = Date.now() + 2000;
  while (!events.includes('reduce') && Date.now() < deadline) await sleep(5);
  const asked = Date.now();
  t.deepEqual(events, ['reduce'], 'the heap is asked first; the trim waits');
  t.is(trimmer.heapReductions, 1);
  t.is(trimmer.trims, 0);
  while (!events.includes('trim') && Date.now() < deadline + 2000) await sleep(5);
  t.deepEqual(events, ['reduce', 'reduce', 'trim'], 'the room is looked at again (gone now), then the trim');
  t.true(Date.now() - asked >= 290, 'the trim ran the settle time after the heap was asked');
  t.deepEqual(reported, [[1, 4 << 20]], 'the callback gets the trim result and the room the heap reported');
  t.is(trimmer.heapReductions, 1);
});

test('room still there after the settle time: asked once more, then the trim, never a third time', async (t) => {
  const { trimmer, events } = withHeap(20, 4 << 20, 100, 3 << 20);
  t.teardown(() => trimmer.stop());
  trimmer.note();
  const deadline = Date.now() + 3000;
  while (!events.includes('trim') && Date.now() < deadline) await sleep(5);
  t.deepEqual(events, ['reduce', 'reduce', 'trim']);
  await sleep(300);
  t.deepEqual(events, ['reduce', 'reduce', 'trim'], 'nothing noted since: nothing more');
  t.is(trimmer.trims, 1);
  t.is(trimmer.heapReductions, 2);
});

test('too little room in the heap (-1) or no way to ask (-2): the malloc trim runs at once', async (t) => {
  for (const room of [-1, -2]) {
    const { trimmer, events, reported } = withHeap(20, room, 5000);
    trimmer.note();
    const deadline = Date.now() + 2000;
    while (!events.includes('trim') && Date.now() < deadline) await sleep(5);
    trimmer.stop();
    t.deepEqual(events, ['reduce', 'trim'], `room ${room}`);
    t.is(trimmer.heapReductions, 0);
    t.deepEqual(reported, [[1, room]]);
  }
});

test('stop() during the settle time: no trim follows the heap reduction', async (t) => {
  const { trimmer, events } = withHeap(20, 4 << 20, 200);
  trimmer.note();
  const deadline = Date.now() + 2000;
  while (!events.includes('reduce') && Date.now() < deadline) await sleep(5);
  trimmer.stop();
  await sleep(400);
  t.deepEqual(events, ['reduce']);
  t.is(trimmer.trims, 0);
});

for (const bad of [-1, 3601, Number.NaN, '1', null]) {
  test(`memoryTrimDelay ${String(bad)} is refused with a ConfigError naming the option`, (t) => {
    const err = t.throws(() => new FtpServer({ authorizer: new VirtualAuthorizer(), memoryTrimDelay: bad as number }));
    t.is((err as { code?: string }).code, 'FTPD_ERR_CONFIG');
    t.is((err as { key?: string }).key, 'memoryTrimDelay');
  });
}
