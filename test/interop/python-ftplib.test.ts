import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomContent, settleSessionsOnTeardown, sha256 } from '../helpers/data-client';
import { explain, run } from '../helpers/run';
import { PASS, USER, startServer } from '../helpers/server';

/** Python's ftplib: storbinary, retrbinary, retrlines, mlsd, nlst; passive and set_pasv(False). */

const SCRIPT = `
import ftplib, hashlib, io, json, sys
port, user, pw, pasv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == '1'
body = bytes(range(256)) * 4096 + b'tail'
out = {}
ftp = ftplib.FTP(timeout=20)
ftp.connect('127.0.0.1', port)
ftp.login(user, pw)
ftp.set_pasv(pasv)
out['stor'] = ftp.storbinary('STOR py.bin', io.BytesIO(body), blocksize=65536)
h = hashlib.sha256()
out['retr'] = ftp.retrbinary('RETR py.bin', h.update)
out['retr_sha'] = h.hexdigest()
out['body_sha'] = hashlib.sha256(body).hexdigest()
lines = []
out['retrlines'] = ftp.retrlines('RETR text.txt', lines.append)
out['lines'] = lines
ftp.storlines('STOR lines.txt', io.BytesIO(b'one\\ntwo\\r\\nthree\\n'))
out['nlst'] = sorted(ftp.nlst())
out['mlsd'] = {name: {'type': f.get('type'), 'size': f.get('size')} for name, f in ftp.mlsd()}
listing = []
ftp.retrlines('LIST', listing.append)
out['list'] = listing
ftp.voidcmd('TYPE I')
out['size'] = ftp.size('py.bin')
out['quit'] = ftp.quit()
print(json.dumps(out))
`;

for (const pasv of [true, false]) {
  test(`Python ftplib storbinary/retrbinary/retrlines/mlsd/nlst [${pasv ? 'passive' : 'set_pasv(False)'}]`, async (t) => {
    const s = await startServer(t);
    settleSessionsOnTeardown(t, s.server);
    fs.writeFileSync(path.join(s.root, 'text.txt'), 'alpha\nbeta\r\ngamma\n');
    fs.mkdirSync(path.join(s.root, 'dir'));
    const r = await run('python3', ['-c', SCRIPT, String(s.port), USER, PASS, pasv ? '1' : '0'], { timeoutMs: 60000 });
    t.is(r.code, 0, explain(r));
    const out = JSON.parse(r.stdout.trim());
    t.regex(out.stor, /^226/);
    t.regex(out.retr, /^226/);
    const body = Buffer.concat([Buffer.alloc(256 * 4096).map((_, i) => i % 256), Buffer.from('tail')]);
    t.is(out.body_sha, sha256(body));
    t.is(out.retr_sha, sha256(body), 'retrbinary gives back what storbinary sent');
    t.is(sha256(fs.readFileSync(path.join(s.root, 'py.bin'))), sha256(body), 'the stored file is intact');
    t.deepEqual(out.lines, ['alpha', 'beta', 'gamma']);
    t.is(fs.readFileSync(path.join(s.root, 'lines.txt'), 'latin1'), 'one\ntwo\nthree\n', 'storlines in TYPE A lands with LF endings');
    t.deepEqual(out.nlst, ['dir', 'lines.txt', 'py.bin', 'text.txt']);
    t.deepEqual(out.mlsd['py.bin'], { type: 'file', size: String(body.length) });
    t.is(out.mlsd.dir?.type, 'dir');
    t.is(out.list.length, 4);
    t.is(out.size, body.length);
    t.regex(out.quit, /^221/);
  });
}
