/**
 * Password hashing with scrypt.
 *
 * Stored format: `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<key>`, where salt and key are standard
 * base64 (written without padding; padding is accepted when read). The key's length is taken
 * from the stored value, so hashes with a 16 to 64 byte key verify.
 *
 * scrypt runs through node:crypto's async API, on the libuv pool, so a login never blocks the
 * event loop. The cost parameters read from a stored hash are bounded (ln <= 20, r <= 32,
 * p <= 16, and 128·N·r <= 1 GiB of memory) so that a hostile or careless config cannot make
 * every login allocate gigabytes or run for minutes.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { inCheckSlot } from './hash-slots';
import { ConfigError } from '../config/errors';

export const SCRYPT_PREFIX = '$scrypt$';

/** scrypt cost: N = 2^ln, block size r, parallelism p. */
export interface ScryptParams {
  ln: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ ln: 14, r: 8, p: 1 });

export const SCRYPT_LIMITS = Object.freeze({
  ln: 20,
  r: 32,
  p: 16,
  /** Bound on scrypt's main buffer, 128·N·r bytes. */
  memory: 1024 * 1024 * 1024,
  saltBytes: { min: 8, max: 64 },
  keyBytes: { min: 16, max: 64 },
});

const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** A stored hash, taken apart. */
export interface ParsedPasswordHash {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

/** Why the cost parameters are out of bounds, or undefined when they are fine. */
function paramsProblem(params: ScryptParams): string | undefined {
  const { ln, r, p } = params;
  if (!Number.isInteger(ln) || ln < 1 || ln > SCRYPT_LIMITS.ln) return `ln must be an integer from 1 to ${SCRYPT_LIMITS.ln}`;
  if (!Number.isInteger(r) || r < 1 || r > SCRYPT_LIMITS.r) return `r must be an integer from 1 to ${SCRYPT_LIMITS.r}`;
  if (!Number.isInteger(p) || p < 1 || p > SCRYPT_LIMITS.p) return `p must be an integer from 1 to ${SCRYPT_LIMITS.p}`;
  if (128 * 2 ** ln * r > SCRYPT_LIMITS.memory) return 'ln and r ask for more than 1 GiB of memory (128·2^ln·r)';
  return undefined;
}

/** Decode strict base64: only canonical encodings (with or without padding) are accepted. */
function decodeB64(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return undefined;
  const buf = Buffer.from(s, 'base64');
  const canonical = buf.toString('base64');
  if (canonical !== s && canonical.replace(/=+$/, '') !== s) return undefined;
  return buf;
}

function encodeB64(buf: Buffer): string {
  return buf.toString('base64').replace(/=+$/, '');
}

/** Take a stored hash apart, or say why it is not one. */
export function parsePasswordHash(stored: unknown): { ok: true; value: ParsedPasswordHash } | { ok: false; reason: string } {
  if (typeof stored !== 'string' || !stored.startsWith(SCRYPT_PREFIX)) {
    return { ok: false, reason: `does not start with "${SCRYPT_PREFIX}"` };
  }
  const parts = stored.split('$');
  if (parts.length !== 5) return { ok: false, reason: 'expected $scrypt$ln=..,r=..,p=..$<salt>$<key>' };
  const m = /^ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})$/.exec(parts[2]);
  if (m === null) return { ok: false, reason: 'parameters must read ln=<n>,r=<n>,p=<n>' };
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  const problem = paramsProblem(params);
  if (problem !== undefined) return { ok: false, reason: problem };
  const salt = decodeB64(parts[3]);
  const { saltBytes, keyBytes } = SCRYPT_LIMITS;
  if (salt === undefined || salt.length < saltBytes.min || salt.length > saltBytes.max) {
    return { ok: false, reason: `salt must be base64 of ${saltBytes.min} to ${saltBytes.max} bytes` };
  }
  const key = decodeB64(parts[4]);
  if (key === undefined || key.length < keyBytes.min || key.length > keyBytes.max) {
    return { ok: false, reason: `key must be base64 of ${keyBytes.min} to ${keyBytes.max} bytes` };
  }
  return { ok: true, value: { params, salt, key } };
}

/** Whether `s` is a well-formed stored hash this module can verify. */
export function isPasswordHash(s: unknown): s is string {
  return parsePasswordHash(s).ok;
}

function deriveKey(plain: string, salt: Buffer, keyLen: number, params: ScryptParams, client?: string): Promise<Buffer> {
  const N = 2 ** params.ln;
  const { r, p } = params;
  // OpenSSL needs 128·r·(N + 2) for V plus 128·r·p for B; leave a little room on top.
  const maxmem = 128 * r * (N + p + 2) + 1024 * 1024;
  return inCheckSlot(
    client,
    () =>
      new Promise<Buffer>((resolve, reject) => {
        scrypt(plain, salt, keyLen, { N, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
      }),
  );
}

/** Check hash options, filling in the defaults; throws ConfigError naming `key`. */
export function checkScryptParams(opts: Partial<ScryptParams> | undefined, key = 'scrypt'): ScryptParams {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null)) {
    throw new ConfigError(key, 'an object { ln, r, p }');
  }
  const params = {
    ln: opts?.ln ?? DEFAULT_SCRYPT.ln,
    r: opts?.r ?? DEFAULT_SCRYPT.r,
    p: opts?.p ?? DEFAULT_SCRYPT.p,
  };
  const problem = paramsProblem(params);
  if (problem !== undefined) throw new ConfigError(key, problem);
  return params;
}

/** Hash `plain` with a fresh 16-byte salt into a 32-byte scrypt key, in the stored format. */
export async function hashPassword(plain: string, opts?: Partial<ScryptParams>): Promise<string> {
  if (typeof plain !== 'string') throw new TypeError('password must be a string');
  const params = checkScryptParams(opts);
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveKey(plain, salt, KEY_BYTES, params);
  return formatPasswordHash({ params, salt, key });
}

/** Write a parsed hash back in the stored format. */
export function formatPasswordHash(h: ParsedPasswordHash): string {
  const { ln, r, p } = h.params;
  return `${SCRYPT_PREFIX}ln=${ln},r=${r},p=${p}$${encodeB64(h.salt)}$${encodeB64(h.key)}`;
}

/**
 * Whether `plain` matches the stored hash. A malformed or out-of-bounds stored value gives
 * false without running scrypt; a failure of scrypt itself (out of memory) rejects.
 */
export async function verifyPassword(plain: string, stored: string, client?: string): Promise<boolean> {
  if (typeof plain !== 'string') return false;
  const parsed = parsePasswordHash(stored);
  if (!parsed.ok) return false;
  const { params, salt, key } = parsed.value;
  const derived = await deriveKey(plain, salt, key.length, params, client);
  return timingSafeEqual(derived, key);
}
