/**
 * The daemon's logger, from the config file's `logging` section: bunyan JSON on stdout, or
 * appended to a file that can be reopened after logrotate moved it (the CLI does that on SIGUSR2).
 */
import * as fs from 'node:fs';
import bunyan from 'bunyan';
import type Logger from 'bunyan';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggingConfig {
  /** Least severe level written. Default 'info'. */
  level: LogLevel;
  /** Append to this file (absolute path); without it records go to stdout. */
  file?: string;
}

/**
 * A log file written with synchronous appends, so a record is on disk when the call returns and a
 * reopen never loses or reorders records. `reopen()` opens the path again: after a rotation moved
 * the old file away, a new one is created.
 */
export class ReopenableFile {
  private fd: number;

  constructor(public path: string) {
    this.fd = fs.openSync(path, 'a', 0o640);
  }

  write(chunk: string | Buffer): boolean {
    if (this.fd < 0) return false;
    try {
      if (typeof chunk === 'string') fs.writeSync(this.fd, chunk);
      else fs.writeSync(this.fd, chunk);
    } catch {
      // A full disk must not take the server down; the record is lost.
    }
    return true;
  }

  /** Open the path (or a new one) again; on failure the old file stays in use and the error is thrown. */
  reopen(path = this.path): void {
    const fd = fs.openSync(path, 'a', 0o640);
    const old = this.fd;
    this.fd = fd;
    this.path = path;
    if (old >= 0) fs.closeSync(old);
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

export interface DaemonLogger {
  logger: Logger;
  /** The open log file, or null when logging to stdout. */
  file: ReopenableFile | null;
  /** Reopen the log file (log rotation); a no-op on stdout. Throws when the file cannot be opened. */
  reopen(): void;
  close(): void;
}

/** Build the daemon's logger. Throws (with the errno) when the log file cannot be opened. */
export function createDaemonLogger(cfg: LoggingConfig, name = 'ftpdlib'): DaemonLogger {
  const file = cfg.file ? new ReopenableFile(cfg.file) : null;
  const stream = (file ?? process.stdout) as unknown as NodeJS.WritableStream;
  const logger = bunyan.createLogger({ name, serializers: bunyan.stdSerializers, streams: [{ level: cfg.level, stream }] });
  return {
    logger,
    file,
    reopen: () => file?.reopen(),
    close: () => file?.close(),
  };
}
