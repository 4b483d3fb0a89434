import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import test from 'ava';
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
