import { FtpError } from '../errors';
import { bufferHandle, listLine, mlsxLine } from '../listing';
import { latin1Safe } from '../parser';
import type { Session } from '../session';
import type { DirEntry } from '../../fs/types';
import { ftpBasename } from '../../fs/paths';
import type { CommandDescriptor } from './types';

/** Drop the `ls` flags clients send ("LIST -al", "LIST -a dir"): they select nothing here. */
export function stripListFlags(arg: string): string {
  let a = arg;
  for (;;) {
    const m = /^-[A-Za-z]+(?: +|$)/.exec(a);
    if (!m) return a;
    a = a.slice(m[0].length);
  }
}

/** The entries a listing of `path` shows: a directory's contents, or the file itself. */
export async function entriesOf(session: Session, path: string): Promise<DirEntry[]> {
  const fs = session.requireFs();
  const st = await fs.stat(path);
  if (st.kind !== 'dir') return [{ name: ftpBasename(path), stat: await fs.lstat(path) }];
  const entries = await fs.readdir(path);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return entries;
}

/**
 * Names as listings show them. CR or LF would break every client's parser, and the other C0
 * controls and DEL would reach a terminal (`ls` in a command-line client: ESC sequences, BEL,
 * backspaces), so all are shown escaped: \r, \n, \0, others as \xNN.
 */
export function safeName(name: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f]/.test(name) ? name.replace(/[\x00-\x1f\x7f]/g, escapeControl) : name;
}

function escapeControl(c: string): string {
  if (c === '\r') return '\\r';
  if (c === '\n') return '\\n';
  if (c === '\0') return '\\0';
  return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

export function listLines(entries: DirEntry[], utc: boolean): string[] {
  const now = Date.now();
  return entries.map((e) => listLine({ name: safeName(e.name), stat: e.stat }, now, utc));
}

/** Send listing lines over the data channel (always CRLF, whatever TYPE says). */
export async function sendListing(session: Session, verb: string, path: string, lines: string[]): Promise<void> {
  const body = lines.length ? `${lines.join('\r\n')}\r\n` : '';
  await session.runTransfer({
    verb,
    path,
    direction: 'send',
    handle: bufferHandle(session.options.encoding === 'latin1' ? Buffer.from(latin1Safe(body), 'latin1') : Buffer.from(body, 'utf8')),
    ascii: false,
    preliminary: 'Here comes the directory listing.',
    file: false,
  });
}

export const list: CommandDescriptor = {
  verb: 'LIST',
  help: 'LIST [<sp> path] (list files).',
  login: true,
  arg: 'optional',
  perm: 'l',
  path: (arg) => stripListFlags(arg),
  transfer: true,
  async handle({ session, path }) {
    if (!session.dataChannel) throw new FtpError(425, 'Use PORT, EPRT, PASV or EPSV first.');
    const entries = await entriesOf(session, path);
    await sendListing(session, 'LIST', path, listLines(entries, session.options.useGmtTimes));
  },
};

