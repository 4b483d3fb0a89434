// Per-user limits (UserLimits): sessions, bandwidth and disk quota, over real loopback sockets,
// plus how VirtualAuthorizer and the config file take them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { ConfigError } from '../../src/config/errors';
import { ConfigFileError, buildAuthorizer, loadConfigFile } from '../../src/config/file';
import { VirtualAuthorizer, fromConfig, type UserLimits } from '../../src/auth';
import { startServer, type StartOptions, type TestServer } from '../helpers/server';
import { LineClient, type Reply } from '../helpers/line-client';
import { loggedIn, nextEvent, prepareData, randomContent, retr, sha256, startTransfer } from '../helpers/data-client';

const USER = 'limited';
const PASS = 'limited-pw';

/** A server whose one user, USER, has `limits` and every permission letter; its home is ts.root. */
async function serve(t: ExecutionContext, limits: UserLimits, opts: StartOptions = {}): Promise<TestServer> {
  const auth = new VirtualAuthorizer({ scrypt: { ln: 4, r: 8, p: 1 } });
  const ts = await startServer(t, { ...opts, authorizer: auth });
  auth.addUser(USER, PASS, ts.root, { perm: 'elradfmwMT', limits });
  return ts;
}

async function login(ts: TestServer): Promise<LineClient> {
  return loggedIn(ts.port, USER, PASS);
}

/**
 * STOR/APPE/STOU over a passive connection. Unlike the shared helper it ignores errors on the
 * data socket: a server that stops an upload at the quota closes the connection under the sender.
 */
async function upload(c: LineClient, line: string, body: Buffer): Promise<{ first: Reply; final: Reply | null }> {
  const plan = await prepareData(c, 'passive');
  c.send(`${line}\r\n`);
  const first = await c.read();
  if (!first) throw new Error(`connection closed after ${line}`);
  if (first.code !== 150 && first.code !== 125) {
    plan.close();
    return { first, final: null };
  }
  const sock = await plan.socket();
  sock.on('error', () => {});
  sock.end(body);
  const final = await c.read();
  sock.destroy();
  return { first, final };
}

const onDisk = (ts: TestServer, name: string): Buffer => fs.readFileSync(path.join(ts.root, name));

// ---- maxSessions -----------------------------------------------------------------------------

test('maxSessions: the login past the limit gets 530 and keeps its connection; QUIT and REIN free a slot', async (t) => {
  const ts = await serve(t, { maxSessions: 2 });
  const a = await login(ts);
  const b = await login(ts);
  const c = await LineClient.open(ts.port);
  t.is((await c.cmd(`USER ${USER}`)).code, 331);
  const refused = await c.cmd(`PASS ${PASS}`);
  t.is(refused.code, 530);
  t.is(refused.text, 'Too many sessions for this user.');
  // Still connected, and not logged in.
  t.is((await c.cmd('NOOP')).code, 200);
  t.is((await c.cmd('PWD')).code, 530);

  t.is((await a.cmd('QUIT')).code, 221);
  await a.whenClosed();
  await c.login(USER, PASS);
  t.is((await c.cmd('PWD')).code, 257);

  // REIN logs out: its slot is free for another connection.
  const d = await LineClient.open(ts.port);
  t.is((await d.cmd(`USER ${USER}`)).code, 331);
  t.is((await d.cmd(`PASS ${PASS}`)).code, 530);
  t.is((await b.cmd('REIN')).code, 220);
  await d.login(USER, PASS);
  // And the REIN'd session cannot take a third slot back.
  t.is((await b.cmd(`USER ${USER}`)).code, 331);
  t.is((await b.cmd(`PASS ${PASS}`)).code, 530);

  // A dropped connection gives its slot back too.
  const gone = nextEvent(ts.server, 'disconnect');
  c.close();
  await gone;
  await b.login(USER, PASS);
  t.pass();
});

// ---- bandwidth -------------------------------------------------------------------------------

test('writeLimit: a 256 KiB download at 128 KiB/s takes at least 1.5 s', async (t) => {
  const ts = await serve(t, { writeLimit: 128 * 1024 });
  const body = randomContent(256 * 1024);
  fs.writeFileSync(path.join(ts.root, 'big.bin'), body);
  const c = await login(ts);
  const started = Date.now();
  const r = await retr(c, 'passive', 'RETR big.bin');
  const took = Date.now() - started;
  t.is(r.final?.code, 226);
  t.is(r.digest.sha256, sha256(body));
  t.true(took >= 1500, `took ${took} ms`);
  // 256 KiB at 128 KiB/s is 2 s. The upper bound (3x that plus 2 s) only catches a pace that is
  // grossly wrong (a rate unit slip made it 8x too slow and no test saw it), never a loaded machine.
  t.true(took <= 3 * 2000 + 2000, `took ${took} ms: far slower than 128 KiB/s`);
});

test("writeLimit is shared: two downloads of one user at once split it", async (t) => {
  // Alone, each 128 KiB file would take about 1 s at 128 KiB/s; shared, the second one to start gets half.
  const ts = await serve(t, { writeLimit: 128 * 1024 });
  const body = randomContent(128 * 1024);
  fs.writeFileSync(path.join(ts.root, 'one.bin'), body);
  const c1 = await login(ts);
  const c2 = await login(ts);
  const timed = async (c: LineClient): Promise<number> => {
    const started = Date.now();
    const r = await retr(c, 'passive', 'RETR one.bin');
    t.is(r.final?.code, 226);
    t.is(r.digest.sha256, sha256(body));
    return Date.now() - started;
  };
  const times = await Promise.all([timed(c1), timed(c2)]);
  t.true(Math.max(...times) >= 1500, `took ${times.join(' and ')} ms`);
  // 256 KiB in all at 128 KiB/s is 2 s. The upper bound (3x that plus 2 s) only catches a pace
  // that is grossly wrong (8x too slow passed before), never a loaded machine.
  t.true(Math.max(...times) <= 3 * 2000 + 2000, `took ${times.join(' and ')} ms: far slower than 128 KiB/s`);
});

for (const useSendfile of [true, false]) {
  test(`writeLimit (useSendfile ${useSendfile}) is divided again as downloads start and end: four started in turn stay within it together, and the last one left speeds up to it`, async (t) => {
    // Each running download's share follows the number running: a share fixed at each start
    // let four downloads started in turn take limit × (1 + 1/2 + 1/3 + 1/4), 2.08 times it, and
    // left the last one at a quarter of the limit after the others had ended.
    const LIMIT = 256 * 1024;
    const ts = await serve(t, { writeLimit: LIMIT }, { useSendfile });
    fs.writeFileSync(path.join(ts.root, 'big.bin'), randomContent(8 * 1024 * 1024));
    const engines: string[] = [];
    const onEnd = (_p: string, info: { engine: string }): void => {
      engines.push(info.engine);
    };
    ts.server.on('incompleteFileSent', onEnd);
    const downloads: Array<{ c: LineClient; data: import('node:net').Socket; bytes: number }> = [];
    for (let i = 0; i < 4; i++) {
      const c = await login(ts);
      const data = await startTransfer(t, c, 'passive', 'RETR big.bin');
      const d = { c, data, bytes: 0 };
      data.on('data', (b: Buffer) => (d.bytes += b.length));
      downloads.push(d);
      await new Promise((r) => setTimeout(r, 400));
    }
    const window = async (ds: typeof downloads, ms: number): Promise<number> => {
      const before = ds.reduce((n, d) => n + d.bytes, 0);
      const started = Date.now();
      await new Promise((r) => setTimeout(r, ms));
      return (ds.reduce((n, d) => n + d.bytes, 0) - before) / ((Date.now() - started) / 1000);
    };
    const together = await window(downloads, 2500);
    t.true(together <= LIMIT * 1.4, `four downloads together at ${Math.round(together)} B/s, the limit ${LIMIT}`);
    t.true(together >= LIMIT * 0.25, `four downloads together at only ${Math.round(together)} B/s`);

    // The first three go (the client vanishes mid-transfer): the last gets the whole limit.
    const last = downloads[3];
    for (const d of downloads.slice(0, 3)) {
      d.data.destroy();
      d.c.close();
    }
    await new Promise((r) => setTimeout(r, 800));
    const alone = await window([last], 2500);
    t.log(`together ${(together / LIMIT).toFixed(2)}x the limit, the last one alone ${(alone / LIMIT).toFixed(2)}x`);
    t.true(alone >= LIMIT * 0.75, `the last download alone at ${Math.round(alone)} B/s, a quarter of the limit is ${LIMIT / 4}`);
    t.true(alone <= LIMIT * 1.4, `the last download alone at ${Math.round(alone)} B/s, the limit ${LIMIT}`);

    // The session and the server are fine: ABOR ends the last one with 426 then 226.
    last.c.send('ABOR\r\n');
    t.is((await last.c.read())?.code, 426);
    t.is((await last.c.read())?.code, 226);
    last.data.destroy();
    t.is((await last.c.cmd('NOOP')).code, 200);
    while (engines.length < 4) await new Promise((r) => setTimeout(r, 50));
    t.deepEqual(engines, Array(4).fill(useSendfile ? 'sendfile' : 'stream'), 'each path was the one asked for');
  });

  test(`readLimit (useSendfile ${useSendfile}) is divided again as uploads start and end: three started in turn stay within it together, and the last one left speeds up to it`, async (t) => {
    // Measured by what reaches the files (the socket buffers take megabytes at once, so the
    // clients' own counts would not show the pace). A share fixed at each start gave three
    // uploads limit × (1 + 1/2 + 1/3), 1.83 times it, and the last one a third of it at the end.
    const LIMIT = 256 * 1024;
    const ts = await serve(t, { readLimit: LIMIT }, { useSendfile });
    const engines: string[] = [];
    ts.server.on('incompleteFileReceived', (_p: string, info: { engine: string }) => engines.push(info.engine));
    const chunk = randomContent(64 * 1024);
    const uploads: Array<{ c: LineClient; data: import('node:net').Socket; file: string }> = [];
    for (let i = 0; i < 3; i++) {
      const c = await login(ts);
      const data = await startTransfer(t, c, 'passive', `STOR up${i}.bin`);
      // Keep the socket full until it is destroyed.
      const feed = (): void => {
        while (!data.destroyed && data.write(chunk)) {
          if (data.writableLength > 4 * 1024 * 1024) break;
        }
      };
      data.on('drain', feed);
      feed();
      uploads.push({ c, data, file: path.join(ts.root, `up${i}.bin`) });
      await new Promise((r) => setTimeout(r, 400));
    }
    const size = (f: string): number => fs.statSync(f, { throwIfNoEntry: false })?.size ?? 0;
    const window = async (us: typeof uploads, ms: number): Promise<number> => {
      const before = us.reduce((n, u) => n + size(u.file), 0);
      const started = Date.now();
      await new Promise((r) => setTimeout(r, ms));
      return (us.reduce((n, u) => n + size(u.file), 0) - before) / ((Date.now() - started) / 1000);
    };
    const together = await window(uploads, 2500);
    t.true(together <= LIMIT * 1.4, `three uploads together at ${Math.round(together)} B/s, the limit ${LIMIT}`);
    t.true(together >= LIMIT * 0.25, `three uploads together at only ${Math.round(together)} B/s`);
    const last = uploads[2];
    // A reset, not a FIN: a FIN ends an upload cleanly (226).
    for (const u of uploads.slice(0, 2)) {
      u.data.resetAndDestroy();
      u.c.close();
    }
    await new Promise((r) => setTimeout(r, 800));
    const alone = await window([last], 2500);
    t.log(`together ${(together / LIMIT).toFixed(2)}x the limit, the last one alone ${(alone / LIMIT).toFixed(2)}x`);
    t.true(alone >= LIMIT * 0.75, `the last upload alone at ${Math.round(alone)} B/s, a third of the limit is ${Math.round(LIMIT / 3)}`);
    t.true(alone <= LIMIT * 1.4, `the last upload alone at ${Math.round(alone)} B/s, the limit ${LIMIT}`);
    last.data.resetAndDestroy();
    const final = await last.c.read();
    t.true(final?.code === 426 || final?.code === 451, `${final?.code} ${final?.text}`);
    t.is((await last.c.cmd('NOOP')).code, 200);
    while (engines.length < 3) await new Promise((r) => setTimeout(r, 50));
    t.deepEqual(engines, Array(3).fill(useSendfile ? 'splice' : 'stream'), 'each path was the one asked for');
  });

  test(`readLimit (useSendfile ${useSendfile}): a 256 KiB upload at 128 KiB/s takes at least 1.5 s and arrives whole`, async (t) => {
    const ts = await serve(t, { readLimit: 128 * 1024 }, { useSendfile });
    const c = await login(ts);
    const body = randomContent(256 * 1024);
    const started = Date.now();
    const r = await upload(c, 'STOR up.bin', body);
    const took = Date.now() - started;
    t.true([125, 150].includes(r.first.code), `${r.first.code} ${r.first.text}`);
    t.is(r.final?.code, 226, `${r.final?.code} ${r.final?.text}`);
    t.is(sha256(onDisk(ts, 'up.bin')), sha256(body));
    // The socket buffers take some of it at once, hence 1.5 s rather than 2 s. The upper bound
    // (3x the 2 s plus 2 s) only catches a pace that is grossly wrong, never a loaded machine.
    t.true(took >= 1500, `took ${took} ms`);
    t.true(took <= 3 * 2000 + 2000, `took ${took} ms: far slower than 128 KiB/s`);
  });
}

// ---- disk quota: bytes -----------------------------------------------------------------------

for (const useSendfile of [true, false]) {
  test(`quotaBytes (useSendfile ${useSendfile}): the upload crossing it keeps what fits and gets 552; DELE frees room`, async (t) => {
    const ts = await serve(t, { quotaBytes: 100_000 }, { useSendfile });
    const old = randomContent(10_000);
    fs.writeFileSync(path.join(ts.root, 'old.bin'), old);
    const c = await login(ts);
    const a = randomContent(40_000);
    const b = Buffer.from(randomContent(40_001).subarray(1));

    t.is((await upload(c, 'STOR a.bin', a)).final?.code, 226);
    t.is((await upload(c, 'STOR b.bin', b)).final?.code, 226);
    const crossing = Buffer.from(randomContent(40_002).subarray(2));
    const r = await upload(c, 'STOR c.bin', crossing);
    t.true([125, 150].includes(r.first.code), String(r.first.code));
    t.is(r.final?.code, 552);
    t.is(r.final?.text, 'Quota exceeded.');

    // Earlier files intact and whole; the crossing one holds what fitted (100 000 - 90 000 bytes).
    t.is(sha256(onDisk(ts, 'old.bin')), sha256(old));
    t.is(sha256(onDisk(ts, 'a.bin')), sha256(a));
    t.is(sha256(onDisk(ts, 'b.bin')), sha256(b));
    t.deepEqual(onDisk(ts, 'c.bin'), crossing.subarray(0, 10_000));

    // The session still works; at the quota, an upload is refused before any 150.
    t.is((await c.cmd('NOOP')).code, 200);
    const full = await upload(c, 'STOR d.bin', randomContent(10));
    t.is(full.first.code, 552);
    t.is(full.final, null);
    t.false(fs.existsSync(path.join(ts.root, 'd.bin')));

    // DELE frees its room at once.
    t.is((await c.cmd('DELE a.bin')).code, 250);
    const d = Buffer.from(randomContent(30_003).subarray(3));
    t.is((await upload(c, 'STOR d.bin', d)).final?.code, 226);
    t.is(sha256(onDisk(ts, 'd.bin')), sha256(d));

    // Replacing a file counts only the difference: c.bin (10 000) becomes 20 000 bytes (total 100 000).
    const c2 = Buffer.from(randomContent(20_004).subarray(4));
    t.is((await upload(c, 'STOR c.bin', c2)).final?.code, 226);
    t.is(sha256(onDisk(ts, 'c.bin')), sha256(c2));
  });
}

test('quotaBytes: APPE across the limit keeps the old bytes and what fits of the new', async (t) => {
  const ts = await serve(t, { quotaBytes: 50_000 });
  const c = await login(ts);
  const first = randomContent(30_000);
  t.is((await upload(c, 'STOR f.bin', first)).final?.code, 226);
  const more = Buffer.from(randomContent(30_005).subarray(5));
  const r = await upload(c, 'APPE f.bin', more);
  t.true([125, 150].includes(r.first.code), String(r.first.code));
  t.is(r.final?.code, 552);
  t.deepEqual(onDisk(ts, 'f.bin'), Buffer.concat([first, more.subarray(0, 20_000)]));
  // Full: APPE is refused before the 150.
  t.is((await upload(c, 'APPE f.bin', randomContent(10))).first.code, 552);
  t.is(onDisk(ts, 'f.bin').length, 50_000);
});

test('quotaBytes is shared by the sessions of one user, and counts files made before login', async (t) => {
  const ts = await serve(t, { quotaBytes: 64 * 1024 });
  fs.mkdirSync(path.join(ts.root, 'sub'));
  fs.writeFileSync(path.join(ts.root, 'sub', 'there.bin'), randomContent(32 * 1024));
  const c1 = await login(ts);
  const c2 = await login(ts);
  t.is((await upload(c1, 'STOR one.bin', randomContent(16 * 1024))).final?.code, 226);
  const r = await upload(c2, 'STOR two.bin', randomContent(32 * 1024));
  t.is(r.final?.code, 552);
  t.is(onDisk(ts, 'two.bin').length, 16 * 1024);
});

test('quotaBytes: DELE, RNFR, RNTO and SITE CPTO of a file being uploaded wait (450), so the usage stays right', async (t) => {
  const ts = await serve(t, { quotaBytes: 1024 * 1024 });
  fs.writeFileSync(path.join(ts.root, 'other.bin'), 'o');
  fs.mkdirSync(path.join(ts.root, 'd'));
  const a = await login(ts);
  const b = await login(ts);
  // a's upload of keep.bin is under way, its data connection held open.
  const plan = await prepareData(a, 'passive');
  a.send('STOR d/keep.bin\r\n');
  t.true([125, 150].includes((await a.read())?.code ?? 0));
  const sock = await plan.socket();
  sock.on('error', () => {});
  await new Promise<void>((resolve) => sock.write(randomContent(500 * 1024), () => resolve()));
  for (const line of ['DELE d/keep.bin', 'RNFR d/keep.bin', 'RNFR d']) {
    const r = await b.cmd(line);
    t.is(r.code, 450, line);
    t.is(r.text, 'An upload to this file is running; try again when it ends.');
  }
  t.is((await b.cmd('RNFR other.bin')).code, 350);
  t.is((await b.cmd('RNTO d/keep.bin')).code, 450, 'RNTO over it');
  t.is((await b.cmd('SITE CPFR other.bin')).code, 350);
  t.is((await b.cmd('SITE CPTO d/keep.bin')).code, 450, 'SITE CPTO over it');
  sock.end();
  t.is((await a.read())?.code, 226);
  sock.destroy();
  // Ended: it can be renamed, and its 500 KiB still count. Before, a rename during the upload
  // took them off the usage, and the quota could be passed again and again.
  t.is((await b.cmd('RNFR d/keep.bin')).code, 350);
  t.is((await b.cmd('RNTO moved.bin')).code, 250);
  const r = await upload(b, 'STOR more.bin', randomContent(600 * 1024));
  t.is(r.final?.code, 552);
  t.is(onDisk(ts, 'more.bin').length, 1024 * 1024 - 500 * 1024 - 1);
});

test('quotaBytes: REST then STOR frees only the bytes past the offset; what crosses the quota is cut there with 552', async (t) => {
  const ts = await serve(t, { quotaBytes: 1000 });
  const old = randomContent(1000);
  fs.writeFileSync(path.join(ts.root, 'f.bin'), old);
  const c = await login(ts);
  // The STOR cuts the file at 900: 100 bytes are free again, and 100 of the 500 sent fit.
  t.is((await c.cmd('REST 900')).code, 350);
  const more = Buffer.from(randomContent(506).subarray(6));
  const r = await upload(c, 'STOR f.bin', more);
  t.true([125, 150].includes(r.first.code), `${r.first.code} ${r.first.text}`);
  t.is(r.final?.code, 552, `${r.final?.code} ${r.final?.text}`);
  t.is(r.final?.text, 'Quota exceeded.');
  t.deepEqual(onDisk(ts, 'f.bin'), Buffer.concat([old.subarray(0, 900), more.subarray(0, 100)]));
});

test('quotaBytes: RNTO over an existing file takes the replaced file off the usage', async (t) => {
  const ts = await serve(t, { quotaBytes: 10_000 });
  const c = await login(ts);
  const a = randomContent(6000);
  t.is((await upload(c, 'STOR a.bin', a)).final?.code, 226);
  t.is((await upload(c, 'STOR b.bin', randomContent(4000))).final?.code, 226);
  // At the quota now; the rename replaces b.bin's 4000 bytes, leaving 6000 in use.
  t.is((await c.cmd('RNFR a.bin')).code, 350);
  t.is((await c.cmd('RNTO b.bin')).code, 250);
  t.deepEqual(fs.readdirSync(ts.root).sort(), ['b.bin']);
  t.is(sha256(onDisk(ts, 'b.bin')), sha256(a));
  const more = Buffer.from(randomContent(3007).subarray(7));
  const r = await upload(c, 'STOR c.bin', more);
  t.is(r.final?.code ?? r.first.code, 226, `${r.first.code} ${r.first.text}; ${r.final?.code} ${r.final?.text}`);
  t.is(sha256(onDisk(ts, 'c.bin')), sha256(more));
});

// ---- disk quota: files -----------------------------------------------------------------------

test('quotaFiles: an upload that would add a file at the limit gets 552 before any 150', async (t) => {
  const ts = await serve(t, { quotaFiles: 2 });
  fs.writeFileSync(path.join(ts.root, 'old.bin'), 'x');
  const c = await login(ts);
  t.is((await upload(c, 'STOR new1.bin', randomContent(100))).final?.code, 226);
  for (const line of ['STOR new2.bin', 'APPE new2.bin', 'STOU']) {
    const r = await upload(c, line, randomContent(100));
    t.is(r.first.code, 552, line);
    t.is(r.first.text, 'Quota exceeded.');
  }
  t.deepEqual(fs.readdirSync(ts.root).sort(), ['new1.bin', 'old.bin']);
  // Replacing or appending to an existing file adds none.
  t.is((await upload(c, 'STOR new1.bin', randomContent(200))).final?.code, 226);
  t.is((await upload(c, 'APPE old.bin', randomContent(10))).final?.code, 226);
  // DELE gives a file back.
  t.is((await c.cmd('DELE new1.bin')).code, 250);
  t.is((await upload(c, 'STOR new2.bin', randomContent(100))).final?.code, 226);
});

// ---- the authorizer and the config file -------------------------------------------------------

test('VirtualAuthorizer keeps limits per user and checks them', (t) => {
  const a = new VirtualAuthorizer({ allowPlaintextPasswords: true });
  a.addUser('bob', 'pw', '/tmp', { limits: { maxSessions: 3, writeLimit: 0, quotaBytes: 1024 } });
  a.addUser('eve', 'pw', '/tmp');
  // 0 means no limit, and is dropped.
  t.deepEqual(a.getLimits('bob'), { maxSessions: 3, quotaBytes: 1024 });
  t.deepEqual(a.getLimits('eve'), {});
  t.deepEqual(a.getLimits('nobody'), {});
  const bad = (limits: unknown): ConfigError =>
    t.throws(() => a.addUser('carl', 'pw', '/tmp', { limits: limits as UserLimits }), { instanceOf: ConfigError }) as ConfigError;
  t.is(bad({ maxSessions: -1 }).key, 'users.carl.limits.maxSessions');
  t.is(bad({ readLimit: 1.5 }).key, 'users.carl.limits.readLimit');
  t.is(bad({ quotaFiles: '10' }).key, 'users.carl.limits.quotaFiles');
  t.is(bad({ quota: 10 }).key, 'users.carl.limits.quota');
  t.is(bad([]).key, 'users.carl.limits');
  t.false(a.hasUser('carl'));
  const e = t.throws(() => fromConfig([{ name: 'x', password: 'p', home: '/tmp', limits: { quotaBytes: -5 } }]), { instanceOf: ConfigError }) as ConfigError;
  t.is(e.key, 'users[0].limits.quotaBytes');
});

test('the config file takes users[].limits, and a bad value names its line', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftpdlib-limits-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'f.yaml');
  const yaml = (limits: string): string =>
    `authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n  users:\n    - name: alice\n      password: pw\n      home: /tmp\n      limits:\n${limits}`;
  fs.writeFileSync(file, yaml('        maxSessions: 2\n        quotaBytes: 1048576\n'));
  const cfg = loadConfigFile(file);
  const built = buildAuthorizer(cfg);
  t.deepEqual(built.authorizer.getLimits?.('alice'), { maxSessions: 2, quotaBytes: 1048576 });

  fs.writeFileSync(file, yaml('        maxSessions: -2\n'));
  const err = t.throws(() => loadConfigFile(file), { instanceOf: ConfigFileError }) as ConfigFileError;
  t.is(err.issues.length, 1, JSON.stringify(err.issues));
  t.is(err.issues[0].path, 'authorizer.users[0].limits.maxSessions');
  t.is(err.issues[0].line, 9);

  fs.writeFileSync(file, yaml('        sessions: 2\n'));
  const unknown = t.throws(() => loadConfigFile(file), { instanceOf: ConfigFileError }) as ConfigFileError;
  t.is(unknown.issues[0].path, 'authorizer.users[0].limits.sessions');
});
