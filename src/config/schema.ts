/**
 * A small schema language for the daemon's config file: enough to check types, ranges, required
 * and unknown keys, fill defaults and resolve relative paths, and to say for each problem which
 * key it is about. It knows nothing about YAML; file.ts maps the key paths to lines.
 */
import * as nodePath from 'node:path';

/** A key path inside the config: object keys and list indexes. */
export type KeyPath = ReadonlyArray<string | number>;

export interface SchemaIssue {
  path: KeyPath;
  message: string;
}

interface Common {
  /** Masked when the effective config is printed: 'value' hides it all, 'url' only a URL's password. */
  secret?: 'value' | 'url';
}

export interface StringNode extends Common {
  kind: 'string';
  nonEmpty?: boolean;
  /** A file or folder path: a relative one is taken from the config file's folder. */
  path?: boolean;
}
export interface IntNode extends Common {
  kind: 'int';
  min: number;
  max: number;
}
export interface NumberNode extends Common {
  kind: 'number';
  min: number;
  max: number;
}
export interface BoolNode extends Common {
  kind: 'bool';
}
export interface EnumNode extends Common {
  kind: 'enum';
  values: readonly string[];
}
export interface ListNode extends Common {
  kind: 'list';
  of: SchemaNode;
}
export interface Field {
  node: SchemaNode;
  required?: boolean;
  /** Filled in when the key is absent (shown by check-config). */
  default?: unknown;
}
export interface ObjectNode extends Common {
  kind: 'object';
  fields: Readonly<Record<string, Field>>;
  /** One line saying what the object is, for "expected ..." messages. */
  expected?: string;
}
/** An object with free keys (user names, addresses), each value of one shape. */
export interface MapNode extends Common {
  kind: 'map';
  of: SchemaNode;
}
/** Objects told apart by one string field (`type: virtual`). */
export interface UnionNode extends Common {
  kind: 'union';
  tag: string;
  variants: Readonly<Record<string, ObjectNode>>;
}
/** The first of several shapes that fits (a boolean or an object, say). */
export interface AltNode extends Common {
  kind: 'alt';
  options: readonly SchemaNode[];
  expected: string;
}
/** Any value: another checker (resolveOptions, an authorizer's constructor) has the last word. */
export interface AnyNode extends Common {
  kind: 'any';
}

export type SchemaNode = StringNode | IntNode | NumberNode | BoolNode | EnumNode | ListNode | ObjectNode | MapNode | UnionNode | AltNode | AnyNode;

export interface CheckContext {
  /** Folder relative paths are taken from. */
  baseDir: string;
  issues: SchemaIssue[];
}

export function formatPath(path: KeyPath): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return JSON.stringify(v);
}

/** What a value is, without its value. */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v === 'number' ? 'a number' : typeof v === 'boolean' ? 'true or false' : `a ${typeof v}`;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What a node expects, in words. */
export function expectation(node: SchemaNode): string {
  switch (node.kind) {
    case 'string':
      return node.path ? 'a path' : node.nonEmpty ? 'a non-empty string' : 'a string';
    case 'int':
      return `an integer from ${node.min} to ${node.max}`;
    case 'number':
      return `a number from ${node.min} to ${node.max}`;
    case 'bool':
      return 'true or false';
    case 'enum':
      return `one of ${node.values.join(', ')}`;
    case 'list':
      return `a list of ${expectation(node.of).replace(/^an? /, '')}s`;
    case 'object':
      return node.expected ?? `a mapping { ${Object.keys(node.fields).join(', ')} }`;
    case 'map':
      return 'a mapping';
    case 'union':
      return `a mapping with ${node.tag}: ${Object.keys(node.variants).join(' | ')}`;
    case 'alt':
      return node.expected;
    case 'any':
      return 'a value';
  }
}

/**
 * Check `value` against `node`, recording every problem in ctx.issues, and return the value with
 * defaults filled and relative paths resolved. A value with problems comes back as it was.
 */
export function check(node: SchemaNode, value: unknown, path: KeyPath, ctx: CheckContext): unknown {
  const fail = (message: string): unknown => {
    ctx.issues.push({ path, message });
    return value;
  };
  // A secret's value is never echoed, not even a wrong one: it may be the password itself.
  const expected = (): unknown => fail(`expected ${expectation(node)}, got ${node.secret ? kindOf(value) : describe(value)}`);
  switch (node.kind) {
    case 'any':
      return value;
    case 'string': {
      if (typeof value !== 'string') return expected();
      if ((node.nonEmpty || node.path) && value === '') return fail(`expected ${expectation(node)}, got an empty string`);
      if (node.path) {
        if (value.includes('\0')) return fail('expected a path without NUL');
        return resolvePath(ctx.baseDir, value);
      }
      return value;
    }
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < node.min || value > node.max) return expected();
      return value;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value) || value < node.min || value > node.max) return expected();
      return value;
    case 'bool':
      if (typeof value !== 'boolean') return expected();
      return value;
    case 'enum':
      if (typeof value !== 'string' || !node.values.includes(value)) return expected();
      return value;
    case 'list':
      if (!Array.isArray(value)) return expected();
      return value.map((item, i) => check(node.of, item, [...path, i], ctx));
    case 'map': {
      if (!isPlainObject(value)) return expected();
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = check(node.of, v, [...path, k], ctx);
      return out;
    }
    case 'object':
      if (!isPlainObject(value)) return expected();
      return checkFields(node, value, path, ctx);
    case 'union': {
      if (!isPlainObject(value)) return expected();
      const tag = value[node.tag];
      const names = Object.keys(node.variants);
      if (tag === undefined) {
        ctx.issues.push({ path, message: `missing ${node.tag} (expected ${names.join(' | ')})` });
        return value;
      }
      const variant = typeof tag === 'string' ? node.variants[tag] : undefined;
      if (variant === undefined || !Object.prototype.hasOwnProperty.call(node.variants, tag as string)) {
        ctx.issues.push({ path: [...path, node.tag], message: `expected ${names.join(' | ')}, got ${describe(tag)}` });
        return value;
      }
      const rest = { ...value };
      delete rest[node.tag];
      return { [node.tag]: tag, ...(checkFields(variant, rest, path, ctx) as object) };
    }
    case 'alt': {
      for (const option of node.options) {
        const trial: CheckContext = { baseDir: ctx.baseDir, issues: [] };
        const out = check(option, value, path, trial);
        if (trial.issues.length === 0) return out;
        // An object that is the right kind of value but has bad fields: report those fields.
        if (option.kind === 'object' && isPlainObject(value)) {
          ctx.issues.push(...trial.issues);
          return value;
        }
      }
      return expected();
    }
  }
}

function checkFields(node: ObjectNode, value: Record<string, unknown>, path: KeyPath, ctx: CheckContext): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const field = Object.prototype.hasOwnProperty.call(node.fields, k) ? node.fields[k] : undefined;
    if (field === undefined) {
      ctx.issues.push({ path: [...path, k], message: unknownKey(k, Object.keys(node.fields)) });
      continue;
    }
    // An explicit null is the same as leaving the key out (an empty "key:" line in YAML).
    if (v === null || v === undefined) continue;
    out[k] = check(field.node, v, [...path, k], ctx);
  }
  for (const [k, field] of Object.entries(node.fields)) {
    if (k in out) continue;
    if (field.required) {
      ctx.issues.push({ path, message: `missing ${k} (expected ${expectation(field.node)})` });
    } else if (field.default !== undefined) {
      out[k] = structuredClone(field.default);
    }
  }
  return out;
}

/** "unknown key", with the closest known key when it is close, else the known keys when they are few. */
export function unknownKey(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3))) return `unknown key (did you mean ${best}?)`;
  return known.length <= 8 ? `unknown key (expected one of ${known.join(', ')})` : 'unknown key';
}

/** Edit distance where swapping two neighbouring letters counts as one edit (a typo's usual shape). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

function resolvePath(baseDir: string, p: string): string {
  return nodePath.resolve(baseDir, p);
}

/**
 * Every key path the schema knows, for documentation checks: `server.tls.certFile`,
 * `authorizer.users[].perm` (list items as `[]`, free map keys as `*`).
 */
export function schemaKeys(node: SchemaNode, prefix = ''): string[] {
  const join = (k: string): string => (prefix === '' ? k : `${prefix}.${k}`);
  switch (node.kind) {
    case 'object':
      return Object.entries(node.fields).flatMap(([k, f]) => [join(k), ...schemaKeys(f.node, join(k))]);
    case 'union': {
      const keys = new Set<string>([join(node.tag)]);
      for (const variant of Object.values(node.variants)) for (const k of schemaKeys(variant, prefix)) keys.add(k);
      return [...keys];
    }
    case 'list':
      return schemaKeys(node.of, `${prefix}[]`);
    case 'map':
      return schemaKeys(node.of, join('*'));
    case 'alt':
      return node.options.flatMap((o) => schemaKeys(o, prefix));
    default:
      return [];
  }
}

/** Replace secrets by asterisks, following the schema; values the schema does not describe are kept. */
export function maskSecrets(node: SchemaNode, value: unknown): unknown {
  if (node.secret === 'value' && typeof value === 'string') return value === '' ? '' : '********';
  if (node.secret === 'url' && typeof value === 'string') return maskUrlPassword(value);
  switch (node.kind) {
    case 'list':
      return Array.isArray(value) ? value.map((v) => maskSecrets(node.of, v)) : value;
    case 'map':
      return isPlainObject(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(node.of, v)])) : value;
    case 'object':
      return isPlainObject(value)
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, node.fields[k] ? maskSecrets(node.fields[k].node, v) : v]))
        : value;
    case 'union': {
      if (!isPlainObject(value)) return value;
      const variant = node.variants[value[node.tag] as string];
      return variant ? maskSecrets(variant, value) : value;
    }
    case 'alt': {
      const fit = node.options.find((o) => (o.kind === 'object' ? isPlainObject(value) : o.kind === 'bool' ? typeof value === 'boolean' : true));
      return fit ? maskSecrets(fit, value) : value;
    }
    default:
      return value;
  }
}

/** postgres://user:secret@host/db → postgres://user:********@host/db; key=value strings get password=******** . */
export function maskUrlPassword(s: string): string {
  // The password runs to the last @ of the authority (before the first /), as pg reads it. A
  // password with an unencoded / (which pg refuses as an invalid URL) runs to the string's last
  // @: masking a path's @ too is better than showing the password.
  const head = /^[a-z][a-z0-9+.-]*:\/\/[^/:@]*:/i.exec(s);
  // An @ after a / past the user name (the password holds a /) takes the greedy form.
  const slashThenAt = head !== null && /\/.*@/s.test(s.slice(head[0].length));
  const url = slashThenAt
    ? /^([a-z][a-z0-9+.-]*:\/\/[^/:@]*:)(.*)(@)/is.exec(s)
    : /^([a-z][a-z0-9+.-]*:\/\/[^/:@]*:)([^/]*)(@)/i.exec(s);
  let out = url ? `${url[1]}********${url[3]}${s.slice(url[0].length)}` : s;
  out = out.replace(/([?&\s]|^)(password=)([^&\s]*)/gi, (_m, a: string, b: string) => `${a}${b}********`);
  return out;
}
