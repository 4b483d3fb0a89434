// The package as an embedder gets it: `npm pack` of a copy of the checkout (prepack builds dist/),
// installed into an empty project, then imported from TypeScript (strict, library types checked)
// and run against a real client, and its CLI started from node_modules/.bin.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { Client } from 'basic-ftp';
import { ROOT } from './_daemon';

const npm = (args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string =>
  execFileSync('npm', args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });

const EMBEDDER = `import { FtpServer, VirtualAuthorizer, HtpasswdAuthorizer, PostgresAuthorizer, withLockout, MemoryFileSystem } from 'ftpdlib';
import type { FtpServerOptions, TlsOptions, LockoutOptions, FileSystem } from 'ftpdlib';

const users = new VirtualAuthorizer();
users.addUser('alice', 'secret', '/', { perm: 'elr' });
const lockout: LockoutOptions = { maxFailures: 5 };
const fileSystem = (): FileSystem => new MemoryFileSystem({ files: { '/hello.txt': 'hello from the package' } });
const tls: TlsOptions | undefined = undefined;
const options: FtpServerOptions = { host: '127.0.0.1', port: 0, authorizer: withLockout(users, lockout), fileSystem, tls };
const kinds: unknown[] = [HtpasswdAuthorizer, PostgresAuthorizer];
const server = new FtpServer(options);
server.listen().then(() => {
  const a = server.address();
  console.log(JSON.stringify({ port: typeof a === 'object' && a ? a.port : 0, kinds: kinds.length }));
});
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
`;

test('npm pack ships the build, the engine sources and the CLI (no tests, benchmarks or TypeScript sources); an embedder imports it from strict TypeScript and serves a client; its CLI runs', async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-pack-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  // A copy of the tracked files, so that prepack's build writes nothing into the checkout.
  const copy = path.join(work, 'copy');
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of tracked) {
    if (!fs.existsSync(path.join(ROOT, f))) continue; // deleted in the working tree
    fs.mkdirSync(path.dirname(path.join(copy, f)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, f), path.join(copy, f));
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
  const out = path.join(work, 'out');
  fs.mkdirSync(out);
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', out], copy)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = packed.files.map((f) => f.path);
  for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli.js', 'bin/ftpdlib.js', 'scripts/build-native.js', 'src/native/binding.gyp', 'src/native/engine.c', 'conf/demo.yaml', 'vendor/ftp-srv-protocol-parser/src/framer.js']) {
    t.true(files.includes(f), `ships ${f}`);
  }
  const junk = files.filter((f) => /^(test|bench|\.ci)\/|\/test\/|\.tsbuildinfo$|RESULTS\.md$|^src\/.*\.ts$/.test(f));
  t.deepEqual(junk, [], 'no tests, benchmarks, build state or TypeScript sources');

  // An empty project installs the tarball (the engine's build skipped: the stream path serves).
  const app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  // (CI requires the engine for the checkout, FTPDLIB_NATIVE_REQUIRED=1: not for this install.)
  npm(['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(out, packed.filename)], app, { FTPDLIB_SKIP_NATIVE: '1', FTPDLIB_NATIVE_REQUIRED: '0' });

  // README's embedding, with the other authorizers it names, compiled strict with the library's
  // declarations checked (skipLibCheck off): they must not need the package's dev dependencies.
  // Node's own types come from this checkout, as any Node project has them.
  fs.mkdirSync(path.join(app, 'node_modules', '@types'), { recursive: true });
  if (!fs.existsSync(path.join(app, 'node_modules', '@types', 'node'))) {
    fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(app, 'node_modules', '@types', 'node'));
  }
  fs.writeFileSync(path.join(app, 'index.ts'), EMBEDDER);
  fs.writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, skipLibCheck: false, module: 'commonjs', target: 'es2022', esModuleInterop: true, outDir: 'out' }, files: ['index.ts'] }),
  );
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    t.fail(`tsc: ${(err as { stdout?: string }).stdout ?? String(err)}`);
    return;
  }
  const child = spawn(process.execPath, [path.join(app, 'out', 'index.js')], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const first = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve(buf.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`the embedder exited (${code}) before listening`)));
  });
  const { port, kinds } = JSON.parse(first) as { port: number; kinds: number };
  t.is(kinds, 2);
  const c = new Client(10_000);
  t.teardown(() => c.close());
  await c.access({ host: '127.0.0.1', port, user: 'alice', password: 'secret' });
  t.deepEqual((await c.list()).map((f) => f.name), ['hello.txt']);
  c.close();
  child.kill('SIGTERM');
  t.is(await new Promise((resolve) => child.once('exit', resolve)), 0);

  // The CLI from node_modules/.bin: the shipped build, with no ts-node (a dev dependency) to be found.
  const help = execFileSync(path.join(app, 'node_modules', '.bin', 'ftpdlib'), ['--help'], { cwd: app, encoding: 'utf8' });
  t.regex(help, /^Usage: ftpdlib --config FILE/);
  t.false(fs.existsSync(path.join(app, 'node_modules', 'ts-node')));
});
