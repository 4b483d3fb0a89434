/**
 * bcrypt hashes as Apache's htpasswd and most web frameworks write them: `$2y$`, `$2a$` or
 * `$2b$`, a two-digit cost, then 22 characters of salt and 31 of checksum.
 *
 * Checking runs on a libuv pool thread through libcrypt (crypt_rn, the system-user addon
 * src/native/unix.c) when that addon is built and its bcrypt passes a known answer; the event
 * loop then spends nothing on it. Otherwise, or for a password holding a NUL (a C string would
 * end there), bcryptjs's async API, which works in slices between which the event loop runs, so
 * a login never stalls other sessions for the length of a hash, but the loop's core does the
 * work (a cost-10 check: about 60 ms of it). The cost is bounded (4 to 17, the range htpasswd
 * -C accepts): a stored `$2y$31$...` would otherwise keep a core busy for days per login.
 */
import { randomInt } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { unixAddon, type UnixAddon } from '../native/unix';
import { inCheckSlot } from './hash-slots';

export const BCRYPT_COST = Object.freeze({ min: 4, max: 17 });

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Whether `s` looks like a bcrypt hash at all (any cost). */
export function looksLikeBcrypt(s: string): boolean {
  return /^\$2[aby]\$/.test(s);
}

/** The cost of a well-formed bcrypt hash within bounds, or why it is not usable. */
export function bcryptCost(s: string): { ok: true; cost: number } | { ok: false; reason: string } {
  const m = BCRYPT.exec(s);
  if (m === null) return { ok: false, reason: 'not a well-formed bcrypt hash ($2y$NN$ and 53 characters)' };
  const cost = Number(m[1]);
  if (cost < BCRYPT_COST.min || cost > BCRYPT_COST.max) {
    return { ok: false, reason: `bcrypt cost ${cost} is outside ${BCRYPT_COST.min} to ${BCRYPT_COST.max}` };
  }
  return { ok: true, cost };
}

/**
 * Whether `plain` matches a bcrypt hash already checked with bcryptCost. bcryptjs compares the
 * result in constant time. `$2y$` is the same algorithm as `$2b$` (PHP's name for it).
 */
export async function verifyBcrypt(plain: string, hash: string, client?: string): Promise<boolean> {
  const addon = plain.includes('\0') ? null : await nativeBcrypt();
  if (addon) {
    bcryptChecks.libcrypt++;
    // bcrypt reads 72 bytes of the password and no more; libcrypt refuses a passphrase of 512
    // bytes or more outright (quickly, and so telling), where bcryptjs checks its first 72.
    const bytes = Buffer.from(plain, 'utf8');
    const key = bytes.length > BCRYPT_KEY_BYTES ? bytes.subarray(0, BCRYPT_KEY_BYTES) : plain;
    return inCheckSlot(client, () => addon.verify(key, hash));
  }
  bcryptChecks.bcryptjs++;
  return inCheckSlot(client, () => bcrypt.compare(plain, hash));
}

/** How many bcrypt checks each path has made in this process (tests see which one ran). */
export const bcryptChecks = { libcrypt: 0, bcryptjs: 0 };

/** The password bytes bcrypt uses. */
const BCRYPT_KEY_BYTES = 72;

/** OpenBSD's test vector ("U*U" at cost 5): every prefix the parser takes must give it. */
const KNOWN_ANSWER = { plain: 'U*U', rest: '05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW' } as const;
let native: Promise<UnixAddon | null> | undefined;

/**
 * The system-user addon when its libcrypt checks bcrypt as bcryptjs does ($2a$, $2b$ and $2y$
 * against a known answer, once), else null. `FTPDLIB_NATIVE_BCRYPT=0` keeps bcryptjs.
 */
export function nativeBcrypt(): Promise<UnixAddon | null> {
  if (process.env.FTPDLIB_NATIVE_BCRYPT === '0') return Promise.resolve(null);
  native ??= (async () => {
    // Settle after the assignment, so that the catch below can clear it.
    await Promise.resolve();
    const addon = unixAddon();
    if (!addon) return null;
    try {
      for (const p of ['2a', '2b', '2y']) {
        if (!(await addon.verify(KNOWN_ANSWER.plain, `$${p}$${KNOWN_ANSWER.rest}`))) return null;
      }
      // And a wrong password must not pass.
      return (await addon.verify('U*V', `$2b$${KNOWN_ANSWER.rest}`)) ? null : addon;
    } catch {
      // A failure to run the probe (not a wrong answer) is asked again next time.
      native = undefined;
      return null;
    }
  })();
  return native;
}

/** A well-formed hash of `cost` that no password matches: random salt, random checksum. */
export function dummyBcrypt(cost: number): string {
  const salt = bcrypt.genSaltSync(cost);
  let sum = '';
  for (let i = 0; i < 31; i++) sum += ALPHABET[randomInt(ALPHABET.length)];
  return salt + sum;
}
