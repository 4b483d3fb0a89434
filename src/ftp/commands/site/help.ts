import type { SiteCommand } from './index';

export const siteHelp: SiteCommand = {
  name: 'HELP',
  help: 'SITE HELP (list SITE commands).',
  async handle({ session }) {
    const { SITE_COMMANDS } = await import('./index');
    const lines = [...SITE_COMMANDS.values()].filter((c) => c.enabled?.(session) !== false).map((c) => ` ${c.help}`);
    session.reply(214, ['Help SITE command successful.', ...lines, 'End of SITE HELP.']);
  },
};
