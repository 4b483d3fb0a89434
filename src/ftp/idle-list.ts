/**
 * The control connections' idle timeout (the `timeout` option) for every session of a server,
 * with one timer instead of a Node `Timeout` per session.
 *
 * Every session waits the same time, so the order in which sessions were last touched is also
 * the order in which they expire: the list keeps them in that order (a touch moves a session to
 * the tail, in O(1), through two links stored on the session itself), and its one timer is set
 * for the head. When it fires it expires every session at the head whose time has come, then
 * sets itself for the new head. A touch does not move the timer: if the head was touched
 * meanwhile, the timer fires early, finds nothing due, and sets itself again, which happens at
 * most about once per timeout while sessions are busy.
 *
 * Per idle session this holds two links and a deadline (24 bytes) where a `Timeout` held about
 * 220 (the object, its argument array and three boxed numbers).
 */
import { performance } from 'node:perf_hooks';

/** What a session carries to be in an IdleList. */
export interface IdleNode {
  idlePrev: IdleNode | null;
  idleNext: IdleNode | null;
  /** performance.now() at which it expires, or -1 while it is in no list. */
  idleAt: number;
}

export class IdleList<T extends IdleNode> {
  private head: T | null = null;
  private tail: T | null = null;
  private timer: NodeJS.Timeout | null = null;
  private count = 0;

  /**
   * @param ms how long a node may stay untouched
   * @param expire called for a node whose time has come, after it left the list
   */
  constructor(
    readonly ms: number,
    private readonly expire: (node: T) => void,
  ) {}

  /** Nodes in the list. */
  get size(): number {
    return this.count;
  }

  /** Start (or restart) `node`'s wait: it expires `ms` from now unless touched or removed first. */
  touch(node: T): void {
    if (node.idleAt >= 0) this.unlink(node);
    node.idleAt = performance.now() + this.ms;
    node.idlePrev = this.tail;
    node.idleNext = null;
    if (this.tail) this.tail.idleNext = node;
    else this.head = node;
    this.tail = node;
    this.count++;
    if (!this.timer) this.arm(this.ms);
  }

  /** Take `node` out of the list (a no-op if it is in none). The timer stops at its next firing if nothing is left. */
  remove(node: T): void {
    if (node.idleAt >= 0) this.unlink(node);
  }

  /** Stop the timer and forget every node (the server is closing). */
  clear(): void {
    while (this.head) this.unlink(this.head);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private unlink(node: T): void {
    const prev = node.idlePrev as T | null;
    const next = node.idleNext as T | null;
    if (prev) prev.idleNext = next;
    else this.head = next;
    if (next) next.idlePrev = prev;
    else this.tail = prev;
    node.idlePrev = null;
    node.idleNext = null;
    node.idleAt = -1;
    this.count--;
  }

  private arm(delay: number): void {
    // One function for every list, the list as its argument: no closure per arming.
    this.timer = setTimeout(IdleList.fired, Math.max(1, Math.ceil(delay)), this);
    this.timer.unref();
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private static fired(list: IdleList<any>): void {
    list.timer = null;
    const now = performance.now();
    let node = list.head;
    while (node && node.idleAt <= now) {
      list.unlink(node);
      list.expire(node);
      node = list.head;
    }
    // (expire may have touched nodes, which armed the timer again.)
    if (list.head && !list.timer) list.arm(list.head.idleAt - now);
  }
}
