// server.engine in the config file: the daemon's zero-copy I/O threads, as the kernel sees them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { ENGINE_DEFAULTS } from '../../src/config/file';
import { available, configureNative } from '../../src/native/index';
import { downloadCount } from '../helpers/server';
import { runCli, startDaemon, tmpDir } from './_daemon';

/**
 * The threads of `pid` named `name` with their nice values: ftpdlib-io (the engine's ioNice
 * threads) or ftpdlib-io-solo (the one for a transfer running alone).
 */
function ioThreads(pid: number, name = 'ftpdlib-io'): { tid: number; nice: number }[] {
  const out: { tid: number; nice: number }[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      if (fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() !== name) continue;
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // field 19 (nice), counted after the command name: fields[0] is field 3 (state)
    out.push({ tid: Number(tid), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) });
  }
  return out;
}

/** The nice value of the process's main thread. */
function processNice(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

function config(dir: string, server: string): string {
  fs.mkdirSync(path.join(dir, 'home'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'home', 'f.bin'), Buffer.alloc(512 * 1024, 7));
  const file = path.join(dir, 'ftpdlib.yaml');
  fs.writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: 0${server} }\n` +
      'authorizer:\n  type: virtual\n  allowPlaintextPasswords: true\n' +
      '  users:\n    - { name: alice, password: pw-alice, home: home, perm: elr }\n',
  );
  return file;
}

/** Downloads f.bin as alice with basic-ftp; the bytes received. */
const download = (port: number): Promise<number> => downloadCount(port, 'f.bin', 'alice', 'pw-alice');

test('without server.engine: a download alone runs on ftpdlib-io-solo at the daemon\'s priority, two at once put the second on ftpdlib-io 10 nice steps below', async (t) => {
  t.true(available, 'the native engine is built here (npm install)');
  const dir = tmpDir(t);
  // 1 MiB/s per transfer: each 512 KiB download lasts about half a second, so two overlap.
  const d = await startDaemon(t, ['--config', config(dir, ', writeLimit: 1048576')]);
  await d.waitFor('stderr', /^transfers: zero-copy engine where it applies, 1 I\/O thread at nice \+10 \(a transfer running alone: at nice \+0\)$/m);
  t.deepEqual([...ioThreads(d.pid), ...ioThreads(d.pid, 'ftpdlib-io-solo')], [], 'no I/O thread before the first transfer');
  t.is(await download(d.port), 512 * 1024);
  const solo = ioThreads(d.pid, 'ftpdlib-io-solo');
  t.is(solo.length, 1, JSON.stringify(solo));
  t.is(solo[0].nice, processNice(d.pid), 'the solo thread keeps the daemon\'s priority');
  t.deepEqual(ioThreads(d.pid), [], 'a lone download did not need the ioNice thread');
  t.deepEqual(await Promise.all([download(d.port), download(d.port)]), [512 * 1024, 512 * 1024]);
  const threads = ioThreads(d.pid);
  t.is(threads.length, 1, JSON.stringify(threads));
  t.is(threads[0].nice, Math.min(19, processNice(d.pid) + 10));
});

test('server.engine { ioNice: 3, ioThreads: 2, soloThread: false }: the start-up lines say so, and two downloads at once run on two I/O threads, each 3 nice steps below the daemon', async (t) => {
  t.true(available, 'the native engine is built here (npm install)');
  const dir = tmpDir(t);
  // 1 MiB/s per transfer: each 512 KiB download lasts about half a second, so the two overlap
  // and the second goes to the idle thread.
  const d = await startDaemon(t, ['--config', config(dir, ', writeLimit: 1048576, engine: { ioNice: 3, ioThreads: 2, soloThread: false }')]);
  await d.waitFor('stderr', /^transfers: zero-copy engine where it applies, 2 I\/O threads at nice \+3$/m);
  t.deepEqual(await Promise.all([download(d.port), download(d.port)]), [512 * 1024, 512 * 1024]);
  const threads = ioThreads(d.pid);
  t.is(threads.length, 2, JSON.stringify(threads));
  for (const th of threads) t.is(th.nice, Math.min(19, processNice(d.pid) + 3), `thread ${th.tid}`);
  t.deepEqual(ioThreads(d.pid, 'ftpdlib-io-solo'), [], 'soloThread: false: no solo thread');
});

test("check-config shows server.engine with its defaults (the library's), and refuses values out of range with their line", async (t) => {
  t.is(ENGINE_DEFAULTS.ioNice, configureNative({}).ioNice, "the config file's default is configureNative's");
  t.is(ENGINE_DEFAULTS.soloThread, configureNative({}).soloThread, "the config file's default is configureNative's");
  const dir = tmpDir(t);
  const good = await runCli(t, ['check-config', config(dir, ', engine: { ioThreads: 2 }')]);
  t.is(good.code, 0, good.stderr);
  t.regex(good.stdout, /\n {2}engine:\n {4}ioNice: 10\n {4}ioThreads: 2\n {4}soloThread: true\n/);
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, 'server:\n  port: 0\n  engine:\n    ioNice: 20\n    ioThreads: many\nauthorizer: { type: virtual }\n');
  const r = await runCli(t, ['check-config', bad]);
  t.is(r.code, 1);
  t.regex(r.stderr, /bad\.yaml:4: server\.engine\.ioNice: expected an integer from 0 to 19, got 20/);
  t.regex(r.stderr, /bad\.yaml:5: server\.engine\.ioThreads: expected an integer from 1 to 16, or auto, got "?many"?/);
});

test('--no-sendfile: the start-up lines say transfers use streams', async (t) => {
  const dir = tmpDir(t);
  const d = await startDaemon(t, ['--config', config(dir, ''), '--no-sendfile']);
  await d.waitFor('stderr', /^transfers: streams \(useSendfile is off\)$/m);
  t.is(await download(d.port), 512 * 1024);
  t.deepEqual([...ioThreads(d.pid), ...ioThreads(d.pid, 'ftpdlib-io-solo')], [], 'no I/O thread: the download went by streams');
});
