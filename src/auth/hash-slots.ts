/**
 * Password checks are the dearest thing a client can ask of the server without logging in: a
 * scrypt of 16 MiB takes a libuv pool thread for tens of milliseconds, a bcrypt as much of the
 * event loop, a crypt(3) a pool thread. A flood of failed logins (100 connections, each a wrong
 * password after the other) had filled the pool's four threads: a real user's login took 10 s
 * instead of 0.04, and a download that reads through the pool 7 s instead of 0.02.
 *
 * So every password check of the process runs through these slots: at most half the pool
 * (UV_THREADPOOL_SIZE, 4 by default, so 2) at once, the rest of the pool left to file I/O. A
 * check that waits is taken in turn by client (its address, an IPv6 client by its /64, which
 * each authorizer passes from the ClientInfo it is given), not first come first served: 200
 * waiting checks from one address hold a login from another back by one turn, not by 200.
 * (An AsyncLocalStorage would carry the address without passing it, but on Node 20 its first
 * use slows every promise of the process about 2.3 times.)
 */
import { addressKey } from './lockout';

const poolSize = Math.max(1, Math.min(1024, Number(process.env.UV_THREADPOOL_SIZE) || 4));
const limit = Math.max(1, Math.floor(poolSize / 2));
let running = 0;
/** Waiting checks by client; the Map's order is the turn (a client goes to the back once served). */
const waiting = new Map<string, Array<() => void>>();

/** How many checks run and wait now. */
export function passwordCheckLoad(): { running: number; waiting: number } {
  let n = 0;
  for (const q of waiting.values()) n += q.length;
  return { running, waiting: n };
}

function next(): void {
  const [key, queue] = waiting.entries().next().value as [string, Array<() => void>];
  const go = queue.shift()!;
  waiting.delete(key);
  if (queue.length > 0) waiting.set(key, queue);
  running++;
  go();
}

/** Run `check` (one password check) in a slot, in the turn of the client at `address` (undefined: no client, as for hashPassword). */
export async function inCheckSlot<T>(address: string | undefined, check: () => Promise<T>): Promise<T> {
  if (running >= limit || waiting.size > 0) {
    const key = address ? addressKey(address, 64) : '';
    await new Promise<void>((resolve) => {
      const q = waiting.get(key);
      if (q) q.push(resolve);
      else waiting.set(key, [resolve]);
    });
  } else {
    running++;
  }
  try {
    return await check();
  } finally {
    running--;
    if (running < limit && waiting.size > 0) next();
  }
}
