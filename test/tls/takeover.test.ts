import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tls from 'node:tls';
import test from 'ava';
import { randomContent, sha256 } from '../helpers/data-client';
import { PASS, USER, startServer } from '../helpers/server';
import { FtpsControl, drain, tlsOption } from '../helpers/tls';

// tlsRequireSessionReuse (the default) is what keeps anyone else from taking a PROT P data
// connection: the data connection must resume *this* session's control connection. Another
// connection's session, an attacker's that did AUTH TLS without logging in, must not do.

/** A TLS data connection that resumes `owner`'s session, to `port`; its bytes, or what ended it. */
async function intrude(owner: FtpsControl, port: number, send?: Buffer): Promise<{ socket: tls.TLSSocket | null; bytes: Promise<Buffer> }> {
  try {
    const d = await owner.dataTls(port);
    if (send) d.write(send);
    return { socket: d, bytes: drain(d).catch(() => Buffer.alloc(0)) };
  } catch {
    return { socket: null, bytes: Promise.resolve(Buffer.alloc(0)) };
  }
}

test('PROT P: a data connection resuming another connection\'s TLS session cannot take a session\'s download or upload', async (t) => {
  const s = await startServer(t, { tls: tlsOption() });
  const secret = randomContent(200_000);
  fs.writeFileSync(path.join(s.root, 'secret.bin'), secret);
  const victim = await FtpsControl.plain(s.port);
  t.teardown(() => victim.close());
  await victim.secureLogin(USER, PASS);
  // The attacker: AUTH TLS and nothing more, which gives it a session (and a ticket) of its own.
  const attacker = await FtpsControl.plain(s.port);
  t.teardown(() => attacker.close());
  await attacker.auth();
  await attacker.ok('NOOP', 200);

  // A download: the attacker is first on the victim's passive port.
  let port = await victim.epsv();
  let stolen = await intrude(attacker, port);
  if (stolen.socket) t.false(stolen.socket.isSessionReused(), 'the attacker\'s ticket does not resume the victim\'s session');
  const r = await victim.cmd('RETR secret.bin');
  const final = r.code === 150 || r.code === 125 ? await victim.read() : r;
  t.not(final?.code, 226, `the download is not carried out: ${final?.code} ${final?.text}`);
  t.is((await stolen.bytes).length, 0, 'not one byte of the file reaches the attacker');

  // An upload: the attacker's bytes must not become the victim's file.
  port = await victim.epsv();
  stolen = await intrude(attacker, port, Buffer.from('ATTACKER CONTENT\n'));
  const u = await victim.cmd('STOR up.bin');
  const ufinal = u.code === 150 || u.code === 125 ? await victim.read() : u;
  t.not(ufinal?.code, 226, `the upload is not carried out: ${ufinal?.code} ${ufinal?.text}`);
  const onDisk = path.join(s.root, 'up.bin');
  t.false(fs.existsSync(onDisk) && fs.readFileSync(onDisk).includes('ATTACKER'), 'the attacker\'s bytes are not stored');

  // The victim's own data connection, resuming its own session, still works.
  port = await victim.epsv();
  const d = await victim.dataTls(port);
  t.true(d.isSessionReused());
  const got = drain(d);
  const ok = await victim.cmd('RETR secret.bin');
  t.true(ok.code === 150 || ok.code === 125);
  t.is(sha256(await got), sha256(secret));
  t.is((await victim.read())?.code, 226);
});

test('each session\'s data connections resume its own control session, also after other sessions ended', async (t) => {
  const s = await startServer(t, { tls: tlsOption() });
  const body = randomContent(50_000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  // Sessions that come and go: their contexts are reused by later sessions, with new ticket keys.
  for (let round = 0; round < 3; round++) {
    const c = await FtpsControl.plain(s.port);
    await c.secureLogin(USER, PASS);
    const port = await c.epsv();
    const d = await c.dataTls(port);
    t.true(d.isSessionReused(), `round ${round}: resumed`);
    const got = drain(d);
    await c.cmd('RETR f.bin');
    t.is(sha256(await got), sha256(body));
    t.is((await c.read())?.code, 226);
    const old = c;
    await old.ok('QUIT', 221);
    old.close();
    // A session made after this one ended must not accept this one's ticket either.
    const next = await FtpsControl.plain(s.port);
    await next.secureLogin(USER, PASS);
    const p2 = await next.epsv();
    const stale = await intrude(old, p2);
    if (stale.socket) t.false(stale.socket.isSessionReused(), `round ${round}: an ended session's ticket does not resume the next one's`);
    next.close();
  }
});
