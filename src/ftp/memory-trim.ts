import { performance } from 'node:perf_hooks';

/** At most one trim per this many milliseconds, however the activity comes and goes. */
export const MIN_TRIM_INTERVAL_MS = 2000;
/** How long after asking V8 to shrink its heap the next step runs (that collection takes ~10–50 ms). */
export const HEAP_SETTLE_MS = 250;

/** Asks the JS heap to give memory back; see src/native/heap.ts. */
export interface HeapReducer {
  /**
   * >= 0: asked (the heap's free room in bytes); -1: too little room to ask; -2: cannot ask here.
   * `again`: the second request of a sequence, settleMs after the first.
   */
  reduce(again?: boolean): number;
  /** Delay between asking and the next step (a second request, or the malloc trim); read after each request. */
  settleMs: number;
  /** How long activity must have paused before V8 is asked (heapReduceDelay). */
  quietMs: number;
}

/**
 * Gives memory a burst left behind back to the kernel once connection activity has paused,
 * in two steps with their own delays.
 *
 * The malloc trim (`quietMs`, memoryTrimDelay): every read on a socket gets a 64 KiB buffer
 * from malloc that is shrunk to the bytes read and soon freed; during a burst of logins those
 * holes end up between long-lived socket handles, so glibc can neither reuse all of them nor
 * return them from the top of its heap, and they stay resident. malloc_trim(0) hands free
 * pages anywhere in the arenas back (madvise), in about 0.3 ms with thousands of sessions open
 * (src/native/bench/RESULTS.md). It costs the next burst nothing measurable.
 *
 * The heap reduction (`heap.quietMs`, heapReduceDelay, longer): a burst grows V8's young
 * generation (up to 2 x 16 MiB) and V8 leaves it committed afterwards. Asking V8 to collect
 * with its footprint-reducing flag gives it back, but that full collection, run while no
 * session or transfer object is alive, also makes V8 drop the optimized code built around
 * them, and the young generation must grow again: the next burst runs ~40% slower for its
 * first ~1,000 files (RESULTS.md, "The price of shrinking the heap"). So only the process's
 * first reduction and those made while sessions are open are full collections, and the others
 * scavenges, which give the young generation back and keep that code (src/native/heap.ts,
 * where the server's `reduce` passes whether sessions are open); and the young generation must still
 * grow again, so V8 is asked only after a longer pause, once per pause, when its heap holds
 * much more than it uses; `heap.settleMs`
 * later it is asked once more if there is still room (see afterSettle), and the malloc trim
 * follows. Activity noted in between abandons the rest of that sequence.
 *
 * `note()` is called on each session start and end and each transfer end: it stores a
 * timestamp, and arms one timer if none is armed. Malloc trims run when nothing was noted for
 * `quietMs`, and not within `minIntervalMs` (2 s) of the last one; under steady traffic
 * nothing runs, so a busy server never pays for either step. The timers never keep the
 * process alive. A step that cannot work here (no glibc, no addon) is dropped after its first
 * attempt, and the trimmer stops once neither can.
 */
export class MemoryTrimmer {
  private last = 0;
  private lastTrim = Number.NEGATIVE_INFINITY;
  /** Activity was noted since the last malloc trim / the last heap reduction. */
  private trimDue = false;
  private heapDue = false;
  private trimOn: boolean;
  private heapOn: boolean;
  /** When V8 was first asked in the running heap sequence. */
  private askedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private settle: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Trims run so far. */
  trims = 0;
  /** Times V8 was asked to shrink its heap. */
  heapReductions = 0;

  /**
   * `quietMs` 0: no malloc trims (the heap step alone). `onTrim(result, ms, heap)`: the trim's
   * result and duration, and the room V8 reported when this trim ends a heap sequence (-1 when
   * it does not).
   */
  constructor(
    private readonly quietMs: number,
    private readonly trim: () => number,
    private readonly onTrim: (result: number, ms: number, heap: number) => void = () => {},
    private readonly minIntervalMs: number = MIN_TRIM_INTERVAL_MS,
    private readonly heap: HeapReducer | null = null,
  ) {
    this.trimOn = quietMs > 0;
    this.heapOn = heap !== null && heap.quietMs > 0;
  }

  note(): void {
    this.last = performance.now();
    this.trimDue = this.trimOn;
    this.heapDue = this.heapOn;
    // A timer armed for the (later) heap step is brought forward to the trim's time. During a
    // heap sequence its settle timer looks at the activity itself.
    if (this.settle === null && !this.stopped && (this.timer === null || this.timerAt > this.nextAt())) this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.settle) clearTimeout(this.settle);
    this.timer = null;
    this.settle = null;
  }

  /** When the malloc trim is due (performance.now() time), Infinity when it is not. */
  private trimAt(): number {
    return this.trimDue ? Math.max(this.last + this.quietMs, this.lastTrim + this.minIntervalMs) : Number.POSITIVE_INFINITY;
  }

  /** When V8 is to be asked, Infinity when it is not. */
  private heapAt(): number {
    return this.heapDue ? this.last + (this.heap as HeapReducer).quietMs : Number.POSITIVE_INFINITY;
  }

  private nextAt(): number {
    return Math.min(this.trimAt(), this.heapAt());
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const at = this.nextAt();
    if (this.stopped || at === Number.POSITIVE_INFINITY) return;
    this.timerAt = at;
    this.timer = setTimeout(() => this.check(), Math.max(0, at - performance.now()));
    this.timer.unref();
  }

  private check(): void {
    this.timer = null;
    const now = performance.now();
    if (now >= this.heapAt()) {
      this.heapDue = false;
      if (this.askHeap(now)) return; // the sequence goes on from its settle timer
      if (this.stopped) return; // neither step can work here
    }
    if (now >= this.trimAt()) this.runTrim(-1);
    this.schedule();
  }

  /** The first request of a heap sequence; true when V8 was asked (a settle timer is armed). */
  private askHeap(now: number): boolean {
    const heap = this.heap as HeapReducer;
    const room = heap.reduce(false);
    if (room === -2) {
      this.heapOn = false;
      this.stopIfIdle();
      return false;
    }
    if (room < 0) return false;
    this.heapReductions++;
    this.askedAt = now;
    this.afterSettle(heap, room, true);
    return true;
  }

  /**
   * settleMs after a request: if activity came meanwhile, the sequence ends here (the next pause
   * starts a new one). Otherwise, if there is still room, V8 is asked once more first: it ignores
   * a request while a collection it started itself is marking, and a second collection takes the
   * emptied young generation down to one page (src/native/heap.ts). Then the malloc trim.
   */
  private afterSettle(heap: HeapReducer, room: number, mayAskAgain: boolean): void {
    this.settle = setTimeout(() => {
      this.settle = null;
      if (this.stopped) return;
      if (this.last <= this.askedAt) {
        if (mayAskAgain && heap.reduce(true) >= 0) {
          this.heapReductions++;
          this.afterSettle(heap, room, false);
          return;
        }
        if (this.trimOn) this.runTrim(room);
      }
      this.schedule();
    }, heap.settleMs);
    this.settle.unref();
  }

  private runTrim(heap: number): void {
    const start = performance.now();
    this.trims++;
    this.lastTrim = start;
    this.trimDue = false;
    const r = this.trim();
    this.onTrim(r, performance.now() - start, heap);
    if (r < 0) {
      // -1: not glibc, -2: no addon. Nothing to trim with: stop trying.
      this.trimOn = false;
      this.trimDue = false;
      this.stopIfIdle();
    }
  }

  private stopIfIdle(): void {
    if (!this.trimOn && !this.heapOn) this.stop();
  }
}
