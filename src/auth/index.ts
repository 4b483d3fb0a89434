export * from './types';
export { AuthenticationFailedError, AuthorizerUnavailableError } from './errors';
export { ConfigError } from '../config/errors';
export {
  VirtualAuthorizer,
  fromConfig,
  type VirtualAuthorizerOptions,
  type UserOptions,
  type UserConfig,
} from './virtual';
export {
  hashPassword,
  verifyPassword,
  isPasswordHash,
  DEFAULT_SCRYPT,
  type ScryptParams,
} from './password';
export { validatePerm, type PermOverride } from './perms';
export { type AuthLogger } from './log';
export { type UserProfile, type OverrideConfig } from './profile';
export {
  HtpasswdAuthorizer,
  HtpasswdFormatError,
  apr1Crypt,
  parseHtpasswd,
  parseHtpasswdHash,
  type HtpasswdAuthorizerOptions,
  type HtpasswdUserOptions,
  type HtpasswdEntry,
} from './htpasswd';
export { PostgresAuthorizer, type PostgresAuthorizerOptions } from './postgres';
export {
  LockoutAuthorizer,
  MemoryLockoutStore,
  withLockout,
  type LockoutOptions,
  type LockoutRecord,
  type LockoutStore,
} from './lockout';
export { UnixAuthorizer, type UnixAuthorizerOptions } from './unix';
