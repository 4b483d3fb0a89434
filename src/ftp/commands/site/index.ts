import type { CommandContext } from '../types';
import { chmod } from './chmod';
import { siteHelp } from './help';

export interface SiteCommand {
  name: string;
  help: string;
  handle(ctx: CommandContext): Promise<void> | void;
}

export const SITE_COMMANDS = new Map<string, SiteCommand>([chmod, siteHelp].map((c) => [c.name, c]));
