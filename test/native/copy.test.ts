// The addon's file-to-file copy (copyRange: copy_file_range, or pread/pwrite where the kernel
// refuses it), without FTP. SITE CPFR/CPTO over FTP is in test/commands/copy.test.ts.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { copyRange } from '../../src/native/index';
import { randomContent } from '../helpers/data-client';

function scratch(t: ExecutionContext, base = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(base, 'ftpdlib-copy-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function open(t: ExecutionContext, file: string, flags: string): number {
  const fd = fs.openSync(file, flags);
  t.teardown(() => fs.closeSync(fd));
  return fd;
}

test('copyRange copies between offsets with copy_file_range and leaves both file positions alone', async (t) => {
  const dir = scratch(t);
  const body = randomContent(5 * 1024 * 1024 + 1);
  fs.writeFileSync(path.join(dir, 'a'), body);
  fs.writeFileSync(path.join(dir, 'b'), Buffer.alloc(7, 0x2a));
  const a = open(t, path.join(dir, 'a'), 'r');
  const b = open(t, path.join(dir, 'b'), 'r+');
  const r = await copyRange!(a, b, 1000, 7, 3 * 1024 * 1024);
  t.deepEqual(r, { copied: 3 * 1024 * 1024, via: 'copy_file_range' });
  const out = fs.readFileSync(path.join(dir, 'b'));
  t.deepEqual(out.subarray(0, 7), Buffer.alloc(7, 0x2a), 'the bytes before outOff are kept');
  t.true(out.subarray(7).equals(body.subarray(1000, 1000 + 3 * 1024 * 1024)));
  // Positions: a read without an offset still starts at 0.
  const head = Buffer.alloc(4);
  fs.readSync(a, head, 0, 4, null);
  t.deepEqual(head, body.subarray(0, 4));
});

test('copyRange stops at the end of the source and says how much it copied', async (t) => {
  const dir = scratch(t);
  const body = randomContent(100_000);
  fs.writeFileSync(path.join(dir, 'a'), body);
  const a = open(t, path.join(dir, 'a'), 'r');
  const b = open(t, path.join(dir, 'b'), 'w');
  t.is((await copyRange!(a, b, 40_000, 0, 1 << 30)).copied, 60_000);
  t.true(fs.readFileSync(path.join(dir, 'b')).equals(body.subarray(40_000)));
  t.is((await copyRange!(a, b, 100_000, 60_000, 10)).copied, 0, 'at the end: nothing');
});

test('copyRange between two kinds of filesystem (ext4 or the like to tmpfs) falls back to pread/pwrite', async (t) => {
  const src = scratch(t);
  const dst = scratch(t, '/dev/shm');
  t.not(fs.statSync(src).dev, fs.statSync(dst).dev, 'the test needs two filesystems: os.tmpdir() and /dev/shm');
  const body = randomContent(3 * 1024 * 1024 + 17);
  fs.writeFileSync(path.join(src, 'a'), body);
  const a = open(t, path.join(src, 'a'), 'r');
  const b = open(t, path.join(dst, 'b'), 'w');
  const r = await copyRange!(a, b, 0, 0, body.length);
  t.deepEqual(r, { copied: body.length, via: 'read/write' });
  t.true(fs.readFileSync(path.join(dst, 'b')).equals(body));
});

test('copyRange reports a system error as a Node-style error', async (t) => {
  const dir = scratch(t);
  fs.writeFileSync(path.join(dir, 'a'), 'abc');
  const a = open(t, path.join(dir, 'a'), 'r');
  const readOnly = open(t, path.join(dir, 'a'), 'r');
  const err = await t.throwsAsync(copyRange!(a, readOnly, 0, 0, 3));
  t.is((err as NodeJS.ErrnoException).code, 'EBADF');
  await t.throwsAsync(copyRange!(a, -1, 0, 0, 3), { instanceOf: RangeError });
});
