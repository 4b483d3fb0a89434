import test, { type ExecutionContext } from 'ava';
import { Client } from 'basic-ftp';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { randomContent, sha256 } from '../helpers/data-client';
import { PASS, USER, startServer, waitForNoSessions, type StartOptions, type TestServer } from '../helpers/server';
import { FtpsControl, drain, tlsOption } from '../helpers/tls';

/**
 * PROT P data connections must resume the control connection's TLS session
 * (tlsRequireSessionReuse, default true): a data connection that does a fresh
 * handshake could belong to someone else who stole the port.
 */

async function server(t: ExecutionContext, opts: StartOptions = {}): Promise<TestServer> {
  const s = await startServer(t, { tls: tlsOption(), ...opts });
  fs.writeFileSync(path.join(s.root, 'f.bin'), randomContent(256 * 1024 + 7));
  return s;
}

async function client(t: ExecutionContext, s: TestServer, authOpts = {}): Promise<FtpsControl> {
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  await c.auth(authOpts);
  await c.login(USER, PASS);
  await c.ok('PBSZ 0', 200);
  await c.ok('PROT P', 200);
  await c.ok('TYPE I', 200);
  return c;
}

/** RETR f.bin over a TLS data connection; resolves with what came and the replies. */
async function retr(c: FtpsControl, reuse: boolean, opts: import('node:tls').ConnectionOptions = {}): Promise<{ data: Buffer | null; reused: boolean; replies: number[] }> {
  const port = await c.epsv();
  // The server may drop a refused connection before the client's side of the handshake is done (TLS 1.2).
  const d = await c.dataTls(port, reuse, opts).catch(() => null);
  const reused = d?.isSessionReused() ?? false;
  const got = d ? drain(d).catch(() => null) : Promise.resolve(null);
  const first = await c.cmd('RETR f.bin');
  const replies = [first.code];
  if (first.code === 150 || first.code === 125) replies.push((await c.read())?.code ?? -1);
  const data = await got;
  d?.destroy();
  return { data, reused, replies };
}

test('a data connection that resumes the control session is accepted', async (t) => {
  const s = await server(t);
  const c = await client(t, s);
  const r = await retr(c, true);
  t.true(r.reused, 'the client did resume');
  t.is(r.replies.at(-1), 226);
  t.is(sha256(r.data!), sha256(randomContent(256 * 1024 + 7)));
});

test('a data connection with a fresh TLS handshake gets 522, and the session stays usable', async (t) => {
  const s = await server(t);
  const c = await client(t, s);
  const r = await retr(c, false);
  t.false(r.reused);
  t.is(r.replies.at(-1), 522, JSON.stringify(r.replies));
  t.is(r.data?.length ?? 0, 0, 'no file byte went to the unverified connection');
  t.true(s.records.some((x) => /did not resume/.test(String(x.msg))), 'the refusal is logged');
  await c.ok('NOOP', 200);
  const ok = await retr(c, true);
  t.is(ok.replies.at(-1), 226, 'a resumed connection still works after the refusal');
  await c.ok('QUIT', 221);
  await waitForNoSessions(s.server);
});

test('with tlsRequireSessionReuse: false a fresh data handshake is accepted', async (t) => {
  const s = await server(t, { tlsRequireSessionReuse: false });
  const c = await client(t, s);
  const r = await retr(c, false);
  t.false(r.reused);
  t.is(r.replies.at(-1), 226);
  t.is(sha256(r.data!), sha256(randomContent(256 * 1024 + 7)));
});

test('resumption works on TLS 1.2 too (client maxVersion TLSv1.2)', async (t) => {
  const s = await server(t);
  const c = await client(t, s, { maxVersion: 'TLSv1.2' });
  t.is(c.tlsSocket.getProtocol(), 'TLSv1.2');
  for (let i = 0; i < 3; i++) {
    const r = await retr(c, true, { maxVersion: 'TLSv1.2' });
    t.true(r.reused, `transfer ${i} resumed`);
    t.is(r.replies.at(-1), 226);
  }
  const bad = await retr(c, false, { maxVersion: 'TLSv1.2' });
  t.is(bad.replies.at(-1), 522);
});

test('30 sequential transfers in one session all resume (TLS 1.3 tickets do not run out)', async (t) => {
  const s = await server(t);
  const c = await client(t, s);
  t.is(c.tlsSocket.getProtocol(), 'TLSv1.3');
  for (let i = 0; i < 30; i++) {
    const r = await retr(c, true);
    if (!r.reused || r.replies.at(-1) !== 226) {
      t.fail(`transfer ${i}: reused=${r.reused} replies=${r.replies.join(',')}`);
      return;
    }
  }
  t.pass();
});

test('basic-ftp: 30 sequential LISTs and a download in one FTPS session', async (t) => {
  const s = await server(t);
  const c = new Client(20000);
  t.teardown(() => c.close());
  await c.access({ host: '127.0.0.1', port: s.port, user: USER, password: PASS, secure: true, secureOptions: { rejectUnauthorized: false } });
  for (let i = 0; i < 30; i++) {
    const list = await c.list();
    t.deepEqual(
      list.map((f) => f.name),
      ['f.bin'],
      `LIST ${i}`,
    );
  }
  const chunks: Buffer[] = [];
  await c.downloadTo(new Writable({ write: (ch: Buffer, _e, cb) => (chunks.push(ch), cb()) }), 'f.bin');
  t.is(sha256(Buffer.concat(chunks)), sha256(randomContent(256 * 1024 + 7)));
  t.false(s.records.some((x) => /did not resume/.test(String(x.msg))), 'no data connection was refused');
});
