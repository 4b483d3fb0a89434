/**
 * Data-connection idleness (dataTimeout) for every running transfer, checked by one interval
 * instead of a timer per transfer. Idle means no byte moved for the transfer's limit; the
 * transfer's own progress callback stamps `lastMove`. Not the socket's own timeout: the native
 * engine moves bytes on a dup of the descriptor, which Node's socket never sees.
 */
export interface WatchedTransfer {
  /** Date.now() of the last progress (or of the start). */
  lastMove: number;
  /** No byte for this long: expired. */
  readonly limitMs: number;
  /** Called once, at the first check past the limit; the entry is dropped before the call. */
  readonly expire: () => void;
}

/** How often the watch looks: a quarter of the smallest limit, between 10 ms and 1 s. */
export function checkPeriod(limitMs: number): number {
  return Math.min(1000, Math.max(10, limitMs / 4));
}

export class IdleWatch {
  private readonly entries = new Set<WatchedTransfer>();
  private timer: NodeJS.Timeout | null = null;
  private period = 0;

  get size(): number {
    return this.entries.size;
  }

  add(w: WatchedTransfer): void {
    this.entries.add(w);
    const period = checkPeriod(w.limitMs);
    if (this.timer === null || period < this.period) this.start(period);
  }

  delete(w: WatchedTransfer): void {
    // The interval stops at its next tick with nothing to watch, so a session running
    // transfers back to back keeps one interval instead of making one per transfer.
    this.entries.delete(w);
  }

  private start(period: number): void {
    if (this.timer) clearInterval(this.timer);
    this.period = period;
    this.timer = setInterval(() => this.tick(), period);
    this.timer.unref();
  }

  private tick(): void {
    if (this.entries.size === 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      return;
    }
    const now = Date.now();
    let smallest = Number.POSITIVE_INFINITY;
    for (const w of this.entries) {
      if (now - w.lastMove >= w.limitMs) {
        this.entries.delete(w);
        w.expire();
      } else if (w.limitMs < smallest) smallest = w.limitMs;
    }
    // The transfer with the smallest limit ended: look less often.
    if (smallest !== Number.POSITIVE_INFINITY && checkPeriod(smallest) > this.period) this.start(checkPeriod(smallest));
  }
}
