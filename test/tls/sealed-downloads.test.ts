import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as tls from 'node:tls';
import { nativeTlsAvailable } from '../../src/ftp/data/engines';
import { sealedDownloads } from '../../src/ftp/data/tls-seal';
import { oneChunkFile, randomContent, sha256 } from '../helpers/data-client';
import { explain, run } from '../helpers/run';
import { PASS, USER, startServer, type StartOptions, type TestServer } from '../helpers/server';
import { FtpsControl, PY_LOGIN, drain, tlsOption } from '../helpers/tls';
import { CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_HANDSHAKE, rawDataTls, splitRecords, type Keys, type RawData } from '../helpers/tls-records';

/**
 * FTPS downloads the engine does not carry (a listing, TYPE A, `useSendfile: false`, no addon)
 * have their records sealed by ftpdlib (src/ftp/data/tls-seal.ts) rather than by Node's TLS
 * socket over the gate. On the wire: every record the server sends opens, in order, with the
 * server's keys as the client derives them; the data is the file's; a close_notify comes last; a
 * KeyUpdate the client asks for is answered, and what follows it is under the next keys. Real
 * clients (Python's ssl, which fails unwrap() without the server's close_notify, Node's TLS)
 * read the same downloads intact under TLS 1.2 and 1.3, and a server without the addon does it
 * with node:crypto.
 */

const ROOT = path.resolve(__dirname, '..', '..');

interface PathCase {
  name: string;
  opts: StartOptions;
  engine: string;
  sealedBy: 'addon' | 'js' | undefined;
}

const PATHS: PathCase[] = [
  { name: 'useSendfile: false (sealed by the addon)', opts: { useSendfile: false }, engine: 'stream', sealedBy: 'addon' },
  { name: "nativeTls: false (Node's TLS socket)", opts: { nativeTls: false }, engine: 'stream', sealedBy: undefined },
  { name: 'the engine', opts: {}, engine: 'tls', sealedBy: undefined },
];

async function loggedIn(t: ExecutionContext, opts: StartOptions, tlsOpts: tls.ConnectionOptions = {}): Promise<{ s: TestServer; c: FtpsControl }> {
  t.true(nativeTlsAvailable(), "the addon reaches Node's OpenSSL");
  const s = await startServer(t, { tls: tlsOption(), ...opts });
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.secureLogin(USER, PASS, tlsOpts);
  return { s, c };
}

/** The server's records as the client reads them, in order: a KeyUpdate moves `keys` on for the records after it. */
function openAll(t: ExecutionContext, d: RawData): Array<{ type: number; content: Buffer }> {
  const { records, rest } = splitRecords(Buffer.concat(d.received));
  t.is(rest.length, 0, 'the server sent whole records only');
  let keys: Keys = d.in;
  return records.map((r) => {
    t.is(r[0], CONTENT_APPLICATION_DATA);
    const o = keys.open(r);
    if (o.type === CONTENT_HANDSHAKE && o.content[0] === 24) keys = keys.next();
    return o;
  });
}

/**
 * A download over a data connection whose record layer is the test's (rawDataTls): `command`
 * up to its 226 and the server's FIN; `first` runs after the handshake, before the command.
 * Returns the server's records, opened in order.
 */
async function rawDownload(
  t: ExecutionContext,
  c: FtpsControl,
  command: string,
  tlsOpts: tls.ConnectionOptions = {},
  first?: (d: RawData) => Promise<void>,
): Promise<Array<{ type: number; content: Buffer }>> {
  const d = await rawDataTls(t, c, await c.epsv(), tlsOpts);
  await first?.(d);
  t.regex(String((await c.cmd(command)).code), /^1(25|50)$/);
  t.is((await c.read(20000))?.code, 226);
  await d.closed;
  return openAll(t, d);
}

/** Data records of 1 to 16384 bytes that make up `want`, in order, and a close_notify last. */
function checkDownload(t: ExecutionContext, recs: Array<{ type: number; content: Buffer }>, want: Buffer): void {
  const last = recs.at(-1);
  t.deepEqual([last?.type, last?.content.toString('hex')], [CONTENT_ALERT, '0100'], 'a close_notify last');
  const data = recs.filter((r) => r.type === CONTENT_APPLICATION_DATA);
  t.true(
    data.every((r) => r.content.length >= 1 && r.content.length <= 16384),
    'records of 1 to 16384 bytes',
  );
  const got = Buffer.concat(data.map((r) => r.content));
  t.true(got.length === want.length && sha256(got) === sha256(want), `the file's bytes: ${got.length} of ${want.length}`);
}

function lastRecord(s: TestServer, verb: string): Record<string, unknown> | undefined {
  return s.records.filter((r) => r.transfer === verb).at(-1);
}

const SUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256'];

for (const p of PATHS) {
  for (const suite of p.sealedBy ? SUITES : SUITES.slice(0, 1)) {
    test(`${p.name}, ${suite}: every record of a download opens in order with the server's keys, the data is the file's, a close_notify ends it`, async (t) => {
      const tlsOpts = { ciphers: suite };
      const { s, c } = await loggedIn(t, p.opts, tlsOpts);
      const body = randomContent(1024 * 1024 + 3);
      fs.writeFileSync(path.join(s.root, 'f.bin'), body);
      const recs = await rawDownload(t, c, 'RETR f.bin', tlsOpts, async (d) => {
        t.is((d.tlsSocket.getCipher() as { standardName?: string }).standardName, suite);
      });
      checkDownload(t, recs, body);
      t.false(
        recs.some((r) => r.type === CONTENT_HANDSHAKE),
        'no handshake message (no KeyUpdate, no session ticket) on an ordinary download',
      );
      const rec = lastRecord(s, 'RETR');
      t.is(rec?.engine, p.engine);
      t.is(rec?.sealedBy, p.sealedBy);
    });
  }
}

// The stream path beside the engine: TYPE A and listings are sealed too. Serial: the count of
// sealed downloads is the process's, and the other tests of this file seal downloads too.
test.serial('with the addon, a TYPE A download and a listing are sealed by the addon: records open in order, close_notify last', async (t) => {
  const { s, c } = await loggedIn(t, {});
  const text = Buffer.from('line one\nline two\r\nline three\n'.repeat(20000));
  fs.writeFileSync(path.join(s.root, 'a.txt'), text);
  await c.ok('TYPE A', 200);
  checkDownload(t, await rawDownload(t, c, 'RETR a.txt'), Buffer.from(text.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'));
  t.is(lastRecord(s, 'RETR')?.engine, 'stream');
  t.is(lastRecord(s, 'RETR')?.sealedBy, 'addon');
  const before = sealedDownloads.addon;
  checkDownload(t, await rawDownload(t, c, 'NLST'), Buffer.from('a.txt\r\n'));
  t.is(sealedDownloads.addon, before + 1, 'the listing was sealed by the addon (listings have no transfer record)');
});

/** `KeyUpdate(update_requested)` as the client's next record. */
function keyUpdateRequest(d: RawData): Buffer {
  return d.out.seal(CONTENT_HANDSHAKE, Buffer.from([24, 0, 0, 1, 1]));
}

// The engine does not read the client's records during a download (README "Known gaps").
for (const p of PATHS.filter((x) => x.engine === 'stream')) {
  test(`${p.name}: a KeyUpdate the client asked for before RETR is answered; what follows it opens under the next keys`, async (t) => {
    const { s, c } = await loggedIn(t, p.opts);
    const body = randomContent(3 * 1024 * 1024 + 1);
    fs.writeFileSync(path.join(s.root, 'f.bin'), body);
    const recs = await rawDownload(t, c, 'RETR f.bin', {}, (d) => d.write(keyUpdateRequest(d)));
    checkDownload(t, recs, body);
    const updates = recs.flatMap((r, i) => (r.type === CONTENT_HANDSHAKE ? [{ i, hex: r.content.toString('hex') }] : []));
    t.is(updates.length, 1, 'one KeyUpdate from the server');
    t.is(updates[0]?.hex, '1800000100', 'KeyUpdate, update_not_requested');
    // The gate reads the request before the first record is sealed: the KeyUpdate leads.
    if (p.sealedBy) t.is(updates[0]?.i, 0, 'the KeyUpdate comes before the first data record');
    t.is(lastRecord(s, 'RETR')?.engine, p.engine);
  });
}

test('sealed by the addon: a KeyUpdate asked for in the middle of a download is answered before the next records, under the next keys from there', async (t) => {
  const { s, c } = await loggedIn(t, { useSendfile: false });
  const body = randomContent(24 * 1024 * 1024);
  fs.writeFileSync(path.join(s.root, 'big.bin'), body);
  const d = await rawDataTls(t, c, await c.epsv());
  t.regex(String((await c.cmd('RETR big.bin')).code), /^1(25|50)$/);
  // Once the first megabyte is in, stop reading (the server stalls on a full socket, far from
  // the end of 24 MiB), ask for the server's KeyUpdate, and read on.
  for (let n = 0; n < 1024 * 1024; n = d.received.reduce((a, b) => a + b.length, 0)) await new Promise((r) => setTimeout(r, 5));
  d.raw.pause();
  await d.write(keyUpdateRequest(d));
  await new Promise((r) => setTimeout(r, 100));
  d.raw.resume();
  t.is((await c.read(30000))?.code, 226);
  await d.closed;
  const recs = openAll(t, d);
  checkDownload(t, recs, body);
  const at = recs.findIndex((r) => r.type === CONTENT_HANDSHAKE);
  t.true(at > 0, `the KeyUpdate came after some data (record ${at})`);
  t.is(recs.filter((r) => r.type === CONTENT_HANDSHAKE).length, 1);
  t.is(lastRecord(s, 'RETR')?.sealedBy, 'addon');
});

test('sealed by the addon: ABOR during a download that the client does not read: 426 then 226, and the next download is intact', async (t) => {
  const { s, c } = await loggedIn(t, { useSendfile: false });
  fs.writeFileSync(path.join(s.root, 'big.bin'), randomContent(32 * 1024 * 1024));
  fs.writeFileSync(path.join(s.root, 'small.bin'), randomContent(1024 * 1024 + 1));
  const data = await c.dataTls(await c.epsv());
  data.on('error', () => {});
  const first = await c.cmd('RETR big.bin');
  t.regex(String(first.code), /^1(25|50)$/);
  t.is((await c.cmd('ABOR')).code, 426);
  t.is((await c.read())?.code, 226);
  data.destroy();
  const rec = lastRecord(s, 'RETR');
  t.is(rec?.result, 'FTPD_ERR_ABORTED');
  t.is(rec?.sealedBy, 'addon');
  const data2 = await c.dataTls(await c.epsv());
  const got = drain(data2);
  t.regex(String((await c.cmd('RETR small.bin')).code), /^1(25|50)$/);
  t.is(sha256(await got), sha256(randomContent(1024 * 1024 + 1)));
  t.is((await c.read())?.code, 226);
});

for (const p of [
  { name: 'sealed by the addon', opts: {}, sealedBy: 'addon' },
  { name: "Node's TLS socket", opts: { nativeTls: false }, sealedBy: undefined },
]) {
  test(`${p.name}: a download reset while its last records wait in the server's buffer is 426, never 226`, async (t) => {
    // A filesystem the engine cannot read: the stream path hands the whole 32 MiB to the TLS
    // socket at once, and ends it while most of it still waits there (the client reads nothing).
    const held = oneChunkFile(32 * 1024 * 1024);
    const { s, c } = await loggedIn(t, { ...p.opts, fileSystem: held.fileSystem });
    const data = await c.dataTls(await c.epsv());
    data.on('error', () => {});
    t.regex(String((await c.cmd('RETR held.bin')).code), /^1(25|50)$/);
    await held.handedOver;
    await new Promise((r) => setTimeout(r, 50));
    data.destroy(); // unread records in the kernel: the close is a reset
    const fin = await c.read();
    t.is(fin?.code, 426, `${fin?.code} ${fin?.text}`);
    t.is((await c.cmd('NOOP')).code, 200, 'no 226 follows the 426');
    const rec = lastRecord(s, 'RETR');
    t.not(rec?.result, 'ok');
    t.true(Number(rec?.bytes) < held.body.length, `bytes logged: ${String(rec?.bytes)}`);
    t.is(rec?.sealedBy, p.sealedBy);
    const data2 = await c.dataTls(await c.epsv());
    const got = drain(data2);
    t.regex(String((await c.cmd('RETR held.bin')).code), /^1(25|50)$/);
    t.is(sha256(await got), sha256(held.body), 'the next download of the file is whole');
    t.is((await c.read())?.code, 226);
  });
}

/** Python's ftplib: RETR (binary), LIST and a TYPE A RETR; each data connection ends with unwrap(), which needs the server's close_notify. */
const PY = `
import ftplib, ssl, sys, json, hashlib
port, user, pw, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
${PY_LOGIN}if mode != 'tls13':
    ftp.context.maximum_version = ssl.TLSVersion.TLSv1_2
    ftp.context.set_ciphers('ECDHE+CHACHA20' if mode == 'tls12-chacha' else 'ECDHE+AESGCM')
ftp.auth(); ftp.login(user, pw); ftp.prot_p()
out = {'version': ftp.sock.version(), 'cipher': ftp.sock.cipher()[0]}
h = hashlib.sha256()
ftp.retrbinary('RETR f.bin', h.update)
out['retr'] = h.hexdigest()
lines = []
ftp.retrlines('LIST', lines.append)
out['list'] = lines
lines = []
ftp.retrlines('RETR a.txt', lines.append)
out['text'] = lines
ftp.quit()
print(json.dumps(out))
`;

const PY_MODES: Array<[string, RegExp, RegExp]> = [
  ['tls13', /^TLSv1\.3$/, /^TLS_AES_256_GCM_SHA384$/],
  ['tls12-gcm', /^TLSv1\.2$/, /^ECDHE-(RSA|ECDSA)-AES(128|256)-GCM-SHA(256|384)$/],
  ['tls12-chacha', /^TLSv1\.2$/, /^ECDHE-(RSA|ECDSA)-CHACHA20-POLY1305$/],
];

/** The files the Python script reads, in `root`. */
function pyFiles(root: string): { body: Buffer; lines: string[] } {
  const body = randomContent(2 * 1024 * 1024 + 7);
  fs.writeFileSync(path.join(root, 'f.bin'), body);
  const lines = Array.from({ length: 5000 }, (_, i) => `text line ${i}`);
  fs.writeFileSync(path.join(root, 'a.txt'), lines.join('\n') + '\n');
  return { body, lines };
}

async function pyDownloads(t: ExecutionContext, port: number, mode: string, version: RegExp, cipher: RegExp, body: Buffer, lines: string[]): Promise<void> {
  const r = await run('python3', ['-c', PY, String(port), USER, PASS, mode], { timeoutMs: 60000 });
  t.is(r.code, 0, explain(r));
  const out = JSON.parse(r.stdout.trim()) as { version: string; cipher: string; retr: string; list: string[]; text: string[] };
  t.regex(out.version, version);
  t.regex(out.cipher, cipher);
  t.is(out.retr, sha256(body), 'RETR intact, and unwrap() found the close_notify');
  t.true(
    out.list.some((l) => l.endsWith(' f.bin')),
    `LIST: ${out.list.join(' | ')}`,
  );
  t.deepEqual(out.text, lines, 'TYPE A RETR intact');
}

for (const [mode, version, cipher] of PY_MODES) {
  test(`Python ftplib (${mode}), sealed by the addon: RETR, LIST and TYPE A RETR intact, each closed with the server's close_notify`, async (t) => {
    const s = await startServer(t, { tls: tlsOption(), useSendfile: false });
    const { body, lines } = pyFiles(s.root);
    await pyDownloads(t, s.port, mode, version, cipher, body, lines);
    const recs = s.records.filter((r) => r.transfer === 'RETR');
    t.is(recs.length, 2);
    t.true(recs.every((r) => r.result === 'ok' && r.engine === 'stream' && r.sealedBy === 'addon'), JSON.stringify(recs));
  });
}

/** A server in a child process without the addon (FTPDLIB_NO_NATIVE=1), logging to stdout; resolves with its port and its log so far. */
async function serverWithoutAddon(t: ExecutionContext, root: string): Promise<{ port: number; log: () => Array<Record<string, unknown>> }> {
  const { certFile, keyFile } = tlsOption();
  const script = `
    const { FtpServer, VirtualAuthorizer } = require('./src');
    const bunyan = require('bunyan');
    const auth = new VirtualAuthorizer({ scrypt: { ln: 4, r: 8, p: 1 } });
    auth.addUser(${JSON.stringify(USER)}, ${JSON.stringify(PASS)}, ${JSON.stringify(root)}, { perm: 'elradfmwMT' });
    const logger = bunyan.createLogger({ name: 'child', level: 'info', stream: process.stdout });
    const server = new FtpServer({ host: '127.0.0.1', port: 0, logger, authorizer: auth,
      tls: { certFile: ${JSON.stringify(certFile)}, keyFile: ${JSON.stringify(keyFile)} } });
    server.listen().then((a) => console.log(JSON.stringify({ listening: a.port })));`;
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, FTPDLIB_NO_NATIVE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const log = (): Array<Record<string, unknown>> =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const end = Date.now() + 30000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    const up = log().find((r) => typeof r.listening === 'number');
    if (up) return { port: up.listening as number, log };
    if (child.exitCode !== null) break;
  }
  throw new Error(`the server without the addon did not start: ${out} ${err}`);
}

for (const [mode, version, cipher] of PY_MODES) {
  test(`Python ftplib (${mode}), a server without the addon (records sealed with node:crypto): RETR, LIST and TYPE A RETR intact, closed with close_notify`, async (t) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-noaddon-'));
    t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
    const srv = await serverWithoutAddon(t, root);
    const { body, lines } = pyFiles(root);
    await pyDownloads(t, srv.port, mode, version, cipher, body, lines);
    const start = srv.log().find((r) => r.msg === 'zero-copy engine unavailable; using streams');
    t.is(start?.reason, 'disabled by FTPDLIB_NO_NATIVE=1', 'the server runs without the addon, and says so');
    const recs = srv.log().filter((r) => r.transfer === 'RETR');
    t.is(recs.length, 2);
    t.true(recs.every((r) => r.result === 'ok' && r.engine === 'stream' && r.sealedBy === 'js'), JSON.stringify(recs));
  });
}

test('sealed records of two downloads in a row use fresh state each (a second data connection starts again at sequence 0)', async (t) => {
  const { s, c } = await loggedIn(t, { useSendfile: false });
  for (const size of [0, 1, 16384, 16385]) {
    const body = randomBytes(size);
    fs.writeFileSync(path.join(s.root, `n${size}.bin`), body);
    const recs = await rawDownload(t, c, `RETR n${size}.bin`);
    checkDownload(t, recs, body);
    t.is(recs.length, Math.ceil(size / 16384) + 1, `${size} bytes: ${recs.length} records`);
  }
});

test('a server without the addon (node:crypto): a KeyUpdate asked for before RETR comes first, the data opens under the next keys', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-noaddon-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const srv = await serverWithoutAddon(t, root);
  const body = randomContent(3 * 1024 * 1024 + 1);
  fs.writeFileSync(path.join(root, 'f.bin'), body);
  const c = await FtpsControl.plain(srv.port);
  t.teardown(() => c.close());
  const tlsOpts = { ciphers: 'TLS_CHACHA20_POLY1305_SHA256' };
  await c.secureLogin(USER, PASS, tlsOpts);
  const recs = await rawDownload(t, c, 'RETR f.bin', tlsOpts, (d) => d.write(keyUpdateRequest(d)));
  checkDownload(t, recs, body);
  t.deepEqual(
    recs.flatMap((r, i) => (r.type === CONTENT_HANDSHAKE ? [[i, r.content.toString('hex')]] : [])),
    [[0, '1800000100']],
    'one KeyUpdate, first',
  );
  t.is(srv.log().filter((r) => r.transfer === 'RETR').at(-1)?.sealedBy, 'js');
});
