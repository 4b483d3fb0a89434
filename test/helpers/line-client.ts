import * as net from 'node:net';

export interface Reply {
  code: number;
  /** Every line of the reply, without CRLF. */
  lines: string[];
  /** The text of the last line after the code. */
  text: string;
}

/**
 * Parses FTP replies (multi-line included) out of control-connection text and hands them out
 * in order: the part every test client shares, whatever socket feeds it.
 */
export class ReplyReader {
  private buf = '';
  private pending: string[] = [];
  private readonly replies: Reply[] = [];
  private waiters: Array<(r: Reply | null) => void> = [];
  private ended = false;

  constructor(private readonly onReply?: (r: Reply) => void) {}

  /** Feed received text. */
  feed(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) !== -1) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      this.pending.push(line);
      const m = /^(\d{3})([ -])/.exec(this.pending[0]);
      if (!m) {
        this.pending.shift();
        continue;
      }
      const done = this.pending.length === 1 ? m[2] === ' ' : line.startsWith(`${m[1]} `);
      if (done) {
        const lines = this.pending;
        this.pending = [];
        const r = { code: Number(m[1]), lines, text: lines[lines.length - 1].slice(4) };
        this.onReply?.(r);
        const w = this.waiters.shift();
        if (w) w(r);
        else this.replies.push(r);
      }
    }
  }

  /** The connection is gone: waiting reads get null. */
  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w(null);
  }

  /** The next reply, or null if the connection closed first. `context` is added to a timeout's message. */
  read(timeoutMs: number, context = ''): Promise<Reply | null> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== waiter);
        reject(new Error(`timed out waiting for a reply${context}`));
      }, timeoutMs);
      const waiter = (x: Reply | null): void => {
        clearTimeout(timer);
        resolve(x);
      };
      this.waiters.push(waiter);
    });
  }
}

/**
 * A raw control-connection client that sends exactly the bytes it is given
 * (split packets, pipelined commands, huge lines, Telnet IAC) and parses
 * replies, including multi-line ones.
 */
export class LineClient {
  private readonly reader = new ReplyReader();
  closed = false;
  /** How the server ended the connection: 'fin', or the error's code (ECONNRESET for a reset). */
  endedBy: string | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.reader.feed(d));
    socket.on('end', () => (this.endedBy ??= 'fin'));
    socket.on('error', (err: NodeJS.ErrnoException) => (this.endedBy ??= err.code ?? err.message));
    socket.on('close', () => {
      this.closed = true;
      this.reader.end();
    });
  }

  /** Connect; `localAddress` picks the source address (127.0.0.2 is another client on Linux loopback). */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, localAddress }, () => {
        s.off('error', reject);
        resolve(new LineClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Connect and read the greeting. */
  static async open(port: number, host = '127.0.0.1', localAddress?: string): Promise<LineClient> {
    const c = await LineClient.connect(port, host, localAddress);
    const g = await c.read();
    if (g?.code !== 220) throw new Error(`bad greeting: ${JSON.stringify(g)}`);
    return c;
  }

  /** The next reply, or null if the connection closed first. */
  read(timeoutMs = 10000): Promise<Reply | null> {
    // A timeout says what was waited for: the greeting, or the reply to the last bytes sent.
    const what = this.lastSent === null ? 'the greeting or a first reply' : `the reply to ${JSON.stringify(this.lastSent)}`;
    return this.reader.read(timeoutMs, ` (${timeoutMs} ms; ${what}; local port ${this.socket.localPort ?? '?'})`);
  }

  /** What was sent last (its first line, PASS masked), for a timeout's message. */
  private lastSent: string | null = null;

  /** Send raw bytes as given. */
  send(data: string | Buffer): void {
    const text = (typeof data === 'string' ? data : data.toString('latin1')).split('\r\n')[0].slice(0, 60);
    this.lastSent = /^PASS /i.test(text) ? 'PASS ****' : text;
    this.socket.write(data);
  }

  /** Send one command line (CRLF added) and read its reply. */
  async cmd(line: string): Promise<Reply> {
    this.send(`${line}\r\n`);
    const r = await this.read();
    if (!r) throw new Error(`connection closed after ${line}`);
    return r;
  }

  async login(user: string, pass: string): Promise<void> {
    const u = await this.cmd(`USER ${user}`);
    if (u.code !== 331) throw new Error(`USER: ${u.code} ${u.text}`);
    const p = await this.cmd(`PASS ${pass}`);
    if (p.code !== 230) throw new Error(`PASS: ${p.code} ${p.text}`);
  }

  /** EPSV, then connect the data socket. */
  async epsvConnect(): Promise<net.Socket> {
    const r = await this.cmd('EPSV');
    const m = /\(\|\|\|(\d+)\|\)/.exec(r.text);
    if (r.code !== 229 || !m) throw new Error(`EPSV: ${r.code} ${r.text}`);
    return connectData(Number(m[1]), this.socket.remoteAddress ?? '127.0.0.1');
  }

  /** Resolves when the server closes the connection. */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  close(): void {
    this.socket.destroy();
  }
}

export function connectData(port: number, host = '127.0.0.1', localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, localAddress }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Read a data socket to its end. */
export function readAll(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}
