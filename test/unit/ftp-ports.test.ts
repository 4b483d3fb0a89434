import * as net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { PortPool } from '../../src/ftp/data/ports';

/** `n` consecutive ports that are free now (found by binding them). */
async function freeRange(t: ExecutionContext, n: number): Promise<[number, number]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = 20000 + Math.floor(Math.random() * 30000);
    const servers: net.Server[] = [];
    let ok = true;
    for (let p = first; p < first + n && ok; p++) {
      const s = net.createServer();
      ok = await new Promise<boolean>((r) => {
        s.once('error', () => r(false));
        s.listen({ host: '127.0.0.1', port: p, exclusive: true }, () => r(true));
      });
      if (ok) servers.push(s);
    }
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (ok) return [first, first + n - 1];
  }
  t.fail('no free port range');
  return [0, 0];
}

const newServer = (t: ExecutionContext): net.Server => {
  const s = net.createServer();
  t.teardown(() => {
    if (s.listening) s.close();
  });
  return s;
};

test('hands out every port of the range once, then null', async (t) => {
  const [first, last] = await freeRange(t, 3);
  const pool = new PortPool(first, last);
  t.is(pool.size, 3);
  const got = [];
  for (let i = 0; i < 3; i++) got.push(await pool.listen(newServer(t), '127.0.0.1'));
  t.deepEqual([...got].sort(), [first, first + 1, first + 2]);
  t.is(pool.used, 3);
  t.is(await pool.listen(newServer(t), '127.0.0.1'), null);
});

test('a port is free again as soon as its listener stops listening, even with a connection open on it', async (t) => {
  const [port] = await freeRange(t, 1);
  const pool = new PortPool(port, port);
  const a = newServer(t);
  t.is(await pool.listen(a, '127.0.0.1'), port);
  const accepted = new Promise<net.Socket>((r) => a.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  t.teardown(() => client.destroy());
  const conn = await accepted;
  t.teardown(() => conn.destroy());
  a.close();
  pool.release(port, a);
  t.is(pool.used, 0);
  const b = newServer(t);
  t.is(await pool.listen(b, '127.0.0.1'), port, 'the next listener gets the port at once');
  // The old listener's late 'close' (when its connection ends) must not free the port b holds.
  const closed = new Promise<void>((r) => a.once('close', () => r()));
  conn.destroy();
  client.destroy();
  await closed;
  t.is(pool.used, 1);
  t.is(await pool.listen(newServer(t), '127.0.0.1'), null);
});

test('without release, the close event gives the port back', async (t) => {
  const [port] = await freeRange(t, 1);
  const pool = new PortPool(port, port);
  const a = newServer(t);
  t.is(await pool.listen(a, '127.0.0.1'), port);
  await new Promise<void>((r) => a.close(() => r()));
  t.is(pool.used, 0);
  t.is(await pool.listen(newServer(t), '127.0.0.1'), port);
});

test('ports taken by someone else are skipped', async (t) => {
  const [first, last] = await freeRange(t, 2);
  const squatter = newServer(t);
  await new Promise<void>((r) => squatter.listen(first, '127.0.0.1', r));
  const pool = new PortPool(first, last);
  t.is(await pool.listen(newServer(t), '127.0.0.1'), last);
  t.is(await pool.listen(newServer(t), '127.0.0.1'), null);
  t.is(pool.used, 1);
});

test('the starting point is spread over the range', async (t) => {
  const firsts = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const pool = new PortPool(40000, 40999);
    // The first port each new pool binds (a busy one is skipped, which only moves it by one).
    const s = net.createServer();
    const port = await pool.listen(s, '127.0.0.1').catch(() => null);
    if (port !== null) firsts.add(port);
    if (s.listening) s.close();
  }
  t.true(firsts.size > 10, `only ${firsts.size} distinct first ports`);
});
