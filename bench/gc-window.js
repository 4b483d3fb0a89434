'use strict';
// What V8's garbage collector did in a Node server over one measured phase, for bench/run.js's
// "many" (the Node servers' "eld" report carries it). On a machine whose CPU time moves ±15%
// from one minute to the next, these move only when the code does: bytes allocated per file,
// bytes that survived each scavenge (a scavenge's pause grows with them) and bytes it promoted
// to the old generation (which a mark-compact then has to collect).
//
//   const w = gcWindow();  ...  const summary = w.stop();
//
// Node 20's v8.GCProfiler gives the heap's statistics before and after each collection.

const v8 = require('v8');

const median = (a) => {
  if (!a.length) return null;
  const b = [...a].sort((x, y) => x - y);
  const n = b.length;
  return n % 2 ? b[(n - 1) / 2] : (b[n / 2 - 1] + b[n / 2]) / 2;
};

const spaceUsed = (stats, name) => {
  const s = stats.heapSpaceStatistics.find((x) => x.spaceName === name);
  return s ? s.spaceUsedSize : 0;
};

/**
 * Sum up a GCProfiler's `statistics` over a window whose heap held `startUsed` bytes at its
 * start and `endUsed` at its end. Allocated = the growth of the used heap between collections
 * (what each collection found, less what the one before left) plus the growth after the last.
 * Per scavenge: survived = the young generation's bytes after it; promoted = the old
 * generation's growth across it. Times in ms (the profiler's cost is in µs).
 */
function summarize(statistics, startUsed, endUsed) {
  let allocated = 0;
  let prev = startUsed;
  const scav = { ms: [], survived: 0, promoted: 0 };
  let major = 0;
  let totalMs = 0;
  for (const g of statistics) {
    const before = g.beforeGC.heapStatistics.usedHeapSize;
    allocated += Math.max(0, before - prev);
    prev = g.afterGC.heapStatistics.usedHeapSize;
    totalMs += g.cost / 1000;
    if (g.gcType === 'Scavenge' || g.gcType === 'MinorMarkSweep') {
      scav.ms.push(g.cost / 1000);
      scav.survived += spaceUsed(g.afterGC, 'new_space');
      scav.promoted += Math.max(0, spaceUsed(g.afterGC, 'old_space') - spaceUsed(g.beforeGC, 'old_space'));
    } else if (g.gcType === 'MarkSweepCompact') {
      major++;
    }
  }
  allocated += Math.max(0, endUsed - prev);
  const n = scav.ms.length;
  return {
    allocated_bytes: allocated,
    scavenges: n,
    scavenge_ms_p50: median(scav.ms),
    scavenge_ms_max: n ? Math.max(...scav.ms) : null,
    survived_bytes: n ? scav.survived / n : null,
    promoted_bytes: n ? scav.promoted / n : null,
    mark_compacts: major,
    gc_ms: totalMs,
  };
}

/** Start watching; stop() returns summarize()'s figures for the time in between. */
function gcWindow() {
  const p = new v8.GCProfiler();
  const startUsed = v8.getHeapStatistics().used_heap_size;
  p.start();
  return {
    stop() {
      const r = p.stop();
      return summarize(r ? r.statistics : [], startUsed, v8.getHeapStatistics().used_heap_size);
    },
  };
}

/**
 * The thresholds (ms of delay, the monitor's interval taken off) at which a phase's report gives
 * the share of its samples at or under each: 0.5 ms steps to 20 ms, 1 ms steps to 40, then 50,
 * 75 and 100. Rounds' shares weighted by their sample counts pool into one distribution
 * (pooledLoop), where a round's own p99 rests on its 80-300 samples, about its second-longest delay.
 */
const CDF_MS = [];
for (let v = 0.5; v <= 20; v += 0.5) CDF_MS.push(v);
for (let v = 21; v <= 40; v++) CDF_MS.push(v);
CDF_MS.push(50, 75, 100);

/**
 * The share of a histogram's samples (ns) at or under `ns`: the largest percentile whose value
 * is at most `ns`, found by bisection (Histogram.percentile takes (0, 100]), to 1e-4 %, less
 * half a sample (HDR's percentile rounds the count it looks for to the nearest sample, so the
 * bisection ends half a sample past the true share).
 */
function shareAtMost(h, ns) {
  if (h.count === 0) return null;
  if (h.percentile(100) <= ns) return 1;
  if (h.percentile(1e-6) > ns) return 0;
  let lo = 1e-6;
  let hi = 100;
  while (hi - lo > 1e-4) {
    const mid = (lo + hi) / 2;
    if (h.percentile(mid) <= ns) lo = mid;
    else hi = mid;
  }
  return Math.min(1, Math.max(0, lo / 100 - 0.5 / h.count));
}

/** [[ms, share of samples at or under it], ...] over CDF_MS; `offsetNs` is the monitor's interval. */
function loopCdf(h, offsetNs) {
  if (h.count === 0) return [];
  return CDF_MS.map((ms) => [ms, Math.round(shareAtMost(h, ms * 1e6 + offsetNs) * 1e6) / 1e6]);
}

/**
 * Pool the rounds' distributions: `rounds` is [{count, cdf}] (the reports' eld). Returns the
 * samples, the p99 (linear between thresholds; null past the last one) and the share over
 * `limitMs`, or null without a round that has a distribution.
 */
function pooledLoop(rounds, limitMs = 10) {
  const use = rounds.filter((r) => r && r.count > 0 && Array.isArray(r.cdf) && r.cdf.length === CDF_MS.length);
  if (!use.length) return null;
  const n = use.reduce((a, r) => a + r.count, 0);
  const share = CDF_MS.map((_, i) => use.reduce((a, r) => a + r.count * r.cdf[i][1], 0) / n);
  let p99 = null;
  for (let i = 0; i < CDF_MS.length; i++) {
    if (share[i] >= 0.99) {
      const x0 = i ? CDF_MS[i - 1] : 0;
      const y0 = i ? share[i - 1] : 0;
      p99 = share[i] === y0 ? CDF_MS[i] : x0 + ((0.99 - y0) / (share[i] - y0)) * (CDF_MS[i] - x0);
      break;
    }
  }
  const j = CDF_MS.indexOf(limitMs);
  return { rounds: use.length, samples: n, p99, over_limit: j >= 0 ? 1 - share[j] : null, limitMs };
}

/**
 * The "eld" report of the Node servers under benchmark (servers/ftpdlib.ts, servers/ftpsrv.js):
 * each call returns {eld: {p50, p99, max, mean (ms), count, gc}} for the phase since the last
 * call and turns the monitor off if it was on, on if it was off (it starts off). The loop's
 * delay is perf_hooks.monitorEventLoopDelay's at 1 ms, less that interval; `cdf` its distribution
 * (loopCdf, for pooling rounds); `gc` is gcWindow()'s
 * figures for the same phase (absent on the call that turns it on). Off between phases, so that
 * its 1 ms timer does not wake the server in every scenario.
 */
function phaseReporter() {
  const { monitorEventLoopDelay } = require('perf_hooks');
  const eld = monitorEventLoopDelay({ resolution: 1 });
  let on = false;
  let gcw = null;
  return () => {
    const ms = (ns) => Math.max(0, Math.round((ns - 1e6) / 1e4) / 100);
    const gc = gcw ? gcw.stop() : undefined;
    gcw = null;
    const r = { eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), mean: ms(eld.mean), count: eld.count, cdf: loopCdf(eld, 1e6), gc } };
    eld.reset();
    on = !on;
    if (on) {
      eld.enable();
      gcw = gcWindow();
    } else eld.disable();
    return r;
  };
}

module.exports = { gcWindow, summarize, phaseReporter, loopCdf, pooledLoop, CDF_MS };
