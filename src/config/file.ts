/**
 * The daemon's config file: YAML, checked against the schema below, with `${ENV}` substitution
 * for secrets. Every problem is reported with the file, the line and the key path:
 *
 *     ftpdlib.yaml:12: server.passivePorts: expected first <= last
 *
 * The server section goes through resolveOptions, the check the library itself makes, so the
 * daemon and an embedder cannot disagree about a value; the authorizer sections go through the
 * authorizers' own constructors. Both report a ConfigError key, mapped back here to the YAML line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Logger from 'bunyan';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, stringify, type Document, type Node as YamlNode } from 'yaml';
import { ConfigError } from './errors';
import { resolveOptions, type FtpServerOptions, type TlsOptions } from './options';
import {
  check,
  formatPath,
  isPlainObject,
  maskSecrets,
  type AnyNode,
  type Field,
  type KeyPath,
  type ObjectNode,
  type SchemaIssue,
  type SchemaNode,
  type StringNode,
} from './schema';
import { LOG_LEVELS, createDaemonLogger, type DaemonLogger, type LoggingConfig } from './logging';
import { ReloadableAuthorizer } from './reloadable-authorizer';
import { fromConfig, type UserConfig } from '../auth/virtual';
import type { HtpasswdAuthorizerOptions, HtpasswdUserOptions } from '../auth/htpasswd';
import type { PostgresAuthorizerOptions } from '../auth/postgres';
import type { UnixAuthorizerOptions } from '../auth/unix';
import { withLockout, type LockoutOptions, type LockoutStore } from '../auth/lockout';
import { SCRYPT_PREFIX } from '../auth/password';
import type { Authorizer, UserLimits } from '../auth/types';
import type { OverrideConfig } from '../auth/profile';
import type { FileSystem, FileSystemFactory } from '../fs/types';

// ---------------------------------------------------------------------------------------------
// Types of a loaded config

/** FtpServerOptions as a file can give them: everything but the objects only code can make. */
export type ServerFileOptions = Omit<FtpServerOptions, 'authorizer' | 'logger' | 'fileSystem'>;

export interface RunAsConfig {
  user: string;
  group: string;
}

export interface VirtualUserFileConfig {
  name: string;
  password?: string;
  home: string;
  perm: string;
  msgLogin?: string;
  msgQuit?: string;
  overrides: OverrideConfig[];
  limits?: UserLimits;
}

export interface AnonymousFileConfig {
  home: string;
  perm: string;
  msgLogin?: string;
  msgQuit?: string;
  overrides: OverrideConfig[];
  limits?: UserLimits;
}

export interface VirtualAuthorizerConfig {
  type: 'virtual';
  allowPlaintextPasswords: boolean;
  users: VirtualUserFileConfig[];
  /** A YAML file holding more users (a list, or `users:` with a list); reread on SIGHUP. */
  usersFile?: string;
  /** The users read from usersFile. */
  usersFromFile: VirtualUserFileConfig[];
  anonymous?: AnonymousFileConfig;
}

export interface HtpasswdAuthorizerConfig {
  type: 'htpasswd';
  file: string;
  users: Record<string, HtpasswdUserOptions>;
  /** Home of users without an entry in `users`: an absolute path where `{user}` stands for the name. */
  defaultHome?: string;
  defaultPerm: string;
  /** Limits of users without their own `limits`. */
  defaultLimits?: UserLimits;
  watch: boolean;
  reloadDelay: number;
}

export interface PostgresSslConfig {
  rejectUnauthorized?: boolean;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  servername?: string;
}

export interface PostgresAuthorizerConfig {
  type: 'postgres';
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: boolean | PostgresSslConfig;
  max: number;
  connectTimeout: number;
  queryTimeout: number;
  cacheTtl: number;
  cacheMax: number;
  tables: { users: string; overrides: string };
}

/** System users (UnixAuthorizer): the daemon must run as root, sessions act as their user on the disk. */
export interface UnixAuthorizerConfig {
  type: 'unix';
  allowedUsers?: string[];
  rejectedUsers?: string[];
  minUid: number;
  requireValidShell: boolean;
  anonymousUser?: string;
  globalPerm: string;
  msgLogin?: string;
  msgQuit?: string;
  limits?: UserLimits;
  userLimits?: Record<string, UserLimits>;
}

export type AuthorizerConfig = VirtualAuthorizerConfig | HtpasswdAuthorizerConfig | PostgresAuthorizerConfig | UnixAuthorizerConfig;

export type LockoutConfig = Required<Omit<LockoutOptions, 'store' | 'logger' | 'clock' | 'sleep'>>;

export interface DemoConfig {
  /** Create missing user homes at start (and write `readme` into each as README.txt). */
  createHomes: boolean;
  readme?: string;
  /** Make a self-signed server.tls certificate with openssl when its files are missing; start without FTPS if that fails. */
  selfSignedCert: boolean;
  /** Print each user's login (with the password when it is plain text) and commands to try. */
  printLogin: boolean;
}

/** server.engine: the zero-copy engine's I/O threads, for the whole process (configureNative). */
export interface EngineConfig {
  /** Nice steps the I/O threads run below the process, 0..19. */
  ioNice: number;
  /** How many I/O threads; auto is the library's choice (1 below 4 CPUs, 2 from 4 up). */
  ioThreads: number | 'auto';
  /** A transfer that runs alone goes to a thread at the process's own priority (configureNative's soloThread). */
  soloThread: boolean;
}

/**
 * What server.engine means when absent, or for a key it leaves out: the library's own defaults
 * (src/native configureNative; a test keeps the two equal without loading the addon here).
 */
export const ENGINE_DEFAULTS: EngineConfig = { ioNice: 10, ioThreads: 'auto', soloThread: true };

/** server.engine with its defaults filled in. */
export function engineConfig(cfg: LoadedConfig): EngineConfig {
  return { ...ENGINE_DEFAULTS, ...cfg.engine };
}

export interface LoadedConfig {
  /** Absolute path of the config file. */
  file: string;
  server: ServerFileOptions;
  runAs?: RunAsConfig;
  /** server.workers: processes serving connections (the daemon only); absent means 1. */
  workers?: number | 'auto';
  /** server.engine (the daemon only); absent means ENGINE_DEFAULTS. */
  engine?: EngineConfig;
  authorizer: AuthorizerConfig;
  lockout?: LockoutConfig;
  logging: LoggingConfig;
  demo?: DemoConfig;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** One problem: where (file, line, key path) and what was expected. */
export interface ConfigIssue {
  /** The file as it was named (the config file, or its usersFile). */
  file: string;
  /** 1-based line, or 0 when the problem is about the whole file. */
  line: number;
  /** Key path such as `server.passivePorts` or `authorizer.users[2].perm`; '' for the whole file. */
  path: string;
  message: string;
}

export function formatIssue(i: ConfigIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}` : i.file;
  return i.path ? `${where}: ${i.path}: ${i.message}` : `${where}: ${i.message}`;
}

/** A config file that cannot be used; `issues` lists every problem found. */
export class ConfigFileError extends Error {
  readonly code = 'FTPD_ERR_CONFIG_FILE';
  constructor(readonly issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigFileError';
  }
}

// ---------------------------------------------------------------------------------------------
// The schema

const ANY: AnyNode = { kind: 'any' };
const STRING: StringNode = { kind: 'string' };
const NON_EMPTY: StringNode = { kind: 'string', nonEmpty: true };
const PATH: StringNode = { kind: 'string', path: true };
const BOOL = { kind: 'bool' } as const;
const num = (min: number, max: number): SchemaNode => ({ kind: 'number', min, max });
const int = (min: number, max: number): SchemaNode => ({ kind: 'int', min, max });

/** Certificate paths are resolved from the config's folder; the rest is left to resolveOptions. */
const TLS_FIELDS: Record<keyof TlsOptions, Field> = {
  certFile: { node: PATH, required: true },
  keyFile: { node: PATH, required: true },
  caFile: { node: PATH },
  requireClientCert: { node: ANY },
  minVersion: { node: ANY },
  maxVersion: { node: ANY },
  ciphers: { node: ANY },
};

/**
 * One entry per FtpServerOptions key (the type makes a new option fail to compile until it is
 * listed here). Values are checked by resolveOptions, so these are ANY except paths.
 */
const SERVER_OPTION_FIELDS: Record<keyof ServerFileOptions, Field> = {
  host: { node: ANY },
  port: { node: ANY },
  banner: { node: ANY },
  maxConnections: { node: ANY },
  maxConnectionsPerIp: { node: ANY },
  timeout: { node: ANY },
  dataConnectTimeout: { node: ANY },
  dataTimeout: { node: ANY },
  passivePorts: { node: ANY },
  masqueradeAddress: { node: ANY },
  masqueradeAddressMap: { node: ANY },
  permitForeignAddresses: { node: ANY },
  permitPrivilegedPorts: { node: ANY },
  useGmtTimes: { node: ANY },
  tcpNoDelay: { node: ANY },
  encoding: { node: ANY },
  maxLineLength: { node: ANY },
  maxLoginAttempts: { node: ANY },
  authFailedTimeout: { node: ANY },
  useSendfile: { node: ANY },
  nativeTls: { node: ANY },
  dataCongestionControl: { node: ANY },
  siteCopy: { node: ANY },
  readLimit: { node: ANY },
  writeLimit: { node: ANY },
  closeGracePeriod: { node: ANY },
  memoryTrimDelay: { node: ANY },
  heapReduceDelay: { node: ANY },
  tls: { node: { kind: 'object', fields: TLS_FIELDS, expected: 'a mapping { certFile, keyFile, caFile, ... }' } },
  tlsControlRequired: { node: ANY },
  tlsDataRequired: { node: ANY },
  tlsExemptUsers: { node: ANY },
  tlsRequireSessionReuse: { node: ANY },
  implicitTlsPort: { node: ANY },
  tlsHandshakeTimeout: { node: ANY },
  proxyProtocol: { node: ANY },
  trustedProxies: { node: ANY },
  proxyProtocolTimeout: { node: ANY },
  proxyProtocolData: { node: ANY },
  metrics: { node: { kind: 'object', fields: { port: { node: ANY, required: true }, host: { node: ANY } }, expected: 'a mapping { port, host }' } },
};

const RUN_AS: ObjectNode = {
  kind: 'object',
  expected: 'a mapping { user, group }',
  fields: { user: { node: NON_EMPTY, required: true }, group: { node: NON_EMPTY, required: true } },
};

/** The daemon's processes (server.workers): a count, or auto for one per core. */
const WORKERS: SchemaNode = {
  kind: 'alt',
  options: [int(1, 1024), { kind: 'enum', values: ['auto'] }],
  expected: 'an integer from 1 to 1024, or auto',
};

/** The zero-copy engine's I/O threads (server.engine): configureNative, in each serving process. */
const ENGINE: ObjectNode = {
  kind: 'object',
  expected: 'a mapping { ioNice, ioThreads, soloThread }',
  fields: {
    ioNice: { node: int(0, 19), default: ENGINE_DEFAULTS.ioNice },
    ioThreads: {
      node: { kind: 'alt', options: [int(1, 16), { kind: 'enum', values: ['auto'] }], expected: 'an integer from 1 to 16, or auto' },
      default: ENGINE_DEFAULTS.ioThreads,
    },
    soloThread: { node: BOOL, default: ENGINE_DEFAULTS.soloThread },
  } satisfies Record<keyof EngineConfig, Field>,
};

const SERVER: ObjectNode = { kind: 'object', fields: { ...SERVER_OPTION_FIELDS, runAs: { node: RUN_AS }, workers: { node: WORKERS }, engine: { node: ENGINE } } };

const OVERRIDE: ObjectNode = {
  kind: 'object',
  expected: 'a mapping { path, perm, recursive }',
  fields: {
    path: { node: NON_EMPTY, required: true },
    perm: { node: STRING, required: true },
    recursive: { node: BOOL, default: false },
  },
};
const OVERRIDES: SchemaNode = { kind: 'list', of: OVERRIDE };

/** Per-user limits (UserLimits); 0 or absent means none. */
const LIMIT = int(0, Number.MAX_SAFE_INTEGER);
const LIMITS: ObjectNode = {
  kind: 'object',
  expected: 'a mapping { maxSessions, readLimit, writeLimit, quotaBytes, quotaFiles }',
  fields: {
    maxSessions: { node: LIMIT },
    readLimit: { node: LIMIT },
    writeLimit: { node: LIMIT },
    quotaBytes: { node: LIMIT },
    quotaFiles: { node: LIMIT },
  } satisfies Record<keyof UserLimits, Field>,
};

const USER: ObjectNode = {
  kind: 'object',
  expected: 'a mapping { name, password, home, perm, ... }',
  fields: {
    name: { node: NON_EMPTY, required: true },
    password: { node: { kind: 'string', secret: 'value' } },
    home: { node: PATH, required: true },
    perm: { node: STRING, default: 'elr' },
    msgLogin: { node: STRING },
    msgQuit: { node: STRING },
    overrides: { node: OVERRIDES, default: [] },
    limits: { node: LIMITS },
  },
};
const USERS: SchemaNode = { kind: 'list', of: USER };

const ANONYMOUS: ObjectNode = {
  kind: 'object',
  expected: 'a mapping { home, perm, ... }',
  fields: {
    home: { node: PATH, required: true },
    perm: { node: STRING, default: 'elr' },
    msgLogin: { node: STRING },
    msgQuit: { node: STRING },
    overrides: { node: OVERRIDES, default: [] },
    limits: { node: LIMITS },
  },
};

const VIRTUAL: ObjectNode = {
  kind: 'object',
  fields: {
    allowPlaintextPasswords: { node: BOOL, default: false },
    users: { node: USERS, default: [] },
    usersFile: { node: PATH },
    anonymous: { node: ANONYMOUS },
  },
};

const HTPASSWD_USER: ObjectNode = {
  kind: 'object',
  expected: 'a mapping { home, perm, ... }',
  fields: {
    home: { node: PATH, required: true },
    perm: { node: STRING },
    overrides: { node: OVERRIDES },
    msgLogin: { node: STRING },
    msgQuit: { node: STRING },
    limits: { node: LIMITS },
  },
};

const HTPASSWD_FIELDS: Record<keyof Omit<HtpasswdAuthorizerOptions, 'logger'>, Field> = {
  file: { node: PATH, required: true },
  users: { node: { kind: 'map', of: HTPASSWD_USER }, default: {} },
  defaultHome: { node: PATH },
  defaultPerm: { node: STRING, default: 'elr' },
  defaultLimits: { node: LIMITS },
  watch: { node: BOOL, default: true },
  reloadDelay: { node: num(0, 60), default: 0.1 },
};

const PG_SSL: ObjectNode = {
  kind: 'object',
  fields: {
    rejectUnauthorized: { node: BOOL },
    caFile: { node: PATH },
    certFile: { node: PATH },
    keyFile: { node: PATH },
    servername: { node: STRING },
  },
};

const POSTGRES_FIELDS: Record<keyof Omit<PostgresAuthorizerOptions, 'pool' | 'logger' | 'clock'>, Field> = {
  connectionString: { node: { kind: 'string', nonEmpty: true, secret: 'url' } },
  host: { node: NON_EMPTY },
  port: { node: int(1, 65535) },
  user: { node: NON_EMPTY },
  password: { node: { kind: 'string', secret: 'value' } },
  database: { node: NON_EMPTY },
  ssl: { node: { kind: 'alt', options: [BOOL, PG_SSL], expected: 'true, false or a mapping { rejectUnauthorized, caFile, certFile, keyFile, servername }' } },
  max: { node: int(1, 10000), default: 10 },
  connectTimeout: { node: num(0.001, 600), default: 2 },
  queryTimeout: { node: num(0.001, 600), default: 2 },
  cacheTtl: { node: num(0, 86400), default: 5 },
  cacheMax: { node: int(1, 100_000_000), default: 10000 },
  tables: {
    node: { kind: 'object', fields: { users: { node: NON_EMPTY, default: 'users' }, overrides: { node: NON_EMPTY, default: 'perm_overrides' } } },
    default: { users: 'users', overrides: 'perm_overrides' },
  },
};

/** UnixAuthorizer's options; the defaults are its own (src/auth/unix.ts), shown by check-config. */
const UNIX_FIELDS: Record<keyof Omit<UnixAuthorizerOptions, 'logger'>, Field> = {
  allowedUsers: { node: { kind: 'list', of: NON_EMPTY } },
  rejectedUsers: { node: { kind: 'list', of: NON_EMPTY } },
  minUid: { node: int(0, 4294967295), default: 1000 },
  requireValidShell: { node: BOOL, default: true },
  anonymousUser: { node: NON_EMPTY },
  globalPerm: { node: STRING, default: 'elradfmwMT' },
  msgLogin: { node: STRING },
  msgQuit: { node: STRING },
  limits: { node: LIMITS },
  userLimits: { node: { kind: 'map', of: LIMITS } },
};

const AUTHORIZER: SchemaNode = {
  kind: 'union',
  tag: 'type',
  variants: {
    virtual: VIRTUAL,
    htpasswd: { kind: 'object', fields: HTPASSWD_FIELDS },
    postgres: { kind: 'object', fields: POSTGRES_FIELDS },
    unix: { kind: 'object', fields: UNIX_FIELDS },
  },
};

const LOCKOUT_FIELDS: Record<keyof LockoutConfig, Field> = {
  maxFailures: { node: int(1, 1_000_000), default: 5 },
  window: { node: num(0.001, 86400 * 365), default: 600 },
  banSeconds: { node: num(0, 86400 * 365), default: 900 },
  delayBase: { node: num(0, 3600), default: 0.5 },
  delayMax: { node: num(0, 3600), default: 10 },
  keys: { node: { kind: 'enum', values: ['address+user', 'address'] }, default: 'address+user' },
  ipv6Prefix: { node: int(1, 128), default: 64 },
  maxEntries: { node: int(1, 100_000_000), default: 10000 },
};

const LOGGING: ObjectNode = {
  kind: 'object',
  fields: { level: { node: { kind: 'enum', values: LOG_LEVELS }, default: 'info' }, file: { node: PATH } },
};

const DEMO: ObjectNode = {
  kind: 'object',
  fields: {
    createHomes: { node: BOOL, default: false },
    readme: { node: STRING },
    selfSignedCert: { node: BOOL, default: false },
    printLogin: { node: BOOL, default: false },
  },
};

/** The whole file. */
export const CONFIG_SCHEMA: ObjectNode = {
  kind: 'object',
  expected: 'a mapping { server, authorizer, lockout, logging, demo }',
  fields: {
    server: { node: SERVER, default: {} },
    authorizer: { node: AUTHORIZER, required: true },
    lockout: { node: { kind: 'object', fields: LOCKOUT_FIELDS } },
    logging: { node: LOGGING, default: { level: 'info' } },
    demo: { node: DEMO },
  },
};

/** The schema of a users file: a list of users, or `users:` with one. */
export const USERS_FILE_SCHEMA: SchemaNode = {
  kind: 'alt',
  options: [USERS, { kind: 'object', fields: { users: { node: USERS, required: true } } }],
  expected: 'a list of users, or a mapping { users: [...] }',
};

// ---------------------------------------------------------------------------------------------
// Sources: a parsed YAML file that can say on which line a key path is

class Source {
  private constructor(
    /** The file as named to the user. */
    readonly name: string,
    readonly doc: Document.Parsed | null,
    private readonly lines: LineCounter,
  ) {}

  static parse(name: string, text: string): { source: Source; issues: ConfigIssue[] } {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const source = new Source(name, doc, lines);
    const issues = doc.errors.map((e) => ({ file: name, line: source.lineAt(e.pos[0]), path: '', message: e.message.split('\n')[0] }));
    return { source, issues };
  }

  static unreadable(name: string): Source {
    return new Source(name, null, new LineCounter());
  }

  private lineAt(offset: number): number {
    return Math.max(1, this.lines.linePos(offset).line);
  }

  /** The line of the deepest node found along `keyPath` (a key's own line for mapping entries). */
  lineOf(keyPath: KeyPath): number {
    if (!this.doc) return 0;
    let node: unknown = this.doc.contents;
    let line = node && (node as YamlNode).range ? this.lineAt((node as YamlNode).range![0]) : 1;
    for (const seg of keyPath) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
        if (!pair) break;
        const keyNode = pair.key as YamlNode | null;
        if (keyNode?.range) line = this.lineAt(keyNode.range[0]);
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg] as YamlNode | undefined;
        if (!item) break;
        if (item.range) line = this.lineAt(item.range[0]);
        node = item;
      } else {
        break;
      }
    }
    return line;
  }

  /** Shown before key paths: `users` for a users file that is a bare list. */
  displayPrefix: KeyPath = [];

  issue(keyPath: KeyPath, message: string): ConfigIssue {
    return { file: this.name, line: this.lineOf(keyPath), path: formatPath([...this.displayPrefix, ...keyPath]), message };
  }
}

interface UserOrigin {
  source: Source;
  path: KeyPath;
}

/** Where the parts of a loaded config came from, for errors found after loading. */
interface Provenance {
  main: Source;
  /** For the virtual authorizer: each user of the combined list (users, usersFile, anonymous). */
  users: UserOrigin[];
}

const provenance = new WeakMap<LoadedConfig, Provenance>();

// ---------------------------------------------------------------------------------------------
// Environment substitution

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `${NAME}` becomes the variable's value, `$${` a literal `${`. Problems are pushed to `issues`. */
export function substituteEnv(s: string, env: NodeJS.ProcessEnv, report: (message: string) => void): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    if (s.startsWith('$${', i)) {
      out += '${';
      i += 3;
    } else if (s.startsWith('${', i)) {
      const end = s.indexOf('}', i + 2);
      if (end < 0) {
        report('unterminated ${ (write $${ for a literal ${)');
        return s;
      }
      const name = s.slice(i + 2, end);
      if (!ENV_NAME.test(name)) {
        // Not echoed: a value that is no name may be a password written inside ${ }.
        report('${ } must hold an environment variable name (letters, digits, _); write $${ for a literal ${');
        return s;
      }
      const value = env[name];
      if (value === undefined) {
        report(`environment variable ${name} is not set`);
        return s;
      }
      out += value;
      i = end + 1;
    } else {
      out += s[i];
      i++;
    }
  }
  return out;
}

function substituteTree(value: unknown, keyPath: KeyPath, env: NodeJS.ProcessEnv, issues: SchemaIssue[]): unknown {
  if (typeof value === 'string') return substituteEnv(value, env, (message) => issues.push({ path: keyPath, message }));
  if (Array.isArray(value)) return value.map((v, i) => substituteTree(v, [...keyPath, i], env, issues));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteTree(v, [...keyPath, k], env, issues);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Loading

export interface LoadOptions {
  /** Variables for `${NAME}`. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Read, parse, substitute and check one YAML file against `schema`. */
function readYaml(
  name: string,
  schema: SchemaNode,
  env: NodeJS.ProcessEnv,
  issues: ConfigIssue[],
  displayPrefix?: (raw: unknown) => KeyPath,
): { source: Source; value: unknown } | null {
  let text: string;
  try {
    text = fs.readFileSync(name, 'utf8');
  } catch (err) {
    issues.push({ file: name, line: 0, path: '', message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return null;
  }
  const { source, issues: syntax } = Source.parse(name, text);
  if (syntax.length) {
    issues.push(...syntax);
    return null;
  }
  let raw: unknown;
  try {
    raw = source.doc!.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // The YAML library names the alias it could not resolve: an unquoted password starting with *.
    const message = /alias/i.test((err as Error).message) && !/excessive/i.test((err as Error).message)
      ? 'an alias (*name) whose anchor is not set; quote a value that starts with * or &'
      : (err as Error).message;
    issues.push({ file: name, line: 0, path: '', message });
    return null;
  }
  if (displayPrefix) source.displayPrefix = displayPrefix(raw);
  const found: SchemaIssue[] = [];
  const substituted = substituteTree(raw, [], env, found);
  const value = check(schema, substituted, [], { baseDir: path.dirname(path.resolve(name)), issues: found });
  issues.push(...found.map((i) => source.issue(i.path, i.message)));
  return { source, value };
}

/** A stand-in authorizer for checking server options before the real one exists. */
const PROBE_AUTHORIZER: Authorizer = Object.freeze({
  validateAuthentication: () => Promise.reject(new Error('probe')),
  getHomeDir: () => '/',
  hasPerm: () => false,
  getPerms: () => '',
  getMsgLogin: () => '',
  getMsgQuit: () => '',
});

/** Options that make no sense without `tls`; resolveOptions complains about them once tls is dropped. */
const NEEDS_TLS = ['tlsControlRequired', 'tlsDataRequired', 'implicitTlsPort'];

/**
 * Check server options with resolveOptions. It stops at the first problem, so the key it names is
 * dropped and the check repeated, to report every bad option at once.
 */
function checkServerOptions(server: Record<string, unknown>, report: (key: string, message: string) => void): void {
  const probe: Record<string, unknown> = { ...server, authorizer: PROBE_AUTHORIZER };
  for (let n = 0; n < 100; n++) {
    try {
      resolveOptions(probe as unknown as FtpServerOptions);
      return;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      report(err.key, expectedText(err));
      const top = /^[^.[ ]+/.exec(err.key)?.[0] ?? err.key;
      if (!(top in probe) || top === 'authorizer') return;
      delete probe[top];
      if (top === 'tls') for (const k of NEEDS_TLS) delete probe[k];
      // A bad proxyProtocol or trustedProxies would make its companions fail too, misleadingly.
      if (top === 'trustedProxies') delete probe.proxyProtocol;
      if (top === 'proxyProtocol' || top === 'trustedProxies') delete probe.proxyProtocolData;
    }
  }
}

/** The part of a ConfigError's message after its key, phrased as "expected ...". */
function expectedText(err: ConfigError): string {
  const text = err.message.startsWith(`${err.key}: `) ? err.message.slice(err.key.length + 2) : err.message;
  return /^(expected|unknown|needs|missing|cannot|no |not )/i.test(text) ? text : `expected ${text}`;
}

/**
 * Turn a ConfigError key ("passivePorts[0]", "users.bob.home", "masqueradeAddressMap.10.0.0.1")
 * into a key path, using the value to tell a dotted key ("10.0.0.1") from nesting.
 */
export function keyToPath(value: unknown, key: string): Array<string | number> {
  const out: Array<string | number> = [];
  let rest = key;
  let cur = value;
  while (rest.length > 0) {
    if (rest[0] === '.') {
      rest = rest.slice(1);
      continue;
    }
    if (rest[0] === ' ' || rest[0] === '(') break;
    const index = /^\[(\d+)\]/.exec(rest);
    if (index) {
      const i = Number(index[1]);
      out.push(i);
      cur = Array.isArray(cur) ? cur[i] : undefined;
      rest = rest.slice(index[0].length);
      continue;
    }
    let seg: string | undefined;
    if (isPlainObject(cur)) {
      for (const k of Object.keys(cur)) {
        const fits = rest.startsWith(k) && (rest.length === k.length || '.[ ('.includes(rest[k.length]));
        if (fits && (seg === undefined || k.length > seg.length)) seg = k;
      }
    }
    seg ??= /^[^.[ (]+/.exec(rest)![0];
    out.push(seg);
    cur = isPlainObject(cur) ? cur[seg] : undefined;
    rest = rest.slice(seg.length);
  }
  return out;
}

/**
 * Load and check a config file (and its users file). Throws ConfigFileError listing every problem,
 * each with its line. Relative paths in the file are taken from the file's folder.
 */
export function loadConfigFile(file: string, options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const issues: ConfigIssue[] = [];
  const read = readYaml(file, CONFIG_SCHEMA, env, issues);
  if (!read) throw new ConfigFileError(tidy(issues));
  const { source, value } = read;
  if (!isPlainObject(value)) throw new ConfigFileError(tidy(issues));

  // Checks made by the library's own code come second: a value the schema refused is not reported twice.
  const later: ConfigIssue[] = [];
  const server = isPlainObject(value.server) ? { ...value.server } : {};
  const runAs = server.runAs as RunAsConfig | undefined;
  delete server.runAs;
  const workers = server.workers as number | 'auto' | undefined;
  delete server.workers;
  const engine = server.engine as EngineConfig | undefined;
  delete server.engine;
  checkServerOptions(server, (key, message) => later.push(source.issue(['server', ...keyToPath(server, key)], message)));

  const users: UserOrigin[] = [];
  const auth = value.authorizer;
  if (isPlainObject(auth) && auth.type === 'virtual') {
    const own = Array.isArray(auth.users) ? (auth.users as VirtualUserFileConfig[]) : [];
    own.forEach((_u, i) => users.push({ source, path: ['authorizer', 'users', i] }));
    auth.usersFromFile = [];
    if (typeof auth.usersFile === 'string') {
      const rel = path.relative(process.cwd(), auth.usersFile);
      const shown = rel === '' || rel.startsWith('..') ? auth.usersFile : rel;
      const more = readYaml(shown, USERS_FILE_SCHEMA, env, issues, (raw) => (Array.isArray(raw) ? ['users'] : []));
      if (more) {
        const list = Array.isArray(more.value) ? more.value : isPlainObject(more.value) ? more.value.users : [];
        const prefix = Array.isArray(more.value) ? [] : ['users'];
        if (Array.isArray(list)) {
          auth.usersFromFile = list;
          list.forEach((_u, i) => users.push({ source: more.source, path: [...prefix, i] }));
        }
      }
    }
    if (isPlainObject(auth.anonymous)) users.push({ source, path: ['authorizer', 'anonymous'] });
    checkPasswords(auth, users, later);
    checkVirtualUsers(auth, users, later);
  }
  if (isPlainObject(auth) && auth.type === 'unix') {
    // Cheap checks UnixAuthorizer would make only when built (it needs root and the system's users).
    if (Array.isArray(auth.allowedUsers) && Array.isArray(auth.rejectedUsers)) {
      later.push(source.issue(['authorizer', 'rejectedUsers'], 'allowedUsers or rejectedUsers, not both'));
    }
    if (runAs) later.push(source.issue(['server', 'runAs'], 'not with authorizer type unix (it must stay root to read /etc/shadow and act as each user)'));
  }

  if (issues.length || later.length) throw new ConfigFileError(tidy(issues, later));
  const cfg: LoadedConfig = {
    file: path.resolve(file),
    server: server as ServerFileOptions,
    ...(runAs ? { runAs } : {}),
    ...(workers !== undefined ? { workers } : {}),
    ...(engine !== undefined ? { engine } : {}),
    authorizer: value.authorizer as AuthorizerConfig,
    ...(value.lockout ? { lockout: value.lockout as LockoutConfig } : {}),
    logging: value.logging as LoggingConfig,
    ...(value.demo ? { demo: value.demo as DemoConfig } : {}),
  };
  provenance.set(cfg, { main: source, users });
  return cfg;
}

/**
 * Let VirtualAuthorizer check each user on its own (hashes are only parsed, so this is cheap), so
 * that bad letters, homes and hashes of every user are reported at once, and find duplicate names.
 */
function checkVirtualUsers(auth: Record<string, unknown>, origins: UserOrigin[], issues: ConfigIssue[]): void {
  const list: unknown[] = [
    ...(Array.isArray(auth.users) ? auth.users : []),
    ...(Array.isArray(auth.usersFromFile) ? auth.usersFromFile : []),
  ];
  if (isPlainObject(auth.anonymous)) list.push({ name: 'anonymous', ...auth.anonymous });
  const firstSeen = new Map<string, number>();
  list.forEach((u, i) => {
    const at = origins[i];
    if (!at || !isPlainObject(u)) return;
    try {
      fromConfig([u as unknown as UserConfig], { allowPlaintextPasswords: true });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const rest = /^users\[0\](.*)$/.exec(err.key)?.[1] ?? '';
      issues.push(at.source.issue([...at.path, ...keyToPath(u, rest)], expectedText(err)));
    }
    if (typeof u.name !== 'string') return;
    const prev = firstSeen.get(u.name);
    if (prev === undefined) firstSeen.set(u.name, i);
    else {
      const where = origins[prev];
      const line = where.source.lineOf(where.path);
      issues.push(at.source.issue([...at.path, 'name'], `duplicate user ${JSON.stringify(u.name)} (first at ${where.source.name}:${line})`));
    }
  });
}

/**
 * Sort by file and line. `later` problems (found by resolveOptions and the authorizer's checks)
 * are dropped when the schema already reported the same key, a key inside it or the object
 * holding it (an unset variable, a missing keyFile), and when an earlier one has the same key.
 */
function tidy(first: ConfigIssue[], later: ConfigIssue[] = []): ConfigIssue[] {
  const related = (a: string, b: string): boolean => a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`) || a.startsWith(`${b}[`) || b.startsWith(`${a}[`);
  const kept = [...first];
  for (const i of later) {
    const same = (s: ConfigIssue): boolean => s.file === i.file && s.path !== '' && i.path !== '';
    if (first.some((s) => same(s) && related(s.path, i.path))) continue;
    if (kept.some((s) => same(s) && s.path === i.path)) continue;
    kept.push(i);
  }
  const order = [...new Set(kept.map((i) => i.file))];
  return kept.sort((a, b) => order.indexOf(a.file) - order.indexOf(b.file) || a.line - b.line);
}

/**
 * Plain-text passwords only with allowPlaintextPasswords; every entry of users/usersFile needs
 * one, one named anonymous too: anonymous access (any password) comes only from the
 * `anonymous:` section, never from an entry whose password happens to be empty.
 */
function checkPasswords(auth: Record<string, unknown>, origins: UserOrigin[], issues: ConfigIssue[]): void {
  const list = [...((auth.users as VirtualUserFileConfig[]) ?? []), ...((auth.usersFromFile as VirtualUserFileConfig[]) ?? [])];
  list.forEach((u, i) => {
    if (!isPlainObject(u) || typeof u.name !== 'string') return;
    const at = origins[i];
    const pw = u.password;
    if (pw === undefined || pw === '') {
      issues.push(
        at.source.issue(
          [...at.path, 'password'],
          u.name === 'anonymous'
            ? 'missing; anonymous access (any password) is the authorizer.anonymous section, not a user entry without a password'
            : 'missing (expected a $scrypt$ hash from `ftpdlib hash-password`)',
        ),
      );
      return;
    }
    if (typeof pw === 'string' && !pw.startsWith(SCRYPT_PREFIX) && auth.allowPlaintextPasswords !== true) {
      issues.push(
        at.source.issue(
          [...at.path, 'password'],
          'expected a $scrypt$ hash (make one with `ftpdlib hash-password`); a plain-text password needs authorizer.allowPlaintextPasswords: true',
        ),
      );
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Building

/** An error from building (an authorizer's constructor, the server's), with the config's lines. */
function mapConfigError(cfg: LoadedConfig, err: ConfigError, prefix: KeyPath, value: unknown): ConfigFileError {
  const prov = provenance.get(cfg);
  const message = expectedText(err);
  const users = /^users\[(\d+)\](.*)$/.exec(err.key);
  if (prov && users && prefix[0] === 'authorizer' && cfg.authorizer.type === 'virtual') {
    const origin = prov.users[Number(users[1])];
    if (origin) {
      const combined = virtualUserList(cfg.authorizer)[Number(users[1])];
      return new ConfigFileError([origin.source.issue([...origin.path, ...keyToPath(combined, users[2])], message)]);
    }
  }
  const keyPath = [...prefix, ...keyToPath(value, err.key)];
  if (!prov) return new ConfigFileError([{ file: cfg.file, line: 0, path: formatPath(keyPath), message }]);
  return new ConfigFileError([prov.main.issue(keyPath, message)]);
}

/**
 * Turn an error thrown while using a loaded config (a ConfigError from FtpServer's constructor,
 * say, about server.tls.certFile) into a ConfigFileError naming the line. Other errors are returned as they are.
 */
export function explainServerError(cfg: LoadedConfig, err: unknown): unknown {
  return err instanceof ConfigError ? mapConfigError(cfg, err, ['server'], cfg.server) : err;
}

function virtualUserList(a: VirtualAuthorizerConfig): UserConfig[] {
  const list: UserConfig[] = [...a.users, ...a.usersFromFile];
  if (a.anonymous) list.push({ name: 'anonymous', ...a.anonymous });
  return list;
}

/** Characters a user name may not bring into a defaultHome template. */
function safeName(user: string): boolean {
  return user !== '' && user !== '.' && user !== '..' && !/[/\\\0]/.test(user);
}

function readSslFiles(cfg: LoadedConfig, ssl: boolean | PostgresSslConfig | undefined): PostgresAuthorizerOptions['ssl'] {
  if (ssl === undefined || typeof ssl === 'boolean') return ssl;
  const out: Record<string, unknown> = {};
  if (ssl.rejectUnauthorized !== undefined) out.rejectUnauthorized = ssl.rejectUnauthorized;
  if (ssl.servername !== undefined) out.servername = ssl.servername;
  for (const [k, target] of [
    ['caFile', 'ca'],
    ['certFile', 'cert'],
    ['keyFile', 'key'],
  ] as const) {
    const f = ssl[k];
    if (f === undefined) continue;
    try {
      out[target] = fs.readFileSync(f, 'utf8');
    } catch (err) {
      throw mapConfigError(cfg, new ConfigError(`ssl.${k}`, `cannot read ${f}: ${(err as NodeJS.ErrnoException).code}`), ['authorizer'], cfg.authorizer);
    }
  }
  return out as PostgresAuthorizerOptions['ssl'];
}

export interface BuildOptions {
  /** Use this logger instead of making one from `logging`. */
  logger?: Logger;
  /** Let an htpasswd authorizer watch its file (default: the config's `watch`); check-config passes false. */
  watch?: boolean;
  /** Where the lockout section's counts live (the daemon's workers share the primary's); default in memory. */
  lockoutStore?: LockoutStore;
}

/** The configured authorizer (without lockout), and how to release what it holds. */
export function buildAuthorizer(cfg: LoadedConfig, logger?: Logger, opts: { watch?: boolean } = {}): { authorizer: Authorizer; close(): Promise<void> } {
  const a = cfg.authorizer;
  try {
    switch (a.type) {
      case 'virtual': {
        const auth = fromConfig(virtualUserList(a), { allowPlaintextPasswords: a.allowPlaintextPasswords });
        return { authorizer: auth, close: async () => {} };
      }
      case 'htpasswd': {
        const template = a.defaultHome;
        // Loaded when used: pg and bcrypt are not needed by virtual users.
        const { HtpasswdAuthorizer } = require('../auth/htpasswd') as typeof import('../auth/htpasswd');
        const auth = new HtpasswdAuthorizer({
          file: a.file,
          users: a.users,
          defaultHome: template
            ? (user) => {
                if (!safeName(user)) throw new Error(`user name ${JSON.stringify(user)} cannot be put in defaultHome`);
                return template.split('{user}').join(user);
              }
            : undefined,
          defaultPerm: a.defaultPerm,
          defaultLimits: a.defaultLimits,
          watch: opts.watch ?? a.watch,
          reloadDelay: a.reloadDelay,
          logger,
        });
        return { authorizer: auth, close: async () => auth.close() };
      }
      case 'postgres': {
        const { PostgresAuthorizer } = require('../auth/postgres') as typeof import('../auth/postgres');
        const auth = new PostgresAuthorizer({
          connectionString: a.connectionString,
          host: a.host,
          port: a.port,
          user: a.user,
          password: a.password,
          database: a.database,
          ssl: readSslFiles(cfg, a.ssl),
          max: a.max,
          connectTimeout: a.connectTimeout,
          queryTimeout: a.queryTimeout,
          cacheTtl: a.cacheTtl,
          cacheMax: a.cacheMax,
          tables: a.tables,
          logger,
        });
        return { authorizer: auth, close: () => auth.close() };
      }
      case 'unix': {
        // Loaded when used: the native addon is only needed for system users.
        const { UnixAuthorizer } = require('../auth/unix') as typeof import('../auth/unix');
        const auth = new UnixAuthorizer({
          allowedUsers: a.allowedUsers,
          rejectedUsers: a.rejectedUsers,
          minUid: a.minUid,
          requireValidShell: a.requireValidShell,
          anonymousUser: a.anonymousUser,
          globalPerm: a.globalPerm,
          msgLogin: a.msgLogin,
          msgQuit: a.msgQuit,
          limits: a.limits,
          userLimits: a.userLimits,
          logger,
        });
        return { authorizer: auth, close: async () => {} };
      }
    }
  } catch (err) {
    // "authorizer: the server running as root ..." is about the whole section.
    if (err instanceof ConfigError && err.key === 'authorizer') throw mapConfigError(cfg, new ConfigError('', expectedText(err)), ['authorizer'], a);
    if (err instanceof ConfigError) throw mapConfigError(cfg, err, ['authorizer'], a);
    throw err;
  }
}

/** What can give a session its filesystem (UnixAuthorizer: one acting as the user). */
interface FileSystemProvider {
  fileSystemFor(user: string, home: string): FileSystem | Promise<FileSystem>;
}

function providesFileSystem(a: Authorizer): a is Authorizer & FileSystemProvider {
  return typeof (a as Partial<FileSystemProvider>).fileSystemFor === 'function';
}

/**
 * For system users, the filesystem factory of the authorizer in force (the reload point hides
 * fileSystemFor, so it is asked of the concrete authorizer inside it, the one that checked the login).
 */
function unixFileSystem(reloadable: ReloadableAuthorizer): FileSystemFactory {
  return (user, home) => {
    const current = reloadable.inner;
    if (!providesFileSystem(current)) throw new Error('the authorizer in force gives no per-user filesystem');
    return current.fileSystemFor(user, home);
  };
}

export interface BuiltConfig {
  /** What to give FtpServer: the file's server options, the authorizer and the logger (and, for unix, the per-user filesystem). */
  options: FtpServerOptions;
  /** The reload point: `reloadUsers` swaps the authorizer inside it. */
  authorizer: ReloadableAuthorizer;
  logger: Logger;
  /** The log made from `logging` (null when a logger was passed in). */
  log: DaemonLogger | null;
  /** Build the authorizer of `next` (a freshly loaded config) and put it in force; running sessions keep going. */
  reloadUsers(next: LoadedConfig): Promise<void>;
  /** Release the authorizer's resources (watchers, pools) and the log file. */
  close(): Promise<void>;
}

/**
 * Construct what the config describes: the logger (unless given), the authorizer (wrapped in
 * lockout when configured) and FtpServer's options. Throws ConfigFileError naming the line of a
 * value an authorizer refused, or the error of a log file that cannot be opened.
 */
export function buildFromConfig(cfg: LoadedConfig, opts: BuildOptions = {}): BuiltConfig {
  const log = opts.logger ? null : createDaemonLogger(cfg.logging);
  const logger = opts.logger ?? log!.logger;
  let inner: { authorizer: Authorizer; close(): Promise<void> };
  try {
    inner = buildAuthorizer(cfg, logger, { watch: opts.watch });
  } catch (err) {
    log?.close();
    throw err;
  }
  const reloadable = new ReloadableAuthorizer(inner.authorizer);
  let authorizer: Authorizer = reloadable;
  if (cfg.lockout) {
    try {
      authorizer = withLockout(reloadable, { ...cfg.lockout, logger, ...(opts.lockoutStore ? { store: opts.lockoutStore } : {}) });
    } catch (err) {
      void inner.close();
      log?.close();
      if (err instanceof ConfigError) throw mapConfigError(cfg, err, [], { lockout: cfg.lockout });
      throw err;
    }
  }
  const pending = new Set<Promise<void>>();
  // System users act as themselves on the disk; without this factory they would act as root.
  const unix = cfg.authorizer.type === 'unix';
  return {
    options: { ...cfg.server, authorizer, logger, ...(unix ? { fileSystem: unixFileSystem(reloadable) } : {}) },
    authorizer: reloadable,
    logger,
    log,
    async reloadUsers(next: LoadedConfig): Promise<void> {
      // The server's filesystem factory is fixed at start: switching to or from system users needs a restart.
      if ((next.authorizer.type === 'unix') !== unix) {
        const message = `changing to or from type unix needs a restart (running: ${unix ? 'unix' : 'not unix'})`;
        const prov = provenance.get(next);
        throw new ConfigFileError([prov ? prov.main.issue(['authorizer', 'type'], message) : { file: next.file, line: 0, path: 'authorizer.type', message }]);
      }
      const fresh = buildAuthorizer(next, logger, { watch: opts.watch });
      // Authorizers that keep per-login state (postgres rows, system accounts) hand it over, or
      // every open session of theirs would lose all its letters with the swap.
      const heir = fresh.authorizer as Authorizer & { inheritLogins?: (prev: Authorizer) => void };
      heir.inheritLogins?.(inner.authorizer);
      reloadable.swap(fresh.authorizer);
      const old = inner;
      inner = fresh;
      // Calls already made to the old authorizer (a login, a pool query) get a moment to finish.
      const closing = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref()).then(() => old.close()).catch(() => undefined);
      pending.add(closing);
      void closing.finally(() => pending.delete(closing));
    },
    async close(): Promise<void> {
      await inner.close().catch(() => undefined);
      log?.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// What check-config prints, and what the CLI checks at start

export interface ConfiguredHome {
  user: string;
  home: string;
  /** Where the home is set: "file:line: key path". */
  where: string;
  /** The user's password when it is plain text (for the demo's login line), else undefined. */
  plainPassword?: string;
  perm: string;
}

/** Every user home the config names (homes of database users are not known). */
export function configuredHomes(cfg: LoadedConfig): ConfiguredHome[] {
  const a = cfg.authorizer;
  const prov = provenance.get(cfg);
  const where = (origin: UserOrigin | undefined, keyPath: KeyPath): string => {
    const issue = origin ? origin.source.issue([...origin.path, 'home'], '') : prov ? prov.main.issue(keyPath, '') : undefined;
    return issue ? `${formatIssue(issue).replace(/: $/, '')}` : formatPath(keyPath);
  };
  if (a.type === 'virtual') {
    return virtualUserList(a).map((u, i) => ({
      user: u.name,
      home: u.home,
      where: where(prov?.users[i], ['authorizer', 'users', i, 'home']),
      plainPassword: u.password && !u.password.startsWith(SCRYPT_PREFIX) ? u.password : undefined,
      perm: u.perm ?? 'elr',
    }));
  }
  if (a.type === 'htpasswd') {
    return Object.entries(a.users).map(([user, u]) => ({
      user,
      home: u.home,
      where: where(undefined, ['authorizer', 'users', user, 'home']),
      perm: u.perm ?? a.defaultPerm,
    }));
  }
  return [];
}

/**
 * The config as it will be used, defaults filled in: server options as resolveOptions made them,
 * the rest as the schema filled them. Secrets are replaced by asterisks unless `reveal`.
 */
export function effectiveConfig(cfg: LoadedConfig, reveal = false): Record<string, unknown> {
  const resolved = resolveOptions({ ...cfg.server, authorizer: PROBE_AUTHORIZER }) as unknown as Record<string, unknown>;
  const server: Record<string, unknown> = {};
  for (const key of Object.keys(SERVER_OPTION_FIELDS)) {
    const v = resolved[key];
    if (v === null || v === undefined) continue;
    if (v instanceof Set) server[key] = [...v];
    else if (Array.isArray(v)) server[key] = [...v];
    else if (isPlainObject(v)) server[key] = { ...v };
    else server[key] = v;
  }
  if (cfg.runAs) server.runAs = { ...cfg.runAs };
  server.workers = cfg.workers ?? 1;
  server.engine = engineConfig(cfg);
  const out: Record<string, unknown> = { server, authorizer: structuredClone(cfg.authorizer) };
  if (cfg.lockout) out.lockout = { ...cfg.lockout };
  out.logging = { ...cfg.logging };
  if (cfg.demo) out.demo = { ...cfg.demo };
  const a = out.authorizer as Record<string, unknown>;
  if (a.type === 'virtual' && !a.usersFile) delete a.usersFromFile;
  return reveal ? out : (maskSecrets(EFFECTIVE_SCHEMA, out) as Record<string, unknown>);
}

/** The schema of effectiveConfig's output: the file's, plus the users read from usersFile. */
const EFFECTIVE_SCHEMA: ObjectNode = {
  ...CONFIG_SCHEMA,
  fields: {
    ...CONFIG_SCHEMA.fields,
    authorizer: {
      node: {
        kind: 'union',
        tag: 'type',
        variants: {
          ...(AUTHORIZER as { variants: Record<string, ObjectNode> }).variants,
          virtual: { ...VIRTUAL, fields: { ...VIRTUAL.fields, usersFromFile: { node: USERS } } },
        },
      },
    },
  },
};

/** effectiveConfig as YAML, secrets masked. */
export function formatEffectiveConfig(cfg: LoadedConfig): string {
  return stringify(effectiveConfig(cfg), { lineWidth: 0 });
}

/** Server options whose values differ between two loaded configs (they need a restart to apply). */
export function changedServerOptions(a: LoadedConfig, b: LoadedConfig): string[] {
  const ea = effectiveConfig(a, true).server as Record<string, unknown>;
  const eb = effectiveConfig(b, true).server as Record<string, unknown>;
  const keys = new Set([...Object.keys(ea), ...Object.keys(eb)]);
  return [...keys].filter((k) => JSON.stringify(ea[k]) !== JSON.stringify(eb[k])).sort();
}
