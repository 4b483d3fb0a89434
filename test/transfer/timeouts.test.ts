import * as fs from 'node:fs';
import * as path from 'node:path';
import { USER, PASS, startServer } from '../helpers/server';
import { loggedIn, nextEvent, randomContent, retr, sha256, startTransfer } from '../helpers/data-client';
import { MATRIX, engineProbe, transferRecords } from '../helpers/matrix';
import type { TransferInfo } from '../../src';

/**
 * dataTimeout: a transfer where no byte moves for that long is aborted (426) and the
 * session goes on; a slow transfer that keeps moving is not, on either engine (the
 * native engine moves bytes on a dup of the socket, which Node's socket never sees).
 */
for (const row of MATRIX) {
  row.test('a slow download that keeps moving outlives dataTimeout', async (t) => {
    // 96 KiB at 64 KiB/s takes about 1.5 s, three times the 0.5 s data timeout.
    const s = await startServer(t, { useSendfile: row.useSendfile, dataTimeout: 0.5, writeLimit: 64 * 1024 });
    const body = randomContent(96 * 1024);
    fs.writeFileSync(path.join(s.root, 'slow.bin'), body);
    const c = await loggedIn(s.port, USER, PASS);
    const probe = engineProbe(row);
    const r = await retr(c, row.mode, 'RETR slow.bin');
    t.is(r.final?.code, 226, `${r.final?.code} ${r.final?.text}`);
    t.is(r.digest.sha256, sha256(body));
    probe.check(t, transferRecords(s)[0]);
    c.close();
  });

  row.test('an upload that stalls for dataTimeout gets 426; the partial file is kept and the session goes on', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile, dataTimeout: 0.5 });
    const c = await loggedIn(s.port, USER, PASS);
    const incomplete = nextEvent<[string, TransferInfo]>(s.server, 'incompleteFileReceived', 10000);
    const data = await startTransfer(t, c, row.mode, 'STOR stalled.bin');
    const part = randomContent(10000);
    await new Promise<void>((resolve, reject) => data.write(part, (err) => (err ? reject(err) : resolve())));
    // ...and then nothing more: the client hangs.
    const fin = await c.read(10000);
    t.is(fin?.code, 426, `${fin?.code} ${fin?.text}`);
    t.regex(fin?.text ?? '', /idle/i);
    const [, info] = await incomplete;
    t.false(info.ok);
    t.is(info.bytes, part.length);
    t.deepEqual(fs.readFileSync(path.join(s.root, 'stalled.bin')), part);
    t.is((await c.cmd('NOOP')).code, 200);
    data.destroy();
    c.close();
  });

  row.test('a download the client stops reading gets 426 after dataTimeout', async (t) => {
    const s = await startServer(t, { useSendfile: row.useSendfile, dataTimeout: 0.5 });
    fs.writeFileSync(path.join(s.root, 'big.bin'), randomContent(64 * 1024 * 1024));
    const c = await loggedIn(s.port, USER, PASS);
    const data = await startTransfer(t, c, row.mode, 'RETR big.bin');
    data.pause(); // never read: the socket buffers fill and nothing moves
    const fin = await c.read(10000);
    t.is(fin?.code, 426, `${fin?.code} ${fin?.text}`);
    t.is((await c.cmd('NOOP')).code, 200);
    data.destroy();
    c.close();
  });
}
