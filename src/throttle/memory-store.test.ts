// The embedded store: the shared conformance suite, plus what only a store that takes all of its
// time from the caller can show — simple entries expiring at scripted times, and the max_entries
// bound on everything it holds, live or drained.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryStore } from './memory-store.js';
import { simpleSpec, storeConformance, T0, throttleSpec } from './store-conformance.js';

storeConformance('memory', () => new MemoryStore());

test('memory: a simple entry lives quota_time after its last write, by the caller\'s clock', () => {
  const store = new MemoryStore();
  const s = simpleSpec({ valueType: 'integer', quotaTimeMs: 10_000 });
  store.store(s, 'k', '1', T0);
  assert.equal(store.fetch(s, 'k', T0 + 9_999), '1');
  assert.equal(store.adjust(s, 'k', 1, T0 + 5_000), 2, 'adjust writes and renews');
  assert.equal(store.fetch(s, 'k', T0 + 14_999), '2');
  assert.deepEqual(store.entries(s, T0 + 14_000, 10), [{ key: 'k', value: '2', ttlMs: 1_000 }]);
  assert.equal(store.fetch(s, 'k', T0 + 15_000), undefined, 'expired');
  assert.deepEqual(store.entries(s, T0 + 15_000, 10), []);
  assert.equal(store.adjust(s, 'k', 5, T0 + 15_001), 5, 'an expired value counts as missing: adjust starts at 0');
});

test('memory: max_entries bounds every key held, for any sequence of hits (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.constantFrom('decay' as const, 'window' as const),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 30_000 })), { maxLength: 200 }),
      (maxEntries, mode, hits) => {
        const store = new MemoryStore();
        const s = throttleSpec({ maxEntries, mode, quota: 2, penalize: true });
        let now = T0;
        for (const [k, gap] of hits) {
          now += gap;
          store.hit(s, `k${k}`, now);
          assert.ok(store.size(s) <= maxEntries, `${store.size(s)} keys held, max_entries ${maxEntries}`);
        }
      },
    ),
    { seed: 0x5_7101, numRuns: 200 },
  );
});
