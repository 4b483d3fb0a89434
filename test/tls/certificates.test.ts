import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, FtpServer, VirtualAuthorizer } from '../../src';
import { randomContent, sha256 } from '../helpers/data-client';
import { PASS, USER, startServer, waitForNoSessions } from '../helpers/server';
import { FtpsControl, certs, drain, pemFingerprint256 } from '../helpers/tls';

/** Certificate files: checked at construction, reloaded on demand, and client certificates. */

function tmp(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-tls-cert-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function configError(t: ExecutionContext, tlsOpt: { certFile: string; keyFile: string; caFile?: string }, key: string, message: RegExp): void {
  const err = t.throws(() => new FtpServer({ authorizer: new VirtualAuthorizer(), tls: tlsOpt }));
  t.true(err instanceof ConfigError, String(err));
  t.is((err as ConfigError).code, 'FTPD_ERR_CONFIG');
  t.is((err as ConfigError).key, key, err?.message);
  t.regex(String(err?.message), message);
}

test('a missing certificate file is a ConfigError naming tls.certFile', (t) => {
  const c = certs();
  configError(t, { certFile: path.join(c.dir, 'nope.pem'), keyFile: c.key }, 'tls.certFile', /nope\.pem.*ENOENT/);
});

test('an unreadable key file (a directory) is a ConfigError naming tls.keyFile', (t) => {
  const c = certs();
  configError(t, { certFile: c.cert, keyFile: c.dir }, 'tls.keyFile', /EISDIR/);
});

test('a missing CA file is a ConfigError naming tls.caFile', (t) => {
  const c = certs();
  configError(t, { certFile: c.cert, keyFile: c.key, caFile: path.join(c.dir, 'no-ca.pem') }, 'tls.caFile', /ENOENT/);
});

test('a key that does not match the certificate is a ConfigError naming tls.keyFile', (t) => {
  const c = certs();
  configError(t, { certFile: c.cert, keyFile: c.key2 }, 'tls.keyFile', /mismatch|does not match/i);
});

test('a certificate file that is not PEM is a ConfigError naming tls.certFile', (t) => {
  const c = certs();
  const dir = tmp(t);
  fs.writeFileSync(path.join(dir, 'junk.pem'), 'not a certificate\n');
  configError(t, { certFile: path.join(dir, 'junk.pem'), keyFile: c.key }, 'tls.certFile', /certificate|PEM/i);
});

test('reloadCertificates(): new connections see the new certificate, an existing session keeps working', async (t) => {
  const c = certs();
  const dir = tmp(t);
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  fs.copyFileSync(c.cert, certFile);
  fs.copyFileSync(c.key, keyFile);
  const s = await startServer(t, { tls: { certFile, keyFile } });
  const body = randomContent(300_000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const old = await FtpsControl.plain(s.port);
  t.teardown(() => old.close());
  await old.secureLogin(USER, PASS);
  t.is(old.tlsSocket.getPeerCertificate().fingerprint256, pemFingerprint256(c.cert));

  fs.copyFileSync(c.cert2, certFile);
  fs.copyFileSync(c.key2, keyFile);
  s.server.reloadCertificates();

  const fresh = await FtpsControl.plain(s.port);
  t.teardown(() => fresh.close());
  await fresh.secureLogin(USER, PASS);
  t.is(fresh.tlsSocket.getPeerCertificate().fingerprint256, pemFingerprint256(c.cert2), 'the new certificate is served');

  for (const [name, cl] of [['existing', old], ['new', fresh]] as const) {
    await cl.ok('NOOP', 200);
    const port = await cl.epsv();
    const d = await cl.dataTls(port);
    t.true(d.isSessionReused(), `${name} session: the data connection resumed`);
    const got = drain(d);
    await cl.cmd('RETR f.bin');
    t.is(sha256(await got), sha256(body), `${name} session: transfer intact`);
    t.is((await cl.read())?.code, 226, `${name} session: 226`);
  }

  // A failed reload (key no longer matches) throws and keeps serving the last good pair.
  fs.copyFileSync(c.key, keyFile);
  const err = t.throws(() => s.server.reloadCertificates());
  t.is((err as ConfigError).code, 'FTPD_ERR_CONFIG');
  const third = await FtpsControl.plain(s.port);
  t.teardown(() => third.close());
  await third.auth();
  t.is(third.tlsSocket.getPeerCertificate().fingerprint256, pemFingerprint256(c.cert2));
  await third.login(USER, PASS);
});

test('reloadCertificates() on a server without tls throws', async (t) => {
  const s = await startServer(t);
  t.throws(() => s.server.reloadCertificates());
});

// ---- client certificates ---------------------------------------------------------------

async function certServer(t: ExecutionContext, requireClientCert: boolean): Promise<Awaited<ReturnType<typeof startServer>>> {
  const c = certs();
  return startServer(t, { tls: { certFile: c.cert, keyFile: c.key, caFile: c.ca, requireClientCert }, implicitTlsPort: 0 });
}

/** AUTH TLS and a login with the given client certificate; what came of it. */
async function tryLogin(port: number, cert?: { cert: Buffer; key: Buffer }): Promise<{ ok: boolean; why: string; c: FtpsControl | null }> {
  let c: FtpsControl | null = null;
  try {
    c = await FtpsControl.plain(port);
    await c.auth(cert ?? {});
    const u = await c.cmd(`USER ${USER}`);
    if (u.code !== 331) return { ok: false, why: `USER: ${u.code}`, c };
    const p = await c.cmd(`PASS ${PASS}`);
    return { ok: p.code === 230, why: `PASS: ${p.code}`, c };
  } catch (err) {
    return { ok: false, why: (err as Error).message, c };
  }
}

test('requireClientCert: a client without a certificate is refused (explicit and implicit)', async (t) => {
  const s = await certServer(t, true);
  const none = await tryLogin(s.port);
  t.teardown(() => none.c?.close());
  t.false(none.ok, `no certificate: ${none.why}`);
  none.c?.close();
  await waitForNoSessions(s.server);
  const implicit = await FtpsControl.implicit(s.server.implicitAddress()!.port)
    .then(async (ic) => {
      t.teardown(() => ic.close());
      return (await ic.cmd(`USER ${USER}`)).code;
    })
    .catch((err: Error) => err.message);
  t.not(implicit, 331, `implicit FTPS without a certificate: ${implicit}`);
});

test('requireClientCert: a client certificate the CA did not sign is refused (explicit and implicit)', async (t) => {
  const s = await certServer(t, true);
  const c = certs();
  const stray = { cert: fs.readFileSync(c.strayCert), key: fs.readFileSync(c.strayKey) };
  const r = await tryLogin(s.port, stray);
  t.teardown(() => r.c?.close());
  const implicit = await FtpsControl.implicit(s.server.implicitAddress()!.port, stray)
    .then(async (ic) => {
      t.teardown(() => ic.close());
      return (await ic.cmd(`USER ${USER}`)).code;
    })
    .catch((err: Error) => err.message);
  t.deepEqual(
    { explicit: r.ok ? 'logged in' : 'refused', implicit: implicit === 331 ? 'served' : 'refused' },
    { explicit: 'refused', implicit: 'refused' },
    `explicit: ${r.why}; implicit: ${implicit}`,
  );
});

test('requireClientCert: a client with a CA-signed certificate logs in and transfers', async (t) => {
  const s = await certServer(t, true);
  const c = certs();
  const body = randomContent(100_000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const cert = { cert: fs.readFileSync(c.clientCert), key: fs.readFileSync(c.clientKey) };
  const r = await tryLogin(s.port, cert);
  t.teardown(() => r.c?.close());
  t.true(r.ok, r.why);
  const cl = r.c!;
  await cl.ok('PBSZ 0', 200);
  await cl.ok('PROT P', 200);
  await cl.ok('TYPE I', 200);
  const port = await cl.epsv();
  const d = await cl.dataTls(port, true, cert);
  const got = drain(d);
  await cl.cmd('RETR f.bin');
  t.is(sha256(await got), sha256(body));
  t.is((await cl.read())?.code, 226);
});

test('caFile without requireClientCert: a client without a certificate is still served', async (t) => {
  const s = await certServer(t, false);
  const r = await tryLogin(s.port);
  t.teardown(() => r.c?.close());
  t.true(r.ok, r.why);
});
