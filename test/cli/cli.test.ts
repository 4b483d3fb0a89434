// The daemon as a subprocess: flags, --config, check-config, exit codes.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { parse } from 'yaml';
import { ROOT, buildOnce, login, runCli, startDaemon, tmpDir } from './_daemon';

test('--help explains the config file, check-config, signals and exit codes', async (t) => {
  const r = await runCli(t, ['--help']);
  t.is(r.code, 0, r.stderr);
  for (const s of ['--config FILE', 'check-config FILE', 'hash-password', 'make-cert DIR', '--demo', 'SIGHUP', 'SIGUSR2', 'SIGTERM', 'runAs']) {
    t.true(r.stdout.includes(s), s);
  }
  t.regex(r.stdout, /Exit codes: 0 .*, 1 bad config file or options,\s+2 cannot listen .*,\s+3 a folder to serve is missing or unreadable/s);
});

test('check-config: a good file prints the effective config with secrets masked and exits 0', async (t) => {
  const dir = tmpDir(t);
  const hash = '$scrypt$ln=4,r=8,p=1$c2FsdHNhbHRzYWx0$2E7Ko5XjZhI1oOi2ZdtI0IeiuwAOwl12+ZvW3sbgSmw';
  fs.mkdirSync(path.join(dir, 'alice'));
  fs.writeFileSync(
    path.join(dir, 'ftpdlib.yaml'),
    `server:\n  port: 2100\nauthorizer:\n  type: virtual\n  users:\n    - { name: alice, password: "${hash}", home: alice }\n    - { name: bob, password: "\${BOB_HASH}", home: /nonexistent-home }\n`,
  );
  const r = await runCli(t, ['check-config', path.join(dir, 'ftpdlib.yaml')], { env: { BOB_HASH: hash } });
  t.is(r.code, 0, r.stderr);
  const shown = parse(r.stdout);
  t.is(shown.server.port, 2100);
  t.is(shown.server.maxConnections, 512);
  t.is(shown.authorizer.users[0].home, path.join(dir, 'alice'));
  t.is(shown.authorizer.users[0].password, '********');
  t.false(r.stdout.includes(hash));
  // A home that is not there is a warning naming the line: the daemon would exit with 3.
  t.regex(r.stderr, /warning: cannot serve \/nonexistent-home \(user bob, .*ftpdlib\.yaml:7: authorizer\.users\[1\]\.home\): ENOENT/);
});

test('check-config: a broken file exits 1 and lists every error with its line', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'broken.yaml');
  fs.writeFileSync(
    file,
    [
      'server:',
      '  port: 99999',
      '  passivePorts: [5000, 4000]',
      '  tls: { certFile: c.pem }',
      'authorizer:',
      '  type: virtual',
      '  users:',
      '    - name: alice',
      '      password: plain',
      '      home: /tmp',
      '      perm: elrX',
      'logging: { level: chatty, colour: true }',
      '',
    ].join('\n'),
  );
  const r = await runCli(t, ['check-config', file]);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  const lines = r.stderr.split('\n');
  const expectLine = (prefix: string): void => {
    t.true(
      lines.some((l) => l.startsWith(`${file}:${prefix}`)),
      `${prefix}\n${r.stderr}`,
    );
  };
  expectLine('2: server.port: expected an integer from 0 to 65535, got 99999');
  expectLine('3: server.passivePorts: expected first <= last');
  expectLine('4: server.tls: missing keyFile');
  expectLine('9: authorizer.users[0].password: expected a $scrypt$ hash');
  expectLine('11: authorizer.users[0].perm: unknown permission letter "X"');
  expectLine('12: logging.level: expected one of trace, debug, info, warn, error, fatal, got "chatty"');
  expectLine('12: logging.colour: unknown key');
});

test("pyftpdlib's flags: serve a folder read-write to one user; SIGINT stops with 0", async (t) => {
  const dir = tmpDir(t);
  const d = await startDaemon(t, ['-i', '127.0.0.1', '-p', '0', '-d', dir, '-w', '-u', 'joe', '-P', 'pw']);
  t.regex(d.stderr(), /serving .* \(read-write\)\nlog in as user joe/);
  const c = await login(t, d.port, 'joe', 'pw');
  await c.uploadFrom(Readable.from([Buffer.from('hello')]), 'up.txt');
  c.close();
  t.is(fs.readFileSync(path.join(dir, 'up.txt'), 'utf8'), 'hello');
  process.kill(d.pid, 'SIGINT');
  t.deepEqual(await d.exited, { code: 0, signal: null });
});

test('the demo config (a copy, on port 0): makes the folder with README.txt, a self-signed certificate, prints the login and curl lines', async (t) => {
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'conf'));
  fs.copyFileSync(path.join(ROOT, 'conf', 'demo.yaml'), path.join(dir, 'conf', 'demo.yaml'));
  const d = await startDaemon(t, ['--config', path.join(dir, 'conf', 'demo.yaml'), '-p', '0']);
  await d.waitFor('stderr', /curl --ssl-reqd/);
  const err = d.stderr();
  t.regex(err, new RegExp(`log in as user demo, password demo: ${path.join(dir, 'demo-root')} \\(read-write\\)`));
  t.regex(err, new RegExp(`FTPS: explicit \\(AUTH TLS\\) with ${path.join(dir, '.demo-tls', 'cert.pem')}`));
  t.regex(err, new RegExp(`try: curl ftp://demo:demo@127\\.0\\.0\\.1:${d.port}/\\n {5}curl --ssl-reqd -k ftp://demo:demo@127\\.0\\.0\\.1:${d.port}/`));
  t.regex(fs.readFileSync(path.join(dir, 'demo-root', 'README.txt'), 'utf8'), /^Welcome to ftpdlib/);
  const c = await login(t, d.port, 'demo', 'demo');
  t.deepEqual(
    (await c.list()).map((f) => f.name),
    ['README.txt'],
  );
});

test('npm start serves the demo config, and a SIGTERM to npm stops the server (npm exits on SIGTERM without passing it on; the server went on serving)', async (t) => {
  // A copy of the built package to run in, so that the demo's folder is made there.
  const built = buildOnce();
  const dir = tmpDir(t);
  fs.copyFileSync(path.join(built, 'package.json'), path.join(dir, 'package.json'));
  fs.cpSync(path.join(built, 'conf'), path.join(dir, 'conf'), { recursive: true });
  for (const d of ['bin', 'dist', 'src']) fs.symlinkSync(path.join(built, d), path.join(dir, d));
  // The build resolves its packages from the checkout's node_modules (as spawnCli's runs do).
  const env = { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') };
  const npm = spawn('npm', ['start', '--', '-p', '0'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => npm.kill('SIGKILL'));
  // The daemon prints its login details on stderr (stdout may carry the log).
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const take = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on ftp:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) resolve(Number(m[1]));
    };
    npm.stdout!.on('data', take);
    npm.stderr!.on('data', take);
    npm.once('exit', (code) => reject(new Error(`npm start exited (${code}): ${out}`)));
  });
  const greeting = await new Promise<string>((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('data', (d) => {
      c.destroy();
      resolve(d.toString());
    });
    c.once('error', reject);
  });
  t.regex(greeting, /^220 /);
  t.true(fs.existsSync(path.join(dir, 'demo-root')), 'the demo folder is made where npm start runs');
  npm.kill('SIGTERM');
  await new Promise((resolve) => npm.once('exit', resolve));
  // The server is gone with it: its port refuses connections.
  const refuses = (): Promise<boolean> =>
    new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('error', () => resolve(true));
      c.once('connect', () => {
        c.destroy();
        resolve(false);
      });
    });
  let stopped = false;
  for (let i = 0; i < 150 && !stopped; i++) {
    stopped = await refuses();
    if (!stopped) await new Promise((r) => setTimeout(r, 100));
  }
  t.true(stopped, 'the demo server stopped with npm (its port still accepted connections 15 s later)');
});

test('--config refuses the one-folder flags, and --demo with --config', async (t) => {
  const r = await runCli(t, ['--config', 'x.yaml', '-w']);
  t.is(r.code, 1);
  t.regex(r.stderr, /--write: set in the config file instead/);
});

test('a port in use exits with 2', async (t) => {
  const dir = tmpDir(t);
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => blocker.close());
  const port = (blocker.address() as net.AddressInfo).port;
  fs.writeFileSync(
    path.join(dir, 'f.yaml'),
    `server: { host: 127.0.0.1, port: 2121 }\nauthorizer:\n  type: virtual\n  anonymous: { home: ${dir} }\n`,
  );
  const r = await runCli(t, ['--config', path.join(dir, 'f.yaml'), '-p', String(port)]);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, new RegExp(`port ${port} is already in use`));
});

test('a missing or unusable folder exits with 3, naming the user and the line', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'a-file'), '');
  const file = path.join(dir, 'f.yaml');
  fs.writeFileSync(
    file,
    [
      'server: { host: 127.0.0.1, port: 0 }',
      'authorizer:',
      '  type: virtual',
      '  allowPlaintextPasswords: true',
      '  users:',
      '    - { name: alice, password: pw, home: missing }',
      '    - { name: bob, password: pw, home: a-file }',
      '',
    ].join('\n'),
  );
  const r = await runCli(t, ['--config', file]);
  t.is(r.code, 3, r.stderr);
  t.true(r.stderr.includes(`cannot serve ${path.join(dir, 'missing')} (user alice, ${file}:6: authorizer.users[0].home): ENOENT`), r.stderr);
  t.true(r.stderr.includes(`cannot serve ${path.join(dir, 'a-file')} (user bob, ${file}:7: authorizer.users[1].home): not a folder`), r.stderr);
});

test('a bad config file exits with 1 before listening', async (t) => {
  const dir = tmpDir(t);
  fs.writeFileSync(path.join(dir, 'f.yaml'), 'server:\n  port: -1\nauthorizer: { type: virtual }\n');
  const r = await runCli(t, ['--config', path.join(dir, 'f.yaml')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /f\.yaml:2: server\.port: expected an integer from 0 to 65535, got -1/);
});
