import test from 'ava';

// bench/order.js decides which server follows which in the benchmark's rounds. A carry-over
// from one turn to the next (the host, caches, housekeeping) must not always fall on the same
// server, and no server may always go first; both are checked here for the server counts the
// benchmark uses (7 plain servers, 6 FTPS ones, fewer with --only).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { roundOrder, orderRound } = require('../../bench/order.js') as {
  roundOrder: (n: number, round: number) => number[];
  orderRound: <T>(items: T[], round: number) => T[];
};

/** How often each ordered pair (a right before b) occurs in rounds 1..rounds. */
function pairCounts(n: number, rounds: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let r = 1; r <= rounds; r++) {
    const row = roundOrder(n, r);
    for (let i = 1; i < row.length; i++) {
      const k = `${row[i - 1]}>${row[i]}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  return counts;
}

test('every round is a permutation of the servers', (t) => {
  for (let n = 1; n <= 9; n++) {
    for (let r = 1; r <= 2 * n + 3; r++) {
      const row = roundOrder(n, r);
      t.deepEqual([...row].sort((a, b) => a - b), [...Array(n).keys()], `n=${n} round ${r}`);
    }
  }
});

test('round 1 starts with the first server, and over n rounds each server starts one', (t) => {
  for (let n = 1; n <= 9; n++) {
    t.is(roundOrder(n, 1)[0], 0);
    for (const from of [1, n + 1]) {
      const firsts = Array.from({ length: n }, (_, i) => roundOrder(n, from + i)[0]);
      t.is(new Set(firsts).size, n, `n=${n}, rounds ${from}..${from + n - 1}: ${firsts.join(',')}`);
    }
  }
});

test('an even number of servers: in n rounds each follows every other exactly once', (t) => {
  for (const n of [2, 4, 6, 8]) {
    const counts = pairCounts(n, n);
    t.is(counts.size, n * (n - 1), `n=${n}`);
    t.true([...counts.values()].every((c) => c === 1), `n=${n}`);
  }
});

test('an odd number of servers: in 2n rounds each follows every other equally often', (t) => {
  for (const n of [3, 5, 7, 9]) {
    const counts = pairCounts(n, 2 * n);
    t.is(counts.size, n * (n - 1), `n=${n}`);
    t.true([...counts.values()].every((c) => c === 2), `n=${n}`);
  }
});

test('in the five rounds of a transfer scenario no server follows the same one every time', (t) => {
  // The rotation this replaced put ftpdlib after ftp-srv in rounds 2 to 5 of every run.
  for (const n of [3, 4, 5, 6, 7]) {
    for (let s = 0; s < n; s++) {
      const before = new Set<number>();
      for (let r = 1; r <= 5; r++) {
        const row = roundOrder(n, r);
        const i = row.indexOf(s);
        if (i > 0) before.add(row[i - 1]);
      }
      t.true(before.size >= 2, `n=${n}: server ${s} followed only ${[...before].join(',')}`);
    }
  }
});

test('orderRound orders the items themselves, and rejects a round below 1', (t) => {
  const names = ['ftpdlib', 'stream', 'pyftpdlib', 'vsftpd'];
  t.deepEqual(orderRound(names, 1), ['ftpdlib', 'stream', 'vsftpd', 'pyftpdlib']);
  t.deepEqual(orderRound(names, 2), ['stream', 'pyftpdlib', 'ftpdlib', 'vsftpd']);
  t.deepEqual(orderRound([], 3), []);
  t.throws(() => roundOrder(4, 0), { instanceOf: RangeError });
});
