/** A path that would reach outside the user's root. Maps to 550. */
export class JailError extends Error {
  readonly code = 'FTPD_ERR_JAIL';
  constructor(readonly path: string) {
    super(`Path outside the root: ${path}`);
    this.name = 'JailError';
  }
}

/** Make an errno-style error, as node:fs throws them, for filesystems that are not node:fs. */
export function fsError(code: string, syscall: string, path?: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${syscall}${path === undefined ? '' : ` '${path}'`}`);
  err.code = code;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}
