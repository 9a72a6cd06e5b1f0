// Part (b) of `npm run bench:throttle`: the shared store. RedisStore.hit() — one Lua script per
// decision (EVALSHA) over ioredis — against a private redis-server, beside redis-benchmark in the
// same run. Target (issue 5): p99 <= 1 ms, with 1 and with 50 concurrent callers.
//
// Cases (RedisStore, decay table, quota nothing reaches, one decision per call):
//   1 caller        one async loop awaiting each hit in turn (one request in flight)
//   50 callers      50 async loops over one store, i.e. one connection (ioredis writes each command
//                   as it is issued; up to 50 in flight)
//   50 callers/4    the same 50 loops spread over 4 stores (4 connections)
//   100k keys       50 callers over one store, 100,000 keys round-robin with max_entries 100,000
//                   (the table's index sorted set holds 100,000 members)
//   open loop       10,000 decisions/s offered on one connection, each issued when it falls due
//                   (checked every turn of the event loop), at most 50 in flight: the latency of a decision at a load the SMTP service
//                   can produce (its fastest scenario needs about 2 decisions per message, 4,000/s),
//                   where the closed loops above measure mostly the queue they build themselves
// redis-benchmark -P 1 --csv (p50/p99 come from its CSV columns), -n 100000 (BENCH_THROTTLE_REDIS_N):
//   incr            `-t incr`, -c 1 and -c 50: the server's cheapest write, the issue's reference
//   our script      the exact EVALSHA command RedisStore sends for one hit (captured with MONITOR),
//                   replayed by redis-benchmark: the script's cost without Node and ioredis
// Each measurement runs BENCH_THROTTLE_REDIS_SECONDS (default 2 s) or -n requests; the cases are
// interleaved, rotating who goes first, BENCH_THROTTLE_REPEAT times. Latency: per call, from the
// call to hit() to its resolution (process.hrtime.bigint), pooled over the repetitions; with 50
// callers it includes the wait behind the other 49 (Little's law: latency ≈ callers / throughput).
// Server CPU: redis-server's user+system time per request (/proc).

import { spawn } from 'node:child_process';
import net from 'node:net';
import { RedisStore } from '../src/throttle/redis-store.js';
import type { TableSpec } from '../src/throttle/types.js';
import { REDIS_BENCHMARK, RedisPeer, redisMissing } from './redis-peer.js';
import { median, medianRange, percentile, rate, rotate, textTable } from './stats.js';

const TARGET_P99_MS = 1;
/** Decisions/s offered in the open-loop case: more than twice what the SMTP service's fastest scenario asks. */
const OPEN_RATE = 10_000;

function spec(name: string, maxEntries: number): TableSpec {
  return {
    name,
    type: 'throttle',
    dataType: 'ipv4',
    valueType: 'string',
    // Nothing is refused in the run; the slowest drain msg.conf allows (386 hits/s), so a hot key's
    // state stays in Redis between hits as a flooding client's does.
    quota: 1_000_000_000,
    quotaTimeMs: 30 * 86_400_000,
    penalize: false,
    nocase: false,
    maxEntries,
    onError: 'allow',
    mode: 'decay',
  };
}

function openStore(port: number): RedisStore {
  // metermaid.mtaclient.* defaults (timeoutms 500).
  return new RedisStore({ host: '127.0.0.1', port, secret: '', connectFrequencyMs: 15_000, connectWaitMs: 5_000, timeoutMs: 500, keyPrefix: 'bench:mm:' });
}

interface Sample {
  readonly rate: number;
  /** Per-request latencies in ms, ascending. */
  readonly latMs: Float64Array | null;
  /** redis-benchmark's own p50/p99 (ms) when it measured. */
  readonly p50?: number;
  readonly p99?: number;
  readonly serverCpuUs: number;
  /** Hits that failed (StoreError: timeout, connection). */
  readonly errors: number;
  /** Open loop: hits not issued because `cap` were in flight already. */
  readonly shed?: number;
}

interface RedisCase {
  readonly label: string;
  readonly kind: 'store' | 'redis-benchmark';
  run(peer: RedisPeer): Promise<Sample>;
}

/** 50 (or 1) async loops calling hit() until the time is up. */
async function storeLoad(peer: RedisPeer, stores: readonly RedisStore[], s: TableSpec, callers: number, keys: readonly string[], seconds: number): Promise<Sample> {
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const cpu0 = peer.cpuSeconds();
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  const loop = async (i: number): Promise<void> => {
    const store = stores[i % stores.length] as RedisStore;
    while (process.hrtime.bigint() < end) {
      const key = keys[next] as string;
      if (++next === keys.length) next = 0;
      const t0 = process.hrtime.bigint();
      try {
        await store.hit(s, key, Date.now());
      } catch {
        errors++;
        continue;
      }
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: callers }, (_, i) => loop(i)));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = peer.cpuSeconds() - cpu0;
  return { rate: lat.length / elapsed, latMs: Float64Array.from(lat).sort(), serverCpuUs: (cpu / Math.max(1, lat.length)) * 1e6, errors };
}

/**
 * Open loop: hits issued at `offered` per second as they fall due, at most `cap` in flight
 * (a hit due while the cap is reached is shed and counted), so latency shows the service time at
 * a load the SMTP side could produce rather than the queue 50 closed loops build.
 */
async function openLoad(peer: RedisPeer, store: RedisStore, s: TableSpec, key: string, offered: number, cap: number, seconds: number): Promise<Sample> {
  const lat: number[] = [];
  let errors = 0;
  let shed = 0;
  let issued = 0;
  let inFlight = 0;
  const cpu0 = peer.cpuSeconds();
  const start = process.hrtime.bigint();
  const total = Math.round(offered * seconds);
  const one = async (): Promise<void> => {
    inFlight++;
    const t0 = process.hrtime.bigint();
    try {
      await store.hit(s, key, Date.now());
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    } catch {
      errors++;
    } finally {
      inFlight--;
    }
  };
  const pending: Promise<void>[] = [];
  // Paced from setImmediate (each turn of the event loop, after I/O), not from a 1 ms timer whose
  // ticks would release the hits in bursts.
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - start) / 1e9) * offered));
      for (; issued < due; issued++) {
        if (inFlight >= cap) shed++;
        else pending.push(one());
      }
      if (issued >= total) resolve();
      else setImmediate(tick);
    };
    tick();
  });
  await Promise.all(pending);
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = peer.cpuSeconds() - cpu0;
  return { rate: lat.length / elapsed, latMs: Float64Array.from(lat).sort(), serverCpuUs: (cpu / Math.max(1, lat.length)) * 1e6, errors, shed };
}

function csvFields(line: string): string[] {
  return [...line.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => (m[1] as string).replaceAll('""', '"'));
}

/** Runs redis-benchmark -P 1 --csv and reads rps, p50 and p99 from its CSV row. */
function redisBenchmark(peer: RedisPeer, clients: number, n: number, command: readonly string[]): Promise<Sample> {
  const args = ['-h', '127.0.0.1', '-p', String(peer.port), '-n', String(n), '-c', String(clients), '-P', '1', '--csv', ...command];
  const cpu0 = peer.cpuSeconds();
  return new Promise((resolve, reject) => {
    const child = spawn(REDIS_BENCHMARK, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const lines = out.split('\n').filter((l) => l.startsWith('"'));
      const head = csvFields(lines[0] ?? '');
      const row = csvFields(lines[1] ?? '');
      const col = (name: string): number => Number(row[head.indexOf(name)]);
      if (code !== 0 || row.length === 0 || !Number.isFinite(col('rps'))) {
        reject(new Error(`redis-benchmark ${args.join(' ')} exited ${String(code)}: ${(err || out).trim().slice(0, 300)}`));
        return;
      }
      const cpu = peer.cpuSeconds() - cpu0;
      resolve({ rate: col('rps'), latMs: null, p50: col('p50_latency_ms'), p99: col('p99_latency_ms'), serverCpuUs: (cpu / n) * 1e6, errors: 0 });
    });
  });
}

/** Parses one MONITOR line into its command words. */
function monitorWords(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
    (m[1] as string).replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => (e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : e)),
  );
}

/** The exact EVALSHA command RedisStore sends for one hit, as Redis's MONITOR shows it. */
async function captureHitCommand(peer: RedisPeer, store: RedisStore, s: TableSpec): Promise<string[]> {
  const sock = net.connect(peer.port, '127.0.0.1');
  let buf = '';
  const found = new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`MONITOR saw no EVALSHA within 5 s: ${buf.slice(0, 400)}`)), 5000);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (const line of buf.split('\r\n')) {
        if (/^\+\d/.test(line) && /"evalsha"/i.test(line)) {
          clearTimeout(timer);
          resolve(monitorWords(line));
        }
      }
    });
    sock.on('error', reject);
  });
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write('*1\r\n$7\r\nMONITOR\r\n');
  await new Promise((r) => setTimeout(r, 100));
  await store.hit(s, '192.0.2.99', Date.now());
  try {
    return await found;
  } finally {
    sock.destroy();
  }
}

export async function runRedis(repeat: number): Promise<void> {
  const missing = redisMissing();
  if (missing !== null) {
    console.log(`(b) Redis: SKIPPED: ${missing}`);
    return;
  }
  const seconds = Number(process.env.BENCH_THROTTLE_REDIS_SECONDS ?? '2') || 2;
  const n = Number(process.env.BENCH_THROTTLE_REDIS_N ?? '100000') || 100_000;
  const peer = await RedisPeer.start();
  const onExit = (): void => peer.killNow();
  process.once('exit', onExit);
  const stores = [openStore(peer.port), openStore(peer.port), openStore(peer.port), openStore(peer.port)];
  try {
    await Promise.all(stores.map((s) => s.waitReady()));
    const one = stores.slice(0, 1);
    const hot = spec('ext_throttle', 1000);
    const big = spec('big', 100_000);
    const hotKey = ['192.0.2.7'];
    const manyKeys = Array.from({ length: 100_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    // Warm-up: ioredis sends a script with EVAL on first use and EVALSHA afterwards; the 100k-key
    // index filled.
    for (const s of stores) await s.hit(hot, '192.0.2.7', Date.now());
    const command = await captureHitCommand(peer, stores[0] as RedisStore, hot);
    const version = peer.cli('INFO', 'server').match(/redis_version:(\S+)/)?.[1] ?? '?';
    await storeLoad(peer, one, big, 50, manyKeys, 3);
    await storeLoad(peer, stores, hot, 50, hotKey, 0.5);
    const cases: RedisCase[] = [
      { label: 'RedisStore.hit, 1 caller', kind: 'store', run: (p) => storeLoad(p, one, hot, 1, hotKey, seconds) },
      { label: 'RedisStore.hit, 50 callers, 1 connection', kind: 'store', run: (p) => storeLoad(p, one, hot, 50, hotKey, seconds) },
      { label: 'RedisStore.hit, 50 callers, 4 connections', kind: 'store', run: (p) => storeLoad(p, stores, hot, 50, hotKey, seconds) },
      { label: 'RedisStore.hit, 50 callers, 1 conn., 100k keys', kind: 'store', run: (p) => storeLoad(p, one, big, 50, manyKeys, seconds) },
      { label: `RedisStore.hit, open loop ${OPEN_RATE / 1000}k/s offered, <= 50 in flight`, kind: 'store', run: (p) => openLoad(p, one[0] as RedisStore, hot, '192.0.2.7', OPEN_RATE, 50, seconds) },
      { label: 'redis-benchmark -t incr -c 1', kind: 'redis-benchmark', run: (p) => redisBenchmark(p, 1, n, ['-t', 'incr']) },
      { label: 'redis-benchmark -t incr -c 50', kind: 'redis-benchmark', run: (p) => redisBenchmark(p, 50, n, ['-t', 'incr']) },
      { label: "redis-benchmark our EVALSHA -c 1", kind: 'redis-benchmark', run: (p) => redisBenchmark(p, 1, n, command) },
      { label: "redis-benchmark our EVALSHA -c 50", kind: 'redis-benchmark', run: (p) => redisBenchmark(p, 50, n, command) },
    ];
    console.log(`(b) Redis ${version} on 127.0.0.1:${peer.port} (no persistence): ${cases.length} cases x ${repeat} repetitions; store cases ${seconds} s each, redis-benchmark -n ${n} -P 1`);
    console.log(`    hit command: ${command.slice(0, 3).join(' ')} ... (${command.length - 3} more arguments)`);
    const results = new Map<RedisCase, Sample[]>(cases.map((c) => [c, []]));
    for (let rep = 0; rep < repeat; rep++) {
      process.stdout.write(`  run ${rep + 1} k/s:`);
      for (const c of rotate(cases, rep)) {
        const s = await c.run(peer);
        results.get(c)?.push(s);
        process.stdout.write(` ${(s.rate / 1000).toFixed(1)}`);
      }
      process.stdout.write('\n');
    }
    const rows: string[][] = [['case', 'requests/s', 'p50 ms', 'p99 ms', 'max ms', 'redis CPU µs/req', 'p99 <= 1 ms']];
    for (const c of cases) {
      const ss = results.get(c) ?? [];
      const ms = (x: number): string => x.toFixed(3);
      let p50: string;
      let p99: number;
      let p99s: string;
      let max = '-';
      if (c.kind === 'store') {
        const all = Float64Array.from(ss.flatMap((s) => Array.from(s.latMs ?? []))).sort();
        p50 = ms(percentile(all, 50));
        p99 = percentile(all, 99);
        const per = ss.map((s) => percentile(s.latMs ?? new Float64Array(), 99));
        p99s = `${ms(p99)} (${ms(Math.min(...per))}-${ms(Math.max(...per))})`;
        max = ms(all[all.length - 1] as number);
      } else {
        // redis-benchmark reports percentiles per run: the median of the runs, with their range.
        p50 = ms(median(ss.map((s) => s.p50 ?? NaN)));
        p99 = median(ss.map((s) => s.p99 ?? NaN));
        p99s = medianRange(
          ss.map((s) => s.p99 ?? NaN),
          (x) => x.toFixed(3),
        );
      }
      const errors = ss.reduce((a, s) => a + s.errors, 0);
      const shed = ss.reduce((a, s) => a + (s.shed ?? 0), 0);
      rows.push([
        c.label,
        medianRange(
          ss.map((s) => s.rate),
          rate,
        ),
        p50,
        p99s,
        max,
        median(ss.map((s) => s.serverCpuUs)).toFixed(1),
        `${p99 <= TARGET_P99_MS ? 'met' : 'MISSED'}${errors ? ` (${errors} errors)` : ''}${shed ? ` (${shed} shed)` : ''}`,
      ]);
    }
    console.log('');
    console.log(`(b) Redis store. requests/s: median (min-max) of ${repeat} runs; store latency pooled over the runs (per-run p99 range in`);
    console.log(`    brackets); redis-benchmark: median of its per-run p50/p99 (range). One request = one throttle decision.`);
    console.log(textTable(rows));
    console.log('');
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    await peer.stop();
    process.off('exit', onExit);
  }
}
