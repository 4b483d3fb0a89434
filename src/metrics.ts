/**
 * Prometheus metrics of an FtpServer, counted from its typed events into a registry of its own
 * (never prom-client's global one, which belongs to the embedder). `server.metrics()` gives the
 * text; the `metrics` option also serves it over HTTP at /metrics. Nothing listens unless asked.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { FtpServer } from './ftp/server';
import type { TransferInfo } from './ftp/session';

/** A registry's metrics as prom-client's `getMetricsAsJSON()` gives them. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/**
 * An HTTP server answering GET (and HEAD) /metrics with `text()`, listening on host:port.
 * Rejects with the listen error.
 */
export function serveMetrics(host: string, port: number, text: () => Promise<string>, contentType: string): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('Method not allowed\n');
      return;
    }
    text().then(
      (body) => res.writeHead(200, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port }, () => {
      srv.off('error', reject);
      resolve(srv);
    });
  });
}

let processRegistry: Registry | null = null;

/**
 * The process's own metrics (CPU, memory, event loop, GC: prom-client's defaults), in one
 * registry per process, made at the first scrape. They describe the process, not a server, and
 * prom-client installs a GC observer and an event-loop monitor for them that cannot be removed:
 * one set per server would pile up in a process that makes many.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Seconds: from a small file on a LAN to a large one over a slow link. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200];

/** One transfer command's results and durations, counted in plain fields. */
class CommandCounts {
  ok = 0;
  incomplete = 0;
  count = 0;
  sum = 0;
  /** Transfers per bucket (not cumulative): [i] for those up to DURATION_BUCKETS[i] and over the one before. */
  readonly inBucket = new Float64Array(DURATION_BUCKETS.length);

  add(ok: boolean, seconds: number): void {
    if (ok) this.ok++;
    else this.incomplete++;
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]) {
        this.inBucket[i]++;
        break;
      }
    }
  }
}

/** A sample as prom-client's registry prints and aggregates it. */
interface Sample {
  value: number;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  metricName?: string;
}

/**
 * ftpdlib_transfer_duration_seconds: a histogram by command, read from the CommandCounts when
 * scraped, in the shape prom-client's own Histogram gives (its `get()` for the JSON and the
 * daemon's aggregation, `getForPromString()` for the text), so that the registry prints,
 * merges and sums it as one of its own.
 */
class DurationHistogram {
  readonly name = 'ftpdlib_transfer_duration_seconds';
  readonly help = 'Duration of file transfers, from the preliminary reply to the end, by command.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['command'];

  constructor(private readonly commands: Map<string, CommandCounts>) {}

  getForPromString(): { name: string; help: string; type: string; values: Sample[]; aggregator: string } {
    const values: Sample[] = [];
    for (const [command, c] of this.commands) {
      const sharedLabels = { command };
      let acc = 0;
      for (let i = 0; i < DURATION_BUCKETS.length; i++) {
        acc += c.inBucket[i];
        values.push({ value: acc, labels: { le: DURATION_BUCKETS[i] }, sharedLabels, metricName: `${this.name}_bucket` });
      }
      values.push({ value: c.count, labels: { le: '+Inf' }, sharedLabels, metricName: `${this.name}_bucket` });
      values.push({ value: c.sum, labels: {}, sharedLabels, metricName: `${this.name}_sum` });
      values.push({ value: c.count, labels: {}, sharedLabels, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** As prom-client's Histogram.get(): each sample's shared labels folded into its own. */
  async get(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: string }> {
    const data = this.getForPromString();
    data.values = data.values.map(({ sharedLabels, ...v }) => ({ ...v, labels: { ...v.labels, ...sharedLabels } }));
    return data;
  }

  /**
   * Registry.resetMetrics() calls this. The figures are the server's since it started, as every
   * other metric of this registry reads them from the same counts at each scrape: nothing to do.
   */
  reset(): void {}
}

/**
 * What the metrics count, in plain fields: the events that feed them (one per transfer, login
 * and session) add a number here and hash nothing; the registry's metrics read these when
 * scraped. (prom-client's own `inc` with labels hashes them on every call: 0.5 KiB of garbage
 * and a string built per download, src/native/bench/RESULTS.md.)
 */
class Counts {
  sessions = 0;
  loginsOk = 0;
  loginsFailed = 0;
  sentBytes = 0;
  receivedBytes = 0;
  copiedBytes = 0;
  readonly commands = new Map<string, CommandCounts>();
  readonly engines = new Map<string, number>();
  readonly copiesVia = new Map<string, number>();

  transfer(direction: 'sent' | 'received', i: TransferInfo): void {
    if (direction === 'sent') this.sentBytes += i.bytes;
    else this.receivedBytes += i.bytes;
    let c = this.commands.get(i.verb);
    if (!c) this.commands.set(i.verb, (c = new CommandCounts()));
    c.add(i.ok, i.seconds);
    this.engines.set(i.engine, (this.engines.get(i.engine) ?? 0) + 1);
  }
}

export class ServerMetrics {
  /** This server's metrics (not the process's); an embedder may merge it into its own. */
  readonly registry = new Registry();
  private httpServer: http.Server | null = null;
  private readonly counts = new Counts();

  constructor(server: FtpServer) {
    const registers = [this.registry];
    const n = this.counts;
    new Gauge({
      name: 'ftpdlib_sessions_open',
      help: 'Control connections open now.',
      registers,
      collect() {
        this.set(server.sessionCount);
      },
    });
    // Each counter is set from the plain counts when scraped: reset, then counted up to them.
    new Counter({
      name: 'ftpdlib_sessions_total',
      help: 'Control connections served (sessions started).',
      registers,
      collect() {
        this.reset();
        this.inc(n.sessions);
      },
    });
    new Counter({
      name: 'ftpdlib_logins_total',
      help: 'Logins, by result (ok, failed).',
      labelNames: ['result'],
      registers,
      // Both series from the start, so that rates and alerts have one before the first login.
      collect() {
        this.reset();
        this.inc({ result: 'ok' }, n.loginsOk);
        this.inc({ result: 'failed' }, n.loginsFailed);
      },
    });
    new Counter({
      name: 'ftpdlib_received_bytes_total',
      help: 'File bytes received (STOR, APPE, STOU), complete or not.',
      registers,
      collect() {
        this.reset();
        this.inc(n.receivedBytes);
      },
    });
    new Counter({
      name: 'ftpdlib_sent_bytes_total',
      help: 'File bytes sent (RETR), complete or not.',
      registers,
      collect() {
        this.reset();
        this.inc(n.sentBytes);
      },
    });
    new Counter({
      name: 'ftpdlib_transfers_total',
      help: 'File transfers, by command and result (ok, incomplete).',
      labelNames: ['command', 'result'],
      registers,
      collect() {
        this.reset();
        for (const [command, c] of n.commands) {
          if (c.ok) this.inc({ command, result: 'ok' }, c.ok);
          if (c.incomplete) this.inc({ command, result: 'incomplete' }, c.incomplete);
        }
      },
    });
    this.registry.registerMetric(new DurationHistogram(n.commands) as unknown as Metric);
    new Counter({
      name: 'ftpdlib_transfer_engine_total',
      help: 'File transfers by the path their bytes took: sendfile, splice or copy (the zero-copy engine), tls (the engine over FTPS) or stream.',
      labelNames: ['engine'],
      registers,
      collect() {
        this.reset();
        for (const [engine, count] of n.engines) this.inc({ engine }, count);
      },
    });
    new Counter({
      name: 'ftpdlib_copies_total',
      help: 'Server-side copies (SITE CPFR/CPTO) done, by how the bytes moved: copy_file_range, read/write or stream.',
      labelNames: ['via'],
      registers,
      collect() {
        this.reset();
        for (const [via, count] of n.copiesVia) this.inc({ via }, count);
      },
    });
    new Counter({
      name: 'ftpdlib_copied_bytes_total',
      help: 'File bytes copied on the server (SITE CPTO).',
      registers,
      collect() {
        this.reset();
        this.inc(n.copiedBytes);
      },
    });

    server.on('connect', () => n.sessions++);
    server.on('login', () => n.loginsOk++);
    server.on('loginFailed', () => n.loginsFailed++);
    server.on('fileSent', (_path, i) => n.transfer('sent', i));
    server.on('incompleteFileSent', (_path, i) => n.transfer('sent', i));
    server.on('fileReceived', (_path, i) => n.transfer('received', i));
    server.on('incompleteFileReceived', (_path, i) => n.transfer('received', i));
    server.on('fileCopied', (_to, i) => {
      n.copiesVia.set(i.via, (n.copiesVia.get(i.via) ?? 0) + 1);
      n.copiedBytes += i.bytes;
    });
  }

  /** The text exposition: this server's metrics, then the process's. */
  async text(): Promise<string> {
    const own = await this.registry.metrics();
    const proc = await processMetrics().metrics();
    return `${own}\n${proc}`;
  }

  /**
   * The same metrics as `text()`, as prom-client's JSON (`getMetricsAsJSON()`): what the daemon's
   * primary collects from each worker and sums with AggregatorRegistry.aggregate.
   */
  async json(): Promise<MetricsJson> {
    return [...(await this.registry.getMetricsAsJSON()), ...(await processMetrics().getMetricsAsJSON())];
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Serve GET /metrics over HTTP (the `metrics` option). */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const srv = await serveMetrics(host, port, () => this.text(), this.contentType);
    this.httpServer = srv;
    return srv.address() as AddressInfo;
  }

  address(): AddressInfo | null {
    const a = this.httpServer?.address();
    return a && typeof a !== 'string' ? a : null;
  }

  /** Stop serving; open scrapes are cut. */
  close(): Promise<void> {
    const srv = this.httpServer;
    if (!srv) return Promise.resolve();
    this.httpServer = null;
    return new Promise((resolve) => {
      srv.close(() => resolve());
      srv.closeAllConnections();
    });
  }
}
