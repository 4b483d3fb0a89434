/**
 * bcrypt hashes as Apache's htpasswd and most web frameworks write them: `$2y$`, `$2a$` or
 * `$2b$`, a two-digit cost, then 22 characters of salt and 31 of checksum.
 *
 * Checking goes through bcryptjs's async API, which works in slices between which the event
 * loop runs, so a login never stalls other sessions for the length of a hash. The cost is
 * bounded (4 to 17, the range htpasswd -C accepts): a stored `$2y$31$...` would otherwise keep
 * a core busy for days per login.
 */
import { randomInt } from 'node:crypto';
import bcrypt from 'bcryptjs';
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
export function verifyBcrypt(plain: string, hash: string, client?: string): Promise<boolean> {
  return inCheckSlot(client, () => bcrypt.compare(plain, hash));
}

/** A well-formed hash of `cost` that no password matches: random salt, random checksum. */
export function dummyBcrypt(cost: number): string {
  const salt = bcrypt.genSaltSync(cost);
  let sum = '';
  for (let i = 0; i < 31; i++) sum += ALPHABET[randomInt(ALPHABET.length)];
  return salt + sum;
}
