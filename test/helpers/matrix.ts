import test, { type ExecutionContext } from 'ava';
import type { DataMode } from './data-client';
import type { TestServer } from './server';

/** The per-mechanism counters of src/native's engineStats(). */
export interface Counters {
  sendfile: number;
  splice: number;
  copy: number;
  active: number;
  jobs: number;
}

interface NativeProbe {
  available: boolean;
  reason: string;
  stats(): Counters;
}

const ZERO: Counters = { sendfile: 0, splice: 0, copy: 0, active: 0, jobs: 0 };

/** What src/native says about itself, loaded once per test process. */
export const native: NativeProbe = (() => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const n = require('../../src/native') as { available?: unknown; reason?: unknown; engineStats?: () => Counters };
    const available = n.available === true && typeof n.engineStats === 'function';
    return {
      available,
      reason: typeof n.reason === 'string' ? n.reason : 'no reason given',
      stats: available ? () => ({ ...ZERO, ...n.engineStats!() }) : () => ({ ...ZERO }),
    };
  } catch (err) {
    return { available: false, reason: `src/native failed to load: ${(err as Error).message}`, stats: () => ({ ...ZERO }) };
  }
})();

export const NATIVE_MECHANISMS = ['sendfile', 'splice', 'copy'] as const;

export interface Row {
  engine: 'native' | 'stream';
  mode: DataMode;
  /** The server option for this row. */
  useSendfile: boolean;
  /** True when this row proves the native engine ran (native row, addon loaded). */
  expectNative: boolean;
  /** "[native/passive]", with "(native unavailable: …)" when the addon is missing. */
  suffix: string;
  /**
   * Register a test for this row. Native rows run serially, so the engine's
   * counters move only for the test that reads them.
   */
  test(title: string, body: (t: ExecutionContext) => Promise<void>): void;
}

function makeRow(engine: 'native' | 'stream', mode: DataMode): Row {
  const expectNative = engine === 'native' && native.available;
  let suffix = `[${engine}/${mode}]`;
  if (engine === 'native' && !native.available) suffix += ` (native unavailable: ${native.reason})`;
  return {
    engine,
    mode,
    useSendfile: engine === 'native',
    expectNative,
    suffix,
    test(title, body) {
      const reg = engine === 'native' ? test.serial : test;
      reg(`${title} ${suffix}`, body);
    },
  };
}

/** {engine: native|stream} × {mode: passive|active}. */
export const MATRIX: readonly Row[] = [
  makeRow('native', 'passive'),
  makeRow('native', 'active'),
  makeRow('stream', 'passive'),
  makeRow('stream', 'active'),
];

/**
 * Snapshot the engine counters before a transfer; `check` then asserts, from
 * the transfer's log record and the counters, which path actually ran.
 */
export function engineProbe(row: Row): { check(t: ExecutionContext, record: Record<string, unknown> | undefined): void } {
  const before = native.stats();
  return {
    check(t, record) {
      const engine = record?.engine;
      if (!row.expectNative) {
        t.is(engine, 'stream', `${row.suffix}: the transfer log names the stream path`);
        return;
      }
      t.true(
        (NATIVE_MECHANISMS as readonly unknown[]).includes(engine),
        `${row.suffix}: the transfer log names a native mechanism, got ${String(engine)}`,
      );
      const after = native.stats();
      const mech = engine as (typeof NATIVE_MECHANISMS)[number];
      t.is(after[mech] - before[mech], 1, `engineStats().${mech} increased by one`);
      t.is(after.jobs - before.jobs, 1, 'engineStats().jobs increased by one');
    },
  };
}

/** The transfer log records of a server. */
export function transferRecords(s: TestServer): Array<Record<string, unknown>> {
  return s.records.filter((r) => r.msg === 'transfer');
}
