import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { digestSocket, listenEphemeral, loggedIn, parseEpsv, parsePasv, randomContent, retr, sha256, stor } from '../helpers/data-client';
import { connectData } from '../helpers/line-client';
import { PASS, USER, startServer } from '../helpers/server';

/** Data connection security: foreign passive peers, PORT bounces, and the passive port range. */

function connectFrom(localAddress: string, port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, localAddress }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function closed(s: net.Socket): Promise<void> {
  return s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

/** A port that was free a moment ago (for passivePorts ranges). */
async function freePort(): Promise<number> {
  const srv = await listenEphemeral('127.0.0.1');
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

for (const verb of ['EPSV', 'PASV'] as const) {
  test(`a ${verb} data connection from another address is refused; the client still gets its transfer`, async (t) => {
    const s = await startServer(t);
    const body = randomContent(200_000);
    fs.writeFileSync(path.join(s.root, 'f.bin'), body);
    const c = await loggedIn(s.port, USER, PASS);
    const r = await c.cmd(verb);
    const port = verb === 'EPSV' ? parseEpsv(r) : parsePasv(r).port;
    c.send('RETR f.bin\r\n');
    const pre = await c.read();
    t.is(pre?.code, 150, `${pre?.code} ${pre?.text}`);
    // 127.0.0.2 reaches 127.0.0.1 over lo, but it is not the control connection's peer.
    const intruder = await connectFrom('127.0.0.2', port);
    intruder.on('error', () => {});
    const stolen = digestSocket(intruder).catch(() => ({ bytes: 0, sha256: '' }));
    await closed(intruder);
    t.is((await stolen).bytes, 0, 'not one byte went to the intruder');
    t.true(
      s.records.some((x) => x.msg === 'refused data connection from a foreign address'),
      'the refusal is logged',
    );
    const data = await connectData(port);
    const got = await digestSocket(data);
    const fin = await c.read();
    t.is(fin?.code, 226, `${fin?.code} ${fin?.text}`);
    t.is(got.sha256, sha256(body));
    c.close();
  });
}

test('PORT and EPRT to a foreign address are refused and nothing connects there', async (t) => {
  const s = await startServer(t);
  fs.writeFileSync(path.join(s.root, 'f.bin'), 'x');
  const c = await loggedIn(s.port, USER, PASS);
  const bait = await listenEphemeral('127.0.0.2');
  let connections = 0;
  bait.on('connection', (sock) => {
    connections++;
    sock.destroy();
  });
  t.teardown(() => bait.close());
  const port = (bait.address() as net.AddressInfo).port;
  const p = await c.cmd(`PORT 127,0,0,2,${port >> 8},${port & 255}`);
  t.is(p.code, 501, `PORT to 127.0.0.2: ${p.code} ${p.text}`);
  t.is((await c.cmd('RETR f.bin')).code, 425, 'no data channel was set up');
  const e = await c.cmd(`EPRT |1|127.0.0.2|${port}|`);
  t.is(e.code, 501, `EPRT to 127.0.0.2: ${e.code} ${e.text}`);
  t.is((await c.cmd('RETR f.bin')).code, 425);
  t.is((await c.cmd('EPRT |1|192.0.2.1|4000|')).code, 501, 'a remote host too');
  t.is((await c.cmd('PORT 127,0,0,1,0,21')).code, 501, 'a privileged port is refused');
  t.is(connections, 0, 'the server never connected to the bait');
  c.close();
});

test('passive range exhausted: a second PASV gets 425 with a reason, and works once the port is released', async (t) => {
  const p = await freePort();
  const s = await startServer(t, { passivePorts: [p, p] });
  fs.writeFileSync(path.join(s.root, 'f.bin'), randomContent(5000));
  const a = await loggedIn(s.port, USER, PASS);
  const b = await loggedIn(s.port, USER, PASS);
  const first = parsePasv(await a.cmd('PASV'));
  t.is(first.port, p);
  const refused = await b.cmd('PASV');
  t.is(refused.code, 425, `${refused.code} ${refused.text}`);
  t.regex(refused.text, /passive/i, 'the reason names the passive range');
  t.is((await b.cmd('EPSV')).code, 425, 'EPSV too');
  // A's transfer uses the port; once it is done, B's PASV works.
  const data = await connectData(first.port);
  a.send('RETR f.bin\r\n');
  const pre = await a.read();
  t.true(pre?.code === 125 || pre?.code === 150);
  const got = await digestSocket(data);
  t.is((await a.read())?.code, 226);
  t.is(got.bytes, 5000);
  const again = await b.cmd('PASV');
  t.is(again.code, 227, `after A's transfer: ${again.code} ${again.text}`);
  t.is(parsePasv(again).port, p);
  a.close();
  b.close();
});

test('passive port range of one port: released after each transfer, after QUIT and after ABOR (no leak)', async (t) => {
  const p = await freePort();
  const s = await startServer(t, { passivePorts: [p, p] });
  const body = randomContent(5000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const a = await loggedIn(s.port, USER, PASS);
  // Repeated transfers through the single port.
  for (let i = 0; i < 5; i++) {
    const out = await retr(a, 'passive', 'RETR f.bin', { legacy: i % 2 === 0 });
    t.is(out.final?.code, 226, `transfer ${i}`);
    t.is(out.digest.sha256, sha256(body));
  }
  t.is(parsePasv(await a.cmd('PASV')).port, p);
  // While A holds it, B is refused; when A quits, B gets it.
  const b = await loggedIn(s.port, USER, PASS);
  t.is((await b.cmd('PASV')).code, 425);
  t.is((await a.cmd('QUIT')).code, 221);
  await a.whenClosed();
  // The port comes back when A's session is torn down; B asks until it does, bounded by a NOOP round trip each time.
  let got: number | null = null;
  for (let i = 0; i < 50 && got === null; i++) {
    const r = await b.cmd('PASV');
    if (r.code === 227) got = parsePasv(r).port;
    else await b.cmd('NOOP');
  }
  t.is(got, p, "B got the port after A's session ended");
  // Use the channel B holds (asking again would be a replacement, tested on its own below).
  const data = await connectData(p);
  b.send('RETR f.bin\r\n');
  t.true([125, 150].includes((await b.read())?.code ?? 0));
  t.is((await digestSocket(data)).sha256, sha256(body));
  t.is((await b.read())?.code, 226);
  // ABOR releases a prepared channel too.
  t.is(parsePasv(await b.cmd('PASV')).port, p);
  t.is((await b.cmd('ABOR')).code, 225);
  const c = await loggedIn(s.port, USER, PASS);
  t.is(parsePasv(await c.cmd('PASV')).port, p, 'the port came back after ABOR');
  b.close();
  c.close();
});

test('passive port range of one port: a PASV that replaces an unused PASV gets the port back', async (t) => {
  const p = await freePort();
  const s = await startServer(t, { passivePorts: [p, p] });
  const a = await loggedIn(s.port, USER, PASS);
  t.is(parsePasv(await a.cmd('PASV')).port, p);
  // Clients re-issue PASV (retries, a LIST that never ran): the old listener is replaced, its port must be reusable.
  for (let i = 1; i <= 5; i++) {
    const r = await a.cmd(i % 2 ? 'EPSV' : 'PASV');
    t.true(r.code === 227 || r.code === 229, `replacement ${i}: ${r.code} ${r.text}`);
  }
  a.close();
});

test('a link to a sibling folder whose name starts with the root\'s ("<root>-evil") is outside the jail: RETR, STOR, CWD get 550', async (t) => {
  const s = await startServer(t);
  // The jail compares real paths as text: "<root>-evil" starts with "<root>" but is not under it.
  const evil = `${s.root}-evil`;
  fs.mkdirSync(evil);
  t.teardown(() => fs.rmSync(evil, { recursive: true, force: true }));
  fs.writeFileSync(path.join(evil, 'secret.txt'), 'SECRET');
  fs.symlinkSync(`../${path.basename(evil)}`, path.join(s.root, 'link'));
  const c = await loggedIn(s.port, USER, PASS);
  t.teardown(() => c.close());
  const down = await retr(c, 'passive', 'RETR link/secret.txt');
  t.is(down.first.code, 550, `RETR: ${down.first.code} ${down.first.text}`);
  t.is(down.digest.bytes, 0);
  const up = await stor(c, 'passive', 'STOR link/x', Buffer.from('planted'));
  t.is(up.first.code, 550, `STOR: ${up.first.code} ${up.first.text}`);
  const cwd = await c.cmd('CWD link');
  t.is(cwd.code, 550, `CWD: ${cwd.code} ${cwd.text}`);
  t.is((await c.cmd('PWD')).text.split('"')[1], '/');
  t.deepEqual(fs.readdirSync(evil), ['secret.txt'], 'nothing was created in the sibling');
});
