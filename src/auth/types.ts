/**
 * Permission letters, with exactly pyftpdlib's meaning.
 * Read:  e = CWD/CDUP, l = LIST/NLST/STAT/MLSD/MLST/SIZE/MDTM, r = RETR.
 * Write: a = APPE, d = DELE/RMD, f = RNFR/RNTO, m = MKD, w = STOR/STOU,
 *        M = SITE CHMOD, T = MFMT / MDTM with a time (set mtime).
 */
export type PermLetter = 'e' | 'l' | 'r' | 'a' | 'd' | 'f' | 'm' | 'w' | 'M' | 'T';

export const READ_PERMS = 'elr';
export const WRITE_PERMS = 'adfmwMT';
export const ALL_PERMS = READ_PERMS + WRITE_PERMS;

/** Who is asking, for authorizers that decide by address. */
export interface ClientInfo {
  address: string;
  port: number;
}

/**
 * Per-user limits, enforced by the server. 0 or absent means no limit.
 * - maxSessions: logged-in sessions at once (a login beyond it gets 530; the connection stays).
 * - readLimit / writeLimit: bytes per second of uploads / downloads, as the server-wide options
 *   of the same names; the smaller non-zero of the two applies. A user's limit is shared among
 *   the user's transfers in that direction (divided again as they start and end, see Session.throttleFor).
 * - quotaBytes / quotaFiles: total size and count of regular files under the user's home, for
 *   STOR, APPE and STOU (552 when exceeded).
 */
export interface UserLimits {
  maxSessions?: number;
  /** Upload bytes per second. */
  readLimit?: number;
  /** Download bytes per second. */
  writeLimit?: number;
  quotaBytes?: number;
  quotaFiles?: number;
}

/** The keys of UserLimits, in the order they are documented. */
export const USER_LIMIT_KEYS = ['maxSessions', 'readLimit', 'writeLimit', 'quotaBytes', 'quotaFiles'] as const;

/**
 * Decides who may log in, where their root is and what they may do.
 * All methods may be async so that a database or a remote service can back them.
 *
 * Paths given to hasPerm are FTP paths inside the user's root ("/", "/uploads/a.txt").
 */
export interface Authorizer {
  /** Resolve when the credentials are good; reject with AuthenticationFailedError otherwise. */
  validateAuthentication(user: string, password: string, client: ClientInfo): Promise<void>;
  /** The user's home: the root of the filesystem the session gets. */
  getHomeDir(user: string): string | Promise<string>;
  /** Whether `user` holds `perm` on `path` (per-directory overrides applied). */
  hasPerm(user: string, perm: PermLetter, path: string): boolean | Promise<boolean>;
  /** The user's base permission letters. */
  getPerms(user: string): string | Promise<string>;
  getMsgLogin(user: string): string | Promise<string>;
  getMsgQuit(user: string): string | Promise<string>;
  /**
   * Optional: whether a per-directory override is set on a folder strictly inside `path`. The
   * server then refuses to rename `path` (550): a move would take that folder out from under its
   * override, and with it the restriction (renaming `/a` to `/b` frees `/a/private`). Authorizers
   * with per-directory permissions implement it; without it a folder's rename is not checked so.
   */
  overridesBelow?(user: string, path: string): boolean | Promise<boolean>;
  /** Optional: whether a user name is known, for authorizers that can say so cheaply. */
  hasUser?(user: string): boolean | Promise<boolean>;
  /** Optional: the user's limits (asked once per login). Without it a user has none. */
  getLimits?(user: string): UserLimits | Promise<UserLimits>;
}
