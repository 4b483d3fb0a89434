import { sanitizeLine } from './parser';
import { ABORTED_BY_CLIENT, TransferAbort } from './data/transfer';
import { FtpError } from './errors';
import { COMMANDS } from './commands';
import type { Session } from './session';

/** Commands that may come between REST and its transfer command without cancelling it. */
const KEEPS_REST = new Set(['REST', 'PASV', 'EPSV', 'PORT', 'EPRT', 'SIZE', 'MDTM', 'NOOP', 'STAT', 'HELP']);

/**
 * The checks every command shares, once, in this order (STYLE.md):
 * known verb (500), argument count (501), logged in (530), valid in the
 * current state (503), the argument as a path inside the root, permission (550), handler.
 */
export async function dispatch(session: Session, verb: string, arg: string): Promise<void> {
  const cmd = COMMANDS.get(verb);
  if (!cmd) {
    session.renameFrom = null;
    session.copyFrom = null;
    throw new FtpError(500, `Command "${sanitizeLine(verb.slice(0, 16))}" not understood.`);
  }
  // An RNFR is consumed by the command right after it, whatever that is (RFC 959: RNTO must follow
  // at once), a new RNFR included: one refused (501, 550) leaves no source behind.
  if (cmd.verb !== 'RNTO') session.renameFrom = null;
  // The same for SITE CPFR and SITE CPTO: only a SITE CPTO keeps it (site.ts clears it for the rest).
  if (cmd.verb !== 'SITE' || !/^CPTO(\s|$)/i.test(arg.trimStart())) session.copyFrom = null;
  // A REST offset belongs to the transfer command right after it (RFC 959). Clients set up that
  // transfer's data connection before or after REST, and some ask the file's SIZE first.
  if (!cmd.transfer && !KEEPS_REST.has(cmd.verb)) session.restOffset = 0;

  if (cmd.arg === 'required' && arg.length === 0) throw new FtpError(501, 'Syntax error: command needs an argument.');
  if (cmd.arg === 'none' && arg.trim().length > 0) throw new FtpError(501, 'Syntax error: command does not accept arguments.');
  if (cmd.login && session.state !== 'ready') throw new FtpError(530, 'Log in with USER and PASS first.');
  const why = cmd.state?.(session);
  if (why) throw new FtpError(503, why);

  let path = '';
  if (cmd.path) {
    let part: string | null;
    if (cmd.path === 'arg') part = arg;
    else if (cmd.path === 'arg-or-cwd') part = arg;
    else part = cmd.path(arg);
    if (part === null) throw new FtpError(501, 'Syntax error in arguments.');
    // Resolved inside the root: the FTP path cannot climb above "/", and every
    // FileSystem operation checks the real location itself (symlinks included), so a
    // path that would leave the root fails there with FTPD_ERR_JAIL, a 550. Checking it
    // here as well would cost a realpath(2) per command for nothing.
    path = session.resolvePath(part);
  }
  if (cmd.perm) {
    const pending = session.checkPerm(cmd.perm, cmd.path ? path : session.cwd);
    if (pending) await pending;
  }
  // Returned, not awaited: this function's frame is then gone while a transfer runs, instead of
  // held (with its promise) by each of the hundreds of transfers a busy server has in flight,
  // which every scavenge would copy.
  return cmd.handle({ session, verb, arg, path });
}

/** Run a transfer command with its abort controller in place, so ABOR can reach it from the start. */
export async function dispatchTransfer(session: Session, verb: string, arg: string): Promise<void> {
  const abort = new TransferAbort();
  session.transferAbort = abort;
  session.abortAnswered = false;
  try {
    await dispatch(session, verb, arg);
  } finally {
    // The REST offset is this command's, taken or not (a command refused before its handler).
    session.restOffset = 0;
    session.transferAbort = null;
    // ABOR arrived before any transfer started (the command failed or never reached it), or
    // after it ended: answered once the command's own reply is out (Session.execute).
    if (abort.signal.reason === ABORTED_BY_CLIENT && !session.abortAnswered) session.abortOwed = true;
  }
}
