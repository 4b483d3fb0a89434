import test from 'ava';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as path from 'node:path';
import { firstBytes, loggedIn, nextEvent, prepareData, randomContent, retr, sha256, sparse, startTransfer } from '../helpers/data-client';
import { MATRIX, transferRecords } from '../helpers/matrix';
import { explain, run } from '../helpers/run';
import { PASS, USER, startServer } from '../helpers/server';
import type { TransferInfo } from '../../src';

/** ABOR while a transfer runs: plain, during STOR, and Python ftplib's urgent-data ABOR. */

/** Read `s` until it closes (an end, or a reset); the bytes it delivered, those already buffered included. */
function receivedAll(s: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    if (s.closed) resolve(n);
    s.once('close', () => resolve(n));
    s.resume();
  });
}



for (const row of MATRIX) {
  row.test('ABOR during a RETR: 426 then 226, and the session keeps working', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    sparse(s.root, 'big.bin');
    fs.writeFileSync(path.join(s.root, 'small.bin'), randomContent(1000));
    const c = await loggedIn(s.port, USER, PASS);
    const incomplete = nextEvent<[string, TransferInfo]>(s.server, 'incompleteFileSent');
    const data = await startTransfer(t, c, row.mode, 'RETR big.bin');
    await firstBytes(data);
    c.send('ABOR\r\n');
    const r1 = await c.read();
    const r2 = await c.read();
    t.is(r1?.code, 426, r1?.text);
    t.is(r2?.code, 226, r2?.text);
    // What reached the client: read to the end what the server sent before it closed.
    const received = await receivedAll(data);
    data.destroy();
    const [p, info] = await incomplete;
    t.is(p, '/big.bin');
    t.false(info.ok);
    t.true(info.bytes > 0 && info.bytes < 2 * 1024 ** 3, `bytes sent before the abort: ${info.bytes}`);
    // The server cannot have sent fewer bytes than arrived; it may count more than arrived only by
    // what a reset dropped from the socket buffers (here the server closes cleanly and the two agree).
    t.true(received > 0, 'some of the file arrived before the abort');
    t.true(info.bytes >= received, `reported ${info.bytes} bytes sent, but ${received} arrived`);
    t.true(info.bytes <= received + 16 * 1024 ** 2, `reported ${info.bytes} bytes sent, only ${received} arrived`);
    const rec = transferRecords(s)[0];
    t.is(rec?.result, 'FTPD_ERR_ABORTED');
    t.is((await c.cmd('NOOP')).code, 200);
    const again = await retr(c, row.mode, 'RETR small.bin');
    t.is(again.final?.code, 226, 'the next transfer works');
    t.is(again.digest.sha256, sha256(randomContent(1000)));
    c.close();
  });

  row.test('ABOR during a STOR keeps the partial upload and reports it incomplete', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile });
    const c = await loggedIn(s.port, USER, PASS);
    const incomplete = nextEvent<[string, TransferInfo]>(s.server, 'incompleteFileReceived');
    let completeFired = false;
    s.server.on('fileReceived', () => (completeFired = true));
    const data = await startTransfer(t, c, row.mode, 'STOR up.bin');
    // Far more than the loopback socket buffers hold: once written, the server has read most of it.
    const body = randomContent(32 * 1024 * 1024);
    await new Promise<void>((resolve, reject) => data.write(body, (err) => (err ? reject(err) : resolve())));
    c.send('ABOR\r\n');
    const r1 = await c.read();
    const r2 = await c.read();
    t.is(r1?.code, 426, r1?.text);
    t.is(r2?.code, 226, r2?.text);
    data.destroy();
    const [p, info] = await incomplete;
    t.is(p, '/up.bin');
    t.false(info.ok);
    t.false(completeFired, 'no fileReceived for an aborted upload');
    const file = path.join(s.root, 'up.bin');
    t.true(fs.existsSync(file), 'the partial upload is kept');
    const got = fs.readFileSync(file);
    t.true(got.length > 0, 'some of the upload reached the file');
    t.is(got.length, info.bytes, 'the event counts what is in the file');
    t.true(got.equals(body.subarray(0, got.length)), 'what was kept is a prefix of what was sent');
    t.is((await c.cmd('NOOP')).code, 200);
    c.close();
  });
}

test('ABOR with no transfer running is 225 and harmless', async (t) => {
  const s = await startServer(t);
  const c = await loggedIn(s.port, USER, PASS);
  t.is((await c.cmd('ABOR')).code, 225);
  await prepareData(c, 'passive');
  t.is((await c.cmd('ABOR')).code, 225, 'ABOR drops a prepared data channel');
  t.is((await c.cmd('RETR x')).code, 425, 'the dropped channel is gone');
  c.close();
});

/** Python's ftplib: read a little of a RETR, abort() (ABOR sent as urgent data), then use the session again. */
const PY_ABORT = `
import ftplib, hashlib, json, sys
port = int(sys.argv[1]); user = sys.argv[2]; pw = sys.argv[3]; pasv = sys.argv[4] == 'pasv'
ftp = ftplib.FTP(timeout=20)
ftp.connect('127.0.0.1', port)
ftp.login(user, pw)
ftp.set_pasv(pasv)
ftp.voidcmd('TYPE I')
conn = ftp.transfercmd('RETR big.bin')
got = conn.recv(65536)
first = ftp.abort()
rest = []
if first.startswith('426'):
    rest.append(ftp.getresp())
conn.close()
noop = ftp.voidcmd('NOOP')
h = hashlib.sha256()
ftp.retrbinary('RETR small.bin', h.update)
ftp.quit()
print(json.dumps({'got': len(got), 'abort': first, 'rest': rest, 'noop': noop, 'small': h.hexdigest()}))
`;

for (const mode of ['pasv', 'port'] as const) {
  for (const useSendfile of [true, false]) {
    test(`Python ftplib abort() during retr leaves the server and session up [${useSendfile ? 'native' : 'stream'}/${mode}]`, async (t) => {
      const s = await startServer(t, { useSendfile });
      sparse(s.root, 'big.bin');
      const small = randomContent(4321);
      fs.writeFileSync(path.join(s.root, 'small.bin'), small);
      const r = await run('python3', ['-c', PY_ABORT, String(s.port), USER, PASS, mode], { timeoutMs: 60000 });
      t.is(r.code, 0, explain(r));
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { abort: string; rest: string[]; noop: string; small: string };
      t.regex(out.abort ?? '', /^426/, 'the running transfer answers 426');
      t.deepEqual(
        (out.rest ?? []).map((x) => x.slice(0, 3)),
        ['226'],
        'then 226 for the ABOR',
      );
      t.regex(out.noop ?? '', /^200/);
      t.is(out.small, sha256(small), 'a transfer after the abort is intact');
      const again = await loggedIn(s.port, USER, PASS);
      t.is((await again.cmd('NOOP')).code, 200, 'the server still accepts sessions');
      again.close();
    });
  }
}
