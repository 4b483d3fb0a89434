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
 * The "eld" report of the Node servers under benchmark (servers/ftpdlib.ts, servers/ftpsrv.js):
 * each call returns {eld: {p50, p99, max, mean (ms), count, gc}} for the phase since the last
 * call and turns the monitor off if it was on, on if it was off (it starts off). The loop's
 * delay is perf_hooks.monitorEventLoopDelay's at 1 ms, less that interval; `gc` is gcWindow()'s
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
    const r = { eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), mean: ms(eld.mean), count: eld.count, gc } };
    eld.reset();
    on = !on;
    if (on) {
      eld.enable();
      gcw = gcWindow();
    } else eld.disable();
    return r;
  };
}

module.exports = { gcWindow, summarize, phaseReporter };
