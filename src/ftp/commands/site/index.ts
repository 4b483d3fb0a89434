import type { CommandContext } from '../types';
import type { Session } from '../../session';
import { chmod } from './chmod';
import { cpfr, cpto } from './copy';
import { siteHelp } from './help';

export interface SiteCommand {
  name: string;
  help: string;
  /** False when the server's options turn the command off: it is then unknown (500) and not in SITE HELP. */
  enabled?(session: Session): boolean;
  handle(ctx: CommandContext): Promise<void> | void;
}

export const SITE_COMMANDS = new Map<string, SiteCommand>([chmod, cpfr, cpto, siteHelp].map((c) => [c.name, c]));
