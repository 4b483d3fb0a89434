// UserLimitsTracker's division of a user's rate limit: the count each running transfer follows,
// in this process and, with a ShareCounter (the daemon's workers), over every process.
import test from 'ava';
import { UserLimitsTracker, type ShareCounter } from '../../src/ftp/user-limits';

function counter(): ShareCounter & { changes: string[] } {
  const changes: string[] = [];
  return { changes, change: (user, direction, delta) => changes.push(`${user} ${direction} ${delta > 0 ? '+' : '-'}`) };
}

test('a transfer hears each start and end of the user\'s others in its direction, and only those', (t) => {
  const tracker = new UserLimitsTracker();
  const heard: number[] = [];
  const a = tracker.beginTransfer('alice', 'send');
  a.onShare((n) => heard.push(n));
  t.is(a.sharedBy, 1);
  const b = tracker.beginTransfer('alice', 'send');
  const up = tracker.beginTransfer('alice', 'receive');
  const other = tracker.beginTransfer('bob', 'send');
  t.is(a.sharedBy, 2);
  b.end();
  b.end(); // a second end changes nothing
  up.end();
  other.end();
  a.end();
  t.deepEqual(heard, [2, 1], 'alice\'s second download started, then ended; her upload and bob\'s were not heard');
});

test('with a ShareCounter: a share-following transfer is reported once each way, and the total over every process divides', (t) => {
  const tracker = new UserLimitsTracker();
  const c = counter();
  tracker.useShareCounter(c);
  const heard: number[] = [];
  const a = tracker.beginTransfer('alice', 'send');
  const plain = tracker.beginTransfer('alice', 'send'); // follows no share: not reported
  a.onShare((n) => heard.push(n));
  a.onShare((n) => heard.push(n)); // a new listener replaces the old one; no second report
  t.deepEqual(c.changes, ['alice send +']);
  tracker.sharedTotal('alice', 'send', 5);
  t.is(a.sharedBy, 5, 'the larger of the local count (2) and the total');
  tracker.sharedTotal('alice', 'send', 1);
  t.is(a.sharedBy, 2, 'a total below the local count (news that lags a start here) does not win');
  tracker.sharedTotal('nobody', 'send', 3); // no entry: nothing made
  // The primary is gone: its last total is forgotten, the local count decides again.
  tracker.sharedTotal('alice', 'send', 4);
  tracker.useShareCounter(null);
  t.is(a.sharedBy, 2);
  plain.end();
  a.end();
  t.deepEqual(c.changes, ['alice send +', 'alice send -'], 'the end goes to the counter that heard the start');
  t.deepEqual(heard, [5, 2, 4, 2, 1]);
});
