import { FtpError } from '../errors';
import { iterableHandle, listLine } from '../listing';
import { sortedBatches } from '../../fs/batches';
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

/** Entries per batch of a streamed listing: lstat'ed, formatted and written together. */
export const LISTING_BATCH = 256;

/**
 * The entries a listing of `path` shows, in name order and in batches: a directory's contents
 * (streamed where the filesystem can: its names now, the rest as the data connection takes it),
 * or the file itself. Everything that can fail before the 150 (a missing path, a directory that
 * cannot be read) fails here.
 */
export async function listingBatches(session: Session, path: string): Promise<AsyncIterable<DirEntry[]>> {
  const fs = session.requireFs();
  const st = await fs.stat(path);
  if (st.kind !== 'dir') return sortedBatches([{ name: ftpBasename(path), stat: await fs.lstat(path) }], 1);
  if (fs.readdirStream) return fs.readdirStream(path, LISTING_BATCH);
  return sortedBatches(await fs.readdir(path), LISTING_BATCH);
}

/**
 * Send a listing over the data channel a batch at a time (always CRLF, whatever TYPE says): one
 * line per entry from `line`. A 100,000-entry LIST had held every entry's stat, every line, their
 * join and its encoding at once (+148 MB RSS), and its 150 came after all of it (3 to 5 s);
 * other sessions' replies waited on the formatting.
 */
export async function streamListing(
  session: Session,
  verb: string,
  path: string,
  batches: AsyncIterable<DirEntry[]>,
  line: (e: DirEntry) => string | Promise<string>,
): Promise<void> {
  const latin1 = session.options.encoding === 'latin1';
  await session.runTransfer({
    verb,
    path,
    direction: 'send',
    handle: iterableHandle(async function* chunks(): AsyncGenerator<Buffer> {
      for await (const batch of batches) {
        let text = '';
        for (const e of batch) text += `${await line(e)}\r\n`;
        if (text) yield latin1 ? Buffer.from(latin1Safe(text), 'latin1') : Buffer.from(text, 'utf8');
      }
    }),
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
    const batches = await listingBatches(session, path);
    const now = Date.now();
    const utc = session.options.useGmtTimes;
    await streamListing(session, 'LIST', path, batches, (e) => listLine({ name: safeName(e.name), stat: e.stat }, now, utc));
  },
};

