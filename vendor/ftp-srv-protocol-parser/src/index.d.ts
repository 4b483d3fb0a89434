/** A complete command line, framed and decoded. */
export interface CommandEvent {
  type: 'command';
  /** The verb, upper-cased ASCII ("RETR"). */
  verb: string;
  /** Everything after the first space, verbatim (leading and trailing spaces kept); '' when absent. */
  arg: string;
  /** The decoded line without its terminator (Telnet sequences removed). */
  line: string;
}

/** A line that could not be accepted; the caller replies with `code` and `reason`. */
export interface ErrorEvent {
  type: 'error';
  /** 500 for a line over the limit or a verb that is empty or not printable ASCII; 501 for NUL / stray CR inside a line, or invalid UTF-8 with fallbackEncoding null. */
  code: 500 | 501;
  /** A short reason, safe to send (no CR/LF, no client bytes). */
  reason: string;
}

export type FrameEvent = CommandEvent | ErrorEvent;

export interface FramerOptions {
  /** Longest accepted line in bytes, terminator excluded. Default 8192. */
  maxLineLength?: number;
  /** Encoding used to decode lines. Default 'utf8'. */
  encoding?: 'utf8' | 'latin1';
  /** With 'utf8': decode a line that is not valid UTF-8 with this instead. Default 'latin1'; null refuses it with 501. */
  fallbackEncoding?: 'latin1' | null;
}

/** Splits a control-connection byte stream into commands. Never throws on any input. */
export declare class CommandFramer {
  constructor(options?: FramerOptions);
  /** Feed received bytes; returns the events completed by them, in order. */
  push(chunk: Uint8Array): FrameEvent[];
  /** Change the decoding for lines not yet completed (OPTS UTF8 ON/OFF). */
  setEncoding(encoding: 'utf8' | 'latin1'): void;
  /** Bytes currently held for an incomplete line. */
  readonly buffered: number;
  /**
   * Forget any partial line and Telnet state. Call it when the stream changes
   * underneath, e.g. after AUTH TLS, so no plaintext sent after the AUTH line
   * is read as a command inside TLS.
   */
  reset(): void;
}

/**
 * Format a reply. A single string without newlines gives "CODE text\r\n".
 * An array, or a string with newlines, gives a multi-line reply
 * "CODE-first\r\n ...\r\nCODE last\r\n" (RFC 959 4.2): body lines that would
 * start with digits are indented with a space. CR and LF inside a line are
 * never emitted raw.
 */
export declare function formatReply(code: number, text: string | readonly string[]): string;

/** Make client-supplied text safe to place inside one reply line (CR, LF, NUL become spaces or escapes). */
export declare function sanitizeLine(text: string): string;

/** Quote a path for a 257 reply: doubles every '"' (RFC 959) and sanitises. */
export declare function quotePath(path: string): string;
