/**
 * FTP path arithmetic. FTP paths are virtual: "/" is the user's root, and a
 * normalised path is absolute, has no "." or ".." segments, no empty
 * segments, no backslashes and no trailing slash (except "/" itself).
 *
 * Nothing here touches the disk; a path is only text until a FileSystem
 * maps it under its root.
 */

/** Append the segments of `p` to `out`, applying "." and ".." (clamped at the root). */
function pushSegments(out: string[], p: string): void {
  let start = 0;
  const len = p.length;
  for (let i = 0; i <= len; i++) {
    const c = i === len ? 47 /* end acts as a separator */ : p.charCodeAt(i);
    if (c !== 47 /* / */ && c !== 92 /* \ */) continue;
    if (i > start) {
      const seg = p.slice(start, i);
      if (seg === '..') out.pop();
      else if (seg !== '.') out.push(seg);
    }
    start = i + 1;
  }
}

/**
 * Turn a client's path argument into a normalised absolute FTP path.
 *
 * - A relative `arg` is taken relative to `cwd`; an empty one gives `cwd`.
 * - "/" and "\" are both separators; repeated separators collapse.
 * - "." segments vanish; ".." drops one segment and stops at "/" (never an error).
 * - Spaces are kept as they are (names may start or end with them) and
 *   nothing is percent-decoded: "%2e%2e" is a literal file name.
 */
export function resolveFtpPath(cwd: string, arg: string): string {
  const segs: string[] = [];
  const first = arg.charCodeAt(0);
  if (!(first === 47 || first === 92)) pushSegments(segs, cwd);
  pushSegments(segs, arg);
  return segs.length === 0 ? '/' : `/${segs.join('/')}`;
}

/** Last segment of a normalised FTP path; "" for "/". */
export function ftpBasename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Parent of a normalised FTP path; "/" for "/" and for top-level entries. */
export function ftpDirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/**
 * Join a normalised directory path and one entry name (no separators in it),
 * as when listing a directory's children. Not a normaliser: use
 * resolveFtpPath for anything a client typed.
 */
export function ftpJoin(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** Whether `path` is `ancestor` or lies below it (both normalised). */
export function ftpIsWithin(ancestor: string, path: string): boolean {
  if (ancestor === '/') return true;
  return path === ancestor || (path.startsWith(ancestor) && path.charCodeAt(ancestor.length) === 47);
}
