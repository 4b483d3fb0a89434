import type Logger from 'bunyan';
import type { RangeCopier } from '../../fs/copy';
import { streamEngine } from '../../native/fallback';
import { handleFd } from './connection';
import type { NativeSeal } from './tls-seal';
import { TransferError, type TransferEngine, type TransferRequest, type TransferResult } from './transfer';

interface NativeModule {
  nativeEngine: TransferEngine | null;
  available: boolean;
  reason: string;
  setOobInline?: (fd: number) => boolean;
  setCork?: (fd: number, on: boolean) => boolean;
  setCongestion?: (fd: number, name: string) => boolean;
  congestionOf?: (fd: number) => string | null;
  trimMemory?: () => number;
  configureNative?: (opts: object) => { threads: number; ioNice: number; soloThread: boolean };
  copyRange?: RangeCopier | null;
  tlsRecords?: boolean;
  tlsSeal?: NativeSeal | null;
}

let native: NativeModule | null = null;

/** The native engine's module, loaded on first use (the loader itself never throws). */
function loadNative(): NativeModule {
  if (!native) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      native = require('../../native') as NativeModule;
    } catch (err) {
      native = { nativeEngine: null, available: false, reason: `loader failed: ${(err as Error).message}` };
    }
  }
  return native;
}

/** Whether the engine can carry the records of FTPS transfers (Node's OpenSSL reached from the addon). */
export function nativeTlsAvailable(): boolean {
  const n = loadNative();
  return n.available && n.nativeEngine !== null && n.tlsRecords === true;
}

/** The addon's record sealer (./tls-seal.ts), or null when it cannot seal records. */
export function nativeSeal(): NativeSeal | null {
  return nativeTlsAvailable() ? (loadNative().tlsSeal ?? null) : null;
}

/** The addon's file-to-file copy (copy_file_range), or null when it is not loaded. */
export function nativeCopier(): RangeCopier | null {
  return loadNative().copyRange ?? null;
}

export function nativeStatus(): { available: boolean; reason: string; ioThreads?: number; ioNice?: number; soloThread?: boolean } {
  const n = loadNative();
  const available = n.available && n.nativeEngine !== null;
  // configureNative({}) changes nothing and returns the settings the I/O threads start with.
  const io = available ? n.configureNative?.({}) : undefined;
  return { available, reason: n.reason, ...(io ? { ioThreads: io.threads, ioNice: io.ioNice, soloThread: io.soloThread } : {}) };
}

/**
 * Choose the engine per transfer: the native one for binary transfers of
 * local files over plain sockets, streams for everything else. A native
 * failure before the first byte retries on streams (as pyftpdlib does with sendfile).
 */
export function selectEngine(
  req: TransferRequest,
  useNative: boolean,
  onEngine: (engine: 'native' | 'stream') => void,
  log: Logger,
): Promise<TransferResult> {
  const n = useNative ? loadNative().nativeEngine : null;
  if (n && n.accepts(req)) {
    onEngine('native');
    // A promise chain, not an async function: no frame of this function is held while the
    // transfer runs (see dispatch). A start failure comes as a rejection, retried here.
    return n.run(req).catch((err: unknown) => {
      if (!(err instanceof TransferError) || err.code !== 'FTPD_ERR_NATIVE_START' || req.signal.aborted) throw err;
      log.warn({ err }, 'native engine could not start; retrying on streams');
      onEngine('stream');
      return streamEngine.run(req);
    });
  }
  onEngine('stream');
  return streamEngine.run(req);
}

/**
 * SO_OOBINLINE on a control socket (Python ftplib's urgent ABOR), or on a listener, whose
 * accepted sockets inherit it (Linux copies socket flags to the accepted socket). True when set.
 */
export function setOobInline(socket: object): boolean {
  const fd = handleFd(socket);
  const set = loadNative().setOobInline;
  return !!set && fd >= 0 && set(fd);
}

/** TCP_CORK on a plain socket through the addon; false without it (see js_set_cork in engine.c). */
export function setCork(socket: object, on: boolean): boolean {
  const fd = handleFd(socket);
  const set = loadNative().setCork;
  return !!set && fd >= 0 && set(fd, on);
}

/** TCP_CONGESTION on a descriptor through the addon; false without it (src/ftp/data/congestion.ts). */
export function setCongestion(fd: number, name: string): boolean {
  const set = loadNative().setCongestion;
  return !!set && fd >= 0 && set(fd, name);
}

/** Whether the addon can set a socket's congestion control here (Linux, addon loaded). */
export function congestionControlAvailable(): boolean {
  return process.platform === 'linux' && typeof loadNative().setCongestion === 'function';
}

/** The congestion control of a TCP descriptor; null without the addon. */
export function congestionOf(fd: number): string | null {
  const get = loadNative().congestionOf;
  return get && fd >= 0 ? get(fd) : null;
}

/** malloc_trim(0) through the addon; see src/native/index.ts. -2 without the addon. */
export function trimMemory(): number {
  const trim = loadNative().trimMemory;
  return trim ? trim() : -2;
}

type HeapModule = { reduceHeap: (again?: boolean, sessionsOpen?: boolean) => number; heapSettleMs: (settleMs: number) => number };
let heapModule: HeapModule | null = null;

function heap(): HeapModule {
  if (!heapModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      heapModule = require('../../native/heap') as HeapModule;
    } catch {
      heapModule = { reduceHeap: () => -2, heapSettleMs: (ms) => ms };
    }
  }
  return heapModule;
}

/**
 * Ask V8 to shrink its heap if it holds much more than it uses (src/native/heap.ts: a full
 * collection, or a scavenge once the server is warm and no session is open): >= 0 when asked,
 * -1 when there was too little room (or, `again`, nothing more to ask), -2 when it cannot ask here.
 */
export function reduceHeap(again = false, sessionsOpen = false): number {
  return heap().reduceHeap(again, sessionsOpen);
}

/** How long the memory trimmer waits before its second request (src/native/heap.ts). */
export function heapSettleMs(settleMs: number): number {
  return heap().heapSettleMs(settleMs);
}
