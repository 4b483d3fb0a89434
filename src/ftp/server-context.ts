import type Logger from 'bunyan';
import type { IdleWatch } from './data/idle-watch';
import type { IdleList } from './idle-list';
import type { ResolvedOptions } from '../config/options';
import type { PortPool } from './data/ports';
import type { TransferRequest, TransferResult } from './data/transfer';
import type { Session, TransferInfo } from './session';
import type { TlsManager } from './tls';
import type { CopyPath, RangeCopier } from '../fs/copy';

/** What the `fileCopied` event and the `copy` log record tell about a SITE CPFR/CPTO copy. */
export interface CopyInfo {
  from: string;
  to: string;
  bytes: number;
  seconds: number;
  via: CopyPath;
  /** A folder copy: the files and folders it made, and the entries it skipped (links and the like). */
  files?: number;
  folders?: number;
  skipped?: number;
}
import type { UserLimitsTracker } from './user-limits';
import type { ControlSocket } from './control';
import type { DataCongestion } from './data/congestion';

/** What a session needs from its server: options, shared pools, the engines, and event sinks. */
export interface ServerContext {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  readonly portPool: PortPool | null;
  /** TLS material, when FTPS is configured. */
  readonly tls: TlsManager | null;
  readonly defaultMlstFacts: ReadonlySet<string>;
  /** Per-user sessions, transfers and disk usage, for UserLimits. */
  readonly userLimits: UserLimitsTracker;
  /** dataTimeout for every running transfer, one interval for all. */
  readonly dataIdle: IdleWatch;
  /** The control connections' idle timeout (options.timeout), one timer for all; null when 0. */
  readonly controlIdle: IdleList<Session> | null;
  /** Run a transfer through the engine chosen for it; `onEngine` learns which one before bytes move. */
  transfer(req: TransferRequest, onEngine: (engine: 'native' | 'stream') => void): Promise<TransferResult>;
  onSessionClosed(session: Session): void;
  /** The passive range is exhausted: every session closes the listener it kept between transfers. */
  dropSparePassives(): void;
  /** Keep TCP urgent data in-band on a control socket, when the native addon can. */
  setOobInline(socket: ControlSocket): void;
  /** TCP_CORK on or off on a plain control socket, when the native addon can; whether it did. */
  setCork(socket: ControlSocket, on: boolean): boolean;
  /** The congestion control data connections get (options.dataCongestionControl). */
  readonly congestion: DataCongestion;
  /** TCP_NODELAY on a control socket (options.tcpNoDelay), unless it has it from its listener. */
  setNoDelay(socket: ControlSocket): void;
  emitLogin(session: Session, user: string): void;
  emitLoginFailed(session: Session, user: string): void;
  emitLogout(session: Session, user: string): void;
  emitTransfer(session: Session, direction: 'send' | 'receive', info: TransferInfo): void;
  /** The native file-to-file copy (copy_file_range) for SITE CPTO, or null: streams then. */
  readonly copier: RangeCopier | null;
  emitCopy(session: Session, info: CopyInfo): void;
}
