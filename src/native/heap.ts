import * as path from 'node:path';
import * as v8 from 'node:v8';
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
 * If V8 could give back at least MIN_HEAP_SLACK and 5% of its old generation's size,
 * sends a moderate memory-pressure notification: V8 starts an incremental mark-compact that
 * reduces its footprint, mostly on its own threads, and this returns at once. Returns the
 * room seen when it asked, -1 when there was too little room to ask, -2 without the addon.
 * The trimmer asks once more when there is still room once the first collection had time: V8
 * ignores a request while a collection of its own is marking, and a second one takes the
 * young generation the first left at its first size down to a page, as V8's own memory reducer
 * does with up to three.
 */
export function reduceHeap(): number {
  loaded ??= loadAddon<HeapAddon>(ADDON_FILE);
  if (!loaded.addon) return -2;
  const { room, used } = heapRoom();
  if (!worthAsking(room, used)) return -1;
  return loaded.addon.memoryPressure(1) ? room : -2;
}

/** Whether `room` bytes to give back are worth a collection of a heap whose old generation uses `used`. */
export function worthAsking(room: number, used: number): boolean {
  return room >= Math.max(MIN_HEAP_SLACK, used * MIN_HEAP_SLACK_RATIO);
}
