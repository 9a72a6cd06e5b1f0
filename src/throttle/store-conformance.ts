// The shared conformance suite of ThrottleStore (spec §7): every store — the embedded one and
// Redis — must give the same answers to the same calls at the same scripted times. A store's file
// (memory-store.test.ts, redis-store.test.ts) calls storeConformance with a factory that opens a
// fresh, empty store for each test.
//
// The expected answers come from the pure counting rules of meter.ts and from a small reference
// model of a table (key → state in least-recently-used order) written here, so "the stores agree"
// means "each agrees with the model".
//
// Two clocks: the counting uses the caller's `now`, but Redis expires keys by its own clock. The
// suite therefore never lets scripted time stand still past a key's real TTL: quotas in the
// random scripts are at least 2 with quota_time 60 s (a key lives ≥ 30 s of real time), and
// expiry of simple entries is left to each store's own tests. Scripted times that several keys
// share are avoided where the LRU order matters (a store may order keys touched in the same ms
// either way).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decayHit, decayUsage, windowHit, windowUsage } from './meter.js';
import type { DecayState, WindowState } from './meter.js';
import type { HitResult, TableSpec, ThrottleStore, Usage } from './types.js';
import { StoreError } from './types.js';

/** A realistic clock value, so stores are tested with 13-digit millisecond times. */
export const T0 = 1_700_000_000_000;

let tableSeq = 0;

/** A throttle table with a name no other test uses (stores keep tables apart by name). */
export function throttleSpec(over: Partial<TableSpec> = {}): TableSpec {
  return {
    name: `conf_${++tableSeq}`,
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

export function simpleSpec(over: Partial<TableSpec> = {}): TableSpec {
  return throttleSpec({ type: 'simple', valueType: 'integer', ...over });
}

/** The reference model of one throttle table: meter.ts arithmetic plus LRU over max_entries. */
export class ModelTable {
  /** Insertion order is recency order: the first key is the least recently used. */
  private readonly keys = new Map<string, DecayState | WindowState>();

  constructor(readonly spec: TableSpec) {}

  hit(key: string, now: number): HitResult {
    const old = this.keys.get(key);
    this.keys.delete(key);
    const s = this.spec;
    const st = old ?? (s.mode === 'window' ? { ts: [] } : { c: 0, t: now });
    const r = s.mode === 'window' ? windowHit(s, st as WindowState, now) : decayHit(s, st as DecayState, now);
    const keep = s.mode === 'window' ? (st as WindowState).ts.length > 0 : (st as DecayState).c > 0;
    if (keep) {
      // Every hit is a use, admitted or not; a new key arriving at a full table evicts the LRU one.
      while (this.keys.size >= s.maxEntries) this.keys.delete(this.keys.keys().next().value as string);
      this.keys.set(key, st);
    }
    return r;
  }

  private usage(key: string, st: DecayState | WindowState, now: number): Usage {
    return this.spec.mode === 'window' ? windowUsage(this.spec, key, st as WindowState, now) : decayUsage(this.spec, key, st as DecayState, now);
  }

  peek(key: string, now: number): Usage | undefined {
    const st = this.keys.get(key);
    if (st === undefined) return undefined;
    const u = this.usage(key, st, now);
    return u.count > 0 ? u : undefined;
  }

  list(now: number, limit: number): Usage[] {
    return [...this.keys.entries()]
      .reverse()
      .map(([k, st]) => this.usage(k, st, now))
      .filter((u) => u.count > 0)
      .slice(0, limit);
  }
}

export type StoreFactory = () => ThrottleStore | Promise<ThrottleStore>;

async function withStore(open: StoreFactory, f: (store: ThrottleStore) => Promise<void>): Promise<void> {
  const store = await open();
  try {
    await f(store);
  } finally {
    await store.close();
  }
}

/** `f` throws (a synchronous store) or rejects (a network store) with a StoreError of `code`. */
async function rejectsWith(f: () => unknown, code: StoreError['code'], what: string): Promise<void> {
  await assert.rejects(
    async () => {
      await f();
    },
    (err: unknown) => err instanceof StoreError && err.code === code,
    what,
  );
}

/** Registers the suite under `name`; `open` gives a fresh store per test. */
export function storeConformance(name: string, open: StoreFactory): void {
  void describe(`ThrottleStore conformance: ${name}`, () => {
    const run = (title: string, f: (store: ThrottleStore) => Promise<void>): void => {
      void test(title, () => withStore(open, f));
    };

    // ----- throttle tables ------------------------------------------------------------------

    run('§7.5 decay: a burst of 15 is admitted, the 16th refused, and the count at t=30 s is 7.5 (row 50)', async (store) => {
      const s = throttleSpec();
      const model = new ModelTable(s);
      for (let i = 1; i <= 16; i++) assert.deepEqual(await store.hit(s, '198.51.100.20', T0), model.hit('198.51.100.20', T0), `hit ${i}`);
      const u = await store.peek(s, '198.51.100.20', T0 + 30_000);
      assert.ok(u !== undefined);
      assert.ok(Math.abs(u.count - 7.5) < 1e-9, `count ${u.count}`);
      assert.deepEqual(u, model.peek('198.51.100.20', T0 + 30_000));
      const r = await store.hit(s, '198.51.100.20', T0 + 30_000);
      assert.equal(r.over, false, 'the attempt at t=30 s is admitted');
      assert.deepEqual(r, model.hit('198.51.100.20', T0 + 30_000));
    });

    for (const mode of ['decay', 'window'] as const) {
      for (const penalize of [false, true]) {
        run(`${mode}${penalize ? ', penalize' : ''}: scripted hits on one key give the decisions of meter.ts`, async (store) => {
          const s = throttleSpec({ mode, penalize, quota: 4, quotaTimeMs: 60_000 });
          const model = new ModelTable(s);
          const script = [0, 0, 0, 0, 0, 0, 1000, 14_999, 15_000, 15_001, 30_000, 45_000, 59_999, 60_000, 60_001, 61_000, 200_000, 200_000, 200_000];
          for (const dt of script) {
            const now = T0 + dt;
            assert.deepEqual(await store.hit(s, 'k', now), model.hit('k', now), `hit at T0+${dt}`);
            assert.deepEqual(await store.peek(s, 'k', now), model.peek('k', now), `peek at T0+${dt}`);
          }
        });
      }
    }

    run('keys are separate, and the same key in another table is another counter', async (store) => {
      const s = throttleSpec({ quota: 2 });
      const other = throttleSpec({ quota: 2 });
      for (let i = 0; i < 2; i++) await store.hit(s, 'a', T0);
      assert.equal((await store.hit(s, 'a', T0)).over, true);
      assert.equal((await store.hit(s, 'b', T0)).over, false, 'another key');
      assert.equal((await store.hit(s, 'A', T0)).over, false, 'keys are case-sensitive in the store (nocase is the caller\'s)');
      assert.equal((await store.hit(other, 'a', T0)).over, false, 'another table');
      assert.equal((await store.hit({ ...s, mode: 'window' }, 'a', T0)).over, false, 'the same table counted in window mode starts afresh');
    });

    run('keys may hold any characters a probe can carry', async (store) => {
      const s = throttleSpec({ quota: 1 });
      for (const k of ['user@example.com', 'a:b:c', 'with space', '*', '[x]', 'ünï', '', 'idx', 'x'.repeat(1024)]) {
        assert.equal((await store.hit(s, k, T0)).over, false, JSON.stringify(k.slice(0, 20)));
        assert.equal((await store.hit(s, k, T0)).over, true, JSON.stringify(k.slice(0, 20)));
        assert.equal((await store.peek(s, k, T0))?.key, k);
      }
    });

    run('peek does not count, and an unknown or drained key reads as absent', async (store) => {
      const s = throttleSpec({ quota: 3 });
      assert.equal(await store.peek(s, 'k', T0), undefined);
      await store.hit(s, 'k', T0);
      for (let i = 0; i < 5; i++) assert.equal((await store.peek(s, 'k', T0))?.count, 1);
      assert.equal(await store.peek(s, 'k', T0 + 20_000), undefined, 'quota 3 per 60 s drains one hit in 20 s');
      const w = throttleSpec({ quota: 3, mode: 'window' });
      await store.hit(w, 'k', T0);
      assert.equal((await store.peek(w, 'k', T0 + 59_999))?.count, 1);
      assert.equal(await store.peek(w, 'k', T0 + 60_000), undefined);
    });

    run('list: live keys, most recently used first, at most limit — drained keys are skipped, not counted', async (store) => {
      const s = throttleSpec({ quota: 5 });
      const model = new ModelTable(s);
      const hit = async (k: string, dt: number, n = 1): Promise<void> => {
        for (let i = 0; i < n; i++) assert.deepEqual(await store.hit(s, k, T0 + dt), model.hit(k, T0 + dt));
      };
      await hit('a', 0, 5); // lives 60 s
      await hit('b', 1000, 5); // lives 60 s
      await hit('c', 2000); // lives 12 s
      await hit('d', 3000); // lives 12 s
      assert.deepEqual(
        (await store.list(s, T0 + 3000, 10)).map((u) => u.key),
        ['d', 'c', 'b', 'a'],
      );
      assert.deepEqual(await store.list(s, T0 + 3000, 2), model.list(T0 + 3000, 2));
      // At 20 s c and d have drained; the two most recent live keys are b and a.
      assert.deepEqual(await store.list(s, T0 + 20_000, 2), model.list(T0 + 20_000, 2));
      assert.deepEqual(
        (await store.list(s, T0 + 20_000, 2)).map((u) => u.key),
        ['b', 'a'],
      );
      assert.deepEqual(await store.list(s, T0 + 20_000, 0), []);
    });

    run('reset: one key, then the whole table; counting starts from zero', async (store) => {
      const s = throttleSpec({ quota: 1 });
      for (const k of ['a', 'b', 'c']) await store.hit(s, k, T0);
      assert.equal(await store.reset(s, 'a'), 1);
      assert.equal(await store.reset(s, 'a'), 0, 'already gone');
      assert.equal(await store.peek(s, 'a', T0), undefined);
      assert.equal((await store.hit(s, 'a', T0)).over, false, 'a starts from zero');
      assert.equal((await store.hit(s, 'b', T0)).over, true, 'b kept its count');
      assert.equal(await store.reset(s, undefined), 3);
      assert.deepEqual(await store.list(s, T0, 10), []);
      assert.equal((await store.hit(s, 'b', T0)).over, false);
      assert.equal(await store.reset(throttleSpec(), undefined), 0, 'an empty table');
    });

    // ----- max_entries ----------------------------------------------------------------------

    for (const mode of ['decay', 'window'] as const) {
      run(`${mode}: max_entries — never more keys than that; the least recently used goes first and comes back from zero`, async (store) => {
        const s = throttleSpec({ mode, quota: 2, maxEntries: 3 });
        const fill = async (k: string, dt: number): Promise<void> => {
          assert.equal((await store.hit(s, k, T0 + dt)).over, false);
          assert.equal((await store.hit(s, k, T0 + dt)).over, false);
          assert.equal((await store.hit(s, k, T0 + dt)).over, true, `${k} is over quota`);
        };
        await fill('k1', 1);
        await fill('k2', 2);
        await fill('k3', 3);
        // k1 is used again (a refused hit is a use too), so k2 is now the least recently used.
        assert.equal((await store.hit(s, 'k1', T0 + 4)).over, true);
        await fill('k4', 5);
        const live = (await store.list(s, T0 + 5, 100)).map((u) => u.key);
        assert.deepEqual(live, ['k4', 'k1', 'k3']);
        assert.equal(await store.peek(s, 'k2', T0 + 5), undefined, 'k2 was evicted');
        const back = await store.hit(s, 'k2', T0 + 6);
        assert.equal(back.over, false, 'an evicted key starts from zero');
        assert.equal(back.count, 1);
        // k2's return evicted k3, the least recently used then.
        assert.deepEqual(
          (await store.list(s, T0 + 6, 100)).map((u) => u.key),
          ['k2', 'k4', 'k1'],
        );
      });
    }

    run('max_entries: a penalized key that outlives quota_time is still evicted in LRU order', async (store) => {
      // Penalized hammering drives the count past quota, so the key lives longer than quota_time.
      const s = throttleSpec({ quota: 2, maxEntries: 2, penalize: true });
      const model = new ModelTable(s);
      const step = async (k: string, dt: number): Promise<void> => assert.deepEqual(await store.hit(s, k, T0 + dt), model.hit(k, T0 + dt), `${k} at T0+${dt}`);
      for (let i = 0; i < 6; i++) await step('a', 0); // count 6: lives 180 s
      await step('b', 61_000);
      await step('c', 62_000); // evicts a
      await step('a', 63_000); // from zero
      assert.deepEqual(await store.list(s, T0 + 63_000, 10), model.list(T0 + 63_000, 10));
    });

    for (const mode of ['decay', 'window'] as const) {
      run(`${mode}: random scripts over several keys match the model (decisions, peek, list)`, async (store) => {
        const op = fc.record({ key: fc.constantFrom('a', 'b', 'c', 'd', 'e'), gap: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 20_000 }), fc.integer({ min: 1, max: 90_000 })), peek: fc.boolean() });
        await fc.assert(
          fc.asyncProperty(
            fc.record({ quota: fc.integer({ min: 2, max: 4 }), maxEntries: fc.integer({ min: 1, max: 4 }), penalize: fc.boolean() }),
            fc.array(op, { minLength: 1, maxLength: 40 }),
            async (shape, ops) => {
              const s = throttleSpec({ ...shape, mode, quotaTimeMs: 60_000 });
              const model = new ModelTable(s);
              let now = T0;
              for (const [i, o] of ops.entries()) {
                now += o.gap;
                // Bursts: each op hits its key up to three times at the same time.
                for (let j = 0; j < 1 + (i % 3); j++) assert.deepEqual(await store.hit(s, o.key, now), model.hit(o.key, now), `op ${i} hit ${o.key} at +${now - T0}`);
                if (o.peek) assert.deepEqual(await store.peek(s, o.key, now), model.peek(o.key, now), `op ${i} peek ${o.key}`);
              }
              assert.deepEqual(await store.list(s, now, 10), model.list(now, 10), 'list at the end');
            },
          ),
          { seed: mode === 'decay' ? 0x5_7001 : 0x5_7002, numRuns: 60, includeErrorInReport: true },
        );
      });
    }

    // ----- simple tables --------------------------------------------------------------------

    run('§7.6 simple: store, fetch, remove', async (store) => {
      const s = simpleSpec({ valueType: 'string' });
      assert.equal(await store.fetch(s, 'k', T0), undefined);
      await store.store(s, 'k', 'hello, world $N', T0);
      assert.equal(await store.fetch(s, 'k', T0 + 1), 'hello, world $N', 'values are stored verbatim');
      await store.store(s, 'k', 'replaced', T0 + 2);
      assert.equal(await store.fetch(s, 'k', T0 + 3), 'replaced');
      await store.store(s, 'empty', '', T0 + 4);
      assert.equal(await store.fetch(s, 'empty', T0 + 5), '', 'an empty value is a value');
      assert.equal(await store.remove(s, 'k'), true);
      assert.equal(await store.remove(s, 'k'), false);
      assert.equal(await store.fetch(s, 'k', T0 + 6), undefined);
      assert.equal(await store.fetch(throttleSpec({ type: 'simple', name: s.name }), 'empty', T0 + 7), '', 'the table is found by name');
    });

    run('§7.6 simple: adjust adds n, +n, -n; a missing key starts at 0', async (store) => {
      const s = simpleSpec();
      assert.equal(await store.adjust(s, 'n', 5, T0), 5);
      assert.equal(await store.adjust(s, 'n', -7, T0 + 1), -2);
      assert.equal(await store.adjust(s, 'n', 0, T0 + 2), -2);
      assert.equal(await store.fetch(s, 'n', T0 + 3), '-2');
      await store.store(s, 'm', '40', T0 + 4);
      assert.equal(await store.adjust(s, 'm', 2, T0 + 5), 42);
      assert.equal(await store.fetch(s, 'm', T0 + 6), '42');
      assert.equal(await store.adjust(s, 'fresh', -1, T0 + 7), -1);
    });

    run('§7.6 simple: adjust on a value that is not an integer rejects with bad-value and leaves it alone', async (store) => {
      const s = simpleSpec({ valueType: 'string' });
      // Integers are written as Redis writes them: no sign on positives, no leading zeros, no blanks.
      for (const v of ['abc', '', '1.5', '1e3', '0x10', ' 5', '5 ', '+5', '05', '-0', '12abc']) {
        await store.store(s, 'v', v, T0);
        await rejectsWith(() => store.adjust(s, 'v', 1, T0 + 1), 'bad-value', `adjust on ${JSON.stringify(v)}`);
        assert.equal(await store.fetch(s, 'v', T0 + 2), v, `${JSON.stringify(v)} unchanged`);
      }
      await store.store(s, 'v', '-12', T0 + 3);
      assert.equal(await store.adjust(s, 'v', 2, T0 + 4), -10);
    });

    run('simple: entries lists stored keys and values, most recently written first, with a ttl within quota_time', async (store) => {
      const s = simpleSpec({ valueType: 'string', quotaTimeMs: 60_000 });
      await store.store(s, 'a', '1', T0);
      await store.store(s, 'b', '2', T0 + 1);
      await store.adjust({ ...s, valueType: 'integer' }, 'c', 3, T0 + 2);
      await store.store(s, 'a', 'one', T0 + 3);
      const e = await store.entries(s, T0 + 3, 10);
      assert.deepEqual(
        e.map((x) => [x.key, x.value]),
        [
          ['a', 'one'],
          ['c', '3'],
          ['b', '2'],
        ],
      );
      for (const x of e) assert.ok(x.ttlMs > 0 && x.ttlMs <= 60_000, `ttl ${x.ttlMs}`);
      assert.deepEqual(
        (await store.entries(s, T0 + 3, 2)).map((x) => x.key),
        ['a', 'c'],
      );
      await store.remove(s, 'c');
      assert.deepEqual(
        (await store.entries(s, T0 + 4, 10)).map((x) => x.key),
        ['a', 'b'],
      );
    });

    run('simple: max_entries evicts the least recently written key', async (store) => {
      const s = simpleSpec({ valueType: 'string', maxEntries: 2 });
      await store.store(s, 'a', '1', T0 + 1);
      await store.store(s, 'b', '2', T0 + 2);
      await store.store(s, 'a', '1b', T0 + 3);
      await store.store(s, 'c', '3', T0 + 4);
      assert.equal(await store.fetch(s, 'b', T0 + 5), undefined, 'b was the least recently written');
      assert.equal(await store.fetch(s, 'a', T0 + 5), '1b');
      assert.equal(await store.fetch(s, 'c', T0 + 5), '3');
      assert.equal(await store.adjust({ ...s, valueType: 'integer' }, 'd', 1, T0 + 6), 1);
      assert.equal(await store.fetch(s, 'a', T0 + 7), undefined, 'adjust writes too');
      assert.deepEqual(
        (await store.entries(s, T0 + 7, 10)).map((x) => x.key),
        ['d', 'c'],
      );
    });

    run('simple and throttle tables of one name are apart', async (store) => {
      const t = throttleSpec({ quota: 1 });
      const s = { ...t, type: 'simple' as const };
      await store.hit(t, 'k', T0);
      assert.equal(await store.fetch(s, 'k', T0), undefined);
      await store.store(s, 'k', 'v', T0);
      assert.equal((await store.hit(t, 'k', T0)).over, true);
      assert.equal(await store.fetch(s, 'k', T0), 'v');
    });
  });
}
