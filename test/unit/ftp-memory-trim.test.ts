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

for (const bad of [-1, 3601, Number.NaN, '1', null]) {
  test(`memoryTrimDelay ${String(bad)} is refused with a ConfigError naming the option`, (t) => {
    const err = t.throws(() => new FtpServer({ authorizer: new VirtualAuthorizer(), memoryTrimDelay: bad as number }));
    t.is((err as { code?: string }).code, 'FTPD_ERR_CONFIG');
    t.is((err as { key?: string }).key, 'memoryTrimDelay');
  });
}
