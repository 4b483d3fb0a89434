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
