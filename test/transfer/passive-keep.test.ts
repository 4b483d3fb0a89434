import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { digestSocket, listenEphemeral, loggedIn, parseEpsv, parsePasv, randomContent, sha256 } from '../helpers/data-client';
import { connectData, type LineClient } from '../helpers/line-client';
import { PASS, USER, startServer } from '../helpers/server';

/**
 * A session keeps its passive listener between transfers: the next PASV/EPSV answers with the
 * same port instead of opening and closing a listener per file. What a client sees of that.
 */

/** `n` ports in a row that were free a moment ago (for a passivePorts range). */
async function freeRange(n: number): Promise<number> {
  for (let tries = 0; tries < 20; tries++) {
    const srv = await listenEphemeral('127.0.0.1');
    const first = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    if (first + n - 1 > 65535) continue;
    const probes = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        new Promise<boolean>((resolve) => {
          const p = net.createServer();
          p.once('error', () => resolve(false));
          p.listen(first + i, '127.0.0.1', () => p.close(() => resolve(true)));
        }),
      ),
    );
    if (probes.every(Boolean)) return first;
  }
  throw new Error('no free port range');
}

/** RETR over a fresh EPSV; returns the port the server announced. */
async function retrOver(t: { is: (a: unknown, b: unknown, m?: string) => void }, c: LineClient, name: string, body: Buffer): Promise<number> {
  const port = parseEpsv(await c.cmd('EPSV'));
  const data = await connectData(port);
  c.send(`RETR ${name}\r\n`);
  const pre = await c.read();
  t.is([125, 150].includes(pre?.code ?? 0), true, `${pre?.code} ${pre?.text}`);
  const got = await digestSocket(data);
  t.is((await c.read())?.code, 226);
  t.is(got.sha256, sha256(body));
  return port;
}

/** Connect to `port`: 'refused' if nothing listens, else the bytes read until the server closed it. */
function probe(port: number): Promise<'refused' | number> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : n));
    s.on('close', () => resolve(n));
  });
}

test('the same port for every transfer of a session; a connection with no PASV pending gets nothing; QUIT closes it', async (t) => {
  const s = await startServer(t);
  const body = randomContent(100_000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const c = await loggedIn(s.port, USER, PASS);
  const first = await retrOver(t, c, 'f.bin', body);
  // Between transfers the kept listener takes a stray connection and closes it at once.
  t.is(await probe(first), 0, 'not one byte to a connection no PASV asked for');
  for (let i = 0; i < 5; i++) t.is(await retrOver(t, c, 'f.bin', body), first, `transfer ${i + 2} on the same port`);
  // PASV (not only EPSV) takes it too. A channel that ends before any connection came closes
  // its listener (a late connection must be refused, not taken by the next PASV).
  t.is(parsePasv(await c.cmd('PASV')).port, first);
  t.is((await c.cmd('ABOR')).code, 225);
  t.is(await probe(first), 'refused', 'an unused channel closes its listener');
  // A new listener, kept after its transfer; QUIT closes it.
  const second = await retrOver(t, c, 'f.bin', body);
  t.is(await probe(second), 0, 'kept again after a transfer');
  t.is((await c.cmd('QUIT')).code, 221);
  await c.whenClosed();
  // The session is gone: so is its listener.
  let r: 'refused' | number = 0;
  for (let i = 0; i < 50 && r !== 'refused'; i++) {
    r = await probe(second);
    if (r !== 'refused') await new Promise((res) => setTimeout(res, 20));
  }
  t.is(r, 'refused', 'nothing listens on the port after QUIT');
});

test('a passive range more than half in use keeps no listener; an exhausted range takes kept ones back', async (t) => {
  const p = await freeRange(2);
  const s = await startServer(t, { passivePorts: [p, p + 1] });
  const body = randomContent(10_000);
  fs.writeFileSync(path.join(s.root, 'f.bin'), body);
  const a = await loggedIn(s.port, USER, PASS);
  const b = await loggedIn(s.port, USER, PASS);
  const c = await loggedIn(s.port, USER, PASS);
  // A's transfer leaves 1 of 2 ports in use: A keeps its listener.
  const pa = await retrOver(t, a, 'f.bin', body);
  // B takes the other port; after B's transfer 2 of 2 would stay in use: B's closes at once.
  const pb = await retrOver(t, b, 'f.bin', body);
  t.not(pa, pb);
  // C needs a port while A keeps one idle and B's is free again: C gets B's.
  const pc = parsePasv(await c.cmd('PASV')).port;
  t.is(pc, pb);
  // Now both ports are taken (A's kept listener, C's channel). B asks: A's idle one is taken back.
  const again = await b.cmd('PASV');
  t.is(again.code, 227, `${again.code} ${again.text}`);
  t.is(parsePasv(again).port, pa);
  // And A, which lost its kept listener, is told the range is full until someone lets go.
  t.is((await a.cmd('EPSV')).code, 425);
  a.close();
  b.close();
  c.close();
});

test('a PASV that no transfer command uses is closed after dataConnectTimeout: its port goes back to the range', async (t) => {
  const first = await freeRange(2);
  const s = await startServer(t, { passivePorts: [first, first + 1], dataConnectTimeout: 1 });
  fs.writeFileSync(path.join(s.root, 'f.bin'), randomContent(1000));
  // Two sessions each take a port with EPSV and then only keep the session alive.
  const a = await loggedIn(s.port, USER, PASS);
  const b = await loggedIn(s.port, USER, PASS);
  const pa = parseEpsv(await a.cmd('EPSV'));
  parseEpsv(await b.cmd('EPSV'));
  const c = await loggedIn(s.port, USER, PASS);
  t.is((await c.cmd('EPSV')).code, 425, 'the range is taken');
  await new Promise((r) => setTimeout(r, 1600));
  t.is((await a.cmd('NOOP')).code, 200);
  t.is(await probe(pa), 'refused', 'the unused listener is closed');
  // The ports are back: another session gets one and downloads through it.
  const body = fs.readFileSync(path.join(s.root, 'f.bin'));
  await retrOver(t, c, 'f.bin', body);
  // The session whose PASV expired is told so when it finally asks for a transfer.
  const late = await a.cmd('RETR f.bin');
  const lateFinal = late.code === 150 || late.code === 125 ? await a.read() : late;
  t.is(lateFinal?.code, 425, lateFinal?.text);
  for (const x of [a, b, c]) x.close();
});
