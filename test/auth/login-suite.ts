/**
 * One set of login and permission tests, registered once per authorizer (virtual, htpasswd,
 * PostgreSQL), all through a real server on loopback and the raw line client.
 *
 * Each authorizer's setup gets three fresh homes and must provide:
 * - `reader`: letters 'elr', an override 'elrw' on /uploads (not recursive), msgLogin READER_MSG;
 * - `writer`: letters 'elradfmwMT';
 * - `limited`: letters 'elr' and the limits LIMITED_LIMITS (from the authorizer's getLimits).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExecutionContext, TestFn } from 'ava';
import type { Authorizer } from '../../src/auth';
import { LineClient, readAll } from '../helpers/line-client';
import { startServer, type TestServer } from '../helpers/server';

export const READER_MSG = 'Welcome, reader.';
export const READER_PERM = 'elr';
export const WRITER_PERM = 'elradfmwMT';
export const UPLOADS_OVERRIDE = { path: '/uploads', perm: 'elrw', recursive: false };
export const LIMITED_MAX_SESSIONS = 2;
export const LIMITED_LIMITS = { maxSessions: LIMITED_MAX_SESSIONS };

export interface Credentials {
  name: string;
  password: string;
}

export interface SuiteSetup {
  authorizer: Authorizer;
  reader: Credentials;
  writer: Credentials;
  limited: Credentials;
}

export interface Homes {
  reader: string;
  writer: string;
  limited: string;
}

export type SetupFn = (t: ExecutionContext, homes: Homes) => Promise<SuiteSetup>;

interface Env {
  s: TestServer;
  setup: SuiteSetup;
  homes: Homes;
}

async function prepare(t: ExecutionContext, setupFn: SetupFn): Promise<Env> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-auth-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const homes = { reader: path.join(base, 'reader'), writer: path.join(base, 'writer'), limited: path.join(base, 'limited') };
  fs.mkdirSync(path.join(homes.reader, 'uploads'), { recursive: true });
  fs.mkdirSync(homes.writer);
  fs.mkdirSync(homes.limited);
  const setup = await setupFn(t, homes);
  const s = await startServer(t, { authorizer: setup.authorizer });
  return { s, setup, homes };
}

async function loggedIn(env: Env, who: Credentials): Promise<LineClient> {
  const c = await LineClient.open(env.s.port);
  await c.login(who.name, who.password);
  return c;
}

/** STOR `name` with `body` over EPSV; the final reply code (550 comes before any data). */
async function stor(c: LineClient, name: string, body: string): Promise<number> {
  const data = await c.epsvConnect();
  const first = await c.cmd(`STOR ${name}`);
  if (first.code !== 150 && first.code !== 125) {
    data.destroy();
    return first.code;
  }
  data.end(body);
  await new Promise((resolve) => data.once('close', resolve));
  return (await c.read())!.code;
}

/** Register the suite under `label`. `test` may be `test.serial` for authorizers sharing state. */
export function registerLoginSuite(test: TestFn, label: string, setupFn: SetupFn): void {
  test(`${label}: a good password logs in (230, the user's message), wrong ones get 530`, async (t) => {
    const env = await prepare(t, setupFn);
    const { reader, writer } = env.setup;
    const c = await LineClient.open(env.s.port);
    t.is((await c.cmd(`USER ${reader.name}`)).code, 331);
    t.is((await c.cmd(`PASS ${reader.password}x`)).code, 530);
    t.is((await c.cmd(`USER ${reader.name}`)).code, 331);
    t.is((await c.cmd('PASS')).code, 530, 'empty password');
    t.is((await c.cmd(`USER nobody-${reader.name}`)).code, 331);
    t.is((await c.cmd(`PASS ${reader.password}`)).code, 530, 'unknown user');
    c.close();

    const r = await LineClient.open(env.s.port);
    t.is((await r.cmd(`USER ${reader.name}`)).code, 331);
    const ok = await r.cmd(`PASS ${reader.password}`);
    t.is(ok.code, 230);
    t.is(ok.text, READER_MSG);
    t.is((await r.cmd('PWD')).code, 257);
    r.close();

    const w = await loggedIn(env, writer);
    t.is((await w.cmd('PWD')).code, 257);
    w.close();
  });

  test(`${label}: 'elr' may list and read but not STOR or MKD (550)`, async (t) => {
    const env = await prepare(t, setupFn);
    fs.writeFileSync(path.join(env.homes.reader, 'hello.txt'), 'hello');
    const c = await loggedIn(env, env.setup.reader);
    t.is((await c.cmd('STOR new.txt')).code, 550);
    t.is((await c.cmd('MKD sub')).code, 550);
    t.is((await c.cmd('DELE hello.txt')).code, 550);
    t.is((await c.cmd('TYPE I')).code, 200);
    t.is((await c.cmd('SIZE hello.txt')).code, 213);
    const data = await c.epsvConnect();
    t.true([125, 150].includes((await c.cmd('RETR hello.txt')).code));
    t.is((await readAll(data)).toString(), 'hello');
    t.is((await c.read())!.code, 226);
    t.false(fs.existsSync(path.join(env.homes.reader, 'new.txt')));
    c.close();
  });

  test(`${label}: 'elradfmwMT' may STOR, MKD and DELE`, async (t) => {
    const env = await prepare(t, setupFn);
    const c = await loggedIn(env, env.setup.writer);
    t.is(await stor(c, 'up.txt', 'uploaded'), 226);
    t.is(fs.readFileSync(path.join(env.homes.writer, 'up.txt'), 'utf8'), 'uploaded');
    t.is((await c.cmd('MKD sub')).code, 257);
    t.is((await c.cmd('DELE up.txt')).code, 250);
    c.close();
  });

  test(`${label}: an override grants 'w' in /uploads only, not below it`, async (t) => {
    const env = await prepare(t, setupFn);
    fs.mkdirSync(path.join(env.homes.reader, 'uploads', 'deeper'));
    const c = await loggedIn(env, env.setup.reader);
    t.is(await stor(c, '/uploads/in.txt', 'in'), 226);
    t.is(fs.readFileSync(path.join(env.homes.reader, 'uploads', 'in.txt'), 'utf8'), 'in');
    t.is((await c.cmd('STOR /outside.txt')).code, 550, 'root keeps the base letters');
    t.is((await c.cmd('STOR /uploads/deeper/x.txt')).code, 550, 'not recursive');
    t.is((await c.cmd('DELE /uploads/in.txt')).code, 550, "'d' is not in the override");
    // The folder above an override is what RNFR refuses to move (test/commands/perms.test.ts).
    const a = env.setup.authorizer;
    t.is(typeof a.overridesBelow, 'function', 'the authorizer says where its overrides are');
    t.true(await a.overridesBelow!(env.setup.reader.name, '/'), '/ holds /uploads');
    t.false(await a.overridesBelow!(env.setup.reader.name, '/uploads'), 'the override folder itself: its own letters decide');
    t.false(await a.overridesBelow!(env.setup.reader.name, '/elsewhere'));
    t.false(await a.overridesBelow!(env.setup.reader.name, '/upload'), 'a name sharing a prefix is not a parent');
    c.close();
  });

  test(`${label}: maxSessions from the authorizer: the N+1th login gets 530`, async (t) => {
    const env = await prepare(t, setupFn);
    const { limited, writer } = env.setup;
    const open: LineClient[] = [];
    t.teardown(() => open.forEach((c) => c.close()));
    for (let i = 0; i < LIMITED_MAX_SESSIONS; i++) open.push(await loggedIn(env, limited));
    // Asked after a login: some authorizers only know a user's limits once the user has logged in.
    t.deepEqual(await env.setup.authorizer.getLimits?.(limited.name), LIMITED_LIMITS);
    const extra = await LineClient.open(env.s.port);
    open.push(extra);
    t.is((await extra.cmd(`USER ${limited.name}`)).code, 331);
    const refused = await extra.cmd(`PASS ${limited.password}`);
    t.is(refused.code, 530);
    t.is(refused.text, 'Too many sessions for this user.');
    t.is((await extra.cmd('NOOP')).code, 200, 'the connection stays');
    // Another user is not counted against it.
    const w = await loggedIn(env, writer);
    open.push(w);
    t.is((await w.cmd('PWD')).code, 257);
    // A QUIT frees a slot.
    t.is((await open[0].cmd('QUIT')).code, 221);
    await open[0].whenClosed();
    await extra.login(limited.name, limited.password);
    t.is((await extra.cmd('PWD')).code, 257);
  });
}
