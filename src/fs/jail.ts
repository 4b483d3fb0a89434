import * as nodePath from 'node:path';
import { JailError, fsError } from './errors';
import { ftpBasename, ftpDirname, resolveFtpPath } from './paths';

/** Where a path really leads: its real location, and whether something is there. */
export interface RealLocation {
  real: string;
  exists: boolean;
}

/**
 * The system calls a jail needs, made as whoever the filesystem acts as (the server, or a
 * system user). Failures are errno-style errors (code ENOENT...).
 */
export interface JailProbe {
  realpath(local: string, ftpPath: string): Promise<string>;
  isSymlink(local: string, ftpPath: string): Promise<boolean>;
  readlink(local: string, ftpPath: string): Promise<string>;
}

/** Symlink hops followed while resolving a dangling link, as the kernel's ELOOP limit. */
const MAX_LINK_HOPS = 40;

function errCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

/**
 * The filesystem a jail belongs to, which resolves the root's real path for it: a method of the
 * filesystem rather than a closure, which every session's filesystem would hold (about 100 bytes).
 */
export interface JailOwner {
  resolveJailRoot(): Promise<string>;
}

/**
 * The jail of a local filesystem rooted at a real directory: maps FTP paths to real paths and
 * refuses every path whose real location (symlinks followed) is outside the root. Shared by
 * LocalFileSystem and AsUserFileSystem, which differ only in who makes the system calls.
 */
export class Jail {
  private rootReal?: Promise<string>;
  /** Real root with a trailing separator, once known. */
  private rootPrefix = '';
  private rootResolved = '';

  constructor(
    readonly root: string,
    private readonly probe: JailProbe,
    /** How the root is resolved (LocalFileSystem shares the answer among sessions for a moment). */
    private readonly owner: JailOwner,
  ) {}

  /** The root's real path, resolved on first use (a failure is retried on the next call). */
  realRoot(): Promise<string> {
    if (!this.rootReal) {
      this.rootReal = this.owner.resolveJailRoot().then((r) => {
        this.rootResolved = r;
        this.rootPrefix = r.endsWith(nodePath.sep) ? r : r + nodePath.sep;
        return r;
      });
      this.rootReal.catch(() => {
        this.rootReal = undefined;
      });
    }
    return this.rootReal;
  }

  private inside(real: string): boolean {
    return real === this.rootResolved || real.startsWith(this.rootPrefix);
  }

  /** Validate and re-normalise an FTP path (a NUL byte is FTPD_ERR_BADNAME). */
  clean(path: string, syscall: string): string {
    if (typeof path !== 'string' || path.includes('\0')) throw fsError('FTPD_ERR_BADNAME', syscall, String(path));
    return resolveFtpPath('/', path);
  }

  /**
   * Where `local` really is: its realpath when it exists; otherwise the real path of the
   * deepest existing ancestor plus the missing tail, following a dangling symlink met at
   * the first missing segment (creating through it would create its target).
   */
  private async locate(local: string, ftpPath: string, hops = 0): Promise<RealLocation> {
    try {
      return { real: await this.probe.realpath(local, ftpPath), exists: true };
    } catch (err) {
      if (errCode(err) !== 'ENOENT') throw err;
    }
    const parent = nodePath.dirname(local);
    if (parent === local) throw fsError('ENOENT', 'realpath', ftpPath);
    const up = await this.locate(parent, ftpPath, hops);
    const candidate = nodePath.join(up.real, nodePath.basename(local));
    if (!up.exists) return { real: candidate, exists: false };
    let link: boolean;
    try {
      link = await this.probe.isSymlink(candidate, ftpPath);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return { real: candidate, exists: false };
      throw err;
    }
    if (!link) return { real: candidate, exists: true }; // appeared meanwhile
    if (hops >= MAX_LINK_HOPS) throw fsError('ELOOP', 'realpath', ftpPath);
    const target = await this.probe.readlink(candidate, ftpPath);
    return this.locate(nodePath.resolve(up.real, target), ftpPath, hops + 1);
  }

  /** Follow-check: where `ftpPath` (normalised) really leads, refused when outside the root. */
  async follow(ftpPath: string): Promise<RealLocation> {
    const root = await this.realRoot();
    if (ftpPath === '/') return { real: root, exists: true };
    const loc = await this.locate(root === '/' ? ftpPath : root + ftpPath, ftpPath);
    if (!this.inside(loc.real)) throw new JailError(ftpPath);
    return loc;
  }

  /** Like follow, for an operation that needs the path to exist. */
  async followExisting(ftpPath: string, syscall: string): Promise<string> {
    const loc = await this.follow(ftpPath);
    if (!loc.exists) throw fsError('ENOENT', syscall, ftpPath);
    return loc.real;
  }

  /**
   * Entry-check: the real path of the entry itself (its parent followed and checked, its last
   * segment not followed), so a symlink can be removed or renamed but never followed.
   * `ftpPath` must not be "/".
   */
  async entry(ftpPath: string, syscall: string): Promise<string> {
    const parent = await this.followExisting(ftpDirname(ftpPath), syscall);
    return nodePath.join(parent, ftpBasename(ftpPath));
  }
}
