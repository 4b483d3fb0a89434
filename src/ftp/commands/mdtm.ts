import { FtpError } from '../errors';
import { ftpTime, parseFtpTime } from '../listing';
import { sanitizeLine } from '../parser';
import type { CommandDescriptor } from './types';

/** `MDTM YYYYMMDDHHMMSS path` sets the time (as many clients do); `MDTM path` reads it. */
function split(arg: string): { time: Date | null; path: string } {
  const m = /^(\d{14}(?:\.\d{1,3})?) (.+)$/.exec(arg);
  if (m) {
    const time = parseFtpTime(m[1]);
    if (time) return { time, path: m[2] };
  }
  return { time: null, path: arg };
}

export const mdtm: CommandDescriptor = {
  verb: 'MDTM',
  help: 'MDTM [<sp> YYYYMMDDHHMMSS] <sp> file-name (get or set last modification time).',
  login: true,
  arg: 'required',
  perm: 'l',
  path: (arg) => split(arg).path,
  async handle({ session, arg, path }) {
    const fs = session.requireFs();
    const { time } = split(arg);
    if (time) {
      // A name that itself starts with a time and a space ("20240101120000 report.txt") is read,
      // as vsftpd does: the set form is taken only when the whole argument names nothing. A query
      // (curl -R, FileZilla) must never change another file's time.
      const whole = session.resolvePath(arg);
      const named = await fs.stat(whole).catch(() => null);
      if (named) {
        await session.requirePerm('l', whole);
        if (named.kind !== 'file') throw new FtpError(550, 'Not a regular file.');
        session.reply(213, ftpTime(named.mtime));
        return;
      }
      await session.requirePerm('T', path);
      const st = await fs.stat(path);
      if (st.kind !== 'file') throw new FtpError(550, 'Not a regular file.');
      await fs.setMtime(path, time);
      session.reply(213, `Modify=${ftpTime(time)}; ${sanitizeLine(path)}`);
      return;
    }
    const st = await fs.stat(path);
    if (st.kind !== 'file') throw new FtpError(550, 'Not a regular file.');
    session.reply(213, ftpTime(st.mtime));
  },
};
