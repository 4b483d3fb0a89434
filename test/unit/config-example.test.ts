// The shipped files in conf/ load cleanly and stay complete, so they cannot rot.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { DEFAULTS } from '../../src/config/options';
import { CONFIG_SCHEMA, configuredHomes, effectiveConfig, loadConfigFile } from '../../src/config/file';
import { schemaKeys } from '../../src/config/schema';

const CONF = path.join(__dirname, '..', '..', 'conf');
const EXAMPLE = path.join(CONF, 'ftpdlib.example.yaml');
const DEMO = path.join(CONF, 'demo.yaml');

test('the example config loads cleanly', (t) => {
  const cfg = loadConfigFile(EXAMPLE, { env: {} });
  t.is(cfg.authorizer.type, 'virtual');
  t.truthy(cfg.lockout);
});

test('the example documents every option the schema knows (active or commented out)', (t) => {
  const text = fs.readFileSync(EXAMPLE, 'utf8');
  // The last segment of each key path must appear as "key:" on a line, possibly commented, or in a flow mapping.
  const missing = schemaKeys(CONFIG_SCHEMA)
    .map((k) => k.split('.').pop()!.replace(/\[\]$/, ''))
    .filter((leaf) => leaf !== '*')
    .filter((leaf) => !new RegExp(`(^|[\\s{,#])${leaf}:`, 'm').test(text));
  t.deepEqual([...new Set(missing)], []);
});

test('every server option of the library is in the schema, and the example shows the library defaults', (t) => {
  const serverKeys = schemaKeys(CONFIG_SCHEMA).filter((k) => /^server\.[^.]+$/.test(k)).map((k) => k.slice('server.'.length));
  for (const key of Object.keys(DEFAULTS)) t.true(serverKeys.includes(key), key);
  const example = parse(fs.readFileSync(EXAMPLE, 'utf8')).server as Record<string, unknown>;
  for (const [key, value] of Object.entries(example)) {
    if (key in DEFAULTS) t.deepEqual(value, (DEFAULTS as Record<string, unknown>)[key], `server.${key} in the example is not the default`);
  }
  // The example's lockout section is the defaults too: leaving values out changes nothing.
  const exampleLockout = parse(fs.readFileSync(EXAMPLE, 'utf8')).lockout;
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'ftpdlib-example-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bare = path.join(dir, 'f.yaml');
  fs.writeFileSync(bare, 'authorizer: { type: virtual }\nlockout: {}\n');
  t.deepEqual(exampleLockout, effectiveConfig(loadConfigFile(bare)).lockout);
});

test('the demo config loads cleanly and is what --demo always was', (t) => {
  const cfg = loadConfigFile(DEMO, { env: {} });
  const root = path.dirname(CONF);
  t.is(cfg.server.host, '127.0.0.1');
  t.is(cfg.server.port, 2121);
  t.deepEqual(cfg.server.tls, { certFile: path.join(root, '.demo-tls', 'cert.pem'), keyFile: path.join(root, '.demo-tls', 'key.pem') });
  const homes = configuredHomes(cfg);
  t.deepEqual(
    homes.map((h) => [h.user, h.plainPassword, h.home, h.perm]),
    [['demo', 'demo', path.join(root, 'demo-root'), 'elradfmwMT']],
  );
  t.deepEqual(cfg.demo, {
    createHomes: true,
    readme: 'Welcome to ftpdlib. Upload, download, rename and delete files here.\n',
    selfSignedCert: true,
    printLogin: true,
  });
  t.is(cfg.logging.level, 'warn');
});

test('the systemd unit is hardened and reloads with SIGHUP', (t) => {
  const unit = fs.readFileSync(path.join(CONF, 'ftpdlib.service'), 'utf8');
  const directives = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) directives.set(m[1], [...(directives.get(m[1]) ?? []), m[2]]);
  }
  const one = (k: string): string | undefined => directives.get(k)?.[0];
  t.is(one('NoNewPrivileges'), 'yes');
  t.is(one('ProtectSystem'), 'strict');
  t.is(one('ProtectHome'), 'yes');
  t.is(one('PrivateTmp'), 'yes');
  t.truthy(one('ReadWritePaths'));
  t.deepEqual(one('CapabilityBoundingSet')?.split(' ').sort(), ['CAP_NET_BIND_SERVICE', 'CAP_SETGID', 'CAP_SETUID']);
  t.is(one('RestrictAddressFamilies'), 'AF_INET AF_INET6 AF_UNIX');
  t.is(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  t.regex(one('ExecStart') ?? '', /--config /);
  t.true(directives.has('AmbientCapabilities'));
});
