import test, { type ExecutionContext } from 'ava';
import { Client } from 'basic-ftp';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { fileDigest, randomContent, settleSessionsOnTeardown, sha256 } from '../helpers/data-client';
import { transferRecords } from '../helpers/matrix';
import { explain, run } from '../helpers/run';
import { PASS, USER, startServer, type StartOptions, type TestServer } from '../helpers/server';
import { FtpsControl, drain, tlsOption } from '../helpers/tls';
import { nativeTlsAvailable } from '../../src/ftp/data/engines';

/**
 * Explicit and implicit FTPS through real clients: curl, lftp, Python's
 * ftplib.FTP_TLS and basic-ftp, every file checked by hash.
 *
 * Active mode + TLS is driven with lftp, not curl: curl 7.88 fails active
 * FTPS data connections on its own side ("inet_ntop() failed with errno 97",
 * exit 18), a client bug that says nothing about the server.
 */

function scratch(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-tls-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function server(t: ExecutionContext, opts: StartOptions = {}): Promise<TestServer> {
  const s = await startServer(t, { tls: tlsOption(), ...opts });
  settleSessionsOnTeardown(t, s.server);
  return s;
}

function curl(args: string[]): ReturnType<typeof run> {
  return run('curl', ['-sS', '--fail', '--max-time', '60', '-k', ...args], { timeoutMs: 70000 });
}

const SIZES: Array<[string, number]> = [
  ['0 bytes', 0],
  ['1 byte', 1],
  ['1 MiB + 1', 1024 * 1024 + 1],
];

// ---- curl ----------------------------------------------------------------------

// Both ways FTPS data can go: the engine sealing and opening the records itself after Node's
// handshake (src/ftp/data/tls-gate.ts), and Node's TLS socket all the way (nativeTls: false).
const PATHS: Array<[string, boolean]> = [
  [nativeTlsAvailable() ? 'tls' : 'stream', true],
  ['stream', false],
];

for (const [name, flags, [engine, nativeTls]] of [
  ['EPSV', [], PATHS[0]],
  ['PASV', ['--ftp-pasv', '--disable-epsv'], PATHS[0]],
  ['EPSV', [], PATHS[1]],
] as Array<[string, string[], [string, boolean]]>) {
  test(`curl --ssl-reqd lists, downloads and uploads intact (${name}, 0/1/1 MiB+1 bytes, nativeTls ${nativeTls})`, async (t) => {
    const s = await server(t, { nativeTls });
    const dir = scratch(t);
    for (const [label, size] of SIZES) {
      fs.writeFileSync(path.join(s.root, `f${size}.bin`), randomContent(size));
      const local = path.join(dir, `down${size}.bin`);
      const d = await curl(['--ssl-reqd', ...flags, '-o', local, `${s.url}/f${size}.bin`]);
      t.is(d.code, 0, `${label} download: ${explain(d)}`);
      t.is((await fileDigest(local)).sha256, sha256(randomContent(size)), `${label} download intact`);
      const u = await curl(['--ssl-reqd', ...flags, '-T', local, `${s.url}/up${size}.bin`]);
      t.is(u.code, 0, `${label} upload: ${explain(u)}`);
      t.is((await fileDigest(path.join(s.root, `up${size}.bin`))).sha256, sha256(randomContent(size)), `${label} upload intact`);
    }
    const l = await curl(['--ssl-reqd', ...flags, `${s.url}/`]);
    t.is(l.code, 0, explain(l));
    t.regex(l.stdout, /f1048577\.bin\r?\n/);
    const records = transferRecords(s);
    t.is(records.length, 2 * SIZES.length);
    t.true(records.every((r) => r.result === 'ok' && r.engine === engine), `TLS transfers use the ${engine} path: ${records.map((r) => r.engine).join(', ')}`);
  });
}

test('curl --ssl-reqd moves a 20 MiB file each way intact', async (t) => {
  const s = await server(t);
  const dir = scratch(t);
  const body = randomContent(20 * 1024 * 1024 + 3);
  fs.writeFileSync(path.join(s.root, 'big.bin'), body);
  const local = path.join(dir, 'big.bin');
  const d = await curl(['--ssl-reqd', '-o', local, `${s.url}/big.bin`]);
  t.is(d.code, 0, explain(d));
  t.is((await fileDigest(local)).sha256, sha256(body));
  const u = await curl(['--ssl-reqd', '-T', local, `${s.url}/big-up.bin`]);
  t.is(u.code, 0, explain(u));
  t.deepEqual(await fileDigest(path.join(s.root, 'big-up.bin')), { bytes: body.length, sha256: sha256(body) });
});

test('curl --ftp-ssl-control: TLS on the control connection, clear data', async (t) => {
  const s = await server(t);
  const dir = scratch(t);
  const body = randomContent(1024 * 1024 + 1);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const local = path.join(dir, 'f.bin');
  const d = await curl(['--ftp-ssl-control', '-v', '-o', local, `${s.url}/f.bin`]);
  t.is(d.code, 0, explain(d));
  t.is((await fileDigest(local)).sha256, sha256(body));
  t.regex(d.stderr, /AUTH (SSL|TLS)/, 'curl secured the control connection');
  t.notRegex(d.stderr, /PROT P/, 'data stayed in clear');
  const u = await curl(['--ftp-ssl-control', '-T', local, `${s.url}/up.bin`]);
  t.is(u.code, 0, explain(u));
  t.is((await fileDigest(path.join(s.root, 'up.bin'))).sha256, sha256(body));
});

test('curl --ssl-reqd -C - resumes a download with REST', async (t) => {
  const s = await server(t);
  const dir = scratch(t);
  const body = randomContent(1024 * 1024 + 1);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const local = path.join(dir, 'part.bin');
  fs.writeFileSync(local, body.subarray(0, 300_001));
  const r = await curl(['--ssl-reqd', '-v', '-C', '-', '-o', local, `${s.url}/f.bin`]);
  t.is(r.code, 0, explain(r));
  t.regex(r.stderr, /REST 300001/);
  t.is((await fileDigest(local)).sha256, sha256(body));
  const rec = transferRecords(s).at(-1);
  t.is(rec?.bytes, body.length - 300_001, 'only the missing tail was sent');
});

test('curl --ssl-reqd -C - resumes an upload (APPE)', async (t) => {
  const s = await server(t);
  const dir = scratch(t);
  const body = randomContent(1024 * 1024 + 1);
  fs.writeFileSync(path.join(s.root, 'up.bin'), body.subarray(0, 123_457));
  const local = path.join(dir, 'full.bin');
  fs.writeFileSync(local, body);
  const r = await curl(['--ssl-reqd', '-C', '-', '-T', local, `${s.url}/up.bin`]);
  t.is(r.code, 0, explain(r));
  t.is((await fileDigest(path.join(s.root, 'up.bin'))).sha256, sha256(body));
});

test('curl ftps:// (implicit FTPS) lists, downloads and uploads intact', async (t) => {
  const s = await server(t, { implicitTlsPort: 0 });
  const dir = scratch(t);
  const port = s.server.implicitAddress()?.port;
  t.truthy(port);
  const base = `ftps://${USER}:${PASS}@127.0.0.1:${port}`;
  const body = randomContent(1024 * 1024 + 1);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const local = path.join(dir, 'f.bin');
  const d = await curl(['-o', local, `${base}/f.bin`]);
  t.is(d.code, 0, explain(d));
  t.is((await fileDigest(local)).sha256, sha256(body));
  const u = await curl(['-T', local, `${base}/up.bin`]);
  t.is(u.code, 0, explain(u));
  t.is((await fileDigest(path.join(s.root, 'up.bin'))).sha256, sha256(body));
  const l = await curl([`${base}/`]);
  t.is(l.code, 0, explain(l));
  t.regex(l.stdout, /up\.bin/);
});

// ---- lftp ------------------------------------------------------------------------

for (const passive of [true, false]) {
  test(`lftp with ftp:ssl-force and ftp:ssl-protect-data moves files intact (${passive ? 'passive' : 'active'})`, async (t) => {
    const s = await server(t);
    const dir = scratch(t);
    const cmds = [
      'set ftp:ssl-force true',
      'set ftp:ssl-protect-data true',
      'set ssl:verify-certificate no',
      `set ftp:passive-mode ${passive ? 'on' : 'off'}`,
      'set net:max-retries 1',
      'set net:timeout 20',
      'set cmd:fail-exit true',
      `open -u ${USER},${PASS} -p ${s.port} 127.0.0.1`,
    ];
    for (const [, size] of SIZES) {
      fs.writeFileSync(path.join(dir, `l${size}.bin`), randomContent(size));
      cmds.push(`put ${path.join(dir, `l${size}.bin`)} -o up${size}.bin`);
      cmds.push(`get up${size}.bin -o ${path.join(dir, `back${size}.bin`)}`);
    }
    cmds.push('cls -1', 'quit');
    const r = await run('lftp', ['-d', '-c', cmds.join('; ')], { timeoutMs: 60000 });
    t.is(r.code, 0, explain(r));
    for (const [label, size] of SIZES) {
      const want = sha256(randomContent(size));
      t.is((await fileDigest(path.join(s.root, `up${size}.bin`))).sha256, want, `${label} upload intact`);
      t.is((await fileDigest(path.join(dir, `back${size}.bin`))).sha256, want, `${label} download intact`);
    }
    t.regex(r.stdout, /up1048577\.bin/);
    t.regex(r.stderr, /PROT P/);
    t.regex(r.stderr, passive ? /EPSV|PASV/ : /EPRT|PORT/);
    t.true(transferRecords(s).every((x) => x.result === 'ok'), JSON.stringify(transferRecords(s)));
  });
}

// ---- Python ftplib ---------------------------------------------------------------------

const PY = `
import ftplib, hashlib, io, json, sys
port, user, pw, mode, pasv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == '1'

class ReuseFTP_TLS(ftplib.FTP_TLS):
    """The usual fix: resume the control connection's TLS session on data connections."""
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

cls = ReuseFTP_TLS if mode == 'reuse' else ftplib.FTP_TLS
ftp = cls(timeout=20)
ftp.context.check_hostname = False
import ssl
ftp.context.verify_mode = ssl.CERT_NONE
ftp.connect('127.0.0.1', port)
ftp.auth()
ftp.login(user, pw)
ftp.prot_p()
ftp.set_pasv(pasv)
out = {}
body = bytes(range(256)) * 4096 + b'tail'
def attempt(name, fn):
    try:
        out[name] = fn()
    except ftplib.all_errors as e:
        out.setdefault('errors', []).append('%s: %s' % (name, e))
        if not isinstance(e, ftplib.Error):
            # A data-connection failure: the transfer's own reply is still pending on the control connection.
            try:
                out[name + '_late_reply'] = ftp.getresp()
            except ftplib.Error as e2:
                out[name + '_late_reply'] = str(e2)
h = hashlib.sha256()
attempt('stor', lambda: ftp.storbinary('STOR py.bin', io.BytesIO(body)))
attempt('retr', lambda: ftp.retrbinary('RETR py.bin', h.update))
out['retr_sha'] = h.hexdigest()
attempt('nlst', lambda: sorted(ftp.nlst()))
out['noop'] = ftp.voidcmd('NOOP')
out['quit'] = ftp.quit()
out['body_sha'] = hashlib.sha256(body).hexdigest()
print(json.dumps(out))
`;

async function py(s: TestServer, mode: 'vanilla' | 'reuse', pasv: boolean): Promise<Record<string, string | string[] | undefined>> {
  const r = await run('python3', ['-c', PY, String(s.port), USER, PASS, mode, pasv ? '1' : '0'], { timeoutMs: 60000 });
  if (r.code !== 0) throw new Error(explain(r));
  return JSON.parse(r.stdout.trim());
}

test('Python FTP_TLS (no session resumption on data connections) gets 522 by default; the control session survives', async (t) => {
  const s = await server(t);
  const out = await py(s, 'vanilla', true);
  const stor = [out.errors?.[0], out.stor_late_reply].join(' | ');
  t.regex(stor, /522/, `the upload is refused with 522: ${JSON.stringify(out)}`);
  t.true(String(out.errors?.[0]).startsWith('stor'), JSON.stringify(out));
  t.regex(String(out.noop), /^200/);
  t.regex(String(out.quit), /^221/);
  t.false(fs.existsSync(path.join(s.root, 'py.bin')) && fs.statSync(path.join(s.root, 'py.bin')).size > 0, 'no data was accepted');
});

for (const [title, mode, opts] of [
  ['with tlsRequireSessionReuse: false', 'vanilla', { tlsRequireSessionReuse: false }],
  ['with a subclass that passes session=self.sock.session', 'reuse', {}],
] as Array<[string, 'vanilla' | 'reuse', StartOptions]>) {
  for (const pasv of [true, false]) {
    test(`Python FTP_TLS works ${title} (${pasv ? 'passive' : 'active'})`, async (t) => {
      const s = await server(t, opts);
      const out = await py(s, mode, pasv);
      t.is(out.errors, undefined, JSON.stringify(out));
      t.regex(String(out.stor), /^226/);
      t.regex(String(out.retr), /^226/);
      t.is(out.retr_sha, out.body_sha);
      t.is(sha256(fs.readFileSync(path.join(s.root, 'py.bin'))), String(out.body_sha));
      t.deepEqual(out.nlst, ['py.bin']);
    });
  }
}

// ---- basic-ftp ----------------------------------------------------------------------------

async function basic(t: ExecutionContext, port: number, secure: true | 'implicit'): Promise<Client> {
  const c = new Client(20000);
  t.teardown(() => c.close());
  await c.access({ host: '127.0.0.1', port, user: USER, password: PASS, secure, secureOptions: { rejectUnauthorized: false } });
  return c;
}

async function roundTrip(t: ExecutionContext, c: Client, s: TestServer, name: string, body: Buffer): Promise<void> {
  await c.uploadFrom(Readable.from([body]), name);
  t.is(sha256(fs.readFileSync(path.join(s.root, name))), sha256(body), `${name}: upload intact`);
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await c.downloadTo(sink, name);
  t.is(sha256(Buffer.concat(chunks)), sha256(body), `${name}: download intact`);
}

test('basic-ftp secure: true (explicit) moves 0, 1 and 1 MiB + 1 bytes intact and lists', async (t) => {
  const s = await server(t);
  const c = await basic(t, s.port, true);
  for (const [, size] of SIZES) await roundTrip(t, c, s, `b${size}.bin`, randomContent(size));
  const list = await c.list();
  t.deepEqual(list.map((f) => f.name).sort(), ['b0.bin', 'b1.bin', 'b1048577.bin']);
  t.is(list.find((f) => f.name === 'b1048577.bin')?.size, 1024 * 1024 + 1);
});

test("basic-ftp secure: 'implicit' against implicitAddress() moves files intact", async (t) => {
  const s = await server(t, { implicitTlsPort: 0 });
  const addr = s.server.implicitAddress();
  t.truthy(addr);
  t.not(addr!.port, s.port);
  const c = await basic(t, addr!.port, 'implicit');
  for (const [, size] of SIZES) await roundTrip(t, c, s, `i${size}.bin`, randomContent(size));
  t.deepEqual((await c.list()).map((f) => f.name).sort(), ['i0.bin', 'i1.bin', 'i1048577.bin']);
});

test('implicit FTPS: the greeting comes over TLS, and PBSZ is accepted at once', async (t) => {
  const s = await server(t, { implicitTlsPort: 0 });
  const c = await FtpsControl.implicit(s.server.implicitAddress()!.port);
  t.is(c.tlsSocket.getProtocol() !== null, true);
  await c.ok('NOOP', 200);
  const r = await c.cmd('PBSZ 0');
  t.is(r.code, 200, 'PBSZ is accepted on an implicit connection');
  c.close();
});

// Python's ssl with ragged EOFs reported: after 221, a FIN without the server's close_notify
// raises SSLEOFError; a close_notify makes the read return b''.
const PY_QUIT = `
import socket, ssl, sys
port, implicit, user, pw = int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection(('127.0.0.1', port), timeout=20)
def lines(f):
    while True:
        l = f.readline()
        if not l:
            return
        yield l.decode()
if implicit:
    s = ctx.wrap_socket(raw, suppress_ragged_eofs=False)
else:
    f = raw.makefile('rb')
    assert f.readline().startswith(b'220')
    raw.sendall(b'AUTH TLS\\r\\n')
    assert f.readline().startswith(b'234')
    s = ctx.wrap_socket(raw, suppress_ragged_eofs=False)
f = s.makefile('rb')
if implicit:
    assert f.readline().startswith(b'220')
s.sendall(('USER %s\\r\\nPASS %s\\r\\nQUIT\\r\\n' % (user, pw)).encode())
codes = []
try:
    for l in lines(f):
        codes.append(l[:3])
    end = 'close_notify'
except ssl.SSLEOFError:
    end = 'no close_notify'
print(' '.join(codes), end)
`;

for (const implicit of [false, true]) {
  test(`${implicit ? 'implicit' : 'explicit'} FTPS: QUIT answers 221 and ends the connection with a close_notify`, async (t) => {
    const s = await server(t, implicit ? { implicitTlsPort: 0 } : {});
    const port = implicit ? s.server.implicitAddress()!.port : s.port;
    const r = await run('python3', ['-c', PY_QUIT, String(port), implicit ? '1' : '0', USER, PASS], { timeoutMs: 30000 });
    t.is(r.code, 0, explain(r));
    t.is(r.stdout.trim(), '331 230 221 close_notify');
  });
}

// ---- ABOR ----------------------------------------------------------------------------------

test('ABOR during a TLS RETR: 426 then 226, and the session keeps working', async (t) => {
  const s = await server(t);
  const big = randomContent(16 * 1024 * 1024);
  fs.writeFileSync(path.join(s.root, 'big.bin'), big);
  fs.writeFileSync(path.join(s.root, 'small.bin'), randomContent(1024 * 1024 + 1));
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.secureLogin(USER, PASS);
  const port = await c.epsv();
  const data = await c.dataTls(port);
  data.on('error', () => {});
  // Read nothing: the server fills the buffers and blocks mid-transfer.
  const first = await c.cmd('RETR big.bin');
  t.true(first.code === 150 || first.code === 125, `${first.code} ${first.text}`);
  const abor = await c.cmd('ABOR');
  t.is(abor.code, 426, abor.text);
  const done = await c.read();
  t.is(done?.code, 226, JSON.stringify(done));
  data.destroy();
  await c.ok('NOOP', 200);
  const port2 = await c.epsv();
  const data2 = await c.dataTls(port2);
  const got = drain(data2);
  t.regex(String((await c.cmd('RETR small.bin')).code), /^1(25|50)$/);
  t.is(sha256(await got), sha256(randomContent(1024 * 1024 + 1)), 'a transfer after ABOR is intact');
  t.is((await c.read())?.code, 226);
  await c.ok('QUIT', 221);
});
