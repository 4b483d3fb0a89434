import test from 'ava';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

// bench/gc-window.js sums up V8's collections over "many" for the benchmark's GC columns, the
// one figure of that scenario that does not move with the machine's load.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const gw = require('../../bench/gc-window.js') as {
  gcWindow: () => { stop: () => Summary };
  summarize: (statistics: Gc[], startUsed: number, endUsed: number) => Summary;
  phaseReporter: () => () => { eld: { p99: number; count: number; cdf: Array<[number, number]>; gc?: Summary } };
  loopCdf: (h: RecordableHistogram, offsetNs: number) => Array<[number, number]>;
  pooledLoop: (rounds: Array<{ count: number; cdf: Array<[number, number]> }>, limitMs?: number) => { rounds: number; samples: number; p99: number | null; over_limit: number | null } | null;
  CDF_MS: number[];
};

interface Summary {
  allocated_bytes: number;
  scavenges: number;
  scavenge_ms_p50: number | null;
  scavenge_ms_max: number | null;
  survived_bytes: number | null;
  promoted_bytes: number | null;
  mark_compacts: number;
  gc_ms: number;
}
interface Stats {
  heapStatistics: { usedHeapSize: number };
  heapSpaceStatistics: { spaceName: string; spaceUsedSize: number }[];
}
interface Gc {
  gcType: string;
  cost: number;
  beforeGC: Stats;
  afterGC: Stats;
}

const stats = (used: number, young: number, old: number): Stats => ({
  heapStatistics: { usedHeapSize: used },
  heapSpaceStatistics: [
    { spaceName: 'new_space', spaceUsedSize: young },
    { spaceName: 'old_space', spaceUsedSize: old },
  ],
});

test('summarize: allocation between collections, and survivors and promotion per scavenge', (t) => {
  const MB = 1 << 20;
  const s = gw.summarize(
    [
      // 10 MB used at the start; 18 when the first scavenge came: 8 allocated; it kept 1 young and promoted 0.5
      { gcType: 'Scavenge', cost: 4000, beforeGC: stats(18 * MB, 8.5 * MB, 9.5 * MB), afterGC: stats(11 * MB, 1 * MB, 10 * MB) },
      // 11 -> 19: 8 more; it kept 2 young and promoted 1.5
      { gcType: 'Scavenge', cost: 6000, beforeGC: stats(19 * MB, 9 * MB, 10 * MB), afterGC: stats(13.5 * MB, 2 * MB, 11.5 * MB) },
      // 13.5 -> 14: 0.5 more
      { gcType: 'MarkSweepCompact', cost: 9000, beforeGC: stats(14 * MB, 2.5 * MB, 11.5 * MB), afterGC: stats(8 * MB, 2.5 * MB, 5.5 * MB) },
    ],
    10 * MB,
    9 * MB, // 8 -> 9 after the last: 1 more
  );
  t.is(s.allocated_bytes, 17.5 * MB);
  t.is(s.scavenges, 2);
  t.is(s.mark_compacts, 1);
  t.is(s.scavenge_ms_p50, 5);
  t.is(s.scavenge_ms_max, 6);
  t.is(s.survived_bytes, 1.5 * MB);
  t.is(s.promoted_bytes, 1 * MB);
  t.is(s.gc_ms, 19);
});

test('summarize: a window without a collection still counts what was allocated', (t) => {
  const s = gw.summarize([], 1000, 5000);
  t.is(s.allocated_bytes, 4000);
  t.is(s.scavenges, 0);
  t.is(s.scavenge_ms_p50, null);
  t.is(s.survived_bytes, null);
});

test('gcWindow: sees what this process allocates and the scavenges it causes', (t) => {
  const w = gw.gcWindow();
  // 65,536 arrays of 256 small integers, none kept: 64 MB even where V8 compresses pointers
  // (4 bytes an element; 8 without), more than any young generation holds.
  let keep = 0;
  for (let i = 0; i < 65536; i++) keep += new Array(256).fill(i).length;
  const s = w.stop();
  t.is(keep, 65536 * 256);
  t.true(s.scavenges >= 1, `${s.scavenges} scavenges`);
  t.true(s.allocated_bytes >= 60 * 1024 * 1024, `${s.allocated_bytes} bytes allocated`);
  t.true(s.survived_bytes !== null && s.survived_bytes < 16 * 1024 * 1024);
});

test('phaseReporter: the first call starts a phase, the second reports its loop delay and collections', async (t) => {
  const report = gw.phaseReporter();
  const first = report();
  t.is(first.eld.gc, undefined);
  let keep = 0;
  for (let i = 0; i < 65536; i++) keep += new Array(256).fill(i).length;
  await new Promise((r) => setTimeout(r, 30)); // a few turns of the loop for the monitor to sample
  const second = report();
  t.is(keep, 65536 * 256);
  t.truthy(second.eld.gc);
  t.true(second.eld.gc!.allocated_bytes >= 60 * 1024 * 1024);
  t.true(second.eld.count > 0, `${second.eld.count} samples`);
  t.is(second.eld.cdf.length, gw.CDF_MS.length);
  t.is(second.eld.cdf[second.eld.cdf.length - 1][1], 1, 'the 30 ms wait had no sample over 100 ms');
  // the next call starts a phase again: no collector figures
  t.is(report().eld.gc, undefined);
});

test('loopCdf: the share of samples at or under each threshold, the monitor interval taken off; pooledLoop weighs rounds by their samples', (t) => {
  const h = createHistogram();
  // the monitor records interval + delay: 1 ms + 2.2-2.4 ms for 197 samples, 1 ms + 15 ms for 3
  for (let i = 0; i < 197; i++) h.record(1e6 + 2.2e6 + i * 1000);
  for (let i = 0; i < 3; i++) h.record(16e6);
  const cdf = gw.loopCdf(h, 1e6);
  const at = (ms: number): number => cdf.find(([m]) => m === ms)![1];
  t.is(at(2), 0);
  t.true(Math.abs(at(2.5) - 197 / 200) < 1e-4, `${at(2.5)}`);
  t.true(Math.abs(at(10) - 197 / 200) < 1e-4, `${at(10)}`);
  t.is(at(16), 1);
  const one = gw.pooledLoop([{ count: 200, cdf }])!;
  t.is(one.samples, 200);
  t.true(Math.abs(one.over_limit! - 0.015) < 1e-4);
  t.true(one.p99! > 10 && one.p99! <= 15.5, `p99 ${one.p99}`);
  // with a round of 800 samples all under 2 ms, 3 slow samples of 1,000: p99 under 2.5 ms
  const quick = gw.CDF_MS.map((ms): [number, number] => [ms, ms < 2 ? 0 : 1]);
  const both = gw.pooledLoop([{ count: 200, cdf }, { count: 800, cdf: quick }])!;
  t.is(both.samples, 1000);
  t.true(Math.abs(both.over_limit! - 0.003) < 1e-4);
  t.true(both.p99! <= 2.5, `p99 ${both.p99}`);
  t.is(gw.pooledLoop([{ count: 0, cdf: [] }]), null);
  t.deepEqual(gw.loopCdf(createHistogram(), 1e6), []);
});
