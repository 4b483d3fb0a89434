// Prometheus metrics: after known traffic, GET /metrics over HTTP shows exact counts.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import test from 'ava';
import * as promClient from 'prom-client';
import { LineClient, readAll } from '../helpers/line-client';
import { PASS, USER, startServer } from '../helpers/server';

function get(port: number, urlPath: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

/** The value of one sample line ("name{labels} value"), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('GET /metrics after 2 logins, 1 failed login, a 1 MiB download, an upload and a server-side copy', async (t) => {
  const s = await startServer(t, { metrics: { port: 0 } });
  const addr = s.server.metricsAddress();
  t.truthy(addr);
  t.is(addr!.address, '127.0.0.1');
  const big = crypto.randomBytes(1024 * 1024);
  fs.writeFileSync(path.join(s.root, 'big.bin'), big);
  const upload = crypto.randomBytes(12_345);

  const a = await LineClient.open(s.port);
  t.teardown(() => a.close());
  t.is((await a.cmd(`USER ${USER}`)).code, 331);
  t.is((await a.cmd('PASS wrong')).code, 530);
  await a.login(USER, PASS);
  const b = await LineClient.open(s.port);
  t.teardown(() => b.close());
  await b.login(USER, PASS);

  t.is((await a.cmd('TYPE I')).code, 200);
  let d = await a.epsvConnect();
  const body = readAll(d);
  t.true([125, 150].includes((await a.cmd('RETR big.bin')).code));
  t.true((await body).equals(big));
  t.is((await a.read())?.code, 226);

  t.is((await b.cmd('TYPE I')).code, 200);
  d = await b.epsvConnect();
  t.true([125, 150].includes((await b.cmd('STOR up.bin')).code));
  d.end(upload);
  t.is((await b.read())?.code, 226);

  t.is((await b.cmd('SITE CPFR big.bin')).code, 350);
  t.is((await b.cmd('SITE CPTO big-copy.bin')).code, 250);

  const r = await get(addr!.port, '/metrics');
  t.is(r.status, 200);
  t.regex(r.type, /^text\/plain; version=0\.0\.4/);
  const m = r.body;
  t.is(sample(m, 'ftpdlib_sessions_open'), 2);
  t.is(sample(m, 'ftpdlib_sessions_total'), 2);
  t.is(sample(m, 'ftpdlib_logins_total{result="ok"}'), 2);
  t.is(sample(m, 'ftpdlib_logins_total{result="failed"}'), 1);
  t.is(sample(m, 'ftpdlib_sent_bytes_total'), 1024 * 1024);
  t.is(sample(m, 'ftpdlib_received_bytes_total'), upload.length);
  t.is(sample(m, 'ftpdlib_transfers_total{command="RETR",result="ok"}'), 1);
  t.is(sample(m, 'ftpdlib_transfers_total{command="STOR",result="ok"}'), 1);
  t.is(sample(m, 'ftpdlib_transfer_duration_seconds_count{command="RETR"}'), 1);
  t.is(sample(m, 'ftpdlib_transfer_duration_seconds_count{command="STOR"}'), 1);
  t.is(sample(m, 'ftpdlib_transfer_duration_seconds_bucket{le="+Inf",command="RETR"}'), 1);
  t.is(sample(m, 'ftpdlib_copies_total{via="copy_file_range"}'), 1);
  t.is(sample(m, 'ftpdlib_copied_bytes_total'), 1024 * 1024);
  // One engine per transfer: sendfile/splice/copy (zero-copy) or stream.
  const engines = m.split('\n').filter((l) => l.startsWith('ftpdlib_transfer_engine_total{'));
  t.is(
    engines.reduce((n, l) => n + Number(l.split(' ')[1]), 0),
    2,
    engines.join('\n'),
  );
  // The process: CPU and memory.
  t.true((sample(m, 'process_cpu_user_seconds_total') ?? -1) >= 0);
  t.true((sample(m, 'process_resident_memory_bytes') ?? 0) > 0);
  t.true((sample(m, 'nodejs_heap_size_used_bytes') ?? 0) > 0);

  // The same text for embedders, without HTTP.
  t.is(sample(await s.server.metrics(), 'ftpdlib_logins_total{result="ok"}'), 2);
  // The server's registry is its own: prom-client's global registry is left to the embedder.
  t.is(promClient.register.getSingleMetric('ftpdlib_sessions_total'), undefined);
  t.truthy(s.server.metricsRegistry.getSingleMetric('ftpdlib_sessions_total'));

  t.is((await get(addr!.port, '/')).status, 404);
});

test('an aborted download counts as incomplete, with the bytes that moved', async (t) => {
  const s = await startServer(t, { writeLimit: 64 * 1024 });
  fs.writeFileSync(path.join(s.root, 'big.bin'), crypto.randomBytes(4 * 1024 * 1024));
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(USER, PASS);
  t.is((await c.cmd('TYPE I')).code, 200);
  const d = await c.epsvConnect();
  const gotSome = new Promise<void>((r) => d.once('data', () => r()));
  t.true([125, 150].includes((await c.cmd('RETR big.bin')).code));
  await gotSome;
  const incomplete = new Promise<number>((r) => s.server.once('incompleteFileSent', (_p, i) => r(i.bytes)));
  c.send('ABOR\r\n');
  t.is((await c.read())?.code, 426);
  t.is((await c.read())?.code, 226);
  const bytes = await incomplete;
  d.destroy();
  const m = await s.server.metrics();
  t.is(sample(m, 'ftpdlib_transfers_total{command="RETR",result="incomplete"}'), 1);
  t.is(sample(m, 'ftpdlib_sent_bytes_total'), bytes);
  t.true(bytes > 0 && bytes < 4 * 1024 * 1024);
});

test('no metrics option: no HTTP listener, server.metrics() still counts', async (t) => {
  const s = await startServer(t);
  t.is(s.server.metricsAddress(), null);
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(USER, PASS);
  t.is(sample(await s.server.metrics(), 'ftpdlib_logins_total{result="ok"}'), 1);
});

test('the metrics port in use: listen() fails and leaves nothing listening', async (t) => {
  const first = await startServer(t, { metrics: { port: 0 } });
  const port = first.server.metricsAddress()!.port;
  const { FtpServer, VirtualAuthorizer } = await import('../../src');
  const second = new FtpServer({ host: '127.0.0.1', port: 0, authorizer: new VirtualAuthorizer(), metrics: { port } });
  const err = await t.throwsAsync(second.listen());
  t.is((err as NodeJS.ErrnoException).code, 'EADDRINUSE');
  t.is((err as unknown as { port: number }).port, port);
  await second.close();
});

test("the duration histogram, counted in plain fields, scrapes as prom-client's own Histogram given the same transfers; scrapes repeat, merge and reset", async (t) => {
  // 1 MiB/s for downloads: the 256 KiB file takes at least 0.25 s, the 10 KB one about 10 ms
  const s = await startServer(t, { writeLimit: 1024 * 1024 });
  fs.writeFileSync(path.join(s.root, 'small.bin'), crypto.randomBytes(10_000));
  fs.writeFileSync(path.join(s.root, 'slow.bin'), crypto.randomBytes(256 * 1024));
  // prom-client's Histogram with the same buckets, fed each transfer's own duration
  const ref = new promClient.Histogram({
    name: 'ftpdlib_transfer_duration_seconds',
    help: 'Duration of file transfers, from the preliminary reply to the end, by command.',
    labelNames: ['command'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200],
    registers: [],
  });
  s.server.on('fileSent', (_p, i) => ref.observe({ command: i.verb }, i.seconds));
  s.server.on('fileReceived', (_p, i) => ref.observe({ command: i.verb }, i.seconds));

  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(USER, PASS);
  t.is((await c.cmd('TYPE I')).code, 200);
  const retr = async (name: string): Promise<void> => {
    const d = await c.epsvConnect();
    const body = readAll(d);
    t.true([125, 150].includes((await c.cmd(`RETR ${name}`)).code));
    await body;
    t.is((await c.read())?.code, 226);
  };
  await retr('small.bin');
  await retr('small.bin');
  await retr('slow.bin');
  const up = await c.epsvConnect();
  t.true([125, 150].includes((await c.cmd('STOR up.bin')).code));
  up.end(Buffer.alloc(5000, 1));
  t.is((await c.read())?.code, 226);

  // The JSON (what the daemon's primary sums): the same series, names, labels and values.
  type Json = { name: string; help: string; type: string; aggregator: string; values: Array<{ metricName?: string; labels: object; value: number }> };
  const shape = (m: Json) => ({ ...m, values: m.values.map((v) => ({ metricName: v.metricName, labels: v.labels, value: v.value })) });
  const ours = (await s.server.metricsJSON()).find((m) => m.name === 'ftpdlib_transfer_duration_seconds') as unknown as Json;
  const theirs = (await ref.get()) as unknown as Json;
  t.deepEqual(shape(ours), shape(theirs));
  t.is(ours.values.length, 2 * 14);
  // The text: each command's buckets are cumulative and end at the count.
  const text = await s.server.metrics();
  t.is(sample(text, 'ftpdlib_transfer_duration_seconds_count{command="RETR"}'), 3);
  t.is(sample(text, 'ftpdlib_transfer_duration_seconds_bucket{le="7200",command="RETR"}'), 3);
  t.is(sample(text, 'ftpdlib_transfer_duration_seconds_count{command="STOR"}'), 1);
  const ownText = await (async () => {
    const r = new promClient.Registry();
    r.registerMetric(ref);
    return r.metrics();
  })();
  const lines = (x: string): string[] => x.split('\n').filter((l) => l.startsWith('ftpdlib_transfer_duration_seconds'));
  t.deepEqual(lines(text), lines(ownText));
  // A second scrape reads the same counts (each scrape sets the counters, it does not add).
  t.is(sample(await s.server.metrics(), 'ftpdlib_transfers_total{command="RETR",result="ok"}'), 3);
  t.is(sample(await s.server.metrics(), 'ftpdlib_transfers_total{command="RETR",result="ok"}'), 3);
  t.is(sample(await s.server.metrics(), 'ftpdlib_sent_bytes_total'), 2 * 10_000 + 256 * 1024);
  // Merged into an embedder's registry, with a metric of its own.
  const mine = new promClient.Registry();
  new promClient.Counter({ name: 'app_things_total', help: 'Things.', registers: [mine] });
  const merged = promClient.Registry.merge([mine, s.server.metricsRegistry]);
  const m = await merged.metrics();
  t.is(sample(m, 'ftpdlib_transfer_duration_seconds_count{command="RETR"}'), 3);
  t.is(sample(m, 'ftpdlib_transfers_total{command="STOR",result="ok"}'), 1);
  t.is(sample(m, 'app_things_total'), 0);
  // The counts are the server's since it started: resetMetrics() on its registry does not zero them.
  s.server.metricsRegistry.resetMetrics();
  t.is(sample(await s.server.metrics(), 'ftpdlib_transfer_duration_seconds_count{command="RETR"}'), 3);
  t.is(sample(await s.server.metrics(), 'ftpdlib_logins_total{result="ok"}'), 1);
  // and the buckets told the slow download from the others
  t.true(sample(text, 'ftpdlib_transfer_duration_seconds_bucket{le="0.1",command="RETR"}')! < 3);
});
