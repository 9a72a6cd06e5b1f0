import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelRetry } from './delivery.js';

const MSGCONF = { backoffMs: [300_000, 600_000], maxAgeMs: 120 * 3_600_000 };

test('channelRetry: imta.cnf backoff and the last notices day override msg.conf; what the channel omits comes from msg.conf', () => {
  assert.deepEqual(channelRetry(MSGCONF, null), { backoffMs: [300_000, 600_000], maxAgeMs: 432_000_000, jitter: 0.1 });
  // The Messaging Server guide's sms example: backoff pt2m pt5m pt10m pt30m notices 1.
  assert.deepEqual(channelRetry(MSGCONF, { protocol: null, backoffMs: [120_000, 300_000, 600_000, 1_800_000], noticesDays: [1], maxJobs: null }), {
    backoffMs: [120_000, 300_000, 600_000, 1_800_000],
    maxAgeMs: 86_400_000,
    jitter: 0.1,
    warnAtMs: [],
  });
  // notices 1 2 4 7: warnings at 1, 2, 4 days; returned after 7.
  const p = channelRetry(MSGCONF, { protocol: null, backoffMs: null, noticesDays: [1, 2, 4, 7], maxJobs: 4 });
  assert.equal(p.maxAgeMs, 7 * 86_400_000);
  assert.deepEqual(p.warnAtMs, [1, 2, 4].map((d) => d * 86_400_000));
  assert.deepEqual(channelRetry(MSGCONF, { protocol: null, backoffMs: null, noticesDays: null, maxJobs: 4 }).backoffMs, [300_000, 600_000]);
  assert.deepEqual(channelRetry({ backoffMs: [], maxAgeMs: 1000 }, null).backoffMs, [60_000]);
});
