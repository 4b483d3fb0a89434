import test from 'ava';
import { TransferAbort, TransferError } from '../../src/ftp/data/transfer';

// TransferAbort stands in for AbortController in every transfer: the parts of AbortSignal's
// behaviour the engines and channels rely on.

test('listeners run once each, in the order added, after aborted and reason are set', (t) => {
  const a = new TransferAbort();
  const seen: string[] = [];
  const reason = new TransferError('Data connection idle.', 'FTPD_ERR_DATA_TIMEOUT', 5, 'stream');
  a.signal.addEventListener('abort', () => seen.push(`1:${a.signal.aborted}:${a.signal.reason === reason}`));
  a.signal.addEventListener('abort', () => seen.push('2'), { once: true });
  t.false(a.signal.aborted);
  a.abort(reason);
  a.abort(new Error('second'));
  t.deepEqual(seen, ['1:true:true', '2']);
  t.is(a.signal.reason, reason, 'a second abort changes nothing');
});

test('a removed listener is not called; one added after the abort never is', (t) => {
  const a = new TransferAbort();
  let calls = 0;
  const fn = (): void => {
    calls++;
  };
  a.signal.addEventListener('abort', fn);
  a.signal.removeEventListener('abort', fn);
  a.signal.removeEventListener('abort', fn); // twice is harmless
  a.abort('x');
  a.signal.addEventListener('abort', fn);
  t.is(calls, 0);
});

/** Two listeners, the first removing the second when the abort comes: which ran. */
function removalDuringAbort(make: () => { signal: Pick<AbortSignal, 'addEventListener' | 'removeEventListener'>; abort(reason: unknown): void }): number[] {
  const a = make();
  const seen: number[] = [];
  const second = (): void => {
    seen.push(2);
  };
  a.signal.addEventListener('abort', () => {
    seen.push(1);
    a.signal.removeEventListener('abort', second);
  });
  a.signal.addEventListener('abort', second);
  a.abort('x');
  return seen;
}

test('a listener removed by another while the abort runs is not called (as with AbortSignal)', (t) => {
  t.deepEqual(removalDuringAbort(() => new TransferAbort()), [1]);
  // The same with a real AbortController, so that the two cannot drift apart unnoticed.
  t.deepEqual(removalDuringAbort(() => new AbortController()), [1]);
});
