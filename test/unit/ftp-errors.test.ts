import test from 'ava';
import { AuthorizerUnavailableError } from '../../src/auth/errors';
import { JailError, fsError } from '../../src/fs/errors';
import { TransferError } from '../../src/ftp/data/transfer';
import { FtpError, isExpected, toReply } from '../../src/ftp/errors';

/** errno (or our own code) → reply code: the one table every command shares (STYLE.md). */
const TABLE: Array<[string, number]> = [
  ['ENOENT', 550],
  ['ENOTDIR', 550],
  ['EISDIR', 550],
  ['EEXIST', 550],
  ['ENOTEMPTY', 550],
  ['EACCES', 550],
  ['EPERM', 550],
  ['ELOOP', 550],
  ['EROFS', 550],
  ['FTPD_ERR_JAIL', 550],
  ['ENAMETOOLONG', 553],
  ['FTPD_ERR_BADNAME', 553],
  ['ENOSPC', 452],
  ['EDQUOT', 552],
  ['EFBIG', 552],
  ['FTPD_ERR_QUOTA', 552],
  ['ECONNRESET', 426],
  ['EPIPE', 426],
  ['ETIMEDOUT', 426],
  ['FTPD_ERR_DATA_TIMEOUT', 426],
  ['FTPD_ERR_ABORTED', 426],
  ['FTPD_ERR_AUTH_UNAVAILABLE', 421],
];

for (const [code, reply] of TABLE) {
  test(`toReply: ${code} → ${reply}`, (t) => {
    const r = toReply(fsError(code, 'open', '/secret/path'));
    t.is(r.code, reply);
    t.false(r.text.includes('/secret/path'), 'the path stays in the log');
    t.false(r.text.includes(code), 'no errno names on the wire');
    t.true(isExpected(fsError(code, 'open')));
  });
}

test('toReply: an FtpError keeps its own code and reason', (t) => {
  t.deepEqual(toReply(new FtpError(503, 'Bad sequence: RNFR first')), { code: 503, text: 'Bad sequence: RNFR first' });
  t.true(isExpected(new FtpError(550, 'x')));
});

test('toReply: JailError and AuthorizerUnavailableError by their codes', (t) => {
  t.is(toReply(new JailError('/../etc')).code, 550);
  t.false(toReply(new JailError('/../etc')).text.includes('etc'));
  t.is(toReply(new AuthorizerUnavailableError()).code, 421);
});

test('toReply: TransferError maps by code, unknown transfer codes are 426', (t) => {
  t.is(toReply(new TransferError('x', 'ENOSPC', 10, 'stream')).code, 452);
  t.is(toReply(new TransferError('x', 'ECONNRESET', 10, 'sendfile')).code, 426);
  t.is(toReply(new TransferError('x', 'FTPD_ERR_NATIVE_START', 0, 'sendfile')).code, 426);
  t.true(isExpected(new TransferError('x', 'WHATEVER', 0, 'stream')));
});

test('toReply: a transfer failing on the disk (EIO) or inside the engine (EINVAL) is 451, a local error, not 426 or 550', (t) => {
  t.is(toReply(new TransferError('pwrite: input/output error', 'EIO', 10, 'splice')).code, 451);
  t.is(toReply(new TransferError('splice: invalid argument', 'EINVAL', 10, 'splice')).code, 451);
  t.false(isExpected(new TransferError('pwrite: input/output error', 'EIO', 10, 'splice')), 'a disk error is logged as an error');
  // Outside a transfer EINVAL stays the client's (RNTO of a folder into itself).
  t.is(toReply(fsError('EINVAL', 'rename', '/a')).code, 550);
});

test('toReply: anything unexpected is 451 without detail', (t) => {
  const unexpected: unknown[] = [new Error('boom at /home/x'), new TypeError('y'), fsError('EIO', 'read'), 'a string', null, undefined, 42, { code: 17 }];
  for (const err of unexpected) {
    const r = toReply(err);
    t.is(r.code, 451, String(err));
    t.false(r.text.includes('boom'));
    t.false(isExpected(err), String(err));
  }
});

test('toReply: the prototype chain of the table is never consulted', (t) => {
  for (const code of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
    const r = toReply({ code });
    t.is(r.code, 451, code);
    t.is(typeof r.text, 'string', code);
    t.false(isExpected({ code }), code);
  }
});

test('every reply text is one printable line', (t) => {
  for (const [code] of TABLE) t.regex(toReply(fsError(code, 'x')).text, /^[\x20-\x7e]+$/);
});
