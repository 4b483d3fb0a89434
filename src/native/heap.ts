import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { loadAddon } from './index';

/**
 * Asking V8 to give back the memory its heap holds but does not use (src/native/heap.cc).
 *
 * A burst of sessions or transfers grows V8's young generation (up to 2 x 16 MiB), and V8
 * keeps it committed and resident once the burst is over: 500 logins into a fresh server left
 * 2–4 MiB of it, 5,000 logins 20–24 MiB, against 0.3–1 MiB in use. A memory-pressure
 * notification makes V8 collect with its footprint-reducing flag, which shrinks the young
 * generation back and returns the freed pages (src/native/bench/RESULTS.md, "Giving the young
 * generation back"). The memory trimmer (src/ftp/memory-trim.ts) calls `reduceHeap()` once
 * the server has been quiet.
 *
 * That full collection has a price once the server is warm: run while no session or transfer
 * object is alive, it lets the maps that the optimized code of the hot paths embeds die, V8
 * throws that code away ("weak objects"), and the next burst runs slower until it is compiled
 * again (RESULTS.md, "A scavenge once the server is warm"). So only the process's first
 * reduction is a full one (it gives back what starting up left in the old generation, before
 * anything is warm), and those made while sessions are open (see reduceHeap); every other one
 * is a scavenge: with V8's allocation rate low, a scavenge shrinks the young generation back to
 * its first size and returns its pages, and it collects no map. Garbage a burst promoted to
 * the old generation is then left to V8's own collections.
 */

interface HeapAddon {
  memoryPressure(level: number): boolean;
}

const ADDON_FILE = path.join('src', 'native', 'build', 'Release', 'ftpdlib_heap.node');

/** Below this much room to give back (heapRoom()), a collection is not worth asking for. */
export const MIN_HEAP_SLACK = 512 << 10;
/** ...nor below this share of the old generation in use (a large heap keeps proportionally more room). */
export const MIN_HEAP_SLACK_RATIO = 0.05;

let loaded: { addon: HeapAddon | null; reason: string } | undefined;

/** Whether the heap addon is usable here, and why (or why not). */
export function heapAddonStatus(): { available: boolean; reason: string } {
  loaded ??= loadAddon<HeapAddon>(ADDON_FILE);
  return { available: loaded.addon !== null, reason: loaded.reason };
}

/**
 * What footprint-reducing collections leave of the young generation resident: one page (the
 * first shrinks it to its first size, 2 x 512 KiB; a second, with it empty, to one page).
 */
export const YOUNG_AFTER_REDUCE = 256 << 10;

/**
 * What V8 could give back: the young generation beyond what reducing collections leave of it
 * (once quiet, what is in it is garbage), plus the other spaces' resident bytes beyond their
 * used ones. `used` is the old generation's used bytes. (Garbage in the old generation, which
 * the collection frees too, cannot be seen before it runs.)
 */
export function heapRoom(): { room: number; used: number } {
  let room = 0;
  let used = 0;
  for (const s of v8.getHeapSpaceStatistics()) {
    if (s.space_name === 'new_space' || s.space_name === 'new_large_object_space') {
      room += s.space_name === 'new_space' ? Math.max(0, s.physical_space_size - YOUNG_AFTER_REDUCE) : s.physical_space_size;
    } else {
      room += Math.max(0, s.physical_space_size - s.space_used_size);
      used += s.space_used_size;
    }
  }
  return { room, used };
}

/**
 * If V8 could give back at least MIN_HEAP_SLACK and 5% of its old generation's size, asks it to,
 * in one of two ways.
 *
 * A full collection (a moderate memory-pressure notification: V8 starts an incremental
 * mark-compact that reduces its footprint, mostly on its own threads, and this returns at once)
 * for the process's first request, and whenever sessions are still open (`sessionsOpen`): idle
 * sessions are what memory is kept for then, their objects keep the maps of the code that
 * serves them alive, and the old generation holds what their logins promoted. Its `again` (the
 * trimmer asks once more when there is still room once that collection had time) is a full one
 * too: V8 ignores a request while a collection of its own is marking, and a second one takes the
 * young generation the first left at its first size down to a page, as V8's own memory reducer
 * does with up to three.
 *
 * A scavenge otherwise, run right away (about a millisecond), that collects no map. V8 shrinks
 * the young generation in a scavenge only when its allocation rate is low, which it reckons
 * from what was allocated since its last collection over the time since then and over the
 * collections before, back to ~5 s; the burst's last objects can keep that rate above its
 * threshold for 10 s or more. If the young generation did not shrink, `again` scavenges once
 * more, and the trimmer waits heapSettleMs() (SCAVENGE_RETRY_MS, 5.5 s) for it: the first
 * scavenge started a new count, and with nothing allocated since, the rate is then nil; if that
 * one did not shrink it either (CI, under load, saw it), a full collection follows at once.
 * Otherwise `again` is -1: another scavenge would find the young generation at its first size
 * and grow it. Without the heap addon, scavenges only.
 *
 * Returns the room seen when it asked, -1 when there was too little room to ask (or nothing more
 * to ask), -2 when it cannot ask here.
 */
export function reduceHeap(again = false, sessionsOpen = false): number {
  loaded ??= loadAddon<HeapAddon>(ADDON_FILE);
  let kind: HeapReductionKind;
  if (again) {
    if (lastKind === 'full') kind = 'full';
    else if (lastKind === 'scavenge' && !youngShrunk()) kind = 'scavenge';
    else return -1;
  } else {
    kind = reductions.full > 0 && !sessionsOpen ? 'scavenge' : 'full';
  }
  // Whichever of the two can be asked for here, when the other cannot.
  if (kind === 'scavenge' && !scavenger()) kind = 'full';
  if (kind === 'full' && !loaded.addon) kind = 'scavenge';
  const addon = loaded.addon;
  const scavenge = kind === 'scavenge' ? scavenger() : null;
  if (kind === 'full' ? !addon : !scavenge) return -2;
  const { room, used } = heapRoom();
  if (!worthAsking(room, used)) return -1;
  if (kind === 'full') {
    if (!(addon as HeapAddon).memoryPressure(1)) return -2;
  } else {
    (scavenge as MinorGc)({ type: 'minor' });
    // Two scavenges 5.5 s apart did not shrink it (V8 still saw its allocation rate high, as on a
    // loaded machine): the memory comes back by the full collection after all.
    if (again && !youngShrunk() && addon?.memoryPressure(1)) {
      reductions.scavenge++;
      kind = 'full';
    }
  }
  lastKind = kind;
  reductions[kind]++;
  return room;
}

/** The young generation's resident bytes at most, once a reduction has given it back (its first size). */
export const YOUNG_FIRST_SIZE = 1 << 20;
/** How long the trimmer waits before scavenging again when a scavenge did not shrink the young generation. */
export const SCAVENGE_RETRY_MS = 5500;

function youngShrunk(): boolean {
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return !young || young.physical_space_size <= YOUNG_FIRST_SIZE;
}

/** The trimmer's wait before `again`: `settleMs`, or SCAVENGE_RETRY_MS after a scavenge that did not shrink the young generation. */
export function heapSettleMs(settleMs: number): number {
  return lastKind === 'scavenge' && !youngShrunk() ? SCAVENGE_RETRY_MS : settleMs;
}

/** A full collection (memory-pressure notification) or a scavenge (V8's minor collection). */
export type HeapReductionKind = 'full' | 'scavenge';

export type MinorGc = (options: { type: 'minor' }) => void;

let lastKind: HeapReductionKind | null = null;
let minorGc: MinorGc | null | undefined;
const reductions: Record<HeapReductionKind, number> = { full: 0, scavenge: 0 };

/** How many reductions of each kind this process asked for (the first: full, later: scavenges). */
export function heapReductionCounts(): Readonly<Record<HeapReductionKind, number>> {
  return { ...reductions };
}

/** Replaces the scavenge's `gc` function (null: none here; undefined: look for it again). For tests. */
export function setScavengerForTest(fn: MinorGc | null | undefined): void {
  minorGc = fn;
}

/**
 * V8's own `gc` function, which takes `{ type: 'minor' }`: the global one when Node.js was
 * started with --expose-gc, otherwise one taken from a new context created with the flag set for
 * that moment (and cleared again, so that contexts made later get no `gc`). null when neither
 * works here: every reduction is then a full one.
 */
function scavenger(): MinorGc | null {
  if (minorGc !== undefined) return minorGc;
  minorGc = null;
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') {
    minorGc = own as MinorGc;
    return minorGc;
  }
  try {
    v8.setFlagsFromString('--expose-gc');
    try {
      const fn: unknown = vm.runInNewContext('gc');
      if (typeof fn === 'function') minorGc = fn as MinorGc;
    } finally {
      v8.setFlagsFromString('--no-expose-gc');
    }
  } catch {
    minorGc = null;
  }
  return minorGc;
}

/** Whether `room` bytes to give back are worth a collection of a heap whose old generation uses `used`. */
export function worthAsking(room: number, used: number): boolean {
  return room >= Math.max(MIN_HEAP_SLACK, used * MIN_HEAP_SLACK_RATIO);
}
