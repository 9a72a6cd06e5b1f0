// A small benchmark harness: warm up, then run a body in batches until a time budget is spent,
// and report operations per second and nanoseconds per operation. Timing lives here, never in tests.

export interface BenchResult {
  readonly name: string;
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSec: number;
  readonly nsPerOp: number;
  /** Slowest single batch, per op (ns): shows outliers a mean hides. */
  readonly worstNsPerOp: number;
}

export function bench(name: string, body: (i: number) => void, opts: { seconds?: number; batch?: number } = {}): BenchResult {
  const seconds = opts.seconds ?? 1;
  const batch = opts.batch ?? 1000;
  // Warm-up: let V8 optimise the hot path before measuring.
  const warmEnd = process.hrtime.bigint() + BigInt(Math.round(seconds * 0.3e9));
  let i = 0;
  while (process.hrtime.bigint() < warmEnd) for (let k = 0; k < batch; k++) body(i++);
  let ops = 0;
  let worst = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < end) {
    const t0 = now;
    for (let k = 0; k < batch; k++) body(i++);
    ops += batch;
    now = process.hrtime.bigint();
    const per = Number(now - t0) / batch;
    if (per > worst) worst = per;
  }
  const elapsed = Number(now - start) / 1e9;
  return { name, ops, seconds: elapsed, opsPerSec: ops / elapsed, nsPerOp: (elapsed * 1e9) / ops, worstNsPerOp: worst };
}

export function report(results: readonly BenchResult[]): void {
  const w = Math.max(...results.map((r) => r.name.length));
  for (const r of results) {
    const rate = r.opsPerSec >= 1e6 ? `${(r.opsPerSec / 1e6).toFixed(2)} M/s` : `${(r.opsPerSec / 1e3).toFixed(1)} k/s`;
    console.log(`${r.name.padEnd(w)}  ${rate.padStart(11)}  ${r.nsPerOp.toFixed(0).padStart(9)} ns/op  worst batch ${r.worstNsPerOp.toFixed(0)} ns/op`);
  }
}
