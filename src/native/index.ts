import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getSystemErrorName } from 'node:util';
import {
  TransferError,
  type TransferEngine,
  type TransferPath,
  type TransferRequest,
  type TransferResult,
  type TransferSignal,
} from '../ftp/data/transfer';
import type { TlsRecordState } from '../ftp/data/tls-gate';
import type { NativeSeal } from '../ftp/data/tls-seal';

/**
 * The native engine's loader and its TransferEngine.
 *
 * The addon (src/native/build/Release/ftpdlib_native.node) is looked up from
 * the package root, so this module behaves the same from src/ (ts-node) and
 * from dist/src/native/ (compiled). It is skipped with FTPDLIB_NO_NATIVE=1
 * and off Linux. `available` and `reason` say what happened, for the one
 * start-up log line.
 */

/** How the engine moves bytes; the defaults come from src/native/bench. */
export interface NativeOptions {
  /** RETR: 'sendfile', 'splice' (file → pipe → socket) or 'copy' (pread + send). */
  sendMechanism?: 'sendfile' | 'splice' | 'copy';
  /**
   * STOR/APPE: 'splice' (socket → pipe → file: one copy of each byte, into the page cache) or
   * 'copy' (recv + pwrite: two). A file opened O_APPEND, or one whose filesystem refuses splice,
   * gets 'copy' whatever is asked.
   */
  receiveMechanism?: 'splice' | 'copy';
  /**
   * Bytes per system call: sendfile's count, the copy buffer, a splice's
   * length. 4 KiB..64 MiB, or 0 for the mechanism's default (CHUNK_DEFAULTS).
   */
  chunkSize?: number;
  /** Capacity asked of the splice pipe (F_SETPIPE_SZ). 4 KiB..64 MiB; the kernel may grant less. */
  pipeSize?: number;
  /**
   * SO_SNDBUF / SO_RCVBUF set on the data socket before the transfer; 0 leaves
   * the kernel's autotuning alone. This changes the caller's socket too (a dup
   * shares it), and a fixed size turns autotuning off for that socket.
   */
  sendBufferSize?: number;
  receiveBufferSize?: number;
  /**
   * Send: hold partial segments with TCP_CORK while the engine sends, and push the tail when
   * it ends (nginx's tcp_nopush). Default true: on loopback it cut sendfile's CPU per byte
   * by about a sixth (src/native/bench/RESULTS.md).
   */
  cork?: boolean;
}

/** Engine-wide settings: the per-transfer defaults, plus the I/O thread count. */
export interface NativeConfig extends Required<NativeOptions> {
  /** I/O threads (each with its own epoll). Takes effect only before the first transfer. */
  threads: number;
  /**
   * How much lower the I/O threads' scheduling priority is than the process's (nice, 0..19).
   * Default 10: on a machine short of CPU the event loop, which answers every session's
   * commands, gets a core before the threads moving file bytes (in the benchmark's "many",
   * loop delay p99 over 10 ms in 1 round of 9 against 6 of 9 at 0; files/s and RETR-to-226
   * a little behind 0's); with CPU to spare it changes nothing (src/native/bench/RESULTS.md,
   * "The I/O thread's priority"). Nice ranks threads within one scheduling group (a session's
   * autogroup, a service's cgroup): where the process shares its group with busy processes, a
   * 10 leaves transfers about a tenth of a core; use 0 there. Takes effect only before the
   * first transfer.
   */
  ioNice: number;
  /**
   * A transfer that starts while no other runs goes to an I/O thread of its own at the
   * process's priority (ioNice does not apply to it); the others, to the ioNice threads. One big
   * download or upload then moves as fast as any process would move it, even beside busy
   * processes in the same scheduling group, where ioNice 10 alone left it a tenth of a core
   * (STOR of 2 GiB: 1,691 MB/s against 236); many transfers at once still yield to the event
   * loop. Default true. Can be changed at any time.
   */
  soloThread: boolean;
}

/** A request may carry `native` to override the defaults for that transfer (benchmarks). */
export interface NativeTransferRequest extends TransferRequest {
  native?: NativeOptions;
}

/** What a native transfer resolves to: TransferResult plus what the engine saw. */
export interface NativeTransferResult extends TransferResult {
  /** Send only: the file's size when the transfer started (-1 if not a regular file). */
  sizeAtStart?: number;
}

export interface EngineStats {
  /** Transfers finished (or failed) per mechanism since load. */
  sendfile: number;
  splice: number;
  copy: number;
  /** FTPS transfers whose TLS records the engine sealed or opened (src/native/tlsrec.c). */
  tls: number;
  /** Transfers running now. */
  active: number;
  /** Transfers started since load. */
  jobs: number;
  /** Kernel thread ids of the I/O threads started so far (/proc/self/task/ID). */
  ioThreadIds: number[];
  /**
   * Descriptors the I/O threads keep open between transfers: each started thread's epoll and
   * eventfd, and a thread's receive pipe once it has received by splice. They appear lazily, with
   * the first job a thread takes, so a leak check compares /proc/self/fd less this figure.
   */
  heldFds: number;
}

type Callback = (
  kind: number,
  bytes: number,
  errno: number,
  syscall: string,
  errText: string,
  mech: number,
  consumed: number,
  sizeAtStart: number,
) => void;

interface Addon {
  start(
    sockFd: number,
    fileFd: number,
    offset: number,
    direction: number,
    mechanism: number,
    chunk: number,
    pipeSize: number,
    bytesPerSecond: number,
    sndbuf: number,
    rcvbuf: number,
    wantProgress: boolean,
    cb: Callback,
    cork?: boolean,
    fin?: boolean,
    tls?: TlsRecordState,
    early?: Buffer,
  ): number;
  /** Whether start() can take TLS jobs (Node's OpenSSL found from the addon). */
  tlsRecords?: boolean;
  cancel(id: number): boolean;
  /** A running job's new pace (whole bytes/s, at least 1), taken at its next step; false when it has ended. */
  setRate?(id: number, bytesPerSecond: number): boolean;
  stats(): EngineStats & { threads: number };
  configure(threads: number, ioNice?: number, solo?: number): number;
  setOobInline(fd: number): boolean;
  setCork?(fd: number, on: boolean): boolean;
  setCongestion?(fd: number, name: string): boolean;
  congestionOf?(fd: number): string | null;
  socketReset(fd: number): boolean;
  trimMemory?(): number;
  fsop?(op: number, root: string, rel: string, flags: number, mode: number, cb: FsopCallback): void;
  fsopCached?(op: number, root: string, rel: string): number[] | undefined;
  lstatMany?(dir: string, names: Array<string | Buffer>, cb: (errno: number, values: Float64Array | null) => void): void;
  copyRange?(infd: number, outfd: number, inOff: number, outOff: number, len: number, cb: (errno: number, copied: number, via: number) => void): void;
  tlsSealer?(state: TlsRecordState): object;
  tlsSeal?(sealer: object, chunks: Buffer[], out: Buffer, at: number, flags: number): number;
  tlsOpen?(sealer: object, buf: Buffer, start: number, end: number, spans: Int32Array): number;
}

type FsopCallback = (errno: number, fd: number, stat: number[] | null) => void;

const KIND_PROGRESS = 0;
const KIND_OK = 1;
const KIND_ABORTED = 3;
const MECHS: readonly TransferPath[] = ['sendfile', 'splice', 'copy', 'tls'];
/** Errors that mean "this engine cannot do it here", not "the peer or the disk failed". */
const START_ERRNOS = new Set(['EINVAL', 'ESPIPE', 'ENOSYS', 'EOPNOTSUPP', 'EBADF', 'ENOTSOCK', 'ENOMEM', 'EMFILE', 'ENFILE']);
const START_SYSCALLS = new Set(['epoll_ctl', 'pipe', 'malloc']);

const ADDON_FILE = path.join('src', 'native', 'build', 'Release', 'ftpdlib_native.node');

/**
 * Bytes per call when chunkSize is 0, per mechanism and direction. From the
 * measurements in src/native/bench/RESULTS.md: the socket buffer bounds each
 * sendfile whatever the count, so a large count only saves calls; the copy
 * loops cost the least server CPU around 256 KiB (one buffer per I/O thread,
 * not per job); a splice moves at most one pipe's worth (0 here = pipeSize).
 */
export const CHUNK_DEFAULTS = {
  send: { sendfile: 16 << 20, splice: 0, copy: 256 << 10 },
  receive: { splice: 0, copy: 256 << 10 },
  /** FTPS, either way: file bytes per pass (sealed into 16 KiB records, or opened from them). */
  tls: 256 << 10,
} as const;

const defaults: NativeConfig = {
  // See src/native/bench/RESULTS.md for the numbers behind these.
  sendMechanism: 'sendfile',
  receiveMechanism: 'splice',
  chunkSize: 0,
  pipeSize: 256 << 10,
  sendBufferSize: 0,
  receiveBufferSize: 0,
  cork: true,
  threads: 1,
  ioNice: 10,
  soloThread: true,
};

/** The folder holding ftpdlib's package.json, walking up from `from`. */
export function findPackageRoot(from: string = __dirname): string | null {
  let dir = path.resolve(from);
  for (;;) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'ftpdlib') return dir;
    } catch {
      // no package.json here, or not ours
    }
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/**
 * One of the addons built in src/native/build/Release (`file` relative to the package root),
 * or null with the reason: FTPDLIB_NO_NATIVE=1, no package root, not built, or failed to load.
 */
export function loadAddon<T>(file: string): { addon: T | null; reason: string } {
  if (process.env.FTPDLIB_NO_NATIVE === '1') return { addon: null, reason: 'disabled by FTPDLIB_NO_NATIVE=1' };
  const root = findPackageRoot();
  if (!root) return { addon: null, reason: 'package root (package.json named ftpdlib) not found' };
  const full = path.join(root, file);
  if (!fs.existsSync(full)) return { addon: null, reason: `not built (${full} missing; run npm run build:native)` };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { addon: require(full) as T, reason: `loaded from ${full}` };
  } catch (err) {
    return { addon: null, reason: `failed to load ${full}: ${(err as Error).message}` };
  }
}

function load(): { addon: Addon | null; reason: string } {
  if (process.env.FTPDLIB_NO_NATIVE !== '1' && process.platform !== 'linux') {
    return { addon: null, reason: `no native engine on ${process.platform}` };
  }
  const r = loadAddon<Addon>(ADDON_FILE);
  return r.addon ? { addon: r.addon, reason: `native engine ${r.reason}` } : r;
}

const loaded = load();
const addon = loaded.addon;
if (addon) defaults.threads = addon.configure(0, defaults.ioNice);

/** Whether the native engine is usable in this process. */
export const available: boolean = addon !== null;
/** Why the engine is or is not available, for the start-up log line. */
export const reason: string = loaded.reason;

/** Counters proving which path ran. All zero when the engine is not available. */
export function engineStats(): EngineStats {
  if (!addon) return { sendfile: 0, splice: 0, copy: 0, tls: 0, active: 0, jobs: 0, ioThreadIds: [], heldFds: 0 };
  const s = addon.stats();
  return {
    sendfile: s.sendfile,
    splice: s.splice,
    copy: s.copy,
    tls: s.tls ?? 0,
    active: s.active,
    jobs: s.jobs,
    ioThreadIds: s.ioThreadIds ?? [],
    heldFds: s.heldFds ?? 0,
  };
}

/** Keep TCP urgent data in-band on a control socket (Python ftplib's ABOR). */
export function setOobInline(fd: number): boolean {
  return addon !== null && Number.isInteger(fd) && fd >= 0 && addon.setOobInline(fd);
}

/** TCP_CORK on or off on a socket (the last reply of a control connection, written right before its close). */
export function setCork(fd: number, on: boolean): boolean {
  return addon !== null && typeof addon.setCork === 'function' && Number.isInteger(fd) && fd >= 0 && addon.setCork(fd, on);
}

/**
 * TCP_CONGESTION on a socket or a listener (whose accepted connections start with it): true
 * when the socket now uses `name` (src/ftp/data/congestion.ts says when ftpdlib asks).
 */
export function setCongestion(fd: number, name: string): boolean {
  return addon !== null && typeof addon.setCongestion === 'function' && Number.isInteger(fd) && fd >= 0 && addon.setCongestion(fd, name);
}

/** The congestion control a TCP socket uses; null without the addon or for another kind of descriptor. */
export function congestionOf(fd: number): string | null {
  return addon !== null && typeof addon.congestionOf === 'function' && Number.isInteger(fd) && fd >= 0 ? addon.congestionOf(fd) : null;
}

/**
 * Whether the peer reset `socket` (TCP state CLOSE or a pending socket error). Used when
 * an upload's 'end' arrives, since libuv may report a reset as an end of stream. False
 * when the engine is not loaded (nothing can be told then) or the socket has no fd.
 */
export function socketReset(socket: { _handle?: { fd?: unknown } | null }): boolean {
  const fd = socket._handle?.fd;
  return addon !== null && typeof fd === 'number' && fd >= 0 && addon.socketReset(fd);
}

/**
 * Give the free memory inside malloc's arenas back to the kernel (glibc's malloc_trim(0)).
 * 1: some was given back, 0: none was free, -1: not glibc, -2: the addon is not loaded.
 */
export function trimMemory(): number {
  return addon?.trimMemory ? addon.trimMemory() : -2;
}

/** Change the engine's defaults; returns the settings now in effect. */
export function configureNative(opts: Partial<NativeConfig> = {}): Readonly<NativeConfig> {
  const checked = checkOptions(opts);
  if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 1 || opts.threads > 16)) {
    throw new RangeError('threads: an integer from 1 to 16 expected');
  }
  if (opts.ioNice !== undefined && (!Number.isInteger(opts.ioNice) || opts.ioNice < 0 || opts.ioNice > 19)) {
    throw new RangeError('ioNice: an integer from 0 to 19 expected');
  }
  if (opts.soloThread !== undefined && typeof opts.soloThread !== 'boolean') throw new RangeError('soloThread: true or false expected');
  Object.assign(defaults, checked);
  if (opts.ioNice !== undefined && (addon === null || addon.stats().threads === 0)) {
    // Like the thread count, fixed once a thread has started.
    addon?.configure(0, opts.ioNice);
    defaults.ioNice = opts.ioNice;
  }
  if (opts.soloThread !== undefined) {
    addon?.configure(0, -1, opts.soloThread ? 1 : 0);
    defaults.soloThread = opts.soloThread;
  }
  if (opts.threads !== undefined) {
    // The addon keeps its count once a thread has started.
    defaults.threads = addon ? addon.configure(opts.threads) : opts.threads;
  }
  return Object.freeze({ ...defaults });
}

function checkOptions(o: NativeOptions): NativeOptions {
  const out: NativeOptions = {};
  if (o.sendMechanism !== undefined) {
    if (!['sendfile', 'splice', 'copy'].includes(o.sendMechanism)) {
      throw new RangeError("sendMechanism: 'sendfile', 'splice' or 'copy' expected");
    }
    out.sendMechanism = o.sendMechanism;
  }
  if (o.receiveMechanism !== undefined) {
    if (!['splice', 'copy'].includes(o.receiveMechanism)) {
      throw new RangeError("receiveMechanism: 'splice' or 'copy' expected");
    }
    out.receiveMechanism = o.receiveMechanism;
  }
  for (const k of ['chunkSize', 'pipeSize'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    const zeroOk = k === 'chunkSize' && v === 0;
    if (!zeroOk && (!Number.isInteger(v) || v < 4096 || v > 64 * 1024 * 1024)) {
      throw new RangeError(`${k}: 4096..67108864 expected${k === 'chunkSize' ? ', or 0 for the default' : ''}`);
    }
    out[k] = v;
  }
  if (o.cork !== undefined) {
    if (typeof o.cork !== 'boolean') throw new TypeError('cork: a boolean expected');
    out.cork = o.cork;
  }
  for (const k of ['sendBufferSize', 'receiveBufferSize'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) throw new RangeError(`${k}: a non-negative integer expected`);
    out[k] = v;
  }
  return out;
}

function socketFd(req: TransferRequest): number {
  if (req.fd !== undefined && req.fd >= 0) return req.fd; // bare: never wrapped in a Socket
  const handle = (req.socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

/** Whether start() can take TLS jobs in this process. */
export const tlsRecords: boolean = addon?.tlsRecords === true;

/**
 * The addon's record functions for FTPS transfers the engine does not carry: sealing a
 * download's records (src/ftp/data/tls-seal.ts), opening an upload's (src/ftp/data/tls-open.ts);
 * where it can (tlsRecords); null otherwise.
 */
export const tlsSeal: NativeSeal | null =
  tlsRecords && typeof addon?.tlsSealer === 'function' && typeof addon.tlsSeal === 'function' && typeof addon.tlsOpen === 'function'
    ? { tlsSealer: addon.tlsSealer.bind(addon), tlsSeal: addon.tlsSeal.bind(addon), tlsOpen: addon.tlsOpen.bind(addon) }
    : null;

function accepts(req: TransferRequest): boolean {
  if (!addon || req.ascii) return false;
  const fd = req.handle.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) return false;
  // TLS: only a gated connection whose state the engine can carry on; `socket` stays untouched.
  if (req.tls) return tlsRecords && req.tlsRecords?.usable === true;
  if (req.fd !== undefined && req.fd >= 0) return true; // bare: JS never read or wrote a byte of it
  if (socketFd(req) < 0 || req.socket.destroyed) return false;
  // Bytes JS already holds would be skipped or reordered by a native move.
  if (req.direction === 'send' && req.socket.writableLength > 0) return false;
  if (req.direction === 'receive' && req.socket.readableLength > 0) return false;
  return true;
}

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

/** The name of a positive errno: libuv's, else the OS's (libuv has none for EBADMSG), else EIO. */
function errnoName(errno: number): string {
  let name = '';
  try {
    name = getSystemErrorName(-errno);
  } catch {
    // not an errno libuv accepts
  }
  return name && !name.startsWith('Unknown') ? name : (ERRNO_NAMES.get(errno) ?? 'EIO');
}

function abortedError(signal: TransferSignal, bytes: number, p: TransferPath): TransferError {
  const why = signal.reason instanceof Error ? signal.reason.message : 'Transfer aborted.';
  return new TransferError(why, 'FTPD_ERR_ABORTED', bytes, p);
}

function run(req: NativeTransferRequest): Promise<NativeTransferResult> {
  const a = addon;
  const send = req.direction === 'send';
  let opts: NativeConfig;
  try {
    opts = { ...defaults, ...(req.native ? checkOptions(req.native) : {}) };
  } catch (err) {
    return Promise.reject(err);
  }
  const asked: TransferPath = req.tls ? 'tls' : send ? opts.sendMechanism : opts.receiveMechanism;
  const perMech = req.tls ? CHUNK_DEFAULTS.tls : send ? CHUNK_DEFAULTS.send[opts.sendMechanism] : CHUNK_DEFAULTS.receive[opts.receiveMechanism];
  const chunk = opts.chunkSize || perMech || opts.pipeSize;
  // TLS: the engine takes the gated connection over; if it then moves nothing, Node gets it back.
  const takeover = req.tls ? (req.tlsRecords?.takeOver() ?? null) : null;
  const giveBack = (): void => {
    if (takeover) req.tlsRecords?.giveBack();
  };
  const { signal, onProgress } = req;
  return new Promise<NativeTransferResult>((resolve, reject) => {
    if (!a || (req.tls && !takeover)) {
      giveBack();
      reject(new TransferError(a ? 'TLS connection not usable by the engine' : 'native engine not available', 'FTPD_ERR_NATIVE_START', 0, asked));
      return;
    }
    if (signal.aborted) {
      giveBack();
      reject(abortedError(signal, 0, asked));
      return;
    }
    const bps = req.throttle?.bytesPerSecond ?? 0;
    let id = 0;
    let unwatch: (() => void) | null = null;
    const onAbort = (): void => {
      // The thread stops within one slice and reports; we settle then, so the
      // caller never closes descriptors under a move in flight.
      a.cancel(id);
    };
    const cb: Callback = (kind, bytes, errno, syscall, errText, mech, consumed, sizeAtStart) => {
      const p = MECHS[mech] ?? asked;
      if (kind === KIND_PROGRESS) {
        onProgress?.(bytes);
        return;
      }
      signal.removeEventListener('abort', onAbort);
      unwatch?.();
      if (kind === KIND_OK) {
        const result: NativeTransferResult = { bytes, path: p };
        if (send) {
          result.sizeAtStart = sizeAtStart;
          if (req.finish === true) result.finished = true; // the engine shut the write side down
        }
        resolve(result);
        return;
      }
      if (kind === KIND_ABORTED) {
        reject(abortedError(signal, bytes, p));
        return;
      }
      const code = errnoName(errno);
      // Nothing reached the socket (send) or was taken from it (receive), and
      // the engine is what failed: the caller may retry on streams. A TLS send counts a byte
      // as moved only once its record is all sent, so it must not have sealed any either.
      const untouched = send && !req.tls ? bytes === 0 : bytes === 0 && consumed === 0;
      if (untouched && (START_ERRNOS.has(code) || START_SYSCALLS.has(syscall))) {
        giveBack();
        reject(new TransferError(`native ${syscall} failed: ${errText} (${code})`, 'FTPD_ERR_NATIVE_START', 0, p));
        return;
      }
      reject(new TransferError(`${syscall}: ${errText}`, code, bytes, p));
    };
    try {
      id = a.start(
        takeover ? takeover.fd : socketFd(req),
        req.handle.fd ?? -1,
        req.handle.offset,
        send ? 0 : 1,
        MECHS.indexOf(asked),
        chunk,
        opts.pipeSize,
        bps > 0 ? bps : 0,
        opts.sendBufferSize,
        opts.receiveBufferSize,
        typeof onProgress === 'function',
        cb,
        opts.cork,
        send && req.finish === true,
        takeover?.state,
        takeover?.early,
      );
    } catch (err) {
      giveBack();
      const e = err as Error;
      reject(new TransferError(e.message, 'FTPD_ERR_NATIVE_START', 0, asked));
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    // A paced job follows its throttle's changes (a user's limit re-divided among their transfers).
    const setRate = a.setRate;
    if (bps > 0 && setRate && req.throttle?.watch) {
      unwatch = req.throttle.watch((rate) => {
        if (rate >= 1) setRate.call(a, id, Math.floor(rate));
      });
    }
  });
}

/** The zero-copy engine, or null when the addon is not available. */
export const nativeEngine: TransferEngine | null = addon
  ? {
      name: 'native',
      accepts,
      run,
    }
  : null;

/** What the jailed filesystem operations report about a path: fstat of what they reached. */
export interface JailedStat {
  mode: number;
  size: number;
  mtimeMs: number;
  uid: number;
  gid: number;
  nlink: number;
  dev: number;
  ino: number;
}

/**
 * The answer of a jailed operation: done (`ok`, with the fd and/or the stat), a
 * final error (`code`), or `null` when the caller must take its portable path.
 */
export type JailedResult = { fd: number; stat: JailedStat } | { code: string } | null;

/**
 * Filesystem operations resolved under a root in one pool round trip each, with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): the jail check and the open are
 * one system call. They answer only what they can answer exactly like
 * LocalFileSystem's portable path would; everything else (absolute symlinks, links
 * leaving the root, dangling links, non-regular files, errors) resolves `null`, and
 * the caller takes the portable path. Null when the addon is not loaded; turns
 * itself off when the kernel has no openat2 (ENOSYS, before Linux 5.6).
 */
export interface JailedFs {
  /** Follow `rel` (relative to the real `root`, no leading "/") and fstat it. */
  stat(root: string, rel: string): Promise<JailedResult>;
  /** Open a regular file read-only. */
  openRead(root: string, rel: string): Promise<JailedResult>;
  /**
   * Open (O_TRUNC when asked) or create a regular file write-only; `exclusive`: create only
   * (O_EXCL), and anything already there is left to the caller's portable path; `append`:
   * O_APPEND (APPE), every write at the file's end whatever its offset.
   */
  openWrite(root: string, rel: string, truncate: boolean, exclusive?: boolean, append?: boolean): Promise<JailedResult>;
  /** Close a descriptor off the event loop. */
  close(fd: number): Promise<void>;
  /**
   * stat and openRead at once on the calling thread, only when every lookup is answered from
   * the kernel's caches (openat2 RESOLVE_CACHED): the result, or null when the caller must
   * use the pool versions above. For local filesystems only (see LocalFileSystem).
   */
  statCached(root: string, rel: string): { fd: number; stat: JailedStat } | null;
  openReadCached(root: string, rel: string): { fd: number; stat: JailedStat } | null;
}

const FSOP_STAT = 0;
const FSOP_READ = 1;
const FSOP_WRITE = 2;
const FSOP_CLOSE = 3;
const ENOSYS = 38;
let openat2Works = true;

function jailed(op: number, root: string, rel: string, flags: number): Promise<JailedResult> {
  const a = addon!;
  if (!openat2Works) return Promise.resolve(null);
  return new Promise((resolve) => {
    a.fsop!(op, root, rel, flags, 0o666, (errno, fd, st) => {
      if (errno === 0 && st) {
        resolve({
          fd,
          stat: { mode: st[0], size: st[1], mtimeMs: st[2], uid: st[3], gid: st[4], nlink: st[5], dev: st[6], ino: st[7] },
        });
      } else if (errno < 0) {
        resolve({ code: getSystemErrorName(errno) });
      } else {
        if (errno === ENOSYS) openat2Works = false;
        resolve(null);
      }
    });
  });
}

const noCache = process.env.FTPDLIB_NO_CACHED_OPEN === '1';
function cached(op: number, root: string, rel: string): { fd: number; stat: JailedStat } | null {
  if (noCache || !openat2Works || typeof addon?.fsopCached !== 'function') return null;
  const v = addon.fsopCached(op, root, rel);
  if (!v) return null;
  return { fd: v[0], stat: { mode: v[1], size: v[2], mtimeMs: v[3], uid: v[4], gid: v[5], nlink: v[6], dev: v[7], ino: v[8] } };
}

export const jailedFs: JailedFs | null =
  addon && typeof addon.fsop === 'function' && process.env.FTPDLIB_NO_OPENAT2 !== '1'
    ? {
        stat: (root, rel) => jailed(FSOP_STAT, root, rel, 0),
        openRead: (root, rel) => jailed(FSOP_READ, root, rel, 0),
        openWrite: (root, rel, truncate, exclusive, append) =>
          jailed(
            FSOP_WRITE,
            root,
            rel,
            fs.constants.O_CREAT | (truncate ? fs.constants.O_TRUNC : 0) | (exclusive ? fs.constants.O_EXCL : 0) | (append ? fs.constants.O_APPEND : 0),
          ),
        close: (fd) =>
          new Promise<void>((resolve, reject) => {
            addon.fsop!(FSOP_CLOSE, '', '', fd, 0, (errno) => {
              if (errno === 0) resolve();
              else reject(Object.assign(new Error(`close: ${getSystemErrorName(-errno)}`), { code: getSystemErrorName(-errno), syscall: 'close' }));
            });
          }),
        statCached: (root, rel) => cached(FSOP_STAT, root, rel),
        openReadCached: (root, rel) => cached(FSOP_READ, root, rel),
      }
    : null;

/** Numbers per name in lstatMany's answer: errno, then the JailedStat fields in their order. */
const LSTAT_FIELDS = 9;
let lstatManyJobs = 0;
/** How many lstatMany jobs this process has queued (for tests that prove the batched path was taken). */
export const lstatManyCount = (): number => lstatManyJobs;

/**
 * lstat each of `names` (as readdir gave them: strings, or Buffers for names that are not UTF-8)
 * in the directory `dir` in one pool round trip: the directory opened once, then fstatat per
 * name. Each answer is the stat, or the error code of that name (ENOENT: removed since it was
 * read). Rejects when `dir` cannot be opened. Null without the addon (use fs.lstat per name).
 * A listing's batch of 256 had been 256 pool round trips, each with an fs.Stats: LIST of
 * 100,000 entries on that path spent about 2.4 s of CPU in lstat calls alone.
 */
export const lstatMany: ((dir: string, names: ReadonlyArray<string | Buffer>) => Promise<Array<JailedStat | string>>) | null =
  addon && typeof addon.lstatMany === 'function' && process.env.FTPDLIB_NO_LSTAT_MANY !== '1'
    ? (dir, names) =>
        new Promise((resolve, reject) => {
          addon.lstatMany!(dir, names as Array<string | Buffer>, (errno, v) => {
            if (errno !== 0 || !v) {
              const code = getSystemErrorName(-(errno || 12));
              reject(Object.assign(new Error(`${code}: open '${dir}'`), { code, errno: -errno, syscall: 'open', path: dir }));
              return;
            }
            const out: Array<JailedStat | string> = new Array(names.length);
            for (let i = 0, o = 0; i < names.length; i++, o += LSTAT_FIELDS) {
              out[i] =
                v[o] !== 0
                  ? getSystemErrorName(-v[o])
                  : { mode: v[o + 1], size: v[o + 2], mtimeMs: v[o + 3], uid: v[o + 4], gid: v[o + 5], nlink: v[o + 6], dev: v[o + 7], ino: v[o + 8] };
            }
            resolve(out);
          });
          lstatManyJobs++;
        })
    : null;

/** How copyRange moved the bytes. */
export type CopyVia = 'copy_file_range' | 'read/write';

/**
 * Copy up to `len` bytes from `infd` at `inOff` to `outfd` at `outOff` on a libuv pool
 * thread: copy_file_range(2), so the bytes stay in the kernel (or the filesystem shares
 * extents: btrfs and XFS reflinks, NFS 4.2 server-side copy), falling back to
 * pread/pwrite through a 1 MiB buffer where the kernel or the pair of filesystems refuses
 * it. Neither file position moves. Resolves with the bytes copied, fewer than `len` only at
 * the end of the source. Keep `len` to tens of MiB so one call holds a pool thread briefly.
 * Null when the addon is not loaded.
 */
export const copyRange: ((infd: number, outfd: number, inOff: number, outOff: number, len: number) => Promise<{ copied: number; via: CopyVia }>) | null =
  addon && typeof addon.copyRange === 'function'
    ? (infd, outfd, inOff, outOff, len) =>
        new Promise((resolve, reject) => {
          addon.copyRange!(infd, outfd, inOff, outOff, len, (errno, copied, via) => {
            if (errno === 0) resolve({ copied, via: via === 0 ? 'copy_file_range' : 'read/write' });
            else {
              const code = getSystemErrorName(-errno);
              reject(Object.assign(new Error(`copy: ${code}`), { code, syscall: via === 0 ? 'copy_file_range' : 'pwrite', copied }));
            }
          });
        })
    : null;
