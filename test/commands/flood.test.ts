import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import test from 'ava';
import { LineClient } from '../helpers/line-client';
import { PASS, USER, eventually, startServer } from '../helpers/server';

// A client that sends commands and never reads the replies must not make the server hold them
// without bound (an audit ran a server to 1.6 GB this way, pipelining HELP without a login).

test('a client that pipelines commands and reads no reply: the server stops running them, then answers every one once it reads', async (t) => {
  const s = await startServer(t);
  // "STAT /" answers with the root's listing over the control connection: about 40 KB a reply.
  for (let i = 0; i < 500; i++) fs.writeFileSync(path.join(s.root, `a-file-with-a-rather-long-name-${String(i).padStart(4, '0')}.txt`), '');
  const COMMANDS = 2000;
  const sock = net.connect(s.port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  sock.pause(); // read nothing
  sock.write(`USER ${USER}\r\nPASS ${PASS}\r\n${'STAT /\r\n'.repeat(COMMANDS)}`);
  const ran = (): number => s.records.filter((r) => r.msg === 'command' && r.cmd === 'STAT').length;
  // Before, it went on running them all (80 MB of replies held). Now it runs what the socket
  // buffers and MAX_UNSENT_REPLIES hold, and then no more: wait until the count stops moving.
  let last = -1;
  let stalled = 0;
  for (let i = 0; i < 60 && stalled < 2; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const n = ran();
    stalled = n > 0 && n === last ? stalled + 1 : 0;
    last = n;
  }
  t.is(stalled, 2, `the count of commands run settled (at ${last})`);
  t.true(last < COMMANDS / 2, `it stopped once the replies were not read: ${last} of ${COMMANDS} run`);

  // Reading resumes: every command is answered, in order, and the session goes on.
  let buf = '';
  let replies = 0;
  let noop = false;
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (/^213 /.test(line)) replies++;
      if (/^200 /.test(line)) noop = true;
    }
  });
  sock.resume();
  // About 1,000,000 lstats (20 s here when the machine is loaded): a wait for progress, not a time limit.
  await eventually(() => replies === COMMANDS, `all ${COMMANDS} STAT replies arrive`, 90_000);
  t.is(ran(), COMMANDS);
  sock.write('NOOP\r\n');
  await eventually(() => noop, 'the session still answers', 5000);
});

test('one connection pipelining 100,000 unknown commands does not stop the others: a new connection is greeted and a session answered while it is still being answered', async (t) => {
  const s = await startServer(t);
  const probe = await LineClient.open(s.port);
  t.teardown(() => probe.close());
  await probe.login(USER, PASS);
  const COMMANDS = 100_000;
  const flood = net.connect(s.port, '127.0.0.1');
  t.teardown(() => flood.destroy());
  let answered = 0;
  let tail = '';
  flood.on('data', (d: Buffer) => {
    const text = tail + d.toString('latin1');
    const lines = text.split('\r\n');
    tail = lines.pop()!;
    for (const l of lines) if (l.startsWith('500 ')) answered++;
  });
  await new Promise<void>((resolve) => flood.once('connect', resolve));
  // 200 KB in one write, without a login: every line is a 500.
  flood.write('X\n'.repeat(COMMANDS));
  await eventually(() => answered > 0, 'the first 500');
  const noop = await probe.cmd('NOOP');
  const whileNoop = answered;
  const fresh = await LineClient.open(s.port);
  const whileGreeted = answered;
  fresh.close();
  t.is(noop.code, 200);
  t.true(whileNoop < COMMANDS && whileGreeted < COMMANDS, `the flood was at ${whileNoop} and ${whileGreeted} of ${COMMANDS} replies: the others did not wait for all of it`);
  await eventually(() => answered === COMMANDS, `all ${COMMANDS} replies (at ${answered})`, 90_000);
});

test('commands answered at once during a transfer go one at a time: 13,000 HELPs from a client reading nothing wait for the transfer (they had passed the unsent-replies check all at once), then are all answered', async (t) => {
  // 64 KB/s: the 640 KB download lasts about ten seconds unless the client stops reading it.
  const s = await startServer(t, { writeLimit: 64 * 1024 });
  fs.writeFileSync(path.join(s.root, 'big.bin'), Buffer.alloc(640 * 1024, 7));
  const c = await LineClient.open(s.port);
  t.teardown(() => c.close());
  await c.login(USER, PASS);
  t.is((await c.cmd('TYPE I')).code, 200);
  const data = await c.epsvConnect();
  t.teardown(() => data.destroy());
  let got = 0;
  data.on('data', (d: Buffer) => (got += d.length));
  t.true([125, 150].includes((await c.cmd('RETR big.bin')).code));
  const HELPS = 13_000;
  c.send('HELP\r\n'.repeat(HELPS));
  // Every reply in order: the HELPs' 214s, with the transfer's 226 among them.
  const codes: number[] = [];
  while (codes.filter((x) => x === 214).length < HELPS) {
    const r = await c.read(60_000);
    if (!r) break;
    codes.push(r.code);
  }
  const end = codes.indexOf(226);
  t.true(end >= 0, 'the transfer ended with 226');
  t.true(end <= 1, `at most the HELP already running was answered before the 226 (${end} were)`);
  t.is(codes.filter((x) => x === 214).length, HELPS);
  t.is(got, 640 * 1024);
  t.is((await c.cmd('NOOP')).code, 200);
});
