import { performance } from 'node:perf_hooks';

/** At most one trim per this many milliseconds, however the activity comes and goes. */
export const MIN_TRIM_INTERVAL_MS = 2000;
/** How long after asking V8 to shrink its heap the malloc trim runs (that collection takes ~10–50 ms). */
export const HEAP_SETTLE_MS = 250;

/** Asks the JS heap to give memory back; see src/native/heap.ts. */
export interface HeapReducer {
  /**
   * >= 0: asked (the heap's free room in bytes); -1: too little room to ask; -2: cannot ask here.
   * `again`: the second look, a settle time after a first request.
   */
  reduce(again?: boolean): number;
  /** Delay between asking and the malloc trim. */
  settleMs: number;
}

/**
 * Gives the memory malloc keeps but no longer uses back to the kernel once connection
 * activity has paused.
 *
 * Every read on a socket gets a 64 KiB buffer from malloc that is shrunk to the bytes read
 * and soon freed; during a burst of logins those holes end up between long-lived socket
 * handles, so glibc can neither reuse all of them nor return them from the top of its heap,
 * and they stay resident. malloc_trim(0) hands free pages anywhere in the arenas back
 * (madvise), in about 0.3 ms with thousands of sessions open (src/native/bench/RESULTS.md).
 *
 * V8's heap keeps memory the same way: a burst grows its young generation (up to 2 x 16 MiB)
 * and V8 leaves it committed afterwards. With a `heap` reducer (src/native/heap.ts), the quiet
 * moment first asks V8 to collect with its footprint-reducing flag when its heap holds much
 * more than it uses, and the malloc trim follows `heap.settleMs` later, once that collection
 * (incremental, mostly on V8's own threads) has freed what it frees (V8 is asked a second time
 * then if there is still room; see afterSettle).
 *
 * `note()` is called on each session start and end and each transfer end: it stores a
 * timestamp, and arms one timer if none is armed. The trim runs when nothing was noted for
 * `quietMs`, and not within `minIntervalMs` (2 s) of the last one; under steady traffic it
 * waits, so a busy server never pays for it. The timers never keep the process alive.
 */
export class MemoryTrimmer {
  private last = 0;
  private lastTrim = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  private settle: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Trims run so far. */
  trims = 0;
  /** Times V8 was asked to shrink its heap. */
  heapReductions = 0;

  /**
   * `onTrim(result, ms, heap)`: the trim's result and duration, and what `heap.reduce()`
   * returned before it (-2 without a heap reducer).
   */
  constructor(
    private readonly quietMs: number,
    private readonly trim: () => number,
    private readonly onTrim: (result: number, ms: number, heap: number) => void = () => {},
    private readonly minIntervalMs: number = MIN_TRIM_INTERVAL_MS,
    private readonly heap: HeapReducer | null = null,
  ) {}

  note(): void {
    this.last = performance.now();
    if (this.timer === null && !this.stopped) this.arm(this.quietMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.settle) clearTimeout(this.settle);
    this.timer = null;
    this.settle = null;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.check(), ms);
    this.timer.unref();
  }

  private check(): void {
    this.timer = null;
    const now = performance.now();
    const wait = Math.max(this.last + this.quietMs, this.lastTrim + this.minIntervalMs) - now;
    if (wait > 0) {
      this.arm(wait);
      return;
    }
    this.lastTrim = now;
    const reducer = this.heap;
    const heap = reducer ? reducer.reduce() : -2;
    if (!reducer || heap < 0) {
      this.runTrim(heap);
      return;
    }
    this.heapReductions++;
    this.afterSettle(reducer, heap, true);
  }

  /**
   * The malloc trim, settleMs after V8 was asked. If there is still room then, V8 is asked once
   * more first: it ignores a request while a collection it started itself is marking, and a
   * second collection takes the emptied young generation down to one page (src/native/heap.ts).
   */
  private afterSettle(reducer: HeapReducer, heap: number, mayAskAgain: boolean): void {
    this.settle = setTimeout(() => {
      this.settle = null;
      if (this.stopped) return;
      if (mayAskAgain && reducer.reduce(true) >= 0) {
        this.heapReductions++;
        this.afterSettle(reducer, heap, false);
        return;
      }
      this.runTrim(heap);
    }, reducer.settleMs);
    this.settle.unref();
  }

  private runTrim(heap: number): void {
    const start = performance.now();
    this.trims++;
    const r = this.trim();
    this.onTrim(r, performance.now() - start, heap);
  }
}
