import { Readable } from 'node:stream';
import type { DirEntry, FileHandle, FileStat } from '../fs/types';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const SIX_MONTHS_MS = 180 * 24 * 3600 * 1000;

/** "drwxr-xr-x" from a stat. */
export function modeString(st: FileStat): string {
  const m = st.mode;
  const t = st.kind === 'dir' ? 'd' : st.kind === 'symlink' ? 'l' : st.kind === 'file' ? '-' : otherTypeLetter(m);
  const bit = (mask: number, ch: string): string => (m & mask ? ch : '-');
  const special = (x: number, s: number, lower: string, upper: string): string =>
    m & s ? (m & x ? lower : upper) : m & x ? 'x' : '-';
  return (
    t +
    bit(0o400, 'r') + bit(0o200, 'w') + special(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + special(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + special(0o001, 0o1000, 't', 'T')
  );
}

/**
 * `ls` letter of a FIFO, socket or device. Clients' LIST parsers (basic-ftp,
 * FileZilla) drop or choke on lines whose first letter they do not know.
 */
function otherTypeLetter(mode: number): string {
  switch (mode & 0o170000) {
    case 0o010000:
      return 'p';
    case 0o140000:
      return 's';
    case 0o020000:
      return 'c';
    case 0o060000:
      return 'b';
    default:
      return '?';
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** One `ls -l` line, the form FileZilla, lftp and curl parse. */
export function listLine(e: DirEntry, now: number, utc: boolean): string {
  const st = e.stat;
  const d = st.mtime;
  const [mon, day, hh, mm, yy] = utc
    ? [d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCFullYear()]
    : [d.getMonth(), d.getDate(), d.getHours(), d.getMinutes(), d.getFullYear()];
  const recent = Math.abs(now - d.getTime()) < SIX_MONTHS_MS;
  const when = `${MONTHS[mon]} ${String(day).padStart(2)} ${recent ? `${pad2(hh)}:${pad2(mm)}` : String(yy).padStart(5)}`;
  return `${modeString(st)} ${String(st.nlink).padStart(3)} ${String(st.uid).padEnd(8)} ${String(st.gid).padEnd(8)} ${String(st.size).padStart(8)} ${when} ${e.name}`;
}

/** YYYYMMDDHHMMSS in UTC (MDTM, MLSD `modify`). */
export function ftpTime(d: Date): string {
  return (
    String(d.getUTCFullYear()).padStart(4, '0') +
    pad2(d.getUTCMonth() + 1) + pad2(d.getUTCDate()) +
    pad2(d.getUTCHours()) + pad2(d.getUTCMinutes()) + pad2(d.getUTCSeconds())
  );
}

/** Parse YYYYMMDDHHMMSS[.sss] as UTC; null when malformed or out of range. */
export function parseFtpTime(s: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,3}))?$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number);
  const ms = m[7] ? Number(m[7].padEnd(3, '0')) : 0;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return null;
  // A leap second (RFC 3659 allows 60) is kept in its own minute; JS dates have no 23:59:60.
  const date = new Date(Date.UTC(2000, mo - 1, d, h, mi, Math.min(se, 59), ms));
  // Date.UTC takes years 0-99 as 19xx: set the year on its own.
  date.setUTCFullYear(y, mo - 1, d);
  if (date.getUTCDate() !== d || date.getUTCMonth() !== mo - 1) return null; // 20230231 and friends
  return date;
}

/** Facts this server offers in MLSD/MLST, in FEAT order; the ones on by default are pyftpdlib's plus unique and unix.mode. */
export const MLST_FACTS = ['type', 'size', 'modify', 'perm', 'unique', 'unix.mode', 'unix.uid', 'unix.gid'] as const;
export const DEFAULT_MLST_FACTS = ['type', 'size', 'modify', 'perm', 'unique', 'unix.mode'];

/**
 * RFC 3659 `perm` fact from the user's letters (pyftpdlib's meaning of each letter): `perms` are
 * those at the entry's own path, `inside` (a folder's) those at a new name in it, where its c, m
 * and p act (STOR, MKD and DELE there). They differ where a per-directory override applies to
 * the folder but not below it; the user's letters are both when no path is known.
 */
export function permFact(st: FileStat, perms: string, inside = perms): string {
  let out = '';
  if (st.kind === 'dir') {
    if (inside.includes('w')) out += 'c';
    if (perms.includes('d')) out += 'd';
    if (perms.includes('e')) out += 'e';
    if (perms.includes('f')) out += 'f';
    if (perms.includes('l')) out += 'l';
    if (inside.includes('m')) out += 'm';
    if (inside.includes('d')) out += 'p';
  } else {
    if (perms.includes('a')) out += 'a';
    if (perms.includes('d')) out += 'd';
    if (perms.includes('f')) out += 'f';
    if (perms.includes('r')) out += 'r';
    if (perms.includes('w')) out += 'w';
  }
  return out;
}

/** "type=file;size=3;modify=...; name" (MLSD line, or MLST line without the leading space). */
export function mlsxLine(name: string, st: FileStat, facts: ReadonlySet<string>, perms: string | { self: string; inside: string }, typeOverride?: string): string {
  let out = '';
  if (facts.has('type')) out += `type=${typeOverride ?? (st.kind === 'dir' ? 'dir' : st.kind === 'file' ? 'file' : st.kind === 'symlink' ? 'OS.unix=symlink' : 'OS.unix=other')};`;
  if (facts.has('size') && st.kind !== 'dir') out += `size=${st.size};`;
  if (facts.has('modify')) out += `modify=${ftpTime(st.mtime)};`;
  if (facts.has('perm')) out += `perm=${typeof perms === 'string' ? permFact(st, perms) : permFact(st, perms.self, perms.inside)};`;
  if (facts.has('unique')) out += `unique=${st.unique};`;
  if (facts.has('unix.mode')) out += `unix.mode=0${(st.mode & 0o7777).toString(8).padStart(3, '0')};`;
  if (facts.has('unix.uid')) out += `unix.uid=${st.uid};`;
  if (facts.has('unix.gid')) out += `unix.gid=${st.gid};`;
  return `${out} ${name}`;
}

/** A FileHandle over bytes made in memory (listings), so they travel through the same transfer seam as files. */
export function bufferHandle(data: Buffer): FileHandle {
  return {
    offset: 0,
    createReadStream: () => Readable.from(data.length ? [data] : [], { objectMode: false }),
    createWriteStream: () => {
      throw new Error('read-only handle');
    },
    close: async () => {},
  };
}

/**
 * A FileHandle over bytes made as they are read (a streamed listing): `chunks` is started when the
 * transfer reads the stream, paused while the data socket is full, and ended early (its `finally`
 * blocks run) when the transfer is aborted; never started when no data connection came.
 */
export function iterableHandle(chunks: () => AsyncIterable<Buffer>): FileHandle {
  let stream: Readable | null = null;
  return {
    offset: 0,
    createReadStream: () => (stream = Readable.from(chunks(), { objectMode: false })),
    createWriteStream: () => {
      throw new Error('read-only handle');
    },
    close: async () => {
      stream?.destroy();
    },
  };
}

