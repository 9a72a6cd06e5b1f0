// check_metermaid.so (spec §7.6) through the real mapping engine: mappings compiled with the
// library over an embedded store and a clock the test moves, so every check below is what a
// mappings file would see — the seed PORT_ACCESS throttle (spec §15 rows 46–48), load-time
// errors with file:line:col, on_error for type mismatches and failing stores, and the key/value
// routines of MS 7.0u2/7.2.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessResult, compileMappingsText, flagString, formatProblem, mapAsync, mapSync, parseFlagLetters } from '../mapping/index.js';
import type { MappingResult, MappingSet } from '../mapping/index.js';
import { meterMaidLibrary } from './library.js';
import type { MeterEvent } from './library.js';
import { MemoryStore } from './memory-store.js';
import type { HitResult, SimpleEntry, TableSpec, ThrottleStore, Usage } from './types.js';
import { StoreError } from './types.js';

const T0 = 1_700_000_000_000;

function table(name: string, over: Partial<TableSpec> = {}): TableSpec {
  return {
    name,
    type: 'throttle',
    dataType: 'string',
    valueType: 'string',
    quota: 15,
    quotaTimeMs: 60_000,
    penalize: false,
    nocase: false,
    maxEntries: 1000,
    onError: 'allow',
    mode: 'decay',
    ...over,
  };
}

const TABLES: ReadonlyMap<string, TableSpec> = new Map(
  [
    table('ext_throttle', { dataType: 'ipv4' }),
    table('ext_deny', { dataType: 'ipv4', onError: 'deny' }),
    table('senders', { quota: 3, nocase: true }),
    table('kv', { type: 'simple' }),
    table('counters', { type: 'simple', valueType: 'integer' }),
    table('counters_deny', { type: 'simple', valueType: 'integer', onError: 'deny' }),
  ].map((t) => [t.name, t]),
);

/** A mapping set over the library, with the store, the clock and the library's events exposed. */
class Rig {
  now = T0;
  readonly events: MeterEvent[] = [];
  readonly set: MappingSet;

  constructor(
    text: string,
    readonly store: ThrottleStore = new MemoryStore(),
    tables: ReadonlyMap<string, TableSpec> = TABLES,
  ) {
    const lib = meterMaidLibrary({ tables, store: () => this.store, now: () => this.now, onEvent: (e) => this.events.push(e) });
    const r = compileMappingsText(text, { services: { libraries: [lib] } });
    assert.ok(r.ok, r.ok ? '' : r.problems.map(formatProblem).join('\n'));
    this.set = r.set;
  }

  /** The default embedded store, for looking at counts directly. */
  get memory(): MemoryStore {
    assert.ok(this.store instanceof MemoryStore);
    return this.store;
  }

  map(tableName: string, input: string, flags = ''): MappingResult {
    return mapSync(this.set, tableName, input, { flags: parseFlagLetters(flags) ?? 0 });
  }

  /** Runs a one-entry table `T` whose entry succeeds with $Y and the callout's result. */
  call(input: string): { ok: boolean; out: string } {
    const r = this.map('T', input);
    const ok = flagString(r.flags).includes('Y');
    return { ok, out: ok ? r.output : '' };
  }
}

/** Problems of a mappings text that does not compile, as "file:line:col: message". */
function loadErrors(text: string, tables: ReadonlyMap<string, TableSpec> = TABLES): string[] {
  const lib = meterMaidLibrary({ tables, store: () => new MemoryStore(), now: () => T0 });
  const r = compileMappingsText(text, { services: { libraries: [lib] } });
  assert.equal(r.ok, false, 'expected the mappings to be refused');
  return r.problems.map(formatProblem);
}

const SEED = [
  'PORT_ACCESS',
  '  *|*|*|*|*  $C$:A$[/opt/sun/comms/messaging64/lib/check_metermaid.so,throttle,ext_throttle,$3]$N421$ Connection$ declined$ at$ this$ time$E',
  '  *  $YEXTERNAL',
  '',
].join('\n');

const PROBE = 'TCP|192.0.2.10|25|198.51.100.20|1234';

// ---------------------------------------------------------------------------------------------
// The seed connection throttle

test('§15 rows 46–47: the seed PORT_ACCESS throttle accepts 15 probes with flag A and refuses the 16th with 421', () => {
  const rig = new Rig(SEED);
  for (let i = 1; i <= 15; i++) {
    const r = rig.map('PORT_ACCESS', PROBE, 'A');
    assert.equal(r.output, 'EXTERNAL', `probe ${i}: under quota the callout fails and the next entry decides`);
    assert.equal(accessResult(r).decision, 'allow');
  }
  const r = rig.map('PORT_ACCESS', PROBE, 'A');
  assert.equal(r.output, '421 Connection declined at this time', 'the 16th probe');
  assert.equal(flagString(r.flags), 'N');
  assert.equal(accessResult(r).decision, 'reject');
  assert.deepEqual(rig.events, [{ kind: 'over', routine: 'throttle', table: 'ext_throttle', key: '198.51.100.20', count: 15 }]);
});

test('§15 row 48: probes without flag A (the SMTP server\'s re-probe) never reach MeterMaid', () => {
  const rig = new Rig(SEED);
  for (let i = 0; i < 15; i++) rig.map('PORT_ACCESS', PROBE, 'A');
  for (let i = 0; i < 30; i++) {
    const r = rig.map('PORT_ACCESS', PROBE);
    assert.equal(r.output, 'EXTERNAL');
    assert.equal(flagString(r.flags), 'Y');
  }
  const u = rig.memory.peek(TABLES.get('ext_throttle') as TableSpec, '198.51.100.20', rig.now);
  assert.equal(u?.count, 15, 'the probes without A were not counted');
  // And on a fresh store, probes without A leave no trace at all.
  const fresh = new Rig(SEED);
  for (let i = 0; i < 30; i++) fresh.map('PORT_ACCESS', PROBE);
  assert.equal(fresh.memory.peek(TABLES.get('ext_throttle') as TableSpec, '198.51.100.20', fresh.now), undefined);
});

test('§7.6 the throttle counts per client: another address is unaffected, and the quota frees up over time', () => {
  const rig = new Rig(SEED);
  for (let i = 0; i < 16; i++) rig.map('PORT_ACCESS', PROBE, 'A');
  assert.equal(rig.map('PORT_ACCESS', PROBE, 'A').output, '421 Connection declined at this time');
  assert.equal(rig.map('PORT_ACCESS', 'TCP|192.0.2.10|25|198.51.100.21|1234', 'A').output, 'EXTERNAL', 'another client');
  // The same client over IPv4-mapped IPv6 is the same key (keys.ts).
  assert.equal(rig.map('PORT_ACCESS', 'TCP|192.0.2.10|25|::ffff:198.51.100.20|1234', 'A').output, '421 Connection declined at this time');
  rig.now += 4_000; // one hit drains every 4 s
  assert.equal(rig.map('PORT_ACCESS', PROBE, 'A').output, 'EXTERNAL');
  assert.equal(rig.map('PORT_ACCESS', PROBE, 'A').output, '421 Connection declined at this time');
});

test('§7.6 the image may be named IMTA_LIB:check_metermaid.so, in any case', () => {
  const rig = new Rig(['PORT_ACCESS', '  *|*|*|*|*  $C$:A$[IMTA_LIB:check_metermaid.so,throttle,EXT_Throttle,$3]$N421$ Busy$E', '  *  $YEXTERNAL', ''].join('\n'));
  for (let i = 0; i < 15; i++) assert.equal(rig.map('PORT_ACCESS', PROBE, 'A').output, 'EXTERNAL');
  assert.equal(rig.map('PORT_ACCESS', PROBE, 'A').output, '421 Busy');
  new Rig(['T', '  *  $[/opt/SUNWmsgsr/lib/CHECK_METERMAID.SO,Throttle,ext_throttle,$0]$Y', ''].join('\n'));
});

// ---------------------------------------------------------------------------------------------
// Load-time errors

test('load-time errors carry file:line:col: unknown table, wrong table type, string values, missing key', () => {
  const line = (routine: string, args: string): string => `  *|*|*|*|*  $C$:A$[IMTA_LIB:check_metermaid.so,${routine},${args}]$Nx$E`;
  const text = ['PORT_ACCESS', line('throttle', 'nosuch,$3'), line('throttle', 'kv,$3'), line('adjust', 'kv,$3,1'), line('throttle', 'ext_throttle'), line('test', 'kv,$3,>1'), '  *  $YEXTERNAL', ''].join('\n');
  const col = line('x', 'y').indexOf('$[') + 1;
  assert.deepEqual(loadErrors(text), [
    `mappings:2:${col}: check_metermaid.so,throttle: no MeterMaid table "nosuch" — define it in msg.conf (metermaid.table.nosuch.quota = 15, metermaid.table.nosuch.quota_time = 60); defined: ext_throttle, ext_deny, senders, kv, counters, counters_deny`,
    `mappings:3:${col}: check_metermaid.so,throttle: table kv is a simple table; throttle works on throttle tables`,
    `mappings:4:${col}: check_metermaid.so,adjust: adjust needs integer values: set metermaid.table.kv.value_type = integer`,
    `mappings:5:${col}: check_metermaid.so,throttle: expects TABLE,KEY`,
    `mappings:6:${col}: check_metermaid.so,test: test needs integer values: set metermaid.table.kv.value_type = integer`,
  ]);
});

test('load-time errors: store/fetch on a throttle table, a missing value, an unknown routine, no tables at all', () => {
  const errs = loadErrors(
    [
      'T',
      '  a  $[IMTA_LIB:check_metermaid.so,store,ext_throttle,k,v]',
      '  b  $[IMTA_LIB:check_metermaid.so,fetch,senders,k]',
      '  c  $[IMTA_LIB:check_metermaid.so,store,kv,k]',
      '  d  $[IMTA_LIB:check_metermaid.so,adjust_and_test,counters,k,1]',
      '  e  $[IMTA_LIB:check_metermaid.so,greylisting,ext_throttle,k]',
      '',
    ].join('\n'),
  );
  assert.equal(errs.length, 5, errs.join('\n'));
  assert.match(errs[0] as string, /^mappings:2:6: .*table ext_throttle is a throttle table; store works on simple tables/);
  assert.match(errs[1] as string, /^mappings:3:6: .*table senders is a throttle table; fetch works on simple tables/);
  assert.match(errs[2] as string, /^mappings:4:6: .*store: expects TABLE,KEY,VALUE/);
  assert.match(errs[3] as string, /^mappings:5:6: .*adjust_and_test: expects TABLE,KEY,DELTA,OP VALUE/);
  assert.match(errs[4] as string, /^mappings:6:6: check_metermaid.so has no routine "greylisting"/);
  const none = loadErrors('T\n  *  $[IMTA_LIB:check_metermaid.so,throttle,ext_throttle,$0]\n', new Map());
  assert.deepEqual(none, ['mappings:2:6: check_metermaid.so,throttle: no MeterMaid table "ext_throttle" — define it in msg.conf (metermaid.table.ext_throttle.quota = 15, metermaid.table.ext_throttle.quota_time = 60)']);
});

test('a table named by a substitution is checked when the entry runs: an unknown one fails the callout', () => {
  const rig = new Rig('T\n  *|*  $C$[IMTA_LIB:check_metermaid.so,throttle,$0,$1]$Nover$E\n  *  $Ypassed\n');
  const r = rig.map('T', 'nosuch|k');
  assert.equal(r.output, 'passed');
  assert.ok(r.diagnostics.some((d) => d.code === 'callout-error' && /no MeterMaid table "nosuch"/.test(d.message)), JSON.stringify(r.diagnostics));
  for (let i = 0; i < 3; i++) rig.map('T', 'senders|k');
  assert.equal(rig.map('T', 'senders|k').output, 'over');
});

// ---------------------------------------------------------------------------------------------
// on_error

const GUARDED = (tableName: string): string => `T\n  *  $C$[IMTA_LIB:check_metermaid.so,throttle,${tableName},$0]$Nrefused$E\n  *  $Ypassed\n`;

test('on_error: a key that does not fit an ipv4 table — allow lets the entry fall through, deny refuses', () => {
  const allow = new Rig(GUARDED('ext_throttle'));
  const r = allow.map('T', 'not-an-ip');
  assert.equal(r.output, 'passed');
  assert.ok(r.diagnostics.some((d) => /"not-an-ip" is not an IP address/.test(d.message)), 'the mismatch is reported');
  assert.deepEqual(allow.events, [{ kind: 'error', routine: 'throttle', table: 'ext_throttle', message: '"not-an-ip" is not an IP address (table ext_throttle has data_type ipv4)', answer: 'allow' }]);
  const deny = new Rig(GUARDED('ext_deny'));
  assert.equal(deny.map('T', 'not-an-ip').output, 'refused');
  assert.equal(deny.events[0]?.kind === 'error' && deny.events[0].answer, 'deny');
  // A well-formed key is counted as usual on both.
  assert.equal(allow.map('T', '192.0.2.1').output, 'passed');
  assert.equal(deny.map('T', '192.0.2.1').output, 'passed');
});

/** A store that cannot answer: every method throws (or, async, rejects) a StoreError. */
function brokenStore(async: boolean): ThrottleStore {
  const fail = (): never => {
    throw new StoreError('Redis at 127.0.0.1:6379 is not connected', 'unavailable');
  };
  const f = async ? (): Promise<never> => Promise.reject(new StoreError('Redis timed out after 500 ms', 'timeout')) : fail;
  return {
    kind: 'redis',
    hit: f,
    peek: f,
    list: f,
    reset: f,
    fetch: f,
    store: f,
    remove: f,
    adjust: f,
    entries: f,
    close: () => Promise.resolve(),
  };
}

for (const async of [false, true]) {
  const how = async ? 'rejects' : 'throws';
  test(`on_error: a store that ${how} — allow fails the refusing routines (fail-open), deny makes them succeed`, async () => {
    const map = (rig: Rig, t: string, input: string): Promise<MappingResult> | MappingResult => (async ? mapAsync(rig.set, t, input) : rig.map(t, input));
    const allow = new Rig(GUARDED('ext_throttle'), brokenStore(async));
    assert.equal((await map(allow, 'T', '192.0.2.1')).output, 'passed');
    const deny = new Rig(GUARDED('ext_deny'), brokenStore(async));
    assert.equal((await map(deny, 'T', '192.0.2.1')).output, 'refused');
    assert.match(deny.events[0]?.kind === 'error' ? deny.events[0].message : '', async ? /timed out/ : /not connected/);

    // test and adjust_and_test refuse too; store/fetch/adjust just fail, whatever on_error says.
    const routines = (tableName: string): string =>
      [
        'T',
        `  t|*  $C$[IMTA_LIB:check_metermaid.so,test,${tableName},$0,>1]$Yyes$E`,
        `  a|*  $C$[IMTA_LIB:check_metermaid.so,adjust_and_test,${tableName},$0,1,>1]$Yyes$E`,
        `  s|*  $C$[IMTA_LIB:check_metermaid.so,store,${tableName},$0,1]$Yyes$E`,
        `  f|*  $C$[IMTA_LIB:check_metermaid.so,fetch,${tableName},$0]$Yyes$E`,
        `  d|*  $C$[IMTA_LIB:check_metermaid.so,adjust,${tableName},$0,1]$Yyes$E`,
        `  r|*  $C$[IMTA_LIB:check_metermaid.so,remove,${tableName},$0]$Yyes$E`,
        '  *  $Yno',
        '',
      ].join('\n');
    for (const [name, refusing] of [
      ['counters', false],
      ['counters_deny', true],
    ] as const) {
      const rig = new Rig(routines(name), brokenStore(async));
      for (const [r, refuses] of [
        ['t', true],
        ['a', true],
        ['s', false],
        ['f', false],
        ['d', false],
        ['r', false],
      ] as const) {
        assert.equal((await map(rig, 'T', `${r}|k`)).output, refusing && refuses ? 'yes' : 'no', `${r} on ${name}`);
      }
    }
  });
}

test('a store answering with promises works through mapAsync (and mapSync refuses it)', async () => {
  const inner = new MemoryStore();
  const later = <T>(v: T): Promise<T> => new Promise((resolve) => setImmediate(() => resolve(v)));
  const store: ThrottleStore = {
    kind: 'redis',
    hit: (s, k, now): Promise<HitResult> => later(inner.hit(s, k, now)),
    peek: (s, k, now): Promise<Usage | undefined> => later(inner.peek(s, k, now)),
    list: (s, now, limit): Promise<Usage[]> => later(inner.list(s, now, limit)),
    reset: (s, k): Promise<number> => later(inner.reset(s, k)),
    fetch: (s, k, now): Promise<string | undefined> => later(inner.fetch(s, k, now)),
    store: (s, k, v, now): Promise<void> => later(inner.store(s, k, v, now)),
    remove: (s, k): Promise<boolean> => later(inner.remove(s, k)),
    adjust: (s, k, d, now): Promise<number> => later(inner.adjust(s, k, d, now)),
    entries: (s, now, limit): Promise<SimpleEntry[]> => later(inner.entries(s, now, limit)),
    close: () => inner.close(),
  };
  const rig = new Rig(SEED, store);
  const flags = parseFlagLetters('A') ?? 0;
  for (let i = 0; i < 15; i++) assert.equal((await mapAsync(rig.set, 'PORT_ACCESS', PROBE, { flags })).output, 'EXTERNAL');
  assert.equal((await mapAsync(rig.set, 'PORT_ACCESS', PROBE, { flags })).output, '421 Connection declined at this time');
  assert.throws(() => rig.map('PORT_ACCESS', PROBE, 'A'), /mapAsync/);
});

// ---------------------------------------------------------------------------------------------
// query, and the key/value routines (spec §7.6 table)

test('§7.6 query on a throttle table succeeds only over quota, with the count, and counts no hit', () => {
  const rig = new Rig('T\n  *  $[IMTA_LIB:check_metermaid.so,query,senders,$0]$Y\nH\n  *  $[IMTA_LIB:check_metermaid.so,throttle,senders,$0]$Y\n');
  const spec = TABLES.get('senders') as TableSpec;
  assert.deepEqual(rig.call('Alice@Example.com'), { ok: false, out: '' }, 'unknown key');
  rig.map('H', 'alice@example.com');
  rig.map('H', 'ALICE@example.com');
  for (let i = 0; i < 10; i++) assert.equal(rig.call('alice@example.com').ok, false, 'under quota (2 of 3)');
  assert.equal(rig.memory.peek(spec, 'alice@example.com', rig.now)?.count, 2, 'query counted nothing');
  rig.map('H', 'alice@example.com');
  assert.deepEqual(rig.call('Alice@EXAMPLE.com'), { ok: true, out: '3' }, 'over quota: the next hit would be refused (nocase key)');
  rig.now += 10_000; // 3 per 60 s: 0.5 drained
  assert.deepEqual(rig.call('alice@example.com'), { ok: true, out: '2.50' }, 'still over at 2.5 (2.5 + 1 > 3); a draining count shows two decimals');
  rig.now += 10_000;
  assert.deepEqual(rig.call('alice@example.com'), { ok: false, out: '' }, 'under quota again at 2');
  assert.equal(rig.memory.peek(spec, 'alice@example.com', rig.now)?.count, 2);
});

test('§7.6 query and fetch on a simple table return the value with "$" doubled, so stored text cannot set flags', () => {
  const rig = new Rig(
    'Q\n  *  $[IMTA_LIB:check_metermaid.so,query,kv,$0]$Y\nF\n  *  $[IMTA_LIB:check_metermaid.so,fetch,kv,$0]$Y\n',
  );
  const kv = TABLES.get('kv') as TableSpec;
  rig.memory.store(kv, 'k', '$Nevil$E $1 text', rig.now);
  for (const t of ['Q', 'F']) {
    const r = rig.map(t, 'k');
    assert.equal(r.output, '$Nevil$E $1 text', t);
    assert.equal(flagString(r.flags), 'Y', `${t}: the stored "$N" is text, not a flag`);
    assert.equal(flagString(rig.map(t, 'missing').flags), '', `${t}: a missing key fails`);
  }
});

const KV = [
  'T',
  '  store|*|*  $[IMTA_LIB:check_metermaid.so,store,kv,$0,$1]$Y',
  '  fetch|*  $[IMTA_LIB:check_metermaid.so,fetch,kv,$0]$Y',
  '  remove|*  $[IMTA_LIB:check_metermaid.so,remove,kv,$0]$Y',
  '  istore|*|*  $[IMTA_LIB:check_metermaid.so,store,counters,$0,$1]$Y',
  '  ifetch|*  $[IMTA_LIB:check_metermaid.so,fetch,counters,$0]$Y',
  '  adjust|*|*  $[IMTA_LIB:check_metermaid.so,adjust,counters,$0,$1]$Y',
  '  test|*|*  $[IMTA_LIB:check_metermaid.so,test,counters,$0,$1]$Y',
  '  aat|*|*|*  $[IMTA_LIB:check_metermaid.so,adjust_and_test,counters,$0,$1,$2]$Y',
  '',
].join('\n');

test('§7.6 store, fetch and remove', () => {
  const rig = new Rig(KV);
  assert.deepEqual(rig.call('fetch|k'), { ok: false, out: '' }, 'fetch fails on an unset key');
  assert.deepEqual(rig.call('store|k|hello'), { ok: true, out: '' }, 'store succeeds with an empty result');
  assert.deepEqual(rig.call('fetch|k'), { ok: true, out: 'hello' });
  assert.deepEqual(rig.call('store|k|a,b'), { ok: true, out: '' }, 'values may contain commas');
  assert.deepEqual(rig.call('fetch|k'), { ok: true, out: 'a,b' });
  assert.deepEqual(rig.call('remove|k'), { ok: true, out: '' });
  assert.deepEqual(rig.call('remove|k'), { ok: true, out: '' }, 'remove succeeds by default, key or no key');
  assert.deepEqual(rig.call('fetch|k'), { ok: false, out: '' });
});

test('§7.6 adjust: n, +n and -n; a missing key starts at 0; integer tables store integers only', () => {
  const rig = new Rig(KV);
  assert.deepEqual(rig.call('adjust|n|5'), { ok: true, out: '' });
  assert.equal(rig.call('ifetch|n').out, '5');
  assert.equal(rig.call('adjust|n|+3').ok, true);
  assert.equal(rig.call('ifetch|n').out, '8');
  assert.equal(rig.call('adjust|n|-10').ok, true);
  assert.equal(rig.call('ifetch|n').out, '-2');
  assert.equal(rig.call('adjust|n|x').ok, false, 'not a delta');
  assert.equal(rig.call('adjust|n|1.5').ok, false, 'not a delta');
  assert.equal(rig.call('ifetch|n').out, '-2');
  assert.equal(rig.call('istore|m|abc').ok, false, 'an integer table refuses other values');
  assert.equal(rig.call('istore|m|+07').ok, true);
  assert.equal(rig.call('ifetch|m').out, '7', 'an integer is stored in its plain spelling');
  assert.equal(rig.call('adjust|m|1').ok, true);
  assert.equal(rig.call('ifetch|m').out, '8');
});

test('§7.6 test: =, >, >=, <, <= against the value; a missing key is 0; false fails', () => {
  const rig = new Rig(KV);
  const holds = (input: string): boolean => rig.call(input).ok;
  assert.equal(holds('test|none|=0'), true, 'missing key = 0');
  assert.equal(holds('test|none|>0'), false);
  assert.equal(holds('test|none|<=0'), true);
  rig.call('adjust|n|3');
  for (const [cond, want] of [
    ['=3', true],
    ['= 3', true],
    ['>3', false],
    ['>2', true],
    ['>=3', true],
    ['>=4', false],
    ['<4', true],
    ['<3', false],
    ['<=3', true],
    ['<=-1', false],
  ] as const) {
    assert.equal(holds(`test|n|${cond}`), want, cond);
  }
  assert.equal(holds('test|n|~3'), false, 'a malformed condition fails');
  assert.equal(rig.call('ifetch|n').out, '3', 'test changes nothing');
});

test('§7.6 adjust_and_test: adjusts, then compares the new value', () => {
  const rig = new Rig(KV);
  // A counter that refuses from the fourth attempt on: "adjust by 1, succeed when > 3".
  const results = Array.from({ length: 6 }, () => rig.call('aat|tries|1|>3').ok);
  assert.deepEqual(results, [false, false, false, true, true, true]);
  assert.equal(rig.call('ifetch|tries').out, '6', 'failed comparisons adjust too');
  assert.equal(rig.call('aat|tries|-6|=0').ok, true);
  assert.equal(rig.call('aat|tries|+2|<=1').ok, false);
  assert.equal(rig.call('ifetch|tries').out, '2');
});

test('simple-table values expire quota_time after their last write', () => {
  const rig = new Rig(KV);
  rig.call('store|k|v');
  rig.call('adjust|n|1');
  rig.now += 59_999;
  assert.equal(rig.call('fetch|k').out, 'v');
  rig.call('adjust|n|1');
  rig.now += 1;
  assert.equal(rig.call('fetch|k').ok, false, 'expired after 60 s');
  assert.equal(rig.call('ifetch|n').out, '2', 'renewed by the adjust');
});
