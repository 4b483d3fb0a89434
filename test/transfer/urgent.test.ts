import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256, settleSessionsOnTeardown } from '../helpers/data-client';
import { MATRIX, engineProbe, transferRecords } from '../helpers/matrix';
import { explain, run } from '../helpers/run';
import { PASS, USER, startServer } from '../helpers/server';

/**
 * An upload whose data connection carries TCP urgent data (one byte sent with MSG_OOB between
 * two MiB of the file). splice(2) stops at the urgent mark and never passes it; the engine must
 * get past it as a read does, or the rest of the upload waits for the data timeout. The urgent
 * byte is not part of the stream (no SO_OOBINLINE on data connections), so on both paths the
 * file is the two MiB, without it. Node cannot send urgent data, so the client is Python's.
 */
const SCRIPT = `
import ftplib, json, socket, sys, time
port, user, pw, pasv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == '1'
out = {}
ftp = ftplib.FTP(timeout=30)
ftp.connect('127.0.0.1', port)
ftp.login(user, pw)
ftp.set_pasv(pasv)
ftp.voidcmd('TYPE I')
conn = ftp.transfercmd('STOR up.bin')
conn.sendall(b'a' * (1 << 20))
time.sleep(0.2)  # the first MiB is in the file and the job waits on the socket
conn.send(b'X', socket.MSG_OOB)
time.sleep(0.2)
conn.sendall(b'b' * (1 << 20))
conn.close()
try:
    out['final'] = ftp.voidresp()
except ftplib.Error as e:
    out['final'] = str(e)
out['noop'] = ftp.voidcmd('NOOP')
out['quit'] = ftp.quit()
print(json.dumps(out))
`;

for (const row of MATRIX) {
  row.test('an upload with TCP urgent data in its middle: 226, and the file holds every byte of the stream', async (t) => {
    // A stalled upload ends at the data timeout with 426: short here, so a failure says so.
    const s = await startServer(t, { useSendfile: row.useSendfile, dataTimeout: 5 });
    settleSessionsOnTeardown(t, s.server);
    const probe = engineProbe(row);
    const r = await run('python3', ['-c', SCRIPT, String(s.port), USER, PASS, row.mode === 'passive' ? '1' : '0'], { timeoutMs: 60000 });
    t.is(r.code, 0, explain(r));
    const out = JSON.parse(r.stdout.trim()) as Record<string, string>;
    t.regex(out.final, /^226/, 'the upload completes');
    t.regex(out.noop, /^200/, 'the session goes on');
    const stored = fs.readFileSync(path.join(s.root, 'up.bin'));
    const expected = Buffer.concat([Buffer.alloc(1 << 20, 'a'), Buffer.alloc(1 << 20, 'b')]);
    t.is(stored.length, expected.length, 'two MiB: the stream, without the urgent byte');
    t.is(sha256(stored), sha256(expected));
    const rec = transferRecords(s).find((x) => x.transfer === 'STOR');
    t.is(rec?.bytes, expected.length);
    t.is(rec?.result, 'ok');
    probe.check(t, rec);
  });
}
