// Spec §15.4 row 50 on fixture F3, run for real: the connection-throttle seed of F3.map against
// the real check_metermaid.so (src/throttle) over an embedded store, with the table defined in
// msg.conf as F3.map's header says and a clock the test sets. The .cases format scripts callout
// answers, which cannot say "15 hits at t=0, then 30 s pass", so this row lives here;
// mapping.test.ts counts it as covered (ROWS_ELSEWHERE there).
//
//   | 50 | F3 | PORT_ACCESS | [A], 15 hits at t=0, attempt at t=30 s | count decays to 7.5 → under quota → accept |

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readOptions } from '../../src/config/msgconf.js';
import { accessResult, diskReader, flagString, formatProblem, loadMappings, mapSync, parseFlagLetters } from '../../src/mapping/index.js';
import type { MappingSet } from '../../src/mapping/index.js';
import { accessVerdict } from '../../src/policy/access-reply.js';
import { meterMaidLibrary } from '../../src/throttle/library.js';
import { MemoryStore } from '../../src/throttle/memory-store.js';
import type { TableSpec } from '../../src/throttle/types.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const F3 = 'tests/golden/mapping/F3.map';
const MSG_CONF = ['metermaid.table.ext_throttle.data_type = ipv4', 'metermaid.table.ext_throttle.quota = 15', 'metermaid.table.ext_throttle.quota_time = 60', ''].join('\n');
const PROBE = 'TCP|192.0.2.10|25|198.51.100.20|1234';
const T0 = 1_700_000_000_000;

function fixture(): { set: MappingSet; store: MemoryStore; spec: TableSpec; clock: { now: number } } {
  const read = readOptions('msg.conf', MSG_CONF, { configDir: HERE });
  assert.ok(read.options, JSON.stringify(read.problems));
  const tables = read.options.metermaid.tables;
  const spec = tables.get('ext_throttle');
  assert.ok(spec);
  const store = new MemoryStore();
  const clock = { now: T0 };
  const lib = meterMaidLibrary({ tables, store: () => store, now: () => clock.now });
  const loaded = loadMappings(F3, { services: { libraries: [lib] }, read: (path) => diskReader(resolve(ROOT, path)) });
  if (!loaded.ok) assert.fail(`${F3} does not compile:\n${loaded.problems.map(formatProblem).join('\n')}`);
  return { set: loaded.set, store, spec, clock };
}

function probe(set: MappingSet) {
  const r = mapSync(set, 'PORT_ACCESS', PROBE, { flags: parseFlagLetters('A') ?? 0 });
  assert.deepEqual(r.diagnostics, []);
  const acc = accessResult(r);
  return { r, acc, verdict: accessVerdict('PORT_ACCESS', acc) };
}

void test('§15.4 row 50 PORT_ACCESS [A] 15 hits at t=0, attempt at t=30 s: the count decays to 7.5, so the connection is accepted', () => {
  const { set, store, spec, clock } = fixture();
  for (let i = 1; i <= 15; i++) {
    const { r } = probe(set);
    assert.equal(r.output, 'EXTERNAL', `§15.4 row 50: hit ${i} at t=0 is under quota`);
  }
  clock.now = T0 + 30_000;
  const before = store.peek(spec, '198.51.100.20', clock.now);
  assert.ok(before !== undefined && Math.abs(before.count - 7.5) < 1e-9, `§15.4 row 50: the count at t=30 s is ${before?.count}, expected 7.5`);

  const { r, acc, verdict } = probe(set);
  assert.equal(r.output, 'EXTERNAL', '§15.4 row 50: expect.output');
  assert.equal(flagString(r.flags), 'Y', '§15.4 row 50: expect.flags');
  assert.equal(acc.decision, 'allow', '§15.4 row 50: expect.decision');
  assert.equal(verdict.kind, 'accept', '§15.4 row 50: expect.verdict');
  const after = store.peek(spec, '198.51.100.20', clock.now);
  assert.ok(after !== undefined && Math.abs(after.count - 8.5) < 1e-9, `§15.4 row 50: the attempt was counted (${after?.count}, expected 8.5)`);
});

void test('§15.4 row 50, the other way round: the same attempt at t=0 is the 16th hit and is declined (row 47)', () => {
  // Without this the row above could pass with a throttle that never refuses.
  const { set } = fixture();
  for (let i = 0; i < 15; i++) probe(set);
  const { r, verdict } = probe(set);
  assert.equal(r.output, '421 Connection declined at this time');
  assert.equal(verdict.kind === 'reject' && verdict.close, true, 'a 421 closes the connection');
});
