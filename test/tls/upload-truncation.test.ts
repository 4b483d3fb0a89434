import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tls from 'node:tls';
import { randomContent, sha256 } from '../helpers/data-client';
import { explain, run } from '../helpers/run';
import { PASS, USER, startServer, type StartOptions, type TestServer } from '../helpers/server';
import { nativeTlsAvailable } from '../../src/ftp/data/engines';
import { FtpsControl, drain, tlsOption } from '../helpers/tls';

/**
 * TLS 1.3 upload truncation (FIELD-NOTES): an uploading client that never
 * reads its data connection and then closes it can lose the tail of the
 * upload (unread session tickets turn the close into a reset). Whatever
 * happens, a 226 must never be sent for a short file.
 */

const SIZE = 4 * 1024 * 1024 + 5;

async function setup(t: ExecutionContext, opts: StartOptions = {}): Promise<{ s: TestServer; c: FtpsControl }> {
  const s = await startServer(t, { tls: tlsOption(), ...opts });
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.secureLogin(USER, PASS);
  t.is(c.tlsSocket.getProtocol(), 'TLSv1.3');
  return { s, c };
}

/**
 * The invariant, and a description of what happened for the report. `clean`: the client sent the
 * whole file and closed with close_notify + FIN, so nothing was lost and only a 226 is right (a
 * server that refused every upload this way would otherwise pass). Without it (no close_notify),
 * a refusal is a correct answer too.
 */
function judge(t: ExecutionContext, s: TestServer, name: string, code: number | undefined, size: number, clean = false): string {
  const file = path.join(s.root, name);
  const got = fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0);
  const full = got.length === size && sha256(got) === sha256(randomContent(size));
  if (code === 226) t.true(full, `226 sent for ${name} with ${got.length} of ${size} bytes`);
  if (clean) t.true(code === 226 && full, `${name}, complete and closed cleanly, got ${code} with ${got.length} of ${size} bytes`);
  return `${code} with ${full ? 'the full file' : `${got.length}/${size} bytes`}`;
}

async function nodeUpload(c: FtpsControl, name: string, finish: (d: tls.TLSSocket) => void): Promise<number | undefined> {
  const port = await c.epsv();
  const d = await c.dataTls(port);
  d.on('error', () => {});
  const first = await c.cmd(`STOR ${name}`);
  if (first.code !== 150 && first.code !== 125) return first.code;
  // Never read the data connection: no 'data' listener, no resume().
  await new Promise<void>((resolve, reject) => d.write(randomContent(SIZE), (err) => (err ? reject(err) : resolve())));
  finish(d);
  return (await c.read(30000))?.code;
}

test('upload with a client that never reads, then end()s (close_notify + FIN): never a 226 for a short file', async (t) => {
  const { s, c } = await setup(t);
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) {
    const code = await nodeUpload(c, `end${i}.bin`, (d) => d.end());
    seen.push(judge(t, s, `end${i}.bin`, code, SIZE, true));
  }
  t.log(`end(): ${seen.join('; ')}`);
  t.true(seen.every((x) => x.startsWith('226 with the full file')), `a clean close_notify + FIN is a complete upload: ${seen.join('; ')}`);
});

test('upload with a client that destroys the socket right after writing (no close_notify): never a 226 for a short file', async (t) => {
  const { s, c } = await setup(t);
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) {
    const code = await nodeUpload(c, `rst${i}.bin`, (d) => d.destroy());
    seen.push(judge(t, s, `rst${i}.bin`, code, SIZE));
    await c.ok('NOOP', 200);
  }
  t.log(`destroy(): ${seen.join('; ')}`);
});

const PY = `
import ftplib, ssl, sys, json, os
port, user, pw, size, rounds = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

class ReuseFTP_TLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, sz = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, sz

ftp = ReuseFTP_TLS(timeout=20)
ftp.context.check_hostname = False
ftp.context.verify_mode = ssl.CERT_NONE
ftp.connect('127.0.0.1', port)
ftp.auth(); ftp.login(user, pw); ftp.prot_p(); ftp.voidcmd('TYPE I')
data = open(sys.argv[6], 'rb').read()
out = []
for i in range(rounds):
    conn = ftp.transfercmd('STOR py%d.bin' % i)
    conn.sendall(data)
    conn.close()   # no unwrap(): never reads what the server sent on the data connection
    try:
        out.append(ftp.voidresp())
    except ftplib.all_errors as e:
        out.append(str(e))
ftp.quit()
print(json.dumps(out))
`;

test('Python client that never reads the data connection and closes without unwrap(): never a 226 for a short file', async (t) => {
  const { s } = await setup(t);
  const src = path.join(s.root, 'src.bin');
  fs.writeFileSync(src, randomContent(SIZE));
  const rounds = 4;
  const r = await run('python3', ['-c', PY, String(s.port), USER, PASS, String(SIZE), String(rounds), src], { timeoutMs: 60000 });
  t.is(r.code, 0, explain(r));
  const replies: string[] = JSON.parse(r.stdout.trim());
  const seen = replies.map((reply, i) => judge(t, s, `py${i}.bin`, Number(reply.slice(0, 3)), SIZE));
  t.log(`python close() without unwrap: ${seen.join('; ')}`);
});

test('the server sends no TLS session tickets on data connections (FIELD-NOTES)', async (t) => {
  const { c } = await setup(t);
  const port = await c.epsv();
  const d = await c.dataTls(port);
  let tickets = 0;
  d.on('session', () => tickets++);
  const got = drain(d);
  await c.cmd('LIST');
  await got;
  t.is((await c.read())?.code, 226);
  t.is(tickets, 0, `${tickets} session ticket(s) arrived on the data connection`);
});

test('no session tickets on data connections with tlsRequireSessionReuse: false either (a fresh handshake)', async (t) => {
  const s = await startServer(t, { tls: tlsOption(), tlsRequireSessionReuse: false });
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.secureLogin(USER, PASS);
  const port = await c.epsv();
  const d = await c.dataTls(port, false);
  let tickets = 0;
  d.on('session', () => tickets++);
  const got = drain(d);
  await c.cmd('LIST');
  await got;
  t.is((await c.read())?.code, 226);
  t.is(tickets, 0, `${tickets} session ticket(s) arrived on the data connection`);
});

/** Upload 1 MiB, then end the data connection with a TCP FIN and no close_notify: the final reply. */
async function cutByFin(t: ExecutionContext, opts: StartOptions): Promise<{ code: number | undefined; stored: number; s: TestServer }> {
  const { s, c } = await setup(t, opts);
  const port = await c.epsv();
  const d = await c.dataTls(port);
  d.on('error', () => {});
  const first = await c.cmd('STOR cut.bin');
  t.regex(String(first.code), /^1(25|50)$/);
  const half = randomContent(SIZE).subarray(0, 1024 * 1024);
  await new Promise<void>((resolve, reject) => d.write(half, (err) => (err ? reject(err) : resolve())));
  // A TCP FIN with no TLS close_notify: the upload may have been truncated by anyone on the path.
  d.destroy();
  const final = await c.read(30000);
  const stored = fs.existsSync(path.join(s.root, 'cut.bin')) ? fs.statSync(path.join(s.root, 'cut.bin')).size : 0;
  t.log(`FIN without close_notify after ${half.length} bytes: ${final?.code} ${final?.text} (${stored} bytes stored)`);
  return { code: final?.code, stored, s };
}

// The engine opens the records itself (src/native/tlsrec.c) and sees whether a close_notify came.
test('an upload cut short by a FIN without close_notify gets 426, not 226 (the engine path)', async (t) => {
  t.true(nativeTlsAvailable(), 'the addon reaches Node\'s OpenSSL');
  const { code, s } = await cutByFin(t, {});
  t.is(code, 426, 'an upload that ended without close_notify must not get 226');
  const rec = s.records.find((r) => r.transfer === 'STOR');
  t.is(rec?.engine, 'tls');
  t.is(rec?.result, 'ECONNRESET');
});

// Known gap of the stream path: Node's TLS API reports a peer's close_notify and a bare TCP FIN
// alike (both are 'end'), so Node's TLS socket cannot refuse an upload cut by a FIN. Marked
// failing to keep the gap visible (nativeTls: false, or an addon without Node's OpenSSL).
test.failing('an upload cut short by a FIN without close_notify is not reported as complete (226) (stream path)', async (t) => {
  const { code } = await cutByFin(t, { nativeTls: false });
  t.not(code, 226, 'an upload that ended without close_notify must not get 226');
});
