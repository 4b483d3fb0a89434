// Run a test on both kinds of plain control connection: served on the TCP handle alone
// (src/ftp/control.ts) and, with FTPDLIB_NO_BARE_CONTROL=1, on a net.Socket.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import { bareControlStats } from '../../src/ftp/control';
import { ReplyReader, type Reply } from './line-client';
import { startServer, type StartOptions, type TestServer } from './server';

type Path = 'bare' | 'socket';
const PATHS: Path[] = ['bare', 'socket'];

/**
 * Run `body` against a fresh server whose control connections take `path`, and check that they
 * did: bare connections counted for 'bare', none for 'socket'. Serial: the switch is the
 * process's environment.
 */
export function onBothPaths(title: string, body: (t: ExecutionContext, s: TestServer) => Promise<void>, opts: StartOptions = {}): void {
  for (const path of PATHS) {
    test.serial(`${title} (${path === 'bare' ? 'bare TCP handle' : 'net.Socket'})`, async (t) => {
      if (path === 'socket') process.env.FTPDLIB_NO_BARE_CONTROL = '1';
      try {
        const s = await startServer(t, opts);
        const before = bareControlStats().accepted;
        await body(t, s);
        const taken = bareControlStats().accepted - before;
        if (path === 'bare') t.true(taken > 0, 'served bare');
        else t.is(taken, 0, 'served on net.Socket');
      } finally {
        delete process.env.FTPDLIB_NO_BARE_CONTROL;
      }
    });
  }
}

/** Collect every reply on a raw socket until the server closes it; the way it closed too. */
export function collect(sock: net.Socket): Promise<{ replies: Reply[]; end: string }> {
  return new Promise((resolve) => {
    const replies: Reply[] = [];
    const reader = new ReplyReader((r) => replies.push(r));
    let end = 'fin';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => reader.feed(d));
    sock.on('error', (err: NodeJS.ErrnoException) => (end = err.code ?? err.message));
    sock.on('close', () => resolve({ replies, end }));
  });
}

export function connect(port: number, allowHalfOpen = false): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}
