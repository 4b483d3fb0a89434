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
  // The trimmer spaces its trims on the monotonic clock: so are they measured (the wall clock
  // of these VMs is slewed now and then, and put two trims 989 ms apart once).
  const started = performance.now();
  const trimmer = new MemoryTrimmer(
    quietMs,
    () => {
      runs.push(performance.now() - started);
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
  t.true(runs[1] - runs[0] >= 995, `trims ${Math.round(runs[1] - runs[0])} ms apart`);
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

/**
 * A trimmer whose malloc trim runs after `quietMs` and whose heap reducer (asked after
 * `heapQuietMs`) answers `room` the first time and `later` afterwards; both record into `events`.
 * The tests keep the two delays far apart (20 and 400 ms): a timer that fires later than the gap
 * finds both due and runs the heap step first, which made four tests fail in one full run of the
 * suite when the gap was 40 ms.
 */
function withHeap(o: { quietMs: number; heapQuietMs: number; room: number; settleMs: number; later?: number; trimResult?: number }) {
  const events: string[] = [];
  const reported: Array<[number, number]> = [];
  const started = Date.now();
  const at: Record<string, number[]> = { trim: [], reduce: [] };
  const trimmer = new MemoryTrimmer(
    o.quietMs,
    () => {
      events.push('trim');
      at.trim.push(Date.now() - started);
      return o.trimResult ?? 1;
    },
    (r, _ms, heap) => reported.push([r, heap]),
    0,
    {
      reduce: () => {
        events.push('reduce');
        at.reduce.push(Date.now() - started);
        return at.reduce.length === 1 ? o.room : (o.later ?? -1);
      },
      settleMs: o.settleMs,
      quietMs: o.heapQuietMs,
    },
  );
  return { trimmer, events, reported, at };
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(5);
}

test('the malloc trim runs at its own short delay; V8 is asked only after the longer one, then the trim again', async (t) => {
  const h = withHeap({ quietMs: 50, heapQuietMs: 500, room: 4 << 20, settleMs: 200 });
  t.teardown(() => h.trimmer.stop());
  h.trimmer.note();
  await waitFor(() => h.events.length >= 1);
  t.deepEqual(h.events, ['trim'], 'the malloc trim first, on its own');
  t.deepEqual(h.reported, [[1, -1]], 'a trim that ends no heap sequence reports -1 for the heap');
  await sleep(200);
  t.deepEqual(h.events, ['trim'], 'V8 not asked before the heap delay');
  await waitFor(() => h.events.length >= 4);
  t.deepEqual(h.events, ['trim', 'reduce', 'reduce', 'trim'], 'asked, looked at again (no room left now), then the trim');
  t.true(h.at.reduce[0] >= 495, `V8 asked ${h.at.reduce[0]} ms after the last activity`);
  t.true(h.at.trim[1] - h.at.reduce[0] >= 195, 'the second trim comes the settle time after the request');
  t.deepEqual(h.reported[1], [1, 4 << 20], 'and reports the room V8 had');
  t.is(h.trimmer.heapReductions, 1);
  t.is(h.trimmer.trims, 2);
  await sleep(700);
  t.is(h.events.length, 4, 'nothing noted since: nothing more');
});

test('room still there after the settle time: asked once more, then the trim, never a third time', async (t) => {
  const h = withHeap({ quietMs: 20, heapQuietMs: 400, room: 4 << 20, settleMs: 100, later: 3 << 20 });
  t.teardown(() => h.trimmer.stop());
  h.trimmer.note();
  await waitFor(() => h.events.length >= 4);
  t.deepEqual(h.events, ['trim', 'reduce', 'reduce', 'trim']);
  await sleep(300);
  t.deepEqual(h.events, ['trim', 'reduce', 'reduce', 'trim'], 'nothing noted since: nothing more');
  t.is(h.trimmer.trims, 2);
  t.is(h.trimmer.heapReductions, 2);
});

test('activity during the settle time ends the heap sequence: no second request and no trim while it lasts', async (t) => {
  const h = withHeap({ quietMs: 50, heapQuietMs: 150, room: 4 << 20, settleMs: 100, later: 3 << 20 });
  t.teardown(() => h.trimmer.stop());
  h.trimmer.note();
  await waitFor(() => h.events.includes('reduce'));
  t.deepEqual(h.events, ['trim', 'reduce']);
  // A burst right after V8 was asked: a note every 10 ms for 400 ms, past the settle time.
  const end = Date.now() + 400;
  while (Date.now() < end) {
    h.trimmer.note();
    await sleep(10);
  }
  t.deepEqual(h.events, ['trim', 'reduce'], 'neither the second request nor the trim ran during the burst');
  // Quiet again: the trim after its delay, a new heap sequence after the heap delay.
  await waitFor(() => h.events.length >= 3);
  t.deepEqual(h.events, ['trim', 'reduce', 'trim']);
  await waitFor(() => h.events.length >= 4);
  t.deepEqual(h.events.slice(0, 4), ['trim', 'reduce', 'trim', 'reduce'], 'a new sequence once quiet for the heap delay');
});

test('too little room (-1): V8 is not asked, the malloc trims go on; no way to ask (-2): the heap step is dropped', async (t) => {
  for (const room of [-1, -2]) {
    const h = withHeap({ quietMs: 20, heapQuietMs: 400, room, settleMs: 5000 });
    h.trimmer.note();
    await waitFor(() => h.events.length >= 2);
    await sleep(100);
    t.deepEqual(h.events, ['trim', 'reduce'], `room ${room}`);
    t.is(h.trimmer.heapReductions, 0);
    h.trimmer.note();
    await waitFor(() => h.events.length >= (room === -1 ? 4 : 3));
    await sleep(100);
    t.deepEqual(h.events, room === -1 ? ['trim', 'reduce', 'trim', 'reduce'] : ['trim', 'reduce', 'trim'], `room ${room}, after more activity`);
    h.trimmer.stop();
  }
});

test('a malloc trim that cannot work (-1, -2) is not tried again; with the heap step gone too the trimmer stops', async (t) => {
  const h = withHeap({ quietMs: 20, heapQuietMs: 400, room: -2, settleMs: 50, trimResult: -1 });
  h.trimmer.note();
  await waitFor(() => h.events.length >= 2);
  await sleep(100);
  t.deepEqual(h.events, ['trim', 'reduce']);
  h.trimmer.note();
  await sleep(200);
  t.deepEqual(h.events, ['trim', 'reduce'], 'neither step is tried again');
  t.deepEqual(h.reported, [[-1, -1]]);
});

test('a timer armed for the heap step is brought forward when a new pause makes the trim due first', async (t) => {
  const h = withHeap({ quietMs: 50, heapQuietMs: 1000, room: -1, settleMs: 50 });
  t.teardown(() => h.trimmer.stop());
  h.trimmer.note();
  await waitFor(() => h.events.length >= 1);
  t.deepEqual(h.events, ['trim']);
  await sleep(100); // the timer now waits for the heap step, ~850 ms away
  const noted = Date.now();
  h.trimmer.note();
  await waitFor(() => h.events.length >= 2, 2000);
  t.deepEqual(h.events, ['trim', 'trim']);
  t.true(Date.now() - noted < 600, `the second trim ran ${Date.now() - noted} ms after the activity, not at the heap step's time`);
});

test('stop() during the settle time: no trim follows the heap reduction', async (t) => {
  const h = withHeap({ quietMs: 20, heapQuietMs: 400, room: 4 << 20, settleMs: 200 });
  h.trimmer.note();
  await waitFor(() => h.events.includes('reduce'));
  h.trimmer.stop();
  await sleep(400);
  t.deepEqual(h.events, ['trim', 'reduce']);
  t.is(h.trimmer.trims, 1);
});

for (const key of ['memoryTrimDelay', 'heapReduceDelay'] as const) {
  for (const bad of [-1, 3601, Number.NaN, '1', null]) {
    test(`${key} ${String(bad)} is refused with a ConfigError naming the option`, (t) => {
      const err = t.throws(() => new FtpServer({ authorizer: new VirtualAuthorizer(), [key]: bad as number }));
      t.is((err as { code?: string }).code, 'FTPD_ERR_CONFIG');
      t.is((err as { key?: string }).key, key);
    });
  }
}
