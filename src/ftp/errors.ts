import { TransferError } from './data/transfer';

/** An error that already knows its FTP reply. Handlers throw these; dispatch replies. */
export class FtpError extends Error {
  readonly code = 'FTPD_ERR_REPLY';
  constructor(
    readonly reply: number,
    readonly reason: string,
  ) {
    // A refusal is a reply, not a fault: no stack is taken (a third of the CPU of an unknown
    // verb's 500 went into capturing one, and a client can send thousands a second).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`${reply} ${reason}`);
    Error.stackTraceLimit = limit;
    this.name = 'FtpError';
  }
}

export interface Reply {
  code: number;
  text: string;
}

/** errno (or our own FTPD_ERR_*) codes to replies: one table, shared by every command. */
const BY_CODE: Readonly<Record<string, Reply>> = Object.assign(Object.create(null) as Record<string, Reply>, {
  ENOENT: { code: 550, text: 'No such file or directory.' },
  ENOTDIR: { code: 550, text: 'Not a directory.' },
  EISDIR: { code: 550, text: 'Is a directory.' },
  EEXIST: { code: 550, text: 'File exists.' },
  ENOTEMPTY: { code: 550, text: 'Directory not empty.' },
  EACCES: { code: 550, text: 'Permission denied.' },
  EPERM: { code: 550, text: 'Operation not permitted.' },
  EBUSY: { code: 550, text: 'Resource busy.' },
  EINVAL: { code: 550, text: 'Invalid argument.' },
  ELOOP: { code: 550, text: 'Too many levels of symbolic links.' },
  EXDEV: { code: 550, text: 'Cannot move across filesystems.' },
  EROFS: { code: 550, text: 'Read-only filesystem.' },
  FTPD_ERR_JAIL: { code: 550, text: 'No such file or directory.' },
  ENAMETOOLONG: { code: 553, text: 'File name too long.' },
  FTPD_ERR_BADNAME: { code: 553, text: 'File name not allowed.' },
  ENOSPC: { code: 452, text: 'No space left on device.' },
  EDQUOT: { code: 552, text: 'Disk quota exceeded.' },
  EFBIG: { code: 552, text: 'File too large.' },
  FTPD_ERR_QUOTA: { code: 552, text: 'Quota exceeded.' },
  ECONNRESET: { code: 426, text: 'Connection closed; transfer aborted.' },
  EPIPE: { code: 426, text: 'Connection closed; transfer aborted.' },
  // On a TLS data connection: a record that is too long or does not authenticate (EBADMSG), or
  // one that should not be there, such as a handshake message (EPROTO).
  EBADMSG: { code: 426, text: 'TLS error on the data connection; transfer aborted.' },
  EPROTO: { code: 426, text: 'TLS error on the data connection; transfer aborted.' },
  ETIMEDOUT: { code: 426, text: 'Data connection timed out; transfer aborted.' },
  FTPD_ERR_DATA_TIMEOUT: { code: 426, text: 'Data connection idle too long; transfer aborted.' },
  FTPD_ERR_ABORTED: { code: 426, text: 'Transfer aborted.' },
  FTPD_ERR_AUTH_UNAVAILABLE: { code: 421, text: 'Service not available, try again later.' },
});

const UNEXPECTED: Reply = { code: 451, text: 'Requested action aborted: local error in processing.' };

/** Transfer failures that are this server's (451), where the rest are the connection's (426). */
const LOCAL_TRANSFER_FAILURES = new Set(['EIO', 'EINVAL']);

/**
 * Decide the reply for anything a handler threw. The client gets a code and a
 * short reason; the detail (paths, errno text) belongs in the log only.
 */
export function toReply(err: unknown): Reply {
  if (err instanceof FtpError) return { code: err.reply, text: err.reason };
  if (err instanceof TransferError) {
    // A transfer failing on the disk (EIO), or with EINVAL (the file's or the engine's: a splice
    // refused mid-way, not a bad argument of the client's), failed here, not on the connection.
    if (LOCAL_TRANSFER_FAILURES.has(err.code)) return UNEXPECTED;
    const r = Object.hasOwn(BY_CODE, err.code) ? BY_CODE[err.code] : undefined;
    if (!r) return { code: 426, text: 'Transfer failed.' };
    // After a 150 a file-side refusal is no 550 or 553 (RFC 959 lists neither there): an lstat
    // refused in a listing's tenth batch, a read refused mid-file. 451 says the server gave up.
    return r.code === 550 || r.code === 553 ? { code: 451, text: r.text } : r;
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && Object.hasOwn(BY_CODE, code)) return BY_CODE[code];
  return UNEXPECTED;
}

/** True for errors that are part of normal operation (not worth an error-level log). */
export function isExpected(err: unknown): boolean {
  if (err instanceof FtpError) return true;
  // A disk error during a transfer is worth an error-level record, as it is anywhere else.
  if (err instanceof TransferError) return err.code !== 'EIO';
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && Object.hasOwn(BY_CODE, code);
}
