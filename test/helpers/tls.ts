import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { ReplyReader, type Reply } from './line-client';

/**
 * Certificate material for the FTPS tests, made once per test file (per
 * process) in a temp dir with the openssl CLI:
 * - `cert`/`key`: the server pair (EC P-256, CN=localhost);
 * - `cert2`/`key2`: a second pair, for reloadCertificates();
 * - `ca`/`caKey`, `clientCert`/`clientKey`: a CA and a client certificate it signed.
 * A mismatched pair is `cert` + `key2`.
 */
export interface CertFixture {
  dir: string;
  cert: string;
  key: string;
  cert2: string;
  key2: string;
  ca: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by nobody the server trusts (self-signed). */
  strayCert: string;
  strayKey: string;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

function selfSigned(dir: string, name: string, cn: string, extra: string[] = []): void {
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`,
      '-keyout', `${name}-key.pem`, '-out', `${name}-cert.pem`, ...extra],
    dir,
  );
}

let fixture: CertFixture | null = null;

/** The fixture of this test process; the temp dir is removed when the process exits. */
export function certs(): CertFixture {
  if (fixture) return fixture;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-tls-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  selfSigned(dir, 'server', 'localhost');
  selfSigned(dir, 'server2', 'localhost');
  selfSigned(dir, 'ca', 'ftpdlib test CA', ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  selfSigned(dir, 'stray', 'stray client');
  openssl(
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=client',
      '-keyout', 'client-key.pem', '-out', 'client.csr'],
    dir,
  );
  openssl(
    ['x509', '-req', '-in', 'client.csr', '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-set_serial', '7', '-days', '2',
      '-out', 'client-cert.pem'],
    dir,
  );
  const p = (f: string): string => path.join(dir, f);
  fixture = {
    dir,
    cert: p('server-cert.pem'),
    key: p('server-key.pem'),
    cert2: p('server2-cert.pem'),
    key2: p('server2-key.pem'),
    ca: p('ca-cert.pem'),
    clientCert: p('client-cert.pem'),
    clientKey: p('client-key.pem'),
    strayCert: p('stray-cert.pem'),
    strayKey: p('stray-key.pem'),
  };
  return fixture;
}

/** The `tls` server option for the fixture's first pair. */
export function tlsOption(): { certFile: string; keyFile: string } {
  const c = certs();
  return { certFile: c.cert, keyFile: c.key };
}

/** SHA-256 fingerprint of a PEM certificate, in Node's getPeerCertificate() format (AA:BB:...). */
export function pemFingerprint256(file: string): string {
  return new X509Certificate(fs.readFileSync(file)).fingerprint256;
}

/**
 * A raw FTP control client that can be upgraded to TLS in place (AUTH TLS) or
 * start in TLS (implicit FTPS), and opens TLS data connections that resume (or
 * deliberately do not resume) its session. It sends exactly what it is told.
 */
export class FtpsControl {
  /** Every reply received, in order, plain and TLS. */
  readonly all: Reply[] = [];
  private readonly reader = new ReplyReader((r) => this.all.push(r));
  closed = false;
  /** The latest resumable session the server gave us (TLS 1.3 tickets arrive after the handshake). */
  session: Buffer | null = null;
  private closeWaiters: Array<() => void> = [];

  private constructor(public socket: net.Socket) {
    this.attach(socket);
  }

  private attach(s: net.Socket): void {
    s.on('data', (d: Buffer) => this.reader.feed(d.toString('utf8')));
    s.on('error', () => {});
    s.on('close', () => this.onClose(s));
    if (s instanceof tls.TLSSocket) s.on('session', (sess: Buffer) => (this.session = sess));
  }

  private onClose(s: net.Socket): void {
    if (s !== this.socket) return;
    this.closed = true;
    this.reader.end();
    for (const w of this.closeWaiters.splice(0)) w();
  }

  /** Connect in clear and read the 220 greeting. */
  static async plain(port: number, host = '127.0.0.1'): Promise<FtpsControl> {
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const sock = net.connect({ port, host }, () => {
        sock.off('error', reject);
        resolve(sock);
      });
      sock.once('error', reject);
    });
    const c = new FtpsControl(s);
    await c.expectGreeting();
    return c;
  }

  /** Implicit FTPS: TLS from the first byte, then the 220 greeting. */
  static async implicit(port: number, opts: tls.ConnectionOptions = {}): Promise<FtpsControl> {
    const s = await tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...opts });
    const c = new FtpsControl(s);
    await c.expectGreeting();
    return c;
  }

  private async expectGreeting(): Promise<void> {
    const g = await this.read();
    if (g?.code !== 220) throw new Error(`bad greeting: ${JSON.stringify(g)}`);
  }

  get tlsSocket(): tls.TLSSocket {
    if (!(this.socket instanceof tls.TLSSocket)) throw new Error('control connection is not TLS');
    return this.socket;
  }

  /** AUTH TLS and the handshake over the same socket. */
  async auth(opts: tls.ConnectionOptions = {}): Promise<void> {
    const r = await this.cmd('AUTH TLS');
    if (r.code !== 234) throw new Error(`AUTH TLS: ${r.code} ${r.text}`);
    await this.upgrade(opts);
  }

  /** Run the client handshake over the current (plain) socket. */
  async upgrade(opts: tls.ConnectionOptions = {}): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    const s = await tlsConnect({ socket: raw, rejectUnauthorized: false, ...opts });
    this.socket = s;
    this.attach(s);
  }

  /** The next reply, or null when the connection closed first. */
  read(timeoutMs = 15000): Promise<Reply | null> {
    return this.reader.read(timeoutMs);
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  async cmd(line: string, timeoutMs?: number): Promise<Reply> {
    this.send(`${line}\r\n`);
    const r = await this.read(timeoutMs);
    if (!r) throw new Error(`connection closed after ${line}`);
    return r;
  }

  /** Send a command that must be answered with `code`. */
  async ok(line: string, code: number): Promise<Reply> {
    const r = await this.cmd(line);
    if (r.code !== code) throw new Error(`${line}: expected ${code}, got ${r.code} ${r.text}`);
    return r;
  }

  async login(user: string, pass: string): Promise<void> {
    await this.ok(`USER ${user}`, 331);
    await this.ok(`PASS ${pass}`, 230);
  }

  /** AUTH TLS (with `opts` for the client's side), login, PBSZ 0, PROT P, TYPE I. */
  async secureLogin(user: string, pass: string, opts: tls.ConnectionOptions = {}): Promise<void> {
    await this.auth(opts);
    await this.login(user, pass);
    await this.ok('PBSZ 0', 200);
    await this.ok('PROT P', 200);
    await this.ok('TYPE I', 200);
  }

  /** EPSV; the data port. */
  async epsv(): Promise<number> {
    const r = await this.cmd('EPSV');
    const m = /\(\|\|\|(\d+)\|\)/.exec(r.text);
    if (r.code !== 229 || !m) throw new Error(`EPSV: ${r.code} ${r.text}`);
    return Number(m[1]);
  }

  /** A TLS data connection to `port`; resumes the control session unless `reuse` is false. */
  dataTls(port: number, reuse = true, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
    const session = reuse ? (this.session ?? this.tlsSocket.getSession()) : undefined;
    if (reuse && !session) throw new Error('no TLS session to resume');
    return tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, session, ...opts });
  }

  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** tls.connect as a promise that resolves on secureConnect. */
export function tlsConnect(opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(opts, () => {
      s.off('error', onError);
      s.off('close', onClose);
      resolve(s);
    });
    const onError = (err: Error): void => {
      s.off('close', onClose);
      reject(err);
    };
    const onClose = (): void => {
      s.off('error', onError);
      reject(new Error('connection closed during the TLS handshake'));
    };
    s.once('error', onError);
    s.once('close', onClose);
  });
}

/** Read a socket to its end; resolves with the bytes (also when it closes without an end). Rejects on error. */
export function drain(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('close', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
    s.resume();
  });
}

/** Python's ftplib.FTP_TLS resuming the control connection's TLS session on data connections, connected to `port`. */
export const PY_LOGIN = `class ReuseFTP_TLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, sz = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, sz

ftp = ReuseFTP_TLS(timeout=20)
ftp.context.check_hostname = False
ftp.context.verify_mode = ssl.CERT_NONE
ftp.connect('127.0.0.1', port)
`;
