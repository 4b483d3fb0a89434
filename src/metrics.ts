/**
 * Prometheus metrics of an FtpServer, counted from its typed events into a registry of its own
 * (never prom-client's global one, which belongs to the embedder). `server.metrics()` gives the
 * text; the `metrics` option also serves it over HTTP at /metrics. Nothing listens unless asked.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
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

export class ServerMetrics {
  /** This server's metrics (not the process's); an embedder may merge it into its own. */
  readonly registry = new Registry();
  private httpServer: http.Server | null = null;

  constructor(server: FtpServer) {
    const registers = [this.registry];
    new Gauge({
      name: 'ftpdlib_sessions_open',
      help: 'Control connections open now.',
      registers,
      collect() {
        this.set(server.sessionCount);
      },
    });
    const sessions = new Counter({ name: 'ftpdlib_sessions_total', help: 'Control connections served (sessions started).', registers });
    const logins = new Counter({ name: 'ftpdlib_logins_total', help: 'Logins, by result (ok, failed).', labelNames: ['result'], registers });
    const received = new Counter({ name: 'ftpdlib_received_bytes_total', help: 'File bytes received (STOR, APPE, STOU), complete or not.', registers });
    const sent = new Counter({ name: 'ftpdlib_sent_bytes_total', help: 'File bytes sent (RETR), complete or not.', registers });
    const transfers = new Counter({
      name: 'ftpdlib_transfers_total',
      help: 'File transfers, by command and result (ok, incomplete).',
      labelNames: ['command', 'result'],
      registers,
    });
    const duration = new Histogram({
      name: 'ftpdlib_transfer_duration_seconds',
      help: 'Duration of file transfers, from the preliminary reply to the end, by command.',
      labelNames: ['command'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    const engines = new Counter({
      name: 'ftpdlib_transfer_engine_total',
      help: 'File transfers by the path their bytes took: sendfile, splice or copy (the zero-copy engine), tls (the engine over FTPS) or stream.',
      labelNames: ['engine'],
      registers,
    });
    const copies = new Counter({
      name: 'ftpdlib_copies_total',
      help: 'Server-side copies (SITE CPFR/CPTO) done, by how the bytes moved: copy_file_range, read/write or stream.',
      labelNames: ['via'],
      registers,
    });
    const copied = new Counter({ name: 'ftpdlib_copied_bytes_total', help: 'File bytes copied on the server (SITE CPTO).', registers });
    // Present from the start, so that rates and alerts have a series before the first event.
    logins.inc({ result: 'ok' }, 0);
    logins.inc({ result: 'failed' }, 0);

    const transfer = (bytes: Counter, i: TransferInfo): void => {
      bytes.inc(i.bytes);
      transfers.inc({ command: i.verb, result: i.ok ? 'ok' : 'incomplete' });
      duration.observe({ command: i.verb }, i.seconds);
      engines.inc({ engine: i.engine });
    };
    server.on('connect', () => sessions.inc());
    server.on('login', () => logins.inc({ result: 'ok' }));
    server.on('loginFailed', () => logins.inc({ result: 'failed' }));
    server.on('fileSent', (_path, i) => transfer(sent, i));
    server.on('incompleteFileSent', (_path, i) => transfer(sent, i));
    server.on('fileReceived', (_path, i) => transfer(received, i));
    server.on('incompleteFileReceived', (_path, i) => transfer(received, i));
    server.on('fileCopied', (_to, i) => {
      copies.inc({ via: i.via });
      copied.inc(i.bytes);
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
