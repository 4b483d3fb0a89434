// ftpdlib under benchmark, run as its own process so its CPU and PSS can be measured:
//   node -r ts-node/register/transpile-only bench/servers/ftpdlib.ts --port 0 --root DIR [--stream]
//        [--pasv 50000-50999] [--auth scrypt|plain] [--tls-cert FILE --tls-key FILE]
//        [--memory-trim-delay SECONDS] [--heap-reduce-delay SECONDS]  (the server's memoryTrimDelay
//        and heapReduceDelay; 0 = never) [--io-nice N] [--io-threads N] [--solo 0|1]  (the engine's ioNice,
//        threads and soloThread: configureNative) [--congestion auto|system|NAME]  (dataCongestionControl)
// --tls-cert/--tls-key: explicit FTPS with TLS required on the control and data connections
// (tlsControlRequired, tlsDataRequired). Without --stream, FTPS transfers of files go through the
// engine (nativeTls); with it, through Node's TLS socket.
// (bench/run.js may instead run a transpiled copy against a built dist/; FTPDLIB_IMPL names the
// module to load, default ../../src.)
// Prints {"port": N} on stdout once listening. On SIGUSR2 (or a "eld" line on stdin) prints
// {"eld": {p50, p99, max, mean (ms), count, gc}} for perf_hooks.monitorEventLoopDelay, resets it,
// and turns the monitor on if it was off, off if it was on (it starts off); `gc` sums up V8's
// collections while it was on (bench/gc-window.js).
// A "gc" line on stdin runs a full GC (when started with --expose-gc) and prints {"gc": true};
// a "stats" line prints {"stats": {memoryTrims, heapReductions, spaces: {name: [size, used, resident] KiB}}};
// "prof-start" / "prof-stop FILE" take a V8 CPU profile of what runs in between.
import * as path from 'path';

function arg(name: string, dflt?: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
let server: any = null;

async function main(): Promise<void> {
  const port = Number(arg('--port', '0'));
  const root = path.resolve(arg('--root', '.') as string);
  const stream = process.argv.includes('--stream');
  const [pasvMin, pasvMax] = (arg('--pasv', '50000-50999') as string).split('-').map(Number);
  const tlsCert = arg('--tls-cert');
  const tlsKey = arg('--tls-key');
  const impl = process.env.FTPDLIB_IMPL || path.join(__dirname, '..', '..', 'src');

  // Loop delay and V8's collector over the phase between two reports (bench/gc-window.js),
  // which bench/run.js asks for around "many". This file also runs as a transpiled copy in
  // .bench/run/, two levels below the repository as here.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { phaseReporter } = require(path.join(__dirname, '..', '..', 'bench', 'gc-window.js')) as { phaseReporter: () => () => object };
  const phase = phaseReporter();
  const report = (): void => {
    process.stdout.write(JSON.stringify(phase()) + '\n');
  };
  process.on('SIGUSR2', report);
  process.stdin.setEncoding('utf8');
  // For profiling by hand after a warm-up: "prof-start" on stdin starts the V8 CPU profiler,
  // "prof-stop FILE" writes a .cpuprofile (open it in Chrome DevTools) and prints {"prof": FILE}.
  let prof: import('inspector').Session | null = null;
  process.stdin.on('data', (d: string) => {
    if (d.startsWith('prof-start')) {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const { Session } = require('inspector') as typeof import('inspector');
      prof = new Session();
      prof.connect();
      prof.post('Profiler.enable', () => prof!.post('Profiler.start'));
      return;
    }
    if (d.startsWith('prof-stop') && prof) {
      const file = d.slice('prof-stop'.length).trim() || `ftpdlib-${process.pid}.cpuprofile`;
      const p = prof;
      prof = null;
      p.post('Profiler.stop', (err, res) => {
        if (!err) require('fs').writeFileSync(file, JSON.stringify(res.profile));
        p.disconnect();
        process.stdout.write(JSON.stringify({ prof: err ? null : file }) + '\n');
      });
      return;
    }
    if (d.startsWith('stats')) {
      const spaces: Record<string, number[]> = {};
      for (const x of require('v8').getHeapSpaceStatistics() as Array<{ space_name: string; space_size: number; space_used_size: number; physical_space_size: number }>) {
        if (x.physical_space_size > 0) spaces[x.space_name] = [x.space_size, x.space_used_size, x.physical_space_size].map((b) => Math.round(b / 1024));
      }
      const srv = server as { memoryTrims?: number; heapReductions?: number } | null;
      process.stdout.write(JSON.stringify({ stats: { memoryTrims: srv?.memoryTrims ?? null, heapReductions: srv?.heapReductions ?? null, spaces } }) + '\n');
      return;
    }
    if (d.includes('eld')) report();
    if (d.includes('gc')) {
      // full collection (node --expose-gc) so the runner's PSS samples are not GC timing noise
      const g = (globalThis as { gc?: () => void }).gc;
      if (g) g();
      process.stdout.write(JSON.stringify({ gc: !!g, mem: process.memoryUsage() }) + '\n');
    }
  });
  process.stdin.on('error', () => {});

  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const lib = require(impl);
  if (arg('--io-nice', '') !== '') require(path.join(impl, 'native')).configureNative({ ioNice: Number(arg('--io-nice', '')) });
  if (arg('--io-threads', '') !== '') require(path.join(impl, 'native')).configureNative({ threads: Number(arg('--io-threads', '')) });
  if (arg('--solo', '') !== '') require(path.join(impl, 'native')).configureNative({ soloThread: arg('--solo', '') === '1' });
  const { FtpServer, VirtualAuthorizer } = lib;
  if (typeof FtpServer !== 'function' || typeof VirtualAuthorizer !== 'function') {
    throw new Error(`${impl} does not export FtpServer and VirtualAuthorizer`);
  }
  // --auth plain: keep the password as given (as the peers' cheap checks do); --auth scrypt:
  // VirtualAuthorizer's default, which hashes it with scrypt
  const auth = arg('--auth', 'scrypt') === 'plain' ? new VirtualAuthorizer({ allowPlaintextPasswords: true }) : new VirtualAuthorizer();
  auth.addUser('bench', 'bench', root, { perm: 'elradfmwMT' });
  server = new FtpServer({
    host: '127.0.0.1',
    port,
    authorizer: auth,
    useSendfile: !stream,
    passivePorts: [pasvMin, pasvMax],
    maxConnections: 5000, // the idle scenario opens 1,000 sessions from one address
    ...(arg('--memory-trim-delay', '') !== '' ? { memoryTrimDelay: Number(arg('--memory-trim-delay', '')) } : {}),
    ...(arg('--heap-reduce-delay', '') !== '' ? { heapReduceDelay: Number(arg('--heap-reduce-delay', '')) } : {}),
    ...(arg('--congestion', '') !== '' ? { dataCongestionControl: arg('--congestion', '') } : {}),
    ...(tlsCert ? { tls: { certFile: tlsCert, keyFile: tlsKey || tlsCert }, tlsControlRequired: true, tlsDataRequired: true } : {}),
  });
  await server.listen();
  process.stdout.write(JSON.stringify({ port: server.address().port, useSendfile: !stream, tls: !!tlsCert }) + '\n');

  let closing = false;
  const stop = (): void => {
    if (closing) process.exit(0);
    closing = true;
    const t = setTimeout(() => process.exit(0), 2000);
    t.unref();
    Promise.resolve(server.close()).then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`ftpdlib bench server failed to start: ${err instanceof Error ? err.stack || err.message : String(err)}\n`);
  process.exit(1);
});
