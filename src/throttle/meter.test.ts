// The counting rules of MeterMaid throttle tables (spec §7.5, ../shared/spec/), on the pure
// functions of meter.ts. Time is an argument: nothing here sleeps. The properties run with fixed
// seeds so a failure reproduces.
//
// Bounds checked:
//   decay:  any closed interval [a, a+L] holds at most quota + ⌊L·quota/quota_time⌋ admitted hits
//           (the leaky bucket drains L·quota/quota_time in that time and holds at most quota), and
//           the bound is reached;
//   window: no half-open interval [a, a+quota_time) holds more than quota admitted hits, at any
//           alignment — which a fixed-window counter does not satisfy.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compare, decayedCount, decayHit, decayUsage, parseCondition, parseDelta, windowHit, windowUsage } from './meter.js';
import type { Comparison, DecayState, WindowState } from './meter.js';
import type { HitResult, TableSpec } from './types.js';

function spec(over: Partial<TableSpec> = {}): TableSpec {
  return {
    name: 'ext_throttle',
    type: 'throttle',
    dataType: 'ipv4',
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

function runs(seed: number, numRuns = 300): fc.Parameters<unknown> {
  return { seed, numRuns, includeErrorInReport: true };
}

/** A counter of either mode over one key, so properties can drive both the same way. */
interface Counter {
  hit(now: number): HitResult;
  clone(): Counter;
}

function counter(s: TableSpec): Counter {
  if (s.mode === 'window') {
    const make = (st: WindowState): Counter => ({ hit: (now) => windowHit(s, st, now), clone: () => make({ ts: [...st.ts] }) });
    return make({ ts: [] });
  }
  const make = (st: DecayState): Counter => ({ hit: (now) => decayHit(s, st, now), clone: () => make({ ...st }) });
  return make({ c: 0, t: 0 });
}

/** Times of the admitted hits when `times` are offered in order. */
function admitted(c: Counter, times: readonly number[]): number[] {
  return times.filter((t) => !c.hit(t).over);
}

/** Non-decreasing hit times built from gaps that cluster around the table's rate. */
function hitTimes(quotaTimeMs: number, quota: number, maxLength = 150): fc.Arbitrary<number[]> {
  const step = Math.max(1, Math.floor(quotaTimeMs / quota));
  const gap = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: step }), fc.integer({ min: 0, max: 2 * quotaTimeMs }), fc.integer({ min: step - 1, max: step + 1 }));
  return fc.tuple(fc.integer({ min: 0, max: 10 ** 12 }), fc.array(gap, { maxLength })).map(([start, gaps]) => {
    let t = start;
    return gaps.map((g) => (t += g));
  });
}

const tableShape = fc.record({
  quota: fc.integer({ min: 1, max: 20 }),
  quotaTimeMs: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 100_000 }), fc.constantFrom(60_000, 3_600_000)),
  penalize: fc.boolean(),
});

/** The first half-open window [t, t+quota_time) that holds more than quota of `ts`, or null. */
function crowdedWindow(ts: readonly number[], quota: number, quotaTimeMs: number): { from: number; hits: number } | null {
  let j = 0;
  for (let i = 0; i < ts.length; i++) {
    if (j < i) j = i;
    while (j < ts.length && (ts[j] as number) < (ts[i] as number) + quotaTimeMs) j++;
    if (j - i > quota) return { from: ts[i] as number, hits: j - i };
  }
  return null;
}

/** A fixed-window counter (quota per aligned quota_time slot): the design window mode replaces. */
function fixedWindowAdmitted(quota: number, quotaTimeMs: number, times: readonly number[]): number[] {
  let slot = -1;
  let n = 0;
  return times.filter((t) => {
    const s = Math.floor(t / quotaTimeMs);
    if (s !== slot) {
      slot = s;
      n = 0;
    }
    if (n >= quota) return false;
    n++;
    return true;
  });
}

const near = (actual: number, expected: number, what: string): void => assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual}, expected ${expected}`);

// ---------------------------------------------------------------------------------------------
// Decay (the default, Messaging Server's decaying count)

test('§7.5 decay: quota 15 per 60 s admits a burst of 15 and refuses the 16th', () => {
  const s = spec();
  const st: DecayState = { c: 0, t: 0 };
  for (let i = 1; i <= 15; i++) {
    const r = decayHit(s, st, 0);
    assert.equal(r.over, false, `hit ${i}`);
    assert.equal(r.count, i);
  }
  const r16 = decayHit(s, st, 0);
  assert.equal(r16.over, true, '16th hit');
  assert.equal(r16.count, 15, 'without penalize a refused hit does not count');
  assert.equal(r16.retryAfterMs, 4000, 'one hit frees up every quota_time/quota = 4 s');
});

test('§15 row 50: 15 hits at t=0, an attempt at t=30 s is admitted (count 7.5 → 8.5)', () => {
  const s = spec();
  const st: DecayState = { c: 0, t: 0 };
  for (let i = 0; i < 15; i++) decayHit(s, st, 0);
  near(decayedCount(s, st, 30_000), 7.5, 'count at t=30 s');
  const u = decayUsage(s, '198.51.100.20', st, 30_000);
  assert.equal(u.over, false);
  assert.equal(u.remaining, 7);
  const r = decayHit(s, st, 30_000);
  assert.equal(r.over, false, 'the attempt at t=30 s is under quota');
  near(r.count, 8.5, 'count after the attempt');
});

test('§7.4 decay with penalize: refused hits keep counting, so hammering keeps a client out', () => {
  const plain = spec();
  const pen = spec({ penalize: true });
  const a: DecayState = { c: 0, t: 0 };
  const b: DecayState = { c: 0, t: 0 };
  for (let i = 0; i < 25; i++) {
    decayHit(plain, a, 0);
    decayHit(pen, b, 0);
  }
  assert.equal(a.c, 15);
  assert.equal(b.c, 25, 'ten refused hits counted');
  // At t=30 s the plain key is at 7.5 and admitted; the penalized one is at 17.5 and still refused.
  assert.equal(decayHit(plain, a, 30_000).over, false);
  const r = decayHit(pen, b, 30_000);
  assert.equal(r.over, true);
  near(r.count, 18.5, 'the refused hit at t=30 s counted too');
  // (18.5 + 1 - 15) / (15 / 60000) = 18000 ms.
  assert.equal(r.retryAfterMs, 18_000);
});

test('§7.5 decay: an interval of length L admits at most quota + ⌊L·quota/quota_time⌋ hits (property)', () => {
  fc.assert(
    fc.property(tableShape.chain((shape) => fc.tuple(fc.constant(shape), hitTimes(shape.quotaTimeMs, shape.quota))), ([shape, times]) => {
      const s = spec({ ...shape, mode: 'decay' });
      const ok = admitted(counter(s), times);
      for (let i = 0; i < ok.length; i++) {
        for (let j = i; j < ok.length; j++) {
          const length = (ok[j] as number) - (ok[i] as number);
          // 1e-6 absorbs floating-point rounding of the drained amount, nothing more.
          const bound = s.quota + Math.floor((length * s.quota) / s.quotaTimeMs + 1e-6);
          assert.ok(j - i + 1 <= bound, `${j - i + 1} hits admitted in [${ok[i]}, ${ok[j]}] (length ${length}); bound ${bound}`);
        }
      }
    }),
    runs(0x7_5001),
  );
});

test('§7.5 decay: the bound is reached — a full burst, then one hit per quota_time/quota', () => {
  const s = spec();
  const c = counter(s);
  const times = [...Array<number>(15).fill(0), ...Array.from({ length: 15 }, (_, k) => (k + 1) * 4000)];
  const ok = admitted(c, times);
  assert.equal(ok.length, 30, 'quota + ⌊60000·15/60000⌋ = 30 hits in [0, 60 s]');
  assert.equal(c.hit(60_000).over, true, 'and not one more');
});

// ---------------------------------------------------------------------------------------------
// Window (sliding log)

test('window: quota 15 per 60 s admits 15, refuses the 16th, and frees the first slot exactly 60 s after it', () => {
  const s = spec({ mode: 'window' });
  const st: WindowState = { ts: [] };
  for (let i = 0; i < 15; i++) assert.equal(windowHit(s, st, i * 1000).over, false, `hit at ${i} s`);
  const r = windowHit(s, st, 20_000);
  assert.equal(r.over, true);
  assert.equal(r.count, 15);
  assert.equal(r.retryAfterMs, 40_000, 'the hit at t=0 leaves the window at t=60 s');
  assert.equal(windowHit(s, st, 59_999).over, true);
  assert.equal(windowHit(s, st, 60_000).over, false);
  assert.equal(windowHit(s, st, 60_001).over, true, 'the slot of t=1 s opens at 61 s');
});

test('window: no interval [a, a+quota_time) holds more than quota admitted hits, for any hit times (property)', () => {
  fc.assert(
    fc.property(tableShape.chain((shape) => fc.tuple(fc.constant(shape), hitTimes(shape.quotaTimeMs, shape.quota))), ([shape, times]) => {
      const s = spec({ ...shape, mode: 'window' });
      const ok = admitted(counter(s), times);
      const bad = crowdedWindow(ok, s.quota, s.quotaTimeMs);
      assert.equal(bad, null, `penalize=${s.penalize}: ${bad?.hits} admitted hits in [${bad?.from}, ${(bad?.from ?? 0) + s.quotaTimeMs})`);
    }),
    runs(0x7_5002),
  );
});

test('window: with penalize, a client that keeps hitting more often than quota/quota_time is never admitted again', () => {
  const s = spec({ mode: 'window', quota: 3, quotaTimeMs: 1000, penalize: true });
  const c = counter(s);
  assert.deepEqual(admitted(c, [0, 0, 0]), [0, 0, 0]);
  // One hit every 300 ms (3.3 a second against a quota of 3): always three counted hits in the last second.
  assert.deepEqual(admitted(c, Array.from({ length: 50 }, (_, k) => 300 * (k + 1))), []);
  // Without penalize the same client gets a hit through whenever a slot frees.
  const plain = counter(spec({ mode: 'window', quota: 3, quotaTimeMs: 1000 }));
  admitted(plain, [0, 0, 0]);
  assert.ok(admitted(plain, Array.from({ length: 50 }, (_, k) => 300 * (k + 1))).length > 0);
});

test('test of the test: the window checker catches a fixed-window counter at a slot boundary', () => {
  // Counterexample: quota hits just before a boundary and quota hits on it — 2×quota within 2 ms.
  const quota = 5;
  const qt = 1000;
  const times = [...Array<number>(quota).fill(qt - 1), ...Array<number>(quota).fill(qt)];
  const fixed = fixedWindowAdmitted(quota, qt, times);
  assert.equal(fixed.length, 2 * quota);
  assert.deepEqual(crowdedWindow(fixed, quota, qt), { from: qt - 1, hits: 2 * quota });
  // The sliding window refuses the second half of the same sequence.
  assert.equal(admitted(counter(spec({ mode: 'window', quota, quotaTimeMs: qt })), times).length, quota);
  // And the property above, run against the fixed-window counter, finds a counterexample.
  const found = fc.check(
    fc.property(hitTimes(qt, quota), (ts) => crowdedWindow(fixedWindowAdmitted(quota, qt, ts), quota, qt) === null),
    runs(0x7_5003, 500),
  );
  assert.equal(found.failed, true, 'the window property must reject fixed windows');
});

// ---------------------------------------------------------------------------------------------
// Both modes

for (const mode of ['decay', 'window'] as const) {
  test(`${mode}: retryAfterMs is exact — a hit at now+retryAfterMs is admitted, one at now+retryAfterMs-1 is not (property)`, () => {
    fc.assert(
      fc.property(
        tableShape.chain((shape) => fc.tuple(fc.constant(shape), hitTimes(shape.quotaTimeMs, shape.quota, 60))),
        ([shape, times]) => {
          const s = spec({ ...shape, mode });
          const c = counter(s);
          for (const now of times) {
            const r = c.hit(now);
            const wait = r.retryAfterMs;
            assert.ok(Number.isInteger(wait) && wait >= 0, `retryAfterMs ${wait}`);
            assert.equal(c.clone().hit(now + wait).over, false, `hit at ${now} + retryAfterMs ${wait} must be admitted (count ${r.count})`);
            if (wait > 0) assert.equal(c.clone().hit(now + wait - 1).over, true, `hit at ${now} + ${wait - 1} ms must be refused (count ${r.count})`);
          }
        },
      ),
      runs(mode === 'decay' ? 0x7_5004 : 0x7_5005),
    );
  });

  test(`${mode}: retryAfterMs is exact on a slow table (quota 1 per 30 days)`, () => {
    const s = spec({ mode, quota: 1, quotaTimeMs: 30 * 86_400_000 });
    const c = counter(s);
    assert.equal(c.hit(0).over, false);
    const r = c.hit(0);
    assert.equal(r.over, true);
    assert.equal(c.clone().hit(r.retryAfterMs - 1).over, true, `refused at ${r.retryAfterMs - 1}`);
    assert.equal(c.clone().hit(r.retryAfterMs).over, false, `admitted at ${r.retryAfterMs}`);
  });

  test(`${mode}: a clock that steps back frees no quota`, () => {
    for (const penalize of [false, true]) {
      const s = spec({ mode, penalize });
      const c = counter(s);
      const t = 1_700_000_000_000;
      assert.equal(admitted(c, Array<number>(15).fill(t)).length, 15);
      // The clock jumps back an hour, and forward again by less than the jump.
      for (const back of [t - 1, t - 30_000, t - 3_600_000, 0, t - 1000]) assert.equal(c.hit(back).over, true, `penalize=${penalize}: hit at t-${t - back} ms`);
    }
  });

  test(`${mode}: once the quota is used up at T, no hit at any time ≤ T is admitted (property)`, () => {
    fc.assert(
      fc.property(
        tableShape,
        fc.array(fc.integer({ min: 0, max: 10_000_000 }), { maxLength: 40 }),
        (shape, earlier) => {
          const s = spec({ ...shape, mode });
          const c = counter(s);
          const T = 10_000_000;
          for (let i = 0; i < s.quota; i++) c.hit(T);
          for (const t of earlier) assert.equal(c.hit(t).over, true, `hit at ${t} after the quota was used at ${T}`);
        },
      ),
      runs(mode === 'decay' ? 0x7_5006 : 0x7_5007),
    );
  });
}

test('usage: count, over, remaining, resetMs and retryAfterMs of both modes', () => {
  const d = spec();
  const st: DecayState = { c: 0, t: 0 };
  for (let i = 0; i < 12; i++) decayHit(d, st, 0);
  assert.deepEqual(decayUsage(d, 'k', st, 0), { key: 'k', count: 12, over: false, remaining: 3, resetMs: 48_000, retryAfterMs: 0 });
  assert.deepEqual(decayUsage(d, 'k', st, 60_000), { key: 'k', count: 0, over: false, remaining: 15, resetMs: 0, retryAfterMs: 0 });

  const w = spec({ mode: 'window', quota: 3, quotaTimeMs: 1000 });
  const ws: WindowState = { ts: [] };
  for (const t of [0, 100, 200]) windowHit(w, ws, t);
  assert.deepEqual(windowUsage(w, 'k', ws, 300), { key: 'k', count: 3, over: true, remaining: 0, resetMs: 900, retryAfterMs: 700 });
  assert.deepEqual(windowUsage(w, 'k', ws, 1000), { key: 'k', count: 2, over: false, remaining: 1, resetMs: 200, retryAfterMs: 0 });
  assert.deepEqual(windowUsage(w, 'k', ws, 1200), { key: 'k', count: 0, over: false, remaining: 3, resetMs: 0, retryAfterMs: 0 });
});

// ---------------------------------------------------------------------------------------------
// Arguments of adjust and test (spec §7.6)

test('§7.6 parseDelta: n, +n and -n', () => {
  const good: [string, number][] = [
    ['5', 5],
    ['+5', 5],
    ['-5', -5],
    ['0', 0],
    [' 7 ', 7],
    ['007', 7],
    ['999999999999999', 999_999_999_999_999],
  ];
  for (const [text, n] of good) assert.equal(parseDelta(text), n, JSON.stringify(text));
  for (const text of ['', ' ', '+', '-', '--5', '+-5', '5.0', '1e3', '0x10', '5 5', 'five', '1234567890123456', 'Infinity', 'NaN']) {
    assert.equal(parseDelta(text), undefined, JSON.stringify(text));
  }
});

test('§7.6 parseCondition: =, >, >=, <, <= and a whole number', () => {
  const good: [string, Comparison, number][] = [
    ['>= 10', '>=', 10],
    ['=3', '=', 3],
    ['<=-2', '<=', -2],
    ['> +4', '>', 4],
    [' < 0 ', '<', 0],
  ];
  for (const [text, op, value] of good) assert.deepEqual(parseCondition(text), { op, value }, JSON.stringify(text));
  for (const text of ['', '10', '=>3', '== 3', '!= 3', '>= ', '>= 1.5', '< x', '>=1 2', '≥ 3', '>= 1234567890123456']) {
    assert.equal(parseCondition(text), undefined, JSON.stringify(text));
  }
});

test('§7.6 compare agrees with the arithmetic comparison it names (property)', () => {
  const ops: Record<Comparison, (a: number, b: number) => boolean> = {
    '=': (a, b) => a === b,
    '>': (a, b) => a > b,
    '>=': (a, b) => !(a < b),
    '<': (a, b) => b > a,
    '<=': (a, b) => !(a > b),
  };
  fc.assert(
    fc.property(fc.integer({ min: -5, max: 5 }), fc.constantFrom<Comparison>('=', '>', '>=', '<', '<='), fc.integer({ min: -5, max: 5 }), (a, op, b) => {
      assert.equal(compare(a, op, b), ops[op](a, b), `${a} ${op} ${b}`);
      assert.equal(parseCondition(`${op}${b}`) !== undefined && compare(a, op, (parseCondition(`${op}${b}`) as { value: number }).value), ops[op](a, b));
    }),
    runs(0x7_5008, 200),
  );
});
