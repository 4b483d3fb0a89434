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
  /** Optional: whether a user name is known, for authorizers that can say so cheaply. */
  hasUser?(user: string): boolean | Promise<boolean>;
}
