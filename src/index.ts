// ftpdlib's public surface.
export { FtpServer } from './ftp/server';
export type { FtpServerEvents, SessionInfo } from './ftp/server';
export type { TransferInfo } from './ftp/session';
export type { FtpServerOptions, MetricsOptions } from './config/options';
export { parseProxyHeader, ProxyHeaderError, type ProxyHeader, type ProxyProtocolMode } from './ftp/proxy-protocol';
export { ConfigError } from './config/errors';
export { FtpError } from './ftp/errors';
export type { Authorizer, ClientInfo, PermLetter } from './auth/types';
export type { UserLimits } from './auth/types';
export { AuthenticationFailedError, AuthorizerUnavailableError } from './auth/errors';
export { VirtualAuthorizer, hashPassword, verifyPassword } from './auth';
export type { FileSystem, FileHandle, FileStat, DirEntry, OpenWriteOptions, FileSystemFactory } from './fs/types';
export { LocalFileSystem } from './fs/local';
export { MemoryFileSystem } from './fs/memory';
export { UnixAuthorizer, type UnixAuthorizerOptions } from './auth/unix';
export { AsUserFileSystem, type FsUser } from './fs/as-user';
export { JailError } from './fs/errors';
export type { TransferEngine, TransferRequest, TransferResult, TransferPath } from './ftp/data/transfer';
