// Python's ftplib against the server: the command set as a real client uses it.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { PASS, USER, startServer } from '../helpers/server';

const PYTHON = '/usr/bin/python3';

/** Prints one "key value" line per step; the test asserts on them. */
const SCRIPT = String.raw`
import ftplib, hashlib, io, sys
port = int(sys.argv[1])
f = ftplib.FTP()
f.connect('127.0.0.1', port, timeout=20)
print('welcome', f.getwelcome()[:3])
print('login', f.login(sys.argv[2], sys.argv[3])[:3])
print('mkd', f.mkd('box'))
print('cwd', f.cwd('box')[:3])
print('pwd', f.pwd())
data = bytes((i * 31 + 7) & 0xff for i in range(300001))
print('stor', f.storbinary('STOR payload.bin', io.BytesIO(data))[:3])
print('size', f.size('payload.bin'))
out = io.BytesIO()
print('retr', f.retrbinary('RETR payload.bin', out.write)[:3])
print('hash-sent', hashlib.sha256(data).hexdigest())
print('hash-back', hashlib.sha256(out.getvalue()).hexdigest())
print('rest', f.retrbinary('RETR payload.bin', io.BytesIO().write, rest=300000)[:3])
print('rename', f.rename('payload.bin', 'renamed.bin')[:3])
for name, facts in f.mlsd(facts=['type', 'size']):
    print('mlsd', name, facts.get('type'), facts.get('size'))
print('nlst', ','.join(f.nlst()))
lines = []
f.retrlines('LIST', lines.append)
print('list', len(lines), lines[0].split()[-1])
print('delete', f.delete('renamed.bin')[:3])
print('cdup', f.cwd('..')[:3])
print('rmd', f.rmd('box')[:3])
try:
    f.size('box')
except ftplib.error_perm as e:
    print('missing', str(e)[:3])
f.set_pasv(False)
f.storlines('STOR active.txt', io.BytesIO(b'one\ntwo\n'))
got = []
f.retrlines('RETR active.txt', got.append)
print('active', '|'.join(got))
print('quit', f.quit()[:3])
`;

function runPython(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, ['-c', SCRIPT, ...args], { timeout: 30000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`python failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

test('ftplib: login, mkd/cwd/pwd, storbinary/retrbinary with hash, REST, rename, mlsd, nlst, list, size, delete, rmd, active mode, quit', async (t) => {
  const s = await startServer(t);
  const out = await runPython([String(s.port), USER, PASS]);
  const got = new Map<string, string[]>();
  for (const line of out.trim().split('\n')) {
    const [k, ...rest] = line.split(' ');
    got.set(k, [...(got.get(k) ?? []), rest.join(' ')]);
  }
  const one = (k: string): string => (got.get(k) ?? ['<missing>'])[0];
  t.is(one('welcome'), '220');
  t.is(one('login'), '230');
  t.is(one('mkd'), '/box');
  t.is(one('cwd'), '250');
  t.is(one('pwd'), '/box');
  t.is(one('stor'), '226');
  t.is(one('size'), '300001');
  t.is(one('retr'), '226');
  t.is(one('hash-back'), one('hash-sent'));
  t.is(one('rest'), '226');
  t.is(one('rename'), '250');
  t.deepEqual(got.get('mlsd'), ['renamed.bin file 300001']);
  t.is(one('nlst'), 'renamed.bin');
  t.is(one('list'), '1 renamed.bin');
  t.is(one('delete'), '250');
  t.is(one('cdup'), '250');
  t.is(one('rmd'), '250');
  t.is(one('missing'), '550');
  t.is(one('active'), 'one|two');
  t.is(one('quit'), '221');
  // And on disk: the box is gone, the ASCII upload has LF endings.
  t.false(fs.existsSync(path.join(s.root, 'box')));
  t.is(fs.readFileSync(path.join(s.root, 'active.txt'), 'utf8'), 'one\ntwo\n');
});
