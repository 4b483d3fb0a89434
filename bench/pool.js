#!/usr/bin/env node
'use strict';
// Reads several runs of bench/run.js together (their --json files) and prints, per scenario,
// every server's rounds pooled across the runs: how many, the median and the quartiles, the
// ratio of ftpdlib's pooled median to the best peer's, and in how many rounds ftpdlib beat that
// peer's round of the same run and number (the two ran a few seconds apart).
//
//   node bench/pool.js [--all-rounds] [--by-predecessor] .bench/final*.json
//
// --by-predecessor adds, per scenario, each server's median round grouped by the server whose
// turn came right before it (the `after` that runs since the twentieth session record; older
// runs have none and are not in that table): what one turn leaves for the next shows there.
//
// One run's ratio rests on 3 or 5 rounds per server, and on these shared 2-vCPU machines one
// server's 2 GiB downloads move 1,500-4,500 MB/s from one round to the next; pooling many runs
// is how a gap of 10% shows, or does not.
//
// Pool runs of the same code: the tool cannot tell one version of ftpdlib from another.
//
// Left out, and said so: runs whose sizes differ from the first file's (the figures would not
// be comparable), FTPS scenarios measured with another client than most runs used, and, in a
// transfer scenario of a run made before the benchmark had the uncounted first transfer
// (`firstUnmeasured`, no "warmup" entry for it), round 1: the run's first 2 GiB transfer of a
// kind was slow whoever made it, and round 1 always went to ftpdlib (src/native/bench/RESULTS.md,
// "The run's first transfer of a kind"). --all-rounds keeps those rounds.
//
// Beside the ratio it prints a 90% interval for it, from resampling whole runs (a run's rounds
// share the machine's state of that half hour, so they are not independent draws; resampling
// rounds alone would give too narrow an interval): 2,000 times, as many runs as were pooled
// are drawn with replacement, their rounds pooled, and the ratio of the two medians taken, the
// peer staying the one that is best over all runs. An interval that holds 1 means the runs
// cannot tell the two apart. It needs at least 3 runs with both servers; the draws come from
// a fixed seed, so the same files give the same interval.
const fs = require('fs');
const zlib = require('zlib');
const { num: fmt, table } = require('./format.js');
const { pooledLoop } = require('./gc-window.js');

const SCENARIOS = [
  { key: 'idle', metric: 'kib_per_session', unit: 'KiB/session', lower: true, digits: 1 },
  { key: 'retr', metric: 'mbps', unit: 'MB/s', transfer: true },
  { key: 'stor', metric: 'mbps', unit: 'MB/s', transfer: true },
  { key: 'many', metric: 'files_per_s', unit: 'files/s', loop: true },
  { key: 'many-event', metric: 'files_per_s', unit: 'files/s', loop: true },
  { key: 'logins', metric: 'logins_per_s', unit: 'logins/s' },
  { key: 'tls-retr', metric: 'mbps', unit: 'MB/s', transfer: true, tls: true },
  { key: 'tls-stor', metric: 'mbps', unit: 'MB/s', transfer: true, tls: true },
];
const OURS = { plain: 'ftpdlib-sendfile', tls: 'ftpdlib-tls' };

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

/** The FTPS client a run used, as its JSON records it. */
function tlsClientOf(run) {
  const c = run.tls_client;
  if (!c) return null;
  return c.ftpbench ? 'ftpbench --tls' : c.curl ? 'curl' : 'other';
}

/**
 * Under which congestion control ftpdlib's downloads of scenario `key` ran. run.js records it
 * since final64; earlier runs had no choice: the machine's default, as the peers.
 * - Big downloads (retr, tls-retr): 'auto' on a BBR machine has sent them under CUBIC since then.
 * - The 1 MiB downloads of many and many-event: under the machine's default until 'auto' set
 *   CUBIC on loopback listeners (the thirty-fourth session; run.js records `loopback_listeners`).
 */
function congestionOf(run, key = 'retr') {
  const c = run.congestion;
  const bbr = !!c && String(c.system).startsWith('bbr');
  if (!c || c.ftpdlib === 'system' || (c.ftpdlib === 'auto' && !bbr)) return "the machine's default, as the peers";
  if (c.ftpdlib === 'auto' && SMALL_DOWNLOADS.has(key)) {
    return c.loopback_listeners ? `dataCongestionControl auto on a ${c.system} machine, CUBIC from the start on loopback` : "the machine's default, as the peers";
  }
  return `dataCongestionControl ${c.ftpdlib} on a ${c.system} machine`;
}

/**
 * Where the servers ran against the client (run.js records it since the thirty-third session;
 * earlier runs: every server in the client's scheduling group, on all cores, except the --pin
 * runs of the sixteenth session, made before this was recorded).
 */
function placementOf(run) {
  const p = run.placement;
  const parts = [p && p.pin ? 'pinned apart from the client' : null, p && p.own_sessions ? 'each in a session of its own' : 'in the client\'s scheduling group'];
  return parts.filter(Boolean).join(', ');
}

/** The scenarios whose figures move with ftpdlib's dataCongestionControl: its downloads. */
const SMALL_DOWNLOADS = new Set(['many', 'many-event']);
const CONGESTION_SCENARIOS = new Set(['retr', 'tls-retr', ...SMALL_DOWNLOADS]);

/**
 * The congestion control most of the runs that share `ref`'s sizes, placement and FTPS client
 * gave ftpdlib's downloads of `sc` (null for scenarios it does not move): the regime pooled.
 */
function congestionRegime(runs, sc, ref, refTls) {
  if (!CONGESTION_SCENARIOS.has(sc.key)) return null;
  const regimes = runs
    .filter(
      (r) =>
        r.scenarios &&
        r.scenarios.includes(sc.key) &&
        JSON.stringify(r.config) === JSON.stringify(ref.config) &&
        placementOf(r) === placementOf(ref) &&
        (!sc.tls || tlsClientOf(r) === refTls),
    )
    .map((r) => congestionOf(r, sc.key));
  return regimes.length ? [...regimes].sort((a, b) => regimes.filter((c) => c === b).length - regimes.filter((c) => c === a).length)[0] : null;
}

/** Whether the run made one uncounted transfer before round 1 of this scenario. */
function hadFirstUnmeasured(run, key) {
  return run.servers.some((s) => s.warmup && Array.isArray(s.warmup[key]));
}

/**
 * Pools the rounds of `runs` (objects parsed from run.js --json files, each with a `file`
 * name) for one scenario. Returns { servers: Map name -> values[], paired: Map name -> Map
 * `${file}#${round}` -> value, skipped: [reasons], used: [files] }.
 */
function poolScenario(runs, sc, { allRounds = false } = {}) {
  const servers = new Map();
  const paired = new Map();
  const byAfter = new Map();
  const skipped = [];
  const used = [];
  // The first run that has the scenario sets the sizes and the placement the others must share.
  const ref = runs.find((r) => r.scenarios && r.scenarios.includes(sc.key)) || runs[0];
  // FTPS figures depend on the client: pool the runs of the client most of them used
  const clients = runs.filter((r) => r.scenarios && r.scenarios.includes(sc.key)).map(tlsClientOf).filter(Boolean);
  const refTls = sc.tls && clients.length ? clients.sort((a, b) => clients.filter((c) => c === b).length - clients.filter((c) => c === a).length)[0] : null;
  // Downloads: pool the runs of the congestion control most of the runs kept otherwise gave ftpdlib
  const refCc = congestionRegime(runs, sc, ref, refTls);
  for (const run of runs) {
    if (!run.scenarios || !run.scenarios.includes(sc.key)) continue;
    if (JSON.stringify(run.config) !== JSON.stringify(ref.config)) {
      skipped.push(`${run.file}: other sizes than ${ref.file}`);
      continue;
    }
    if (sc.tls && tlsClientOf(run) !== refTls) {
      skipped.push(`${run.file}: FTPS client ${tlsClientOf(run)}, not ${refTls}`);
      continue;
    }
    if (placementOf(run) !== placementOf(ref)) {
      skipped.push(`${run.file}: servers ${placementOf(run)}, not ${placementOf(ref)} as in ${ref.file}`);
      continue;
    }
    if (refCc !== null && congestionOf(run, sc.key) !== refCc) {
      skipped.push(`${run.file}: ftpdlib's downloads under ${congestionOf(run, sc.key)}, not ${refCc}`);
      continue;
    }
    const dropFirst = sc.transfer && !allRounds && !hadFirstUnmeasured(run, sc.key);
    used.push(dropFirst ? `${run.file} (from round 2)` : run.file);
    for (const s of run.servers) {
      if (!!s.tls !== !!sc.tls || s.skipped) continue;
      for (const r of (s.rounds && s.rounds[sc.key]) || []) {
        if (!r || r.error || !(r[sc.metric] > 0)) continue;
        if (dropFirst && r.round === 1) continue;
        if (!servers.has(s.name)) servers.set(s.name, []);
        servers.get(s.name).push(r[sc.metric]);
        if (!paired.has(s.name)) paired.set(s.name, new Map());
        paired.get(s.name).set(`${run.file}#${r.round}`, r[sc.metric]);
        if (typeof r.after === 'string') {
          if (!byAfter.has(s.name)) byAfter.set(s.name, new Map());
          const m = byAfter.get(s.name);
          if (!m.has(r.after)) m.set(r.after, []);
          m.get(r.after).push(r[sc.metric]);
        }
      }
    }
  }
  return { servers, paired, byAfter, skipped, used };
}

/**
 * The other target for "many": the event loop's delay, p99 under `limitMs`, in each round
 * of ftpdlib's (bench/run.js records `eld.p99` per round). Every round of the runs that have the
 * scenario counts, whatever their sizes: the target is per round.
 */
const LOOP_LIMIT_MS = 10;
function loopRounds(runs, sc, limitMs = LOOP_LIMIT_MS) {
  const p99 = [];
  const dists = [];
  // As poolScenario: the placement of the first run with the scenario, and the congestion
  // control most runs gave ftpdlib's downloads (runs of other sizes count here: the target is per round).
  const ref = runs.find((r) => r.scenarios && r.scenarios.includes(sc.key)) || runs[0];
  // (Given the reference's config, every run counts in the vote whatever its sizes.)
  const refCc = congestionRegime(runs.map((r) => ({ ...r, config: ref.config })), sc, ref, null);
  for (const run of runs) {
    if (placementOf(run) !== placementOf(ref)) continue;
    if (refCc !== null && congestionOf(run, sc.key) !== refCc) continue;
    const mine = run.servers.find((s) => s.name === OURS.plain);
    for (const r of (mine && mine.rounds && mine.rounds[sc.key]) || []) {
      if (!r || r.error || !r.eld || !(r.eld.p99 >= 0)) continue;
      p99.push(r.eld.p99);
      dists.push(r.eld);
    }
  }
  p99.sort((a, b) => a - b);
  // Every sample of these rounds in one distribution (runs since the thirty-seventh session
  // record one per round): the p99 of the loop's delay while the transfers ran.
  const pooled = pooledLoop(dists, limitMs);
  return { n: p99.length, under: p99.filter((v) => v < limitMs).length, median: quantile(p99, 0.5), limitMs, pooled };
}

/** The pooled loop delay in words (pool.js and run.js print it the same way). */
function loopPooledLine(p) {
  const p99 = p.p99 === null ? 'over 100 ms' : `${fmt(p.p99, 1)} ms`;
  return `pooled over ${p.rounds} round${p.rounds > 1 ? 's' : ''} (${p.samples} samples): p99 ${p99}, ${fmt(p.over_limit * 100, 2)}% of samples over ${p.limitMs} ms`;
}

/** A small seeded generator (mulberry32): uniform in [0, 1). */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const medianOf = (vals) => quantile([...vals].sort((a, b) => a - b), 0.5);

/**
 * The ratio's 90% interval from resampling whole runs (see the head of this file). Returns
 * { lo, hi, below: the share of draws where ftpdlib came out behind, runs, draws } or null
 * with fewer than 3 runs holding rounds of both servers.
 */
function runInterval(pool, sc, ours, peer, { draws = 2000, seed = 1 } = {}) {
  const byRun = (name) => {
    const m = new Map();
    for (const [k, v] of pool.paired.get(name) || []) {
      const file = k.slice(0, k.lastIndexOf('#'));
      if (!m.has(file)) m.set(file, []);
      m.get(file).push(v);
    }
    return m;
  };
  const mine = byRun(ours);
  const theirs = byRun(peer);
  const files = [...mine.keys()].filter((f) => theirs.has(f));
  if (files.length < 3) return null;
  const rand = seeded(seed);
  const ratios = [];
  for (let i = 0; i < draws; i++) {
    const a = [];
    const b = [];
    for (let j = 0; j < files.length; j++) {
      const f = files[Math.floor(rand() * files.length)];
      a.push(...mine.get(f));
      b.push(...theirs.get(f));
    }
    ratios.push(sc.lower ? medianOf(b) / medianOf(a) : medianOf(a) / medianOf(b));
  }
  ratios.sort((x, y) => x - y);
  return { lo: quantile(ratios, 0.05), hi: quantile(ratios, 0.95), below: ratios.filter((r) => r < 1).length / draws, runs: files.length, draws };
}

/** Pooled figures and ftpdlib's standing against the best peer by pooled median. */
function summarize(pool, sc) {
  const ours = sc.tls ? OURS.tls : OURS.plain;
  const rows = [...pool.servers.entries()].map(([name, vals]) => {
    const v = [...vals].sort((a, b) => a - b);
    return { name, n: v.length, median: quantile(v, 0.5), q1: quantile(v, 0.25), q3: quantile(v, 0.75) };
  });
  const better = (a, b) => (sc.lower ? a < b : a > b);
  const peers = rows.filter((r) => !r.name.startsWith('ftpdlib'));
  const best = peers.reduce((b, r) => (!b || better(r.median, b.median) ? r : b), null);
  const me = rows.find((r) => r.name === ours) || null;
  let ratio = null;
  let wins = null;
  if (me && best) {
    ratio = sc.lower ? best.median / me.median : me.median / best.median;
    const mine = pool.paired.get(ours);
    const theirs = pool.paired.get(best.name);
    let n = 0;
    let won = 0;
    for (const [k, v] of mine) {
      if (!theirs.has(k)) continue;
      n++;
      if (better(v, theirs.get(k))) won++;
    }
    wins = { won, n };
  }
  const interval = me && best ? runInterval(pool, sc, ours, best.name) : null;
  return { rows, best, me, ratio, wins, interval, ours };
}

/** Rows of the --by-predecessor table: per server, its median (and count) after each other server. */
function predecessorTable(pool, sc) {
  const names = [...pool.byAfter.keys()];
  const afters = [...new Set(names.flatMap((n) => [...pool.byAfter.get(n).keys()]))];
  const d = sc.digits || 0;
  const rows = names.map((n) => [n, ...afters.map((a) => {
    const v = pool.byAfter.get(n).get(a);
    return v ? `${fmt(medianOf(v), d)} (${v.length})` : '-';
  })]);
  return { headers: ['server \\ after', ...afters], rows };
}

function main(argv) {
  const allRounds = argv.includes('--all-rounds');
  const byPredecessor = argv.includes('--by-predecessor');
  const files = argv.filter((a) => !a.startsWith('--'));
  if (!files.length || argv.includes('--help')) {
    console.log('usage: node bench/pool.js [--all-rounds] [--by-predecessor] RUN.json[.gz] [RUN.json ...]   (bench/run.js --json files; bench/runs keeps the project\'s, gzipped)');
    return argv.includes('--help') ? 0 : 2;
  }
  const runs = [];
  for (const file of files) {
    let run;
    try {
      const raw = fs.readFileSync(file);
      run = JSON.parse((file.endsWith('.gz') ? zlib.gunzipSync(raw) : raw).toString('utf8'));
    } catch (e) {
      console.error(`pool: ${file}: ${e.message}`);
      return 2;
    }
    if (!Array.isArray(run.servers) || !run.config) {
      console.error(`pool: ${file}: not a bench/run.js --json file`);
      return 2;
    }
    if (run.mode !== 'full') {
      console.log(`(${file}: a ${run.mode} run, left out)`);
      continue;
    }
    run.file = file.replace(/^.*\//, '').replace(/\.gz$/, '');
    runs.push(run);
  }
  if (!runs.length) return 2;
  for (const run of runs) {
    const mine = run.servers.find((s) => s.name === OURS.plain);
    if (mine && mine.note && !/built/.test(mine.note)) console.log(`(${run.file}: ftpdlib ran as "${mine.note}", not the build)`);
  }
  for (const sc of SCENARIOS) {
    const pool = poolScenario(runs, sc, { allRounds });
    if (!pool.servers.size) {
      // Nothing pooled: say why, when runs with the scenario were left out.
      if (pool.skipped.length) {
        console.log(`\n## ${sc.key}: no rounds pooled`);
        for (const s of pool.skipped) console.log(`   left out: ${s}`);
      }
      continue;
    }
    const sum = summarize(pool, sc);
    console.log(`\n## ${sc.key}: ${sc.unit}${sc.lower ? ' (lower is better)' : ''}, rounds of ${pool.used.length} run(s)`);
    console.log(`   runs: ${pool.used.join(', ')}`);
    for (const s of pool.skipped) console.log(`   left out: ${s}`);
    const d = sc.digits || 0;
    console.log(table(['server', 'rounds', 'median', 'quartiles'], sum.rows.map((r) => [r.name, r.n, fmt(r.median, d), `${fmt(r.q1, d)}-${fmt(r.q3, d)}`])));
    if (sum.ratio !== null) {
      console.log(`   ${sum.ours} against the best peer by pooled median (${sum.best.name}): ${sum.ratio.toFixed(2)}x; better in ${sum.wins.won} of ${sum.wins.n} rounds of the same run and number`);
      const iv = sum.interval;
      console.log(iv
        ? `   90% interval from resampling the ${iv.runs} runs: ${iv.lo.toFixed(2)}-${iv.hi.toFixed(2)}x; ftpdlib behind in ${Math.round(iv.below * 100)}% of ${fmt(iv.draws)} draws`
        : '   (no interval: fewer than 3 runs hold rounds of both)');
    }
    if (sc.loop) {
      const l = loopRounds(runs, sc);
      if (l.n) console.log(`   ${OURS.plain}'s event-loop delay, p99 under ${l.limitMs} ms in ${l.under} of ${l.n} rounds (median round ${fmt(l.median, 1)} ms)`);
      if (l.pooled) console.log(`   ${loopPooledLine(l.pooled)}`);
    }
    if (byPredecessor && pool.byAfter.size) {
      const t = predecessorTable(pool, sc);
      console.log(`   median round (rounds) by the server whose turn came just before:`);
      console.log(table(t.headers, t.rows).replace(/^/gm, '   '));
    }
  }
  return 0;
}

module.exports = { poolScenario, summarize, runInterval, predecessorTable, loopRounds, loopPooledLine, quantile, SCENARIOS };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
