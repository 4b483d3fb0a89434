import type { PermLetter } from '../../auth/types';
import type { Session } from '../session';

/** What a handler gets: the session, the verb as sent, its argument and the resolved path. */
export interface CommandContext {
  session: Session;
  verb: string;
  arg: string;
  /** The argument resolved to an FTP path inside the root (when the descriptor asks for it). */
  path: string;
}

/**
 * One command's policy, checked by dispatch in a fixed order before the
 * handler runs (STYLE.md "One module per command, one table of policy").
 */
export interface CommandDescriptor {
  verb: string;
  /** Other verbs served by this module (XPWD for PWD...). */
  aliases?: readonly string[];
  /** Syntax line for HELP. */
  help: string;
  /** Needs a logged-in user. */
  login: boolean;
  /** Whether an argument is required, optional, or refused. */
  arg: 'required' | 'optional' | 'none';
  /** Permission letter the user must hold on the resolved path. */
  perm?: PermLetter;
  /**
   * How the argument becomes a path: the argument itself, the argument or the
   * cwd when absent, or a function that extracts the path part (MFMT, SITE CHMOD).
   */
  path?: 'arg' | 'arg-or-cwd' | ((arg: string) => string | null);
  /** Returns a reason (sent as 503) when the command is not valid in the session's current state. */
  state?: (session: Session) => string | null;
  /** Runs as the session's transfer: ABOR, STAT, QUIT, NOOP and HELP are served meanwhile. */
  transfer?: boolean;
  /** Served at once even while a transfer runs. */
  duringTransfer?: boolean;
  handle(ctx: CommandContext): Promise<void> | void;
}
