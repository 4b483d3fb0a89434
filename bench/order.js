'use strict';
// The order in which the servers take their turns in each round of a scenario.
//
// Until the twentieth session every round was the list rotated by one, so each server followed
// the same other server in every round but one (ftpdlib the slow ftp-srv, proftpd vsftpd).
// Whatever a turn leaves behind on a shared machine (CPU the host has to hand back, caches,
// page cache, a server's housekeeping) then always fell on the same next server. Here the rounds
// are the rows of a Williams design: with n servers, row 0 is 0, 1, n-1, 2, n-2, 3, ... and row r
// adds r to each entry (mod n).
//  - In rounds 1 to n each server goes first once, as with the rotation (and again in rounds
//    n+1 to 2n).
//  - For an even n, over n rounds each server follows every other one exactly once.
//  - For an odd n the rows alone cover half of the (predecessor, server) pairs, each twice,
//    and their mirror images the other half; the mirrors come in rounds n+1 to 2n, so the
//    first n rounds keep distinct first servers.
// Round r (from 1 to n) starts with server r-1, so round 1 still starts with the list's first
// server, the one that makes the scenario's uncounted first transfer.

/** The server indices (0 .. n-1) of round `round` (1-based), in the order they take turns. */
function roundOrder(n, round) {
  if (!Number.isInteger(n) || n < 1) return [];
  if (!Number.isInteger(round) || round < 1) throw new RangeError(`round ${round}: a positive integer expected`);
  const base = [0];
  for (let lo = 1, hi = n - 1; base.length < n; ) base.push(base.length % 2 === 1 ? lo++ : hi--);
  const r = round - 1;
  const row = base.map((x) => (x + r) % n);
  return n % 2 === 1 && Math.floor(r / n) % 2 === 1 ? row.reverse() : row;
}

/** `items` in the order of round `round`. */
function orderRound(items, round) {
  return roundOrder(items.length, round).map((i) => items[i]);
}

module.exports = { roundOrder, orderRound };
