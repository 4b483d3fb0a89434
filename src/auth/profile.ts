/**
 * What an authorizer knows about a user once the password is settled: home, letters,
 * overrides, messages and limits. The htpasswd and PostgreSQL authorizers both build these, from
 * options and from table rows, and answer the Authorizer getters from them.
 */
import * as path from 'node:path';
import { ConfigError } from '../config/errors';
import { NO_LIMITS, checkLimits } from './limits';
import { effectivePerms, isPermLetter, overridesBelow, validateOverrideDir, validatePerm, type PermOverride } from './perms';
import type { PermLetter, UserLimits } from './types';
import { DEFAULT_MSG_LOGIN, DEFAULT_MSG_QUIT, DEFAULT_PERM } from './virtual';

export interface UserProfile {
  readonly home: string;
  readonly perm: string;
  readonly overrides: readonly PermOverride[];
  readonly msgLogin: string;
  readonly msgQuit: string;
  /** Only the non-zero limits; empty for none. */
  readonly limits: Readonly<UserLimits>;
}

/** An override as options and config files give it. */
export interface OverrideConfig {
  /** FTP path inside the user's root ("/uploads"). */
  path: string;
  perm: string;
  recursive?: boolean;
}

export function checkHome(home: unknown, key: string): string {
  if (typeof home !== 'string' || home === '' || home.includes('\0') || !path.isAbsolute(home)) {
    throw new ConfigError(key, 'an absolute path');
  }
  return home;
}

function optionalString(value: unknown, fallback: string, key: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw new ConfigError(key, 'a string');
  return value;
}

/**
 * Check overrides and normalise their directories. Two entries on the same directory: the later
 * one wins, as with VirtualAuthorizer.overridePerm.
 */
export function checkOverrides(list: unknown, key: string): PermOverride[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new ConfigError(key, 'an array of { path, perm, recursive }');
  const byDir = new Map<string, PermOverride>();
  list.forEach((o: unknown, i) => {
    const okey = `${key}[${i}]`;
    if (typeof o !== 'object' || o === null) throw new ConfigError(okey, 'an object { path, perm, recursive }');
    const ov = o as { path?: unknown; perm?: unknown; recursive?: unknown };
    const directory = validateOverrideDir(ov.path, `${okey}.path`);
    const perm = validatePerm(ov.perm, `${okey}.perm`);
    const recursive = ov.recursive ?? false;
    if (typeof recursive !== 'boolean') throw new ConfigError(`${okey}.recursive`, 'a boolean');
    byDir.delete(directory);
    byDir.set(directory, Object.freeze({ directory, perm, recursive }));
  });
  return [...byDir.values()];
}

/**
 * Build a frozen profile, checking every field; errors name `key.<field>`. Without `limits`
 * (undefined) the profile gets `defaultLimits` (already checked by the caller).
 */
export function makeProfile(
  fields: { home: unknown; perm?: unknown; overrides?: unknown; msgLogin?: unknown; msgQuit?: unknown; limits?: unknown },
  key: string,
  defaultPerm = DEFAULT_PERM,
  defaultLimits: Readonly<UserLimits> = NO_LIMITS,
): UserProfile {
  return Object.freeze({
    home: checkHome(fields.home, `${key}.home`),
    perm: validatePerm(fields.perm ?? defaultPerm, `${key}.perm`),
    overrides: Object.freeze(checkOverrides(fields.overrides, `${key}.overrides`)),
    msgLogin: optionalString(fields.msgLogin, DEFAULT_MSG_LOGIN, `${key}.msgLogin`),
    msgQuit: optionalString(fields.msgQuit, DEFAULT_MSG_QUIT, `${key}.msgQuit`),
    limits: fields.limits === undefined ? defaultLimits : checkLimits(fields.limits, `${key}.limits`),
  });
}

/** overridesBelow over a profile; no profile means none. */
export function profileOverridesBelow(profile: UserProfile | undefined, ftpPath: string): boolean {
  return profile !== undefined && overridesBelow(profile.overrides, ftpPath);
}

/** hasPerm over a profile; no profile, or a letter that is not one, means no. */
export function profileHasPerm(profile: UserProfile | undefined, letter: PermLetter, ftpPath?: string): boolean {
  if (profile === undefined || !isPermLetter(letter)) return false;
  return effectivePerms(profile.perm, profile.overrides, ftpPath).includes(letter);
}
