import test, { type ExecutionContext } from 'ava';
import { Client } from 'basic-ftp';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { FtpServer, VirtualAuthorizer } from '../../src';
import { randomContent, sha256 } from '../helpers/data-client';
import { connectData } from '../helpers/line-client';
import { PASS, USER, startServer, waitForNoSessions, type StartOptions, type TestServer } from '../helpers/server';
import { FtpsControl, drain, tlsOption } from '../helpers/tls';

/** tlsControlRequired, tlsDataRequired, tlsExemptUsers, and what FEAT/AUTH say with and without TLS. */

const EXEMPT = 'plainuser';
const EXEMPT_PASS = 'plain-password';

async function server(t: ExecutionContext, opts: StartOptions = {}): Promise<TestServer> {
  const s = await startServer(t, { tls: tlsOption(), tlsExemptUsers: [EXEMPT], ...opts });
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-tls-exempt-'));
  t.teardown(() => fs.rmSync(home, { recursive: true, force: true }));
  s.auth.addUser(EXEMPT, EXEMPT_PASS, home, { perm: 'elradfmwMT' });
  fs.writeFileSync(path.join(home, 'e.bin'), randomContent(1000));
  return s;
}

async function plain(t: ExecutionContext, s: TestServer): Promise<FtpsControl> {
  const c = await FtpsControl.plain(s.port);
  t.teardown(() => c.close());
  return c;
}

/** LIST over a plain data connection (PROT C); the replies' codes and the listing. */
async function plainList(c: FtpsControl): Promise<{ codes: number[]; listing: string }> {
  const port = await c.epsv();
  const d = await connectData(port);
  const got = drain(d).catch(() => Buffer.alloc(0));
  const first = await c.cmd('LIST');
  const codes = [first.code];
  let listing = '';
  if (first.code === 150 || first.code === 125) {
    listing = (await got).toString();
    codes.push((await c.read())?.code ?? -1);
  }
  d.destroy();
  return { codes, listing };
}

test('tlsControlRequired: USER before AUTH gets 534; after AUTH TLS the login works', async (t) => {
  const s = await server(t, { tlsControlRequired: true });
  const c = await plain(t, s);
  const r = await c.cmd(`USER ${USER}`);
  t.is(r.code, 534, r.text);
  t.is((await c.cmd(`PASS ${PASS}`)).code, 503, 'PASS after a refused USER is out of sequence');
  await c.auth();
  await c.login(USER, PASS);
  await c.ok('PWD', 257);
});

test('tlsControlRequired: an exempt user logs in on a plain connection and transfers', async (t) => {
  const s = await server(t, { tlsControlRequired: true });
  const c = await plain(t, s);
  await c.login(EXEMPT, EXEMPT_PASS);
  const l = await plainList(c);
  t.deepEqual(l.codes.at(-1), 226);
  t.regex(l.listing, /e\.bin/);
});

test('tlsControlRequired with basic-ftp: secure: true works, plain is refused', async (t) => {
  const s = await server(t, { tlsControlRequired: true });
  const ok = new Client(10000);
  t.teardown(() => ok.close());
  await ok.access({ host: '127.0.0.1', port: s.port, user: USER, password: PASS, secure: true, secureOptions: { rejectUnauthorized: false } });
  t.is((await ok.list()).length, 0);
  const no = new Client(10000);
  t.teardown(() => no.close());
  const err = await t.throwsAsync(no.access({ host: '127.0.0.1', port: s.port, user: USER, password: PASS }));
  t.regex(String(err?.message), /534/);
});

test('tlsDataRequired: PROT C gets 534 and a clear transfer gets 522; PROT P works', async (t) => {
  const s = await server(t, { tlsDataRequired: true });
  fs.writeFileSync(path.join(s.root, 'f.bin'), randomContent(5000));
  const c = await plain(t, s);
  await c.auth();
  await c.login(USER, PASS);
  await c.ok('PBSZ 0', 200);
  const pc = await c.cmd('PROT C');
  t.is(pc.code, 534, pc.text);
  // Never sent PROT P: the data channel is still clear.
  const l = await plainList(c);
  t.deepEqual(l.codes, [522], 'refused before any 150');
  t.is(l.listing, '');
  await c.ok('PROT P', 200);
  await c.ok('TYPE I', 200);
  const port = await c.epsv();
  const d = await c.dataTls(port);
  const got = drain(d);
  t.regex(String((await c.cmd('RETR f.bin')).code), /^1(25|50)$/);
  const body = await got;
  t.is(body.length, 5000);
  t.is(sha256(body), sha256(randomContent(5000)));
  t.is((await c.read())?.code, 226);
});

test('tlsDataRequired: a data connection opened in clear before PROT P cannot carry the transfer', async (t) => {
  const s = await server(t, { tlsDataRequired: true });
  fs.writeFileSync(path.join(s.root, 'f.bin'), randomContent(5000));
  const c = await plain(t, s);
  await c.auth();
  await c.login(USER, PASS);
  await c.ok('PBSZ 0', 200);
  await c.ok('TYPE I', 200);
  // Connect in clear while PROT is still C, then ask for P: the connection stays clear.
  const port = await c.epsv();
  const d = await connectData(port);
  const got = drain(d);
  await c.ok('PROT P', 200);
  const first = await c.cmd('RETR f.bin');
  const final = first.code === 150 || first.code === 125 ? await c.read() : first;
  t.is(final?.code, 522, `${final?.code} ${final?.text}`);
  t.is((await got).length, 0, 'not one byte of the file in clear');
  // A TLS data connection then works.
  const p2 = await c.epsv();
  const d2 = await c.dataTls(p2);
  const body = drain(d2);
  t.regex(String((await c.cmd('RETR f.bin')).code), /^1(25|50)$/);
  t.is((await body).length, 5000);
  t.is((await c.read())?.code, 226);
});

test('tlsDataRequired: a plain-only login (no AUTH) cannot transfer in clear', async (t) => {
  const s = await server(t, { tlsDataRequired: true });
  const c = await plain(t, s);
  await c.login(USER, PASS);
  const l = await plainList(c);
  t.deepEqual(l.codes, [522]);
  const pc = await c.cmd('PROT C');
  t.is(pc.code, 503, 'PROT on an insecure connection is out of sequence');
});

test('tlsDataRequired: an exempt user may use PROT C and clear transfers', async (t) => {
  const s = await server(t, { tlsDataRequired: true });
  const c = await plain(t, s);
  await c.auth();
  await c.login(EXEMPT, EXEMPT_PASS);
  await c.ok('PBSZ 0', 200);
  await c.ok('PROT C', 200);
  const l = await plainList(c);
  t.is(l.codes.at(-1), 226);
  t.regex(l.listing, /e\.bin/);
  const c2 = await plain(t, s);
  await c2.login(EXEMPT, EXEMPT_PASS);
  t.is((await plainList(c2)).codes.at(-1), 226, 'exempt on a plain control connection too');
});

test('FEAT lists AUTH TLS, PBSZ and PROT only when tls is configured', async (t) => {
  const withTls = await server(t);
  const a = await plain(t, withTls);
  const fa = await a.cmd('FEAT');
  t.is(fa.code, 211);
  const feats = fa.lines.map((l) => l.trim());
  for (const f of ['AUTH TLS', 'PBSZ', 'PROT']) t.true(feats.includes(f), `FEAT lists ${f}: ${feats.join('|')}`);

  const noTls = await startServer(t);
  const b = await plain(t, noTls);
  const fb = await b.cmd('FEAT');
  t.is(fb.code, 211);
  const featsB = fb.lines.map((l) => l.trim());
  t.false(featsB.some((l) => /^(AUTH|PBSZ|PROT)\b/.test(l)), featsB.join('|'));
});

test('AUTH TLS without tls configured gets 502, and the connection keeps working in clear', async (t) => {
  const s = await startServer(t);
  const c = await plain(t, s);
  const r = await c.cmd('AUTH TLS');
  t.is(r.code, 502, r.text);
  await c.login(USER, PASS);
  await c.ok('NOOP', 200);
  c.close();
  await waitForNoSessions(s.server);
});

test('TLS policies without tls configured are refused at construction', (t) => {
  const authorizer = new VirtualAuthorizer();
  for (const key of ['tlsControlRequired', 'tlsDataRequired'] as const) {
    const err = t.throws(() => new FtpServer({ authorizer, [key]: true }));
    t.is((err as { code?: string }).code, 'FTPD_ERR_CONFIG');
    t.is((err as { key?: string }).key, key);
  }
  const err = t.throws(() => new FtpServer({ authorizer, implicitTlsPort: 0 }));
  t.is((err as { key?: string }).key, 'implicitTlsPort');
});

test('the data channel is really clear under PROT C and really TLS under PROT P', async (t) => {
  const s = await server(t);
  fs.writeFileSync(path.join(s.root, 'f.txt'), 'clear-marker-0123456789');
  const c = await plain(t, s);
  await c.auth();
  await c.login(USER, PASS);
  await c.ok('PBSZ 0', 200);
  await c.ok('PROT C', 200);
  let port = await c.epsv();
  let d: net.Socket = await connectData(port);
  let got = drain(d);
  await c.cmd('RETR f.txt');
  t.is((await got).toString(), 'clear-marker-0123456789');
  t.is((await c.read())?.code, 226);
  await c.ok('PROT P', 200);
  port = await c.epsv();
  d = await c.dataTls(port);
  got = drain(d);
  await c.cmd('RETR f.txt');
  t.is((await got).toString(), 'clear-marker-0123456789');
  t.is((await c.read())?.code, 226);
});
