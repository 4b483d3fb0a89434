// ftpdlib's public surface.
export { FtpServer } from './ftp/server';
export type { FtpServerEvents, SessionInfo } from './ftp/server';
export type { TransferInfo } from './ftp/session';
export type { CopyInfo } from './ftp/server-context';
export type { FtpServerOptions, MetricsOptions, TlsOptions } from './config/options';
export { parseProxyHeader, ProxyHeaderError, type ProxyHeader, type ProxyProtocolMode } from './ftp/proxy-protocol';
export { ConfigError } from './config/errors';
export { FtpError } from './ftp/errors';
export type { Authorizer, ClientInfo, PermLetter } from './auth/types';
export type { UserLimits } from './auth/types';
export { AuthenticationFailedError, AuthorizerUnavailableError } from './auth/errors';
export { inCheckSlot } from './auth/hash-slots';
export {
  VirtualAuthorizer,
  hashPassword,
  verifyPassword,
  HtpasswdAuthorizer,
  HtpasswdFormatError,
  PostgresAuthorizer,
  LockoutAuthorizer,
  MemoryLockoutStore,
  withLockout,
  type VirtualAuthorizerOptions,
  type UserOptions,
  type OverrideConfig,
  type HtpasswdAuthorizerOptions,
  type HtpasswdUserOptions,
  type PostgresAuthorizerOptions,
  type LockoutOptions,
  type LockoutRecord,
  type LockoutStore,
  type AuthLogger,
} from './auth';
export type { FileSystem, FileHandle, FileStat, DirEntry, OpenWriteOptions, FileSystemFactory } from './fs/types';
export { LocalFileSystem } from './fs/local';
export { MemoryFileSystem, type MemoryFileSystemOptions } from './fs/memory';
export { SubtreeFileSystem } from './fs/subtree';
export { UnixAuthorizer, type UnixAuthorizerOptions } from './auth/unix';
export { AsUserFileSystem, type FsUser } from './fs/as-user';
export { JailError } from './fs/errors';
export type { TransferEngine, TransferRequest, TransferResult, TransferPath } from './ftp/data/transfer';
