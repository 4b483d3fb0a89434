import type { TransferRequest, TransferSignal } from '../ftp/data/transfer';

/** How long an upload that is complete waits for our FIN to go out (the socket to close). */
const FIN_WAIT_MS = 2000;

/**
 * The socket's side of an upload on the stream path, for both of its receive paths (piped in
 * ./fallback.ts, read into reused buffers in ./fd-receive.ts): the transfer's abort, the socket's
 * errors, the client's FIN and the close, each handed to `h` (a failure as its message and
 * code); and whether our own FIN went out.
 */
export class UploadWatch {
  /** The client's FIN came ('end'). */
  sawEnd = false;
  /** The socket closed, or FIN_WAIT_MS passed once finOut was asked. */
  closed = false;
  private guard: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: TransferRequest['socket'],
    private readonly signal: TransferSignal,
    private readonly h: { fail(message: string, code: string): void; end(): void; settle(): void },
  ) {
    signal.addEventListener('abort', this.onAbort, { once: true });
    socket.on('error', this.onError);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
  }

  /** Whether our FIN is out; if not yet, settle() is called again when it is, or after FIN_WAIT_MS (a socket that never closes is not held forever). */
  finOut(): boolean {
    if (!this.closed) {
      this.guard ??= setTimeout(() => {
        this.closed = true;
        this.h.settle();
      }, FIN_WAIT_MS);
    }
    return this.closed;
  }

  unhook(): void {
    clearTimeout(this.guard);
    this.signal.removeEventListener('abort', this.onAbort);
    this.socket.off('error', this.onError);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
  }

  private readonly onAbort = (): void => {
    const why = this.signal.reason instanceof Error ? this.signal.reason : null;
    this.h.fail(why?.message ?? 'Transfer aborted.', (why as { code?: string } | null)?.code ?? 'FTPD_ERR_ABORTED');
  };

  // An error after the client's FIN (ENOTCONN, EPIPE on our shutdown) means the connection was reset.
  private readonly onError = (err: NodeJS.ErrnoException): void => this.h.fail(err.message, this.sawEnd ? 'ECONNRESET' : (err.code ?? 'ECONNRESET'));

  private readonly onEnd = (): void => {
    this.sawEnd = true;
    this.h.end();
  };

  private readonly onClose = (hadError: boolean): void => {
    this.closed = true;
    if (!this.sawEnd || hadError) this.h.fail('Data connection closed before the end of the upload.', 'ECONNRESET');
    this.h.settle();
  };
}
