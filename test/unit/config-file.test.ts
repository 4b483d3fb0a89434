import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import bunyan from 'bunyan';
import { hashPassword } from '../../src/auth/password';
import { LockoutAuthorizer } from '../../src/auth/lockout';
import { ConfigError } from '../../src/config/errors';
import {
  ConfigFileError,
  buildFromConfig,
  configuredHomes,
  effectiveConfig,
  explainServerError,
  formatEffectiveConfig,
  keyToPath,
  loadConfigFile,
  substituteEnv,
  type ConfigIssue,
  type LoadedConfig,
} from '../../src/config/file';
import { ReloadableAuthorizer } from '../../src/config/reloadable-authorizer';
import { FtpServer } from '../../src/ftp/server';

const CLIENT = { address: '127.0.0.1', port: 40000 };
const quiet = bunyan.createLogger({ name: 'test', streams: [] });

function tmpDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Write `text` (leading newline dropped, so line 1 is the first line written) to dir/name. */
function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text.replace(/^\n/, ''));
  return file;
}

function issuesOf(t: ExecutionContext, fn: () => unknown): ConfigIssue[] {
  const err = t.throws(fn) as ConfigFileError;
  t.true(err instanceof ConfigFileError, String(err));
  t.is(err.code, 'FTPD_ERR_CONFIG_FILE');
  return err.issues;
}

/** The one issue at `keyPath`: its line and message. */
function at(t: ExecutionContext, issues: ConfigIssue[], keyPath: string): ConfigIssue {
  const found = issues.filter((i) => i.path === keyPath);
  t.is(found.length, 1, `one issue at ${keyPath}: ${JSON.stringify(issues, null, 1)}`);
  return found[0];
}

const PLAIN_USERS = `
authorizer:
  type: virtual
  allowPlaintextPasswords: true
  users:
    - { name: alice, password: pw, home: /tmp }
`;

test('a minimal file loads, defaults filled in', (t) => {
  const dir = tmpDir(t);
  const cfg = loadConfigFile(write(dir, 'f.yaml', PLAIN_USERS));
  t.is(cfg.file, path.join(dir, 'f.yaml'));
  t.deepEqual(cfg.server, {});
  t.deepEqual(cfg.logging, { level: 'info' });
  t.is(cfg.lockout, undefined);
  t.deepEqual(cfg.authorizer, {
    type: 'virtual',
    allowPlaintextPasswords: true,
    users: [{ name: 'alice', password: 'pw', home: '/tmp', perm: 'elr', overrides: [] }],
    usersFromFile: [],
  });
});

test('a YAML syntax error names its line', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `
server:
  port: 21
  banner: "unterminated
authorizer: {type: virtual}
`);
  const issues = issuesOf(t, () => loadConfigFile(file));
  t.is(issues[0].file, file);
  t.true(issues[0].line >= 3 && issues[0].line <= 5, JSON.stringify(issues));
});

test('duplicate keys are a syntax error with their line', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `${PLAIN_USERS}server:\n  port: 1\n  port: 2\n`);
  const issues = issuesOf(t, () => loadConfigFile(file));
  t.is(issues.length, 1);
  t.is(issues[0].line, 8);
  t.regex(issues[0].message, /unique/i);
});

test('a missing file and an empty file are errors naming the file', (t) => {
  const dir = tmpDir(t);
  const missing = issuesOf(t, () => loadConfigFile(path.join(dir, 'nope.yaml')));
  t.regex(missing[0].message, /cannot read the file: ENOENT/);
  const empty = issuesOf(t, () => loadConfigFile(write(dir, 'empty.yaml', '')));
  t.regex(empty[0].message, /expected a mapping/);
});

test('unknown keys are errors at their line, with the closest known key', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `
server:
  maxconnections: 5
  frobnicate: true
authorizer:
  type: virtual
  allowPlaintextPasswords: true
  users:
    - name: alice
      password: pw
      home: /tmp
      prem: elr
loging: {}
`);
  const issues = issuesOf(t, () => loadConfigFile(file));
  const a = at(t, issues, 'server.maxconnections');
  t.is(a.line, 2);
  t.is(a.message, 'unknown key (did you mean maxConnections?)');
  t.is(at(t, issues, 'server.frobnicate').line, 3);
  t.regex(at(t, issues, 'authorizer.users[0].prem').message, /did you mean perm\?/);
  t.is(at(t, issues, 'authorizer.users[0].prem').line, 11);
  t.is(at(t, issues, 'loging').line, 12);
  t.regex(at(t, issues, 'loging').message, /did you mean logging\?/);
  // Sorted by line, and formatted as file:line: key: message.
  t.deepEqual(
    issues.map((i) => i.line),
    [...issues.map((i) => i.line)].sort((x, y) => x - y),
  );
  t.true((t.throws(() => loadConfigFile(file)) as Error).message.startsWith(`${file}:2: server.maxconnections: unknown key`));
});

test('server options are checked by resolveOptions, every bad one reported with its line', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `
server:
  host: example.com
  port: 70000
  passivePorts: [60100, 60000]
  masqueradeAddressMap:
    10.0.0.5: not-an-ip
  encoding: ebcdic
  tlsControlRequired: true
${PLAIN_USERS}`);
  const issues = issuesOf(t, () => loadConfigFile(file));
  t.is(at(t, issues, 'server.host').line, 2);
  t.is(at(t, issues, 'server.port').line, 3);
  t.is(at(t, issues, 'server.port').message, 'expected an integer from 0 to 65535, got 70000');
  const pp = at(t, issues, 'server.passivePorts');
  t.is(pp.line, 4);
  t.is(pp.message, 'expected first <= last');
  const m = at(t, issues, 'server.masqueradeAddressMap.10.0.0.5');
  t.is(m.line, 6);
  t.regex(m.message, /expected an IPv4 address/);
  t.is(at(t, issues, 'server.encoding').line, 7);
  t.is(at(t, issues, 'server.tlsControlRequired').message, 'needs the tls option (certificate and key)');
  t.is(at(t, issues, 'server.tlsControlRequired').line, 8);
});

test('masqueradeAddress and the values of masqueradeAddressMap must be IPv4: PASV announces four bytes', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `
server:
  masqueradeAddress: "2001:db8::7"
${PLAIN_USERS}`);
  const m = at(t, issuesOf(t, () => loadConfigFile(file)), 'server.masqueradeAddress');
  t.is(m.line, 2);
  t.regex(m.message, /expected an IPv4 address/);
  const map = write(dir, 'g.yaml', `
server:
  masqueradeAddressMap:
    "::1": "2001:db8::7"
${PLAIN_USERS}`);
  t.regex(at(t, issuesOf(t, () => loadConfigFile(map)), 'server.masqueradeAddressMap.::1').message, /expected an IPv4 address/);
});

test('the library and the file agree: a value resolveOptions accepts loads, one it refuses does not', (t) => {
  const dir = tmpDir(t);
  for (const [yaml, ok] of [
    ['maxLineLength: 512', true],
    ['maxLineLength: 511', false],
    ['host: localhost', true],
    ['dataConnectTimeout: 0', false],
    ['tlsExemptUsers: [anonymous]', true],
    ['tlsExemptUsers: anonymous', false],
  ] as const) {
    const file = write(dir, 'f.yaml', `server:\n  ${yaml}\n${PLAIN_USERS}`);
    if (ok) t.notThrows(() => loadConfigFile(file), yaml);
    else t.is(issuesOf(t, () => loadConfigFile(file))[0].line, 2, yaml);
  }
});

test('tls: certificate paths are resolved from the file, a missing key is reported, unreadable files map to their line', (t) => {
  const dir = tmpDir(t);
  const noKey = write(dir, 'a.yaml', `server:\n  tls:\n    certFile: cert.pem\n${PLAIN_USERS}`);
  const i = at(t, issuesOf(t, () => loadConfigFile(noKey)), 'server.tls');
  t.is(i.line, 2);
  t.is(i.message, 'missing keyFile (expected a path)');

  const file = write(dir, 'b.yaml', `server:\n  tls:\n    certFile: cert.pem\n    keyFile: key.pem\n${PLAIN_USERS}`);
  const cfg = loadConfigFile(file);
  t.is(cfg.server.tls!.certFile, path.join(dir, 'cert.pem'));
  const built = buildFromConfig(cfg, { logger: quiet });
  const err = explainServerError(cfg, t.throws(() => new FtpServer(built.options))) as ConfigFileError;
  t.true(err instanceof ConfigFileError);
  t.is(err.issues[0].path, 'server.tls.certFile');
  t.is(err.issues[0].line, 3);
  t.regex(err.issues[0].message, /cannot read .*cert\.pem: ENOENT/);
});

test('schema errors: wrong type, out of range, not in a list of choices, missing required key, unknown authorizer type', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `
authorizer:
  type: virtual
  allowPlaintextPasswords: yes
  users:
    - name: alice
      password: pw
lockout:
  maxFailures: 0
  window: soon
  keys: everything
logging:
  level: loud
`);
  const issues = issuesOf(t, () => loadConfigFile(file));
  t.is(at(t, issues, 'authorizer.allowPlaintextPasswords').message, 'expected true or false, got "yes"');
  t.is(at(t, issues, 'authorizer.users[0]').message, 'missing home (expected a path)');
  t.is(at(t, issues, 'authorizer.users[0]').line, 5);
  t.is(at(t, issues, 'lockout.maxFailures').message, 'expected an integer from 1 to 1000000, got 0');
  t.is(at(t, issues, 'lockout.maxFailures').line, 8);
  t.regex(at(t, issues, 'lockout.window').message, /^expected a number/);
  t.is(at(t, issues, 'lockout.keys').message, 'expected one of address+user, address, got "everything"');
  t.is(at(t, issues, 'logging.level').line, 12);

  const noAuth = issuesOf(t, () => loadConfigFile(write(dir, 'g.yaml', 'server: {port: 21}\n')));
  t.is(noAuth[0].path, '');
  t.regex(noAuth[0].message, /^missing authorizer/);

  const ldap = issuesOf(t, () => loadConfigFile(write(dir, 'h.yaml', 'authorizer:\n  type: ldap\n')));
  t.is(ldap[0].path, 'authorizer.type');
  t.is(ldap[0].line, 2);
  t.is(ldap[0].message, 'expected virtual | htpasswd | postgres | unix, got "ldap"');
});

test('virtual users: plain text only with allowPlaintextPasswords; hashes, letters, homes and duplicates checked with lines', async (t) => {
  const dir = tmpDir(t);
  const hash = await hashPassword('pw', { ln: 4, r: 8, p: 1 });
  const file = write(dir, 'f.yaml', `
authorizer:
  type: virtual
  users:
    - name: alice
      password: plain
      home: /tmp
    - name: bob
      password: "${hash}"
      home: /tmp
      perm: elrx
    - name: carol
      password: "$scrypt$ln=99,r=8,p=1$AAAA$BBBB"
      home: /tmp
    - name: bob
      password: "${hash}"
      home: /tmp
      overrides:
        - { path: /up, perm: w, recursive: maybe }
    - name: dave
      home: /tmp
`);
  const issues = issuesOf(t, () => loadConfigFile(file));
  const plain = at(t, issues, 'authorizer.users[0].password');
  t.is(plain.line, 5);
  t.regex(plain.message, /expected a \$scrypt\$ hash .*allowPlaintextPasswords: true/);
  t.is(at(t, issues, 'authorizer.users[1].perm').line, 10);
  t.regex(at(t, issues, 'authorizer.users[1].perm').message, /"x"/);
  t.is(at(t, issues, 'authorizer.users[2].password').line, 12);
  t.regex(at(t, issues, 'authorizer.users[2].password').message, /scrypt/);
  t.is(at(t, issues, 'authorizer.users[3].name').line, 14);
  t.regex(at(t, issues, 'authorizer.users[3].name').message, /duplicate user "bob" \(first at .*f\.yaml:7\)/);
  t.is(at(t, issues, 'authorizer.users[3].overrides[0].recursive').line, 18);
  t.regex(at(t, issues, 'authorizer.users[4].password').message, /^missing \(expected a \$scrypt\$ hash/);
  t.is(at(t, issues, 'authorizer.users[4].password').line, 19);

  // The same users with plain text allowed and the mistakes fixed load, and log in.
  const ok = write(dir, 'ok.yaml', `
authorizer:
  type: virtual
  allowPlaintextPasswords: true
  users:
    - { name: alice, password: plain, home: /tmp }
    - { name: bob, password: "${hash}", home: /tmp, perm: elrw }
  anonymous: { home: /tmp }
`);
  const built = buildFromConfig(loadConfigFile(ok), { logger: quiet });
  const a = built.options.authorizer;
  await t.notThrowsAsync(a.validateAuthentication('alice', 'plain', CLIENT));
  await t.notThrowsAsync(a.validateAuthentication('bob', 'pw', CLIENT));
  await t.notThrowsAsync(a.validateAuthentication('anonymous', 'x@y', CLIENT));
  await t.throwsAsync(a.validateAuthentication('bob', 'plain', CLIENT));
  t.true(await a.hasPerm('bob', 'w', '/'));
  t.false(await a.hasPerm('anonymous', 'w', '/'));
  await built.close();
});

test('a users entry named anonymous without a password is an error: anonymous access is only the anonymous section', (t) => {
  const dir = tmpDir(t);
  for (const pw of ['', '"${ANON_PW}"']) {
    const file = write(dir, 'a.yaml', `
authorizer:
  type: virtual
  allowPlaintextPasswords: true
  users:
    - { name: anonymous, password: ${pw === '' ? '""' : pw}, home: /tmp, perm: elrw }
`);
    const issue = at(t, issuesOf(t, () => loadConfigFile(file, { env: { ANON_PW: '' } })), 'authorizer.users[0].password');
    t.is(issue.line, 5);
    t.regex(issue.message, /anonymous access \(any password\) is the authorizer.anonymous section/);
  }
});

test('relative homes and paths are taken from the config file folder', (t) => {
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'sub'));
  const file = write(dir, 'sub/f.yaml', `
authorizer:
  type: virtual
  allowPlaintextPasswords: true
  users:
    - { name: alice, password: pw, home: ../files }
logging: { file: ftpd.log }
`);
  const cfg = loadConfigFile(file);
  t.deepEqual(
    configuredHomes(cfg).map((h) => h.home),
    [path.join(dir, 'files')],
  );
  t.is(cfg.logging.file, path.join(dir, 'sub', 'ftpd.log'));
  t.regex(configuredHomes(cfg)[0].where, /f\.yaml:5: authorizer\.users\[0\]\.home$/);
});

test('usersFile: users are read from it, and its errors name that file and its lines', (t) => {
  const dir = tmpDir(t);
  write(dir, 'users.yaml', `
- { name: bob, password: pw, home: /tmp }
- name: carol
  password: pw
  home: /tmp
  perm: elrq
`);
  const file = write(dir, 'f.yaml', `${PLAIN_USERS}  usersFile: users.yaml\n`);
  const issues = issuesOf(t, () => loadConfigFile(file));
  t.is(issues.length, 1);
  t.true(issues[0].file.endsWith('users.yaml'));
  t.is(issues[0].line, 5);
  t.is(issues[0].path, 'users[1].perm');

  write(dir, 'users.yaml', `users:\n  - { name: bob, password: pw, home: /tmp }\n  - { name: alice, password: pw, home: /tmp }\n`);
  const dup = issuesOf(t, () => loadConfigFile(file));
  t.true(dup[0].file.endsWith('users.yaml'));
  t.is(dup[0].line, 3);
  t.is(dup[0].path, 'users[1].name');
  t.regex(dup[0].message, /duplicate user "alice" \(first at .*f\.yaml:5\)/);

  write(dir, 'users.yaml', `users:\n  - { name: bob, password: pw, home: /tmp }\n`);
  const cfg = loadConfigFile(file);
  t.deepEqual(
    configuredHomes(cfg).map((h) => h.user),
    ['alice', 'bob'],
  );

  fs.rmSync(path.join(dir, 'users.yaml'));
  const gone = issuesOf(t, () => loadConfigFile(file));
  t.regex(gone[0].message, /cannot read the file: ENOENT/);
});

test('substituteEnv: ${NAME}, $${ escape, unset and malformed names', (t) => {
  const env = { A: 'x', EMPTY: '' };
  const problems: string[] = [];
  const report = (m: string): number => problems.push(m);
  t.is(substituteEnv('pre-${A}-${EMPTY}-post', env, report), 'pre-x--post');
  t.is(substituteEnv('$${A} and $A and $$ and $', env, report), '${A} and $A and $$ and $');
  t.is(substituteEnv('$scrypt$ln=14,r=8,p=1$abc$def', env, report), '$scrypt$ln=14,r=8,p=1$abc$def');
  t.deepEqual(problems, []);
  substituteEnv('${NOPE}', env, report);
  substituteEnv('${A', env, report);
  substituteEnv('${A-B}', env, report);
  t.deepEqual(problems, [
    'environment variable NOPE is not set',
    'unterminated ${ (write $${ for a literal ${)',
    '${ } must hold an environment variable name (letters, digits, _); write $${ for a literal ${',
  ]);
});

test('environment variables fill string values; an unset one is an error with its line', (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `
server:
  banner: "\${BANNER} $\${literal}"
authorizer:
  type: postgres
  host: db
  password: \${PG_PASS}
`);
  const cfg = loadConfigFile(file, { env: { BANNER: 'hello', PG_PASS: 's3cret' } });
  t.is(cfg.server.banner, 'hello ${literal}');
  t.is((cfg.authorizer as { password?: string }).password, 's3cret');
  const issues = issuesOf(t, () => loadConfigFile(file, { env: { BANNER: 'hello' } }));
  t.is(issues.length, 1);
  t.is(issues[0].path, 'authorizer.password');
  t.is(issues[0].line, 6);
  t.is(issues[0].message, 'environment variable PG_PASS is not set');
});

test('check-config output masks passwords, hashes and connection-string passwords', async (t) => {
  const dir = tmpDir(t);
  const hash = await hashPassword('pw', { ln: 4, r: 8, p: 1 });
  const v = loadConfigFile(write(dir, 'v.yaml', `authorizer:\n  type: virtual\n  users:\n    - { name: a, password: "${hash}", home: /tmp }\n`));
  const text = formatEffectiveConfig(v);
  t.false(text.includes(hash));
  t.regex(text, /password: "\*{8}"/);
  t.regex(text, /maxConnections: 512/, 'server defaults are shown');
  t.regex(text, /perm: elr/, 'user defaults are shown');

  const pg = loadConfigFile(
    write(dir, 'p.yaml', `authorizer:\n  type: postgres\n  connectionString: postgres://ftp:hunter2@db:5432/ftp?sslmode=require\n  password: hunter3\n`),
  );
  const shown = effectiveConfig(pg).authorizer as Record<string, unknown>;
  t.is(shown.connectionString, 'postgres://ftp:********@db:5432/ftp?sslmode=require');
  t.is(shown.password, '********');
  t.is(shown.cacheTtl, 5);
  t.false(formatEffectiveConfig(pg).includes('hunter'));
  t.is((effectiveConfig(pg, true).authorizer as Record<string, unknown>).password, 'hunter3');
  // pg reads the password up to the last @ of the authority.
  const at2 = loadConfigFile(write(dir, 'q.yaml', `authorizer:\n  type: postgres\n  connectionString: postgres://ftp:Tr0ub@dor@3-horse@db:5432/ftp\n`));
  t.is((effectiveConfig(at2).authorizer as Record<string, unknown>).connectionString, 'postgres://ftp:********@db:5432/ftp');
  // An unencoded / in the password (pg refuses the URL, and the config is shown to say why).
  const slash = loadConfigFile(write(dir, 's.yaml', `authorizer:\n  type: postgres\n  connectionString: postgres://ftp:se/cr@t@db:5432/ftp\n`));
  t.is((effectiveConfig(slash).authorizer as Record<string, unknown>).connectionString, 'postgres://ftp:********@db:5432/ftp');
  const slashAt = loadConfigFile(write(dir, 's2.yaml', `authorizer:\n  type: postgres\n  connectionString: postgres://ftp:a@b/c@db:5432/ftp\n`));
  t.is((effectiveConfig(slashAt).authorizer as Record<string, unknown>).connectionString, 'postgres://ftp:********@db:5432/ftp');
});

test('errors never echo a secret: a password of the wrong type, inside ${ }, or read as a YAML alias', (t) => {
  const dir = tmpDir(t);
  const head = 'authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n    - name: bob\n      home: /tmp\n';
  const cases: Array<[string, string, RegExp]> = [
    ['73915208', '73915208', /password: expected a string, got a number/],
    ['"${9vT!k}"', '9vT!k', /must hold an environment variable name/],
    ['*Zr9Kw2pQ', 'Zr9Kw2pQ', /an alias \(\*name\) whose anchor is not set; quote a value that starts with \* or &/],
  ];
  for (const [yaml, secret, shown] of cases) {
    const issues = issuesOf(t, () => loadConfigFile(write(dir, 's.yaml', `${head}      password: ${yaml}\n`)));
    const text = issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    t.regex(text, shown, yaml);
    t.false(text.includes(secret), `${yaml}: ${text}`);
  }
});

test('htpasswd: built with its options; a missing file is reported at authorizer.file', async (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `
authorizer:
  type: htpasswd
  file: missing.htpasswd
  defaultHome: /srv/{user}
`);
  const cfg = loadConfigFile(file);
  const err = t.throws(() => buildFromConfig(cfg, { logger: quiet, watch: false })) as ConfigFileError;
  t.true(err instanceof ConfigFileError);
  t.is(err.issues[0].path, 'authorizer.file');
  t.is(err.issues[0].line, 3);
  t.regex(err.issues[0].message, /^expected a readable htpasswd file/);

  // {SHA} of "pw"
  write(dir, 'missing.htpasswd', 'alice:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n');
  const built = buildFromConfig(cfg, { logger: quiet, watch: false });
  await t.notThrowsAsync(built.options.authorizer.validateAuthentication('alice', 'pw', CLIENT));
  t.is(await built.options.authorizer.getHomeDir('alice'), '/srv/alice');
  await built.close();
});

test('postgres: built without connecting, closed cleanly; bad ssl files are reported with their line', async (t) => {
  const dir = tmpDir(t);
  const cfg = loadConfigFile(write(dir, 'f.yaml', `authorizer:\n  type: postgres\n  host: 127.0.0.1\n  port: 1\n  ssl: { caFile: nope.pem }\n`));
  const err = t.throws(() => buildFromConfig(cfg, { logger: quiet })) as ConfigFileError;
  t.is(err.issues[0].path, 'authorizer.ssl.caFile');
  t.is(err.issues[0].line, 5);
  const ok = loadConfigFile(write(dir, 'g.yaml', `authorizer:\n  type: postgres\n  host: 127.0.0.1\n  port: 1\n  ssl: false\n  cacheTtl: 0\n`));
  const built = buildFromConfig(ok, { logger: quiet });
  await built.close();
  t.pass();
});

test('unix: a valid section parses with its defaults; bad options are reported with their lines', (t) => {
  const dir = tmpDir(t);
  const ok = loadConfigFile(write(dir, 'f.yaml', `
authorizer:
  type: unix
  allowedUsers: [alice, bob]
  anonymousUser: nobody
  msgLogin: Hi.
  limits: { maxSessions: 2, writeLimit: 1048576 }
  userLimits:
    alice: { quotaBytes: 1000 }
`));
  t.deepEqual(ok.authorizer, {
    type: 'unix',
    allowedUsers: ['alice', 'bob'],
    anonymousUser: 'nobody',
    msgLogin: 'Hi.',
    limits: { maxSessions: 2, writeLimit: 1048576 },
    userLimits: { alice: { quotaBytes: 1000 } },
    minUid: 1000,
    requireValidShell: true,
    globalPerm: 'elradfmwMT',
  });
  t.deepEqual(configuredHomes(ok), []);

  const file = write(dir, 'g.yaml', `
authorizer:
  type: unix
  allowedUsers: alice
  minUid: -1
  requireValidShell: sometimes
  anonymousUser: ""
  userLimits:
    bob: { quotaBytes: lots }
  homeDir: /srv
`);
  const issues = issuesOf(t, () => loadConfigFile(file));
  t.is(at(t, issues, 'authorizer.allowedUsers').line, 3);
  t.is(at(t, issues, 'authorizer.allowedUsers').message, 'expected a list of non-empty strings, got "alice"');
  t.is(at(t, issues, 'authorizer.minUid').line, 4);
  t.is(at(t, issues, 'authorizer.minUid').message, 'expected an integer from 0 to 4294967295, got -1');
  t.is(at(t, issues, 'authorizer.requireValidShell').line, 5);
  t.is(at(t, issues, 'authorizer.anonymousUser').line, 6);
  t.is(at(t, issues, 'authorizer.userLimits.bob.quotaBytes').line, 8);
  t.is(at(t, issues, 'authorizer.homeDir').line, 9);
  t.regex(at(t, issues, 'authorizer.homeDir').message, /^unknown key/);

  const both = issuesOf(t, () =>
    loadConfigFile(write(dir, 'h.yaml', 'server:\n  runAs: { user: nobody, group: nogroup }\nauthorizer:\n  type: unix\n  allowedUsers: [a]\n  rejectedUsers: [b]\n')),
  );
  t.is(at(t, both, 'authorizer.rejectedUsers').line, 6);
  t.is(at(t, both, 'authorizer.rejectedUsers').message, 'allowedUsers or rejectedUsers, not both');
  t.is(at(t, both, 'server.runAs').line, 2);
});

test('unix: built with the per-user filesystem, or an error naming the section when it cannot be', async (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', 'authorizer:\n  type: unix\n  globalPerm: elr\nlockout: { maxFailures: 2 }\n');
  const cfg = loadConfigFile(file);
  let built: ReturnType<typeof buildFromConfig>;
  try {
    built = buildFromConfig(cfg, { logger: quiet });
  } catch (err) {
    // Not root, or no addon: the whole section is named, at its line.
    t.true(err instanceof ConfigFileError, String(err));
    const issue = (err as ConfigFileError).issues[0];
    t.is(issue.path, 'authorizer');
    t.is(issue.line, 1);
    t.notRegex(issue.message, /^authorizer:/);
    return;
  }
  t.true(built.options.authorizer instanceof LockoutAuthorizer);
  t.true(built.authorizer instanceof ReloadableAuthorizer);
  t.is(typeof built.options.fileSystem, 'function');
  // The server takes the options as they are.
  t.notThrows(() => new FtpServer(built.options));
  // A reload keeps system users; switching to another type needs a restart.
  await built.reloadUsers(loadConfigFile(file));
  const err = await t.throwsAsync(built.reloadUsers(loadConfigFile(write(dir, 'g.yaml', PLAIN_USERS))));
  t.true(err instanceof ConfigFileError);
  t.is((err as ConfigFileError).issues[0].path, 'authorizer.type');
  t.is((err as ConfigFileError).issues[0].line, 2);
  await built.close();
});

test('lockout wraps the reloadable authorizer; the reload point swaps users under it', async (t) => {
  const dir = tmpDir(t);
  const file = write(dir, 'f.yaml', `${PLAIN_USERS}lockout: { maxFailures: 2, delayBase: 0 }\n`);
  const cfg = loadConfigFile(file);
  const built = buildFromConfig(cfg, { logger: quiet });
  t.true(built.options.authorizer instanceof LockoutAuthorizer);
  t.true(built.authorizer instanceof ReloadableAuthorizer);
  await t.notThrowsAsync(built.options.authorizer.validateAuthentication('alice', 'pw', CLIENT));
  await t.throwsAsync(built.options.authorizer.validateAuthentication('bob', 'pw', CLIENT));

  write(dir, 'f.yaml', `${PLAIN_USERS}    - { name: bob, password: pw, home: /tmp, perm: elrw }\nlockout: { maxFailures: 2, delayBase: 0 }\n`);
  await built.reloadUsers(loadConfigFile(file));
  await t.notThrowsAsync(built.options.authorizer.validateAuthentication('bob', 'pw', CLIENT));
  t.true(await built.options.authorizer.hasPerm('bob', 'w', '/'));
  await built.close();
});

test('keyToPath tells dotted keys from nesting', (t) => {
  t.deepEqual(keyToPath({}, 'passivePorts[0]'), ['passivePorts', 0]);
  t.deepEqual(keyToPath({ masqueradeAddressMap: { '10.0.0.1': 'x' } }, 'masqueradeAddressMap.10.0.0.1'), ['masqueradeAddressMap', '10.0.0.1']);
  t.deepEqual(keyToPath({}, 'masqueradeAddressMap key'), ['masqueradeAddressMap']);
  t.deepEqual(keyToPath({ users: { 'a.b': {} } }, 'users.a.b.home'), ['users', 'a.b', 'home']);
  t.deepEqual(keyToPath({}, 'tls.certFile'), ['tls', 'certFile']);
});

test('an error thrown by code not about the config passes through explainServerError unchanged', (t) => {
  const dir = tmpDir(t);
  const cfg: LoadedConfig = loadConfigFile(write(dir, 'f.yaml', PLAIN_USERS));
  const plain = new Error('boom');
  t.is(explainServerError(cfg, plain), plain);
  const mapped = explainServerError(cfg, new ConfigError('port', 'expected 1')) as ConfigFileError;
  t.is(mapped.issues[0].path, 'server.port');
});
