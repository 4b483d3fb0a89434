import { performance } from 'node:perf_hooks';

/** At most one trim per this many milliseconds, however the activity comes and goes. */
export const MIN_TRIM_INTERVAL_MS = 5000;

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
 * `note()` is called on each session start and end and each transfer end: it stores a
 * timestamp, and arms one timer if none is armed. The trim runs when nothing was noted for
 * `quietMs`, and not within `minIntervalMs` (5 s) of the last one; under steady traffic it
 * waits, so a busy server never pays for it. The timer never keeps the process alive.
 */
export class MemoryTrimmer {
  private last = 0;
  private lastTrim = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Trims run so far. */
  trims = 0;

  constructor(
    private readonly quietMs: number,
    private readonly trim: () => number,
    private readonly onTrim: (result: number, ms: number) => void = () => {},
    private readonly minIntervalMs: number = MIN_TRIM_INTERVAL_MS,
  ) {}

  note(): void {
    this.last = performance.now();
    if (this.timer === null && !this.stopped) this.arm(this.quietMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
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
    this.trims++;
    const r = this.trim();
    this.onTrim(r, performance.now() - now);
  }
}
