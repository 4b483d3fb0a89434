import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileDigest, loggedIn, parsePasv, randomContent, retr, sha256, stor } from '../helpers/data-client';
import { MATRIX, engineProbe, transferRecords } from '../helpers/matrix';
import { PASS, USER, startServer } from '../helpers/server';

/** IPv6: a server on ::1 with EPSV/EPRT, and a dual-stack server on :: reached over IPv4 with PASV/PORT. */

const hasV6Loopback = Object.values(os.networkInterfaces()).some((list) => list?.some((a) => a.family === 'IPv6' && a.address === '::1'));

if (!hasV6Loopback) {
  test('IPv6 suite skipped: ::1 is not configured on this machine (no IPv6 loopback address)', (t) => {
    // CI must run the IPv6 suite: a runner without ::1 is a failure there, not a silent pass.
    if (process.env.CI === 'true') t.fail('::1 is not configured: CI must run the IPv6 tests');
    else t.log('os.networkInterfaces() lists no ::1; the IPv6 tests cannot run here');
    t.pass();
  });
} else {
  for (const row of MATRIX) {
    row.test('server on ::1: RETR and STOR over EPSV/EPRT', async (t) => {
      const s = await startServer(t, { host: '::1', useSendfile: row.useSendfile });
      t.is(s.server.address().address, '::1');
      const body = randomContent(300_007);
      fs.writeFileSync(path.join(s.root, 'f.bin'), body);
      const c = await loggedIn(s.port, USER, PASS, '::1');
      const probe = engineProbe(row);
      const down = await retr(c, row.mode, 'RETR f.bin', { host: '::1' });
      t.is(down.final?.code, 226, down.final?.text);
      t.is(down.digest.sha256, sha256(body));
      probe.check(t, transferRecords(s)[0]);
      const up = await stor(c, row.mode, 'STOR g.bin', body, { host: '::1' });
      t.is(up.final?.code, 226, up.final?.text);
      t.is((await fileDigest(path.join(s.root, 'g.bin'))).sha256, sha256(body));
      // PASV cannot announce an IPv6 address: it must be refused, not answered with garbage.
      const pasv = await c.cmd('PASV');
      t.not(pasv.code, 227, `PASV over IPv6: ${pasv.code} ${pasv.text}`);
      t.is((await c.cmd('EPRT |1|127.0.0.1|5000|')).code, 501, 'EPRT to an IPv4 address from an IPv6 client is foreign');
      c.close();
    });
  }

  for (const mode of ['passive', 'active'] as const) {
    test(`dual-stack server on :: reached over 127.0.0.1 with ${mode === 'passive' ? 'PASV' : 'PORT'}`, async (t) => {
      const s = await startServer(t, { host: '::' });
      const body = randomContent(123_456);
      fs.writeFileSync(path.join(s.root, 'f.bin'), body);
      const c = await loggedIn(s.port, USER, PASS, '127.0.0.1');
      if (mode === 'passive') {
        const r = await c.cmd('PASV');
        const a = parsePasv(r);
        t.is(a.host, '127.0.0.1', `PASV announces the IPv4 address: ${r.text}`);
      }
      const down = await retr(c, mode, 'RETR f.bin', { legacy: true });
      t.is(down.final?.code, 226, down.final?.text);
      t.is(down.digest.sha256, sha256(body));
      const up = await stor(c, mode, 'STOR g.bin', body, { legacy: true });
      t.is(up.final?.code, 226, up.final?.text);
      t.is((await fileDigest(path.join(s.root, 'g.bin'))).sha256, sha256(body));
      // And the same server serves IPv6 clients.
      const c6 = await loggedIn(s.port, USER, PASS, '::1');
      const six = await retr(c6, mode, 'RETR f.bin', { host: '::1' });
      t.is(six.final?.code, 226);
      t.is(six.digest.sha256, sha256(body));
      c.close();
      c6.close();
    });
  }
}
