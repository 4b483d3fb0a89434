/**
 * Counts bytes and reports progress at most every 100 ms: the Meter's bookkeeping
 * without its Transform hop, for transfers that need no conversion and no pacing (./fallback.ts,
 * ./fd-receive.ts).
 */
export class Counter {
  bytes = 0;
  private lastReport = 0;

  constructor(private readonly onProgress?: (bytes: number) => void) {}

  readonly count = (chunk: Buffer): void => this.add(chunk.length);

  /** The next add() reports, however soon after the last report. */
  reportNext(): void {
    this.lastReport = 0;
  }

  add(n: number): void {
    this.bytes += n;
    if (this.onProgress) {
      const now = Date.now();
      if (now - this.lastReport >= 100) {
        this.lastReport = now;
        this.onProgress(this.bytes);
      }
    }
  }
}
