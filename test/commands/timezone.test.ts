// Times on the wire do not depend on the server's time zone: MDTM and MLSD `modify` are UTC
// (RFC 3659), and LIST is UTC too with useGmtTimes (the default). Every other suite runs in the
// zone of the machine (UTC on CI), where local and UTC time agree and a mix-up cannot show.
// This file runs in its own process (ava's workerThreads: false): the zone is set before anything.
process.env.TZ = 'America/Los_Angeles';

import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { fetch, lines, loggedIn, parseMlsx } from './_support';

const MTIME = new Date('2020-01-02T03:04:05Z');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n: number): string => String(n).padStart(2, '0');

test('in America/Los_Angeles, MDTM, MLSD and LIST give UTC times', async (t) => {
  // The zone took effect: 03:04 UTC on January 2 is 19:04 on January 1 there. Without this the
  // test would pass whatever the server does.
  t.is(MTIME.getHours(), 19);
  t.is(MTIME.getDate(), 1);
  const { s, c } = await loggedIn(t);
  fs.writeFileSync(path.join(s.root, 'old.txt'), 'old');
  fs.utimesSync(path.join(s.root, 'old.txt'), MTIME, MTIME);
  // Within six months, so LIST gives the hour: two days ago at hh:mm:00, as UTC sees it.
  const recent = new Date(Math.floor((Date.now() - 2 * 86400_000) / 60_000) * 60_000);
  fs.writeFileSync(path.join(s.root, 'new.txt'), 'new');
  fs.utimesSync(path.join(s.root, 'new.txt'), recent, recent);

  const mdtm = await c.cmd('MDTM old.txt');
  t.is(`${mdtm.code} ${mdtm.text}`, '213 20200102030405');

  const mlsd = await fetch(c, 'MLSD');
  t.is(mlsd.final?.code, 226);
  const facts = Object.fromEntries(lines(mlsd.data).map(parseMlsx).map((e) => [e.name, e.facts]));
  t.is(facts['old.txt']?.modify, '20200102030405');

  const mlst = await c.cmd('MLST old.txt');
  t.is(mlst.code, 250);
  t.is(parseMlsx(mlst.lines[1].slice(1)).facts.modify, '20200102030405');

  const list = await fetch(c, 'LIST');
  t.is(list.final?.code, 226);
  const listed = lines(list.data);
  const old = listed.find((l) => l.endsWith(' old.txt'));
  t.regex(old ?? '', / Jan {2}2 {2}2020 old\.txt$/, `LIST line: ${old}`);
  const when = `${MONTHS[recent.getUTCMonth()]} ${String(recent.getUTCDate()).padStart(2)} ${pad2(recent.getUTCHours())}:${pad2(recent.getUTCMinutes())}`;
  const fresh = listed.find((l) => l.endsWith(' new.txt'));
  t.true(fresh?.endsWith(` ${when} new.txt`), `LIST line: ${fresh}; expected ${when} (UTC)`);
});
