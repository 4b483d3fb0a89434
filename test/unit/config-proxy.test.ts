// The deployment options (PROXY protocol, metrics): checked once by resolveOptions, naming the key,
// and the same checks, with lines, from the YAML file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { VirtualAuthorizer } from '../../src';
import { ConfigError } from '../../src/config/errors';
import { ConfigFileError, effectiveConfig, loadConfigFile } from '../../src/config/file';
import { resolveOptions, type FtpServerOptions } from '../../src/config/options';

const authorizer = new VirtualAuthorizer();

function keyOf(t: ExecutionContext, opts: Record<string, unknown>): string {
  const err = t.throws(() => resolveOptions({ authorizer, ...opts } as FtpServerOptions)) as ConfigError;
  t.true(err instanceof ConfigError, String(err));
  t.is(err.code, 'FTPD_ERR_CONFIG');
  return err.key;
}

test('defaults: no PROXY protocol, no metrics endpoint', (t) => {
  const o = resolveOptions({ authorizer });
  t.is(o.proxyProtocol, false);
  t.deepEqual(o.trustedProxies, []);
  t.is(o.proxyProtocolTimeout, 5);
  t.false(o.proxyProtocolData);
  t.is(o.metrics, null);
});

test('PROXY protocol options: accepted values', (t) => {
  for (const mode of ['v1', 'v2', 'auto'] as const) {
    const o = resolveOptions({ authorizer, proxyProtocol: mode, trustedProxies: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'] });
    t.is(o.proxyProtocol, mode);
    t.deepEqual(o.trustedProxies, ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
    t.true(Object.isFrozen(o.trustedProxies));
  }
  t.true(resolveOptions({ authorizer, proxyProtocol: 'v2', trustedProxies: ['::1'], proxyProtocolData: true }).proxyProtocolData);
});

test('PROXY protocol options: a ConfigError names the key', (t) => {
  t.is(keyOf(t, { proxyProtocol: true, trustedProxies: ['::1'] }), 'proxyProtocol');
  t.is(keyOf(t, { proxyProtocol: 'v3', trustedProxies: ['::1'] }), 'proxyProtocol');
  t.is(keyOf(t, { proxyProtocol: 'v2' }), 'trustedProxies');
  t.is(keyOf(t, { proxyProtocol: 'v2', trustedProxies: '10.0.0.1' }), 'trustedProxies');
  t.is(keyOf(t, { proxyProtocol: 'v2', trustedProxies: ['10.0.0.1', 'lb.example.net'] }), 'trustedProxies[1]');
  t.is(keyOf(t, { proxyProtocol: 'v2', trustedProxies: ['10.0.0.0/33'] }), 'trustedProxies[0]');
  t.is(keyOf(t, { proxyProtocolTimeout: 0 }), 'proxyProtocolTimeout');
  t.is(keyOf(t, { proxyProtocolData: true }), 'proxyProtocolData');
  t.is(keyOf(t, { proxyProtocolData: 'yes', proxyProtocol: 'v1', trustedProxies: ['::1'] }), 'proxyProtocolData');
});

test('metrics: port and host, host defaulting to loopback; bad values name the key', (t) => {
  t.deepEqual(resolveOptions({ authorizer, metrics: { port: 9121 } }).metrics, { port: 9121, host: '127.0.0.1' });
  t.deepEqual(resolveOptions({ authorizer, metrics: { port: 0, host: '::1' } }).metrics, { port: 0, host: '::1' });
  t.is(keyOf(t, { metrics: 9121 }), 'metrics');
  t.is(keyOf(t, { metrics: {} }), 'metrics.port');
  t.is(keyOf(t, { metrics: { port: 70000 } }), 'metrics.port');
  t.is(keyOf(t, { metrics: { port: 1, host: 'example.com' } }), 'metrics.host');
  t.is(keyOf(t, { metrics: { port: 1, path: '/m' } }), 'metrics.path');
});

function tmpFile(t: ExecutionContext, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'f.yaml');
  fs.writeFileSync(file, text.replace(/^\n/, ''));
  return file;
}

const USERS = `
authorizer:
  type: virtual
  allowPlaintextPasswords: true
  users:
    - { name: alice, password: pw, home: /tmp }
`;

test('the config file: the options load and show in the effective config', (t) => {
  const file = tmpFile(t, `
server:
  proxyProtocol: auto
  trustedProxies: [10.0.0.0/8]
  proxyProtocolData: true
  metrics:
    port: 9121
${USERS}`);
  const cfg = loadConfigFile(file);
  const server = effectiveConfig(cfg).server as Record<string, unknown>;
  t.is(server.proxyProtocol, 'auto');
  t.deepEqual(server.trustedProxies, ['10.0.0.0/8']);
  t.is(server.proxyProtocolTimeout, 5);
  t.true(server.proxyProtocolData);
  t.deepEqual(server.metrics, { port: 9121, host: '127.0.0.1' });
});

test('the config file: bad values are reported with their line and key path', (t) => {
  const file = tmpFile(t, `
server:
  proxyProtocol: v2
  trustedProxies: [10.0.0.1, not-an-address]
  proxyProtocolData: true
  metrics:
    port: 9121
    hots: 127.0.0.1
${USERS}`);
  const err = t.throws(() => loadConfigFile(file)) as ConfigFileError;
  t.true(err instanceof ConfigFileError, String(err));
  const byPath = new Map(err.issues.map((i) => [i.path, i]));
  t.is(byPath.get('server.trustedProxies[1]')?.line, 3, err.message);
  t.regex(byPath.get('server.trustedProxies[1]')?.message ?? '', /expected an IP address or CIDR/);
  t.is(byPath.get('server.metrics.hots')?.line, 7, err.message);
  // The companions of a bad trustedProxies are not reported as well.
  t.false(byPath.has('server.proxyProtocolData'), err.message);
  t.false(byPath.has('server.trustedProxies'), err.message);
});

test('the config file: proxyProtocol without trustedProxies names trustedProxies', (t) => {
  const file = tmpFile(t, `
server:
  proxyProtocol: v1
${USERS}`);
  const err = t.throws(() => loadConfigFile(file)) as ConfigFileError;
  t.deepEqual(
    err.issues.map((i) => [i.path, i.message]),
    [['server.trustedProxies', 'needs at least one address or CIDR when proxyProtocol is on']],
  );
});
