import { listLine } from '../listing';
import { listingBatches, safeName, stripListFlags } from './list';
import type { CommandDescriptor } from './types';

export const stat: CommandDescriptor = {
  verb: 'STAT',
  help: 'STAT [<sp> path] (status information [list files]).',
  login: false,
  arg: 'optional',
  duringTransfer: true,
  async handle({ session, arg }) {
    const t = session.transfer;
    if (t) {
      const secs = (Date.now() - t.started) / 1000;
      const copy = t.verb === 'SITE CPTO';
      session.reply(213, [
        copy ? 'Status: copy in progress.' : 'Status: transfer in progress.',
        `${t.verb} ${t.path}`.replace(/[\r\n\0]/g, ' '),
        `${copy ? 'Bytes copied' : 'Bytes transferred'}: ${t.bytes}`,
        `Elapsed: ${secs.toFixed(1)} s, engine: ${t.engine ?? 'starting'}`,
        'End of status.',
      ]);
      return;
    }
    if (!arg.trim()) {
      const lines = [
        'FTP server status:',
        `Connected to: ${session.localAddress}`,
        `Connected from: ${session.remoteAddress}:${session.remotePort}`,
        session.user ? `Logged in as: ${session.user}` : 'Waiting for username.',
        `TYPE: ${session.type === 'A' ? 'ASCII' : 'Binary'}; STRUcture: File; MODE: Stream`,
        `Data connection: ${session.dataChannel ? `${session.dataChannel.kind} ready` : 'none'}`,
        'End of status.',
      ];
      session.reply(211, lines);
      return;
    }
    // STAT path: a LIST over the control connection; needs a login and the 'l' letter.
    if (session.state !== 'ready') {
      session.reply(530, 'Log in with USER and PASS first.');
      return;
    }
    const path = session.resolvePath(stripListFlags(arg));
    await session.requireFs().resolve(path);
    await session.requirePerm('l', path);
    // A batch at a time, as LIST sends it: a folder of 100,000 entries had been one reply of
    // 8.6 MB, built whole (+158 MB) and written past MAX_UNSENT_REPLIES at once.
    const batches = await listingBatches(session, path);
    const now = Date.now();
    const utc = session.options.useGmtTimes;
    await session.replyStreamed(
      213,
      `Status of ${path}:`,
      (async function* lines(): AsyncGenerator<string[]> {
        for await (const batch of batches) yield batch.map((e) => listLine({ name: safeName(e.name), stat: e.stat }, now, utc));
      })(),
      'End of status.',
    );
  },
};
