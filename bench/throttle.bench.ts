// MeterMaid speed (issue 5, "Speed"): `npm run bench:throttle`, in three parts, each printing its table:
//   (a) embedded  check_metermaid.so throttle decisions through the library over the in-process store
//                 (bench/throttle-embedded.ts): >= 2,000,000 decisions/s, p99 <= 50 µs
//   (b) redis     RedisStore.hit against a private redis-server, beside redis-benchmark in the same
//                 run (bench/throttle-redis.ts): p99 <= 1 ms with 1 and 50 callers
//   (c) smtp      the SMTP benchmark with the seed throttle entries, embedded and Redis, against the
//                 same server without them (bench/throttle-smtp.ts): msg/s within 10 %
// A peer that is not installed (redis-server, smtp-source) is skipped with the reason.
//
// Environment: BENCH_THROTTLE_PARTS (comma list of embedded,redis,smtp; default all),
// BENCH_THROTTLE_REPEAT (interleaved repetitions per part, default 5), BENCH_THROTTLE_SECONDS
// (embedded throughput pass, default 1), BENCH_THROTTLE_REDIS_SECONDS (default 2),
// BENCH_THROTTLE_REDIS_N (redis-benchmark -n, default 100000); for (c) also smtp.bench.ts's
// BENCH_SMTP_SCALE and BENCH_SMTP_SCENARIOS.

import { runEmbedded } from './throttle-embedded.js';
import { runRedis } from './throttle-redis.js';
import { runSmtpThrottle } from './throttle-smtp.js';

export async function runThrottleBench(): Promise<void> {
  const t0 = process.hrtime.bigint();
  const repeat = Math.max(1, Number(process.env.BENCH_THROTTLE_REPEAT ?? '5') || 5);
  const parts = process.env.BENCH_THROTTLE_PARTS?.split(',').map((p) => p.trim()) ?? ['embedded', 'redis', 'smtp'];
  if (parts.includes('embedded')) await runEmbedded(repeat);
  if (parts.includes('redis')) await runRedis(repeat);
  if (parts.includes('smtp')) await runSmtpThrottle(repeat);
  console.log(`throttle benchmark: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(0)} s`);
}
