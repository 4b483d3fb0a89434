import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nativeTlsAvailable } from '../../src/ftp/data/engines';
import { engineStats } from '../../src/native';
import { fileDigest, randomContent, settleSessionsOnTeardown, sha256 } from '../helpers/data-client';
import { transferRecords } from '../helpers/matrix';
import { explain, run } from '../helpers/run';
import { PASS, USER, eventually, openFds, startServer, type StartOptions, type TestServer } from '../helpers/server';
import { FtpsControl, tlsOption } from '../helpers/tls';

/**
 * FTPS through the native engine (src/ftp/data/tls-gate.ts, src/native/tlsrec.c): which
 * transfers it carries, with which suites and TLS versions, throttling, and what it leaves
 * behind. The clients are real (curl on OpenSSL, Python's ssl) over loopback.
 */

function scratch(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-tls-engine-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function server(t: ExecutionContext, opts: StartOptions = {}): Promise<TestServer> {
  t.true(nativeTlsAvailable(), "the addon reaches Node's OpenSSL");
  const s = await startServer(t, { tls: tlsOption(), ...opts });
  settleSessionsOnTeardown(t, s.server);
  return s;
}

function curl(args: string[]): ReturnType<typeof run> {
  return run('curl', ['-sS', '--fail', '--max-time', '60', '-k', '--ssl-reqd', ...args], { timeoutMs: 70000 });
}

// Serial: engineStats() and the descriptor count are the whole process's.
test.serial('binary transfers take the engine, a listing and TYPE A take Node\'s TLS socket, all intact', async (t) => {
  const s = await server(t);
  const dir = scratch(t);
  const body = randomContent(3 * 1024 * 1024 + 17);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const text = 'one\ntwo\nthree\n'.repeat(1000);
  fs.writeFileSync(path.join(s.root, 'f.txt'), text);
  const before = engineStats().tls;

  const d = await curl(['-o', path.join(dir, 'd.bin'), `${s.url}/f.bin`]);
  t.is(d.code, 0, explain(d));
  t.is((await fileDigest(path.join(dir, 'd.bin'))).sha256, sha256(body));
  const u = await curl(['-T', path.join(dir, 'd.bin'), `${s.url}/u.bin`]);
  t.is(u.code, 0, explain(u));
  t.is(sha256(fs.readFileSync(path.join(s.root, 'u.bin'))), sha256(body));
  const a = await curl(['--use-ascii', '-o', path.join(dir, 'a.txt'), `${s.url}/f.txt`]);
  t.is(a.code, 0, explain(a));
  // curl turns the CRLF of an ASCII download back into LF.
  t.is(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8'), text);
  const l = await curl([`${s.url}/`]);
  t.is(l.code, 0, explain(l));
  t.regex(l.stdout, /f\.bin/);

  const engines = transferRecords(s).map((r) => `${r.transfer} ${r.path} ${r.engine} ${r.result}`);
  t.deepEqual(engines, ['RETR /f.bin tls ok', 'STOR /u.bin tls ok', 'RETR /f.txt stream ok']);
  t.is(engineStats().tls - before, 2, 'the engine carried the two binary transfers');
});

test.serial('nativeTls: false keeps every FTPS transfer on Node\'s TLS socket', async (t) => {
  const s = await server(t, { nativeTls: false });
  const dir = scratch(t);
  const body = randomContent(1024 * 1024 + 3);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const before = engineStats().tls;
  const d = await curl(['-o', path.join(dir, 'd.bin'), `${s.url}/f.bin`]);
  t.is(d.code, 0, explain(d));
  const u = await curl(['-T', path.join(dir, 'd.bin'), `${s.url}/u.bin`]);
  t.is(u.code, 0, explain(u));
  t.is(sha256(fs.readFileSync(path.join(s.root, 'u.bin'))), sha256(body));
  t.deepEqual(transferRecords(s).map((r) => r.engine), ['stream', 'stream']);
  t.is(engineStats().tls, before);
});

// TLS 1.2 data connections (the data context is TLS 1.2 when sessions need not resume) with each
// AEAD suite the engine has, through Python's ssl; and TLS 1.3 with each of its three suites.
const PY = `
import ftplib, hashlib, io, json, ssl, sys
port, user, pw, ciphers, suites13 = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if ciphers:
    ctx.set_ciphers(ciphers)
class Reuse(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        self.data_cipher = conn.cipher()
        return conn, size
ftp = Reuse(context=ctx, timeout=20)
ftp.connect('127.0.0.1', port)
ftp.login(user, pw)
ftp.prot_p()
body = bytes(range(256)) * 8192 + b'odd tail'
out = {'stor': ftp.storbinary('STOR py.bin', io.BytesIO(body))}
h = hashlib.sha256()
out['retr'] = ftp.retrbinary('RETR py.bin', h.update)
out['cipher'] = list(ftp.data_cipher[:2])
out['same'] = h.hexdigest() == hashlib.sha256(body).hexdigest()
out['quit'] = ftp.quit()
print(json.dumps(out))
`;

for (const [label, ciphers, opts] of [
  ['TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES128-GCM-SHA256', { tlsRequireSessionReuse: false }],
  ['TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES256-GCM-SHA384', { tlsRequireSessionReuse: false }],
  ['TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-ECDSA-CHACHA20-POLY1305', { tlsRequireSessionReuse: false }],
  ['TLS 1.3 TLS_AES_128_GCM_SHA256', '', { tls: { ...tlsOption(), ciphers: 'TLS_AES_128_GCM_SHA256' } }],
  ['TLS 1.3 TLS_CHACHA20_POLY1305_SHA256', '', { tls: { ...tlsOption(), ciphers: 'TLS_CHACHA20_POLY1305_SHA256' } }],
  ['TLS 1.3 TLS_AES_256_GCM_SHA384', '', {}],
] as Array<[string, string, StartOptions]>) {
  test(`${label}: Python ftplib uploads and downloads through the engine`, async (t) => {
    const s = await server(t, opts);
    const r = await run('python3', ['-c', PY, String(s.port), USER, PASS, ciphers, ''], { timeoutMs: 60000 });
    t.is(r.code, 0, explain(r));
    const out = JSON.parse(r.stdout.trim()) as { stor: string; retr: string; cipher: string[]; same: boolean };
    t.regex(out.stor, /^226/);
    t.regex(out.retr, /^226/);
    t.true(out.same, 'download intact');
    const [version, suite] = label.split(' ').slice(1);
    t.is(out.cipher[1], `TLSv${version}`);
    if (ciphers) t.is(out.cipher[0], ciphers);
    else t.is(out.cipher[0], suite);
    t.deepEqual(transferRecords(s).map((x) => `${x.engine} ${x.result}`), ['tls ok', 'tls ok']);
  });
}

test('writeLimit and readLimit pace FTPS transfers on the engine too', async (t) => {
  const s = await server(t, { writeLimit: 128 * 1024, readLimit: 128 * 1024 });
  const dir = scratch(t);
  const body = randomContent(256 * 1024);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  let started = Date.now();
  const d = await curl(['-o', path.join(dir, 'd.bin'), `${s.url}/f.bin`]);
  const down = Date.now() - started;
  t.is(d.code, 0, explain(d));
  t.is((await fileDigest(path.join(dir, 'd.bin'))).sha256, sha256(body));
  started = Date.now();
  const u = await curl(['-T', path.join(dir, 'd.bin'), `${s.url}/u.bin`]);
  const up = Date.now() - started;
  t.is(u.code, 0, explain(u));
  t.is(sha256(fs.readFileSync(path.join(s.root, 'u.bin'))), sha256(body));
  t.true(down >= 1500, `download took ${down} ms`);
  t.true(up >= 1500, `upload took ${up} ms`);
  // 256 KiB at 128 KiB/s is 2 s each way. The upper bound (3x that plus 2 s) only catches a pace
  // that is grossly wrong (the engine pacing 8x too slow passed before), never a loaded machine.
  t.true(down <= 3 * 2000 + 2000, `download took ${down} ms: far slower than 128 KiB/s`);
  t.true(up <= 3 * 2000 + 2000, `upload took ${up} ms: far slower than 128 KiB/s`);
  t.deepEqual(transferRecords(s).map((r) => r.engine), ['tls', 'tls']);
});

test.serial('twenty FTPS transfers through the engine leave no descriptor and no job behind', async (t) => {
  const s = await server(t);
  const dir = scratch(t);
  const body = randomContent(512 * 1024 + 1);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  fs.writeFileSync(path.join(dir, 'up.bin'), body);
  // One warm-up each way: the I/O thread and its descriptors are made on first use.
  t.is((await curl(['-o', path.join(dir, 'w.bin'), `${s.url}/f.bin`])).code, 0);
  t.is((await curl(['-T', path.join(dir, 'up.bin'), `${s.url}/w.bin`])).code, 0);
  await eventually(() => engineStats().active === 0, 'the warm-up jobs ended');
  const fds = openFds();
  // One curl per transfer: a curl given several URLs reuses its control connection, and its
  // second data connection then fails to resume the session (both paths; see README, FTPS).
  for (let i = 0; i < 10; i++) {
    const d = await curl([`${s.url}/f.bin`, '-o', path.join(dir, `d${i}.bin`)]);
    t.is(d.code, 0, explain(d));
    const u = await curl(['-T', path.join(dir, 'up.bin'), `${s.url}/u${i}.bin`]);
    t.is(u.code, 0, explain(u));
  }
  for (let i = 0; i < 10; i++) {
    t.is((await fileDigest(path.join(dir, `d${i}.bin`))).sha256, sha256(body));
    t.is(sha256(fs.readFileSync(path.join(s.root, `u${i}.bin`))), sha256(body));
  }
  await eventually(() => engineStats().active === 0 && openFds() <= fds, `descriptors back to ${fds} (now ${openFds()})`);
  t.true(transferRecords(s).every((r) => r.engine === 'tls' && r.result === 'ok'));
});

test('STAT during an FTPS upload on the engine shows its bytes; ABOR then stops it with 426 and 226', async (t) => {
  const s = await server(t);
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.secureLogin(USER, PASS);
  const d = await c.dataTls(await c.epsv());
  d.on('error', () => {});
  const first = await c.cmd('STOR up.bin');
  t.true(first.code === 125 || first.code === 150, `${first.code} ${first.text}`);
  const part = randomContent(100_000);
  await new Promise<void>((resolve, reject) => d.write(part, (err) => (err ? reject(err) : resolve())));
  // Progress comes from the I/O thread at most every 100 ms: ask until the bytes show (or 3 s).
  let st = await c.cmd('STAT');
  const deadline = Date.now() + 3000;
  while (!st.lines.some((l) => l.includes(`Bytes transferred: ${part.length}`)) && Date.now() < deadline) st = await c.cmd('STAT');
  t.is(st.code, 213);
  t.true(st.lines.some((l) => l.includes('STOR /up.bin')), st.lines.join('|'));
  t.true(st.lines.some((l) => l.includes(`Bytes transferred: ${part.length}`)), st.lines.join('|'));
  const abor = await c.cmd('ABOR');
  t.is(abor.code, 426);
  t.is((await c.read())?.code, 226);
  t.is((await c.cmd('NOOP')).code, 200);
  const rec = transferRecords(s)[0];
  t.is(rec?.engine, 'tls');
  t.is(rec?.bytes, part.length);
  t.deepEqual(fs.readFileSync(path.join(s.root, 'up.bin')), part, 'the bytes received before ABOR are kept');
});
