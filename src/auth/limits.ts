/**
 * Checking UserLimits as options and config files give them. Every authorizer that takes limits
 * (virtual, htpasswd, PostgreSQL, system users) checks them here, so the rules and the error
 * messages are the same everywhere.
 */
import { ConfigError } from '../config/errors';
import { USER_LIMIT_KEYS, type UserLimits } from './types';

/** An empty limits object: no limit at all. */
export const NO_LIMITS: Readonly<UserLimits> = Object.freeze({});

/**
 * Check a limits object: known keys only, each a non-negative integer; 0 and absent keys are
 * dropped. Undefined means no limits. Errors name `key.<limit>` (or `key` when the value is not
 * a mapping).
 */
export function checkLimits(value: unknown, key: string): Readonly<UserLimits> {
  if (value === undefined) return NO_LIMITS;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(key, `a mapping { ${USER_LIMIT_KEYS.join(', ')} }`);
  }
  const out: UserLimits = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (!(USER_LIMIT_KEYS as readonly string[]).includes(k)) throw new ConfigError(`${key}.${k}`, `one of ${USER_LIMIT_KEYS.join(', ')}`);
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ConfigError(`${key}.${k}`, 'a non-negative integer (0 for no limit)');
    if (v > 0) out[k as keyof UserLimits] = v;
  }
  return Object.freeze(out);
}
