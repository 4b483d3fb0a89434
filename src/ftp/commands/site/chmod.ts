import { FtpError } from '../../errors';
import type { SiteCommand } from './index';

export const chmod: SiteCommand = {
  name: 'CHMOD',
  help: 'SITE CHMOD <sp> mode <sp> path (change file mode).',
  async handle({ session, arg }) {
    const m = /^([0-7]{1,4}) (.+)$/.exec(arg);
    if (!m) throw new FtpError(501, 'Syntax: SITE CHMOD <octal mode> <path>.');
    const path = session.resolvePath(m[2]);
    const fs = session.requireFs();
    await fs.resolve(path);
    await session.requirePerm('M', path);
    // Permission bits only, whatever the filesystem: an FTP user never makes a setuid, setgid or
    // sticky file (a setuid binary owned by the server's user, root without runAs). vsftpd masks too.
    await fs.chmod(path, parseInt(m[1], 8) & 0o777);
    session.reply(200, 'SITE CHMOD successful.');
  },
};
