// The counting rules of MeterMaid throttle tables, as pure functions of (table, key state, time).
// No clock and no I/O: the caller passes `now` (ms), so tests step time instead of sleeping, and
// the Redis store's Lua scripts (redis-store.ts) implement the same arithmetic line for line.
//
// Decay (default, spec §7.5, RECONSTRUCTED there as a linear leaky bucket): the count drains at
// quota/quota_time per ms; a hit is over quota when count + 1 would exceed the quota. An over-quota
// hit adds to the count only with `penalize`. 15 hits at t=0 with quota 15/60 s: the 16th is
// refused; at t=30 s the count is 7.5 and hits are admitted again.
//
// Window (`mode = window`): a sliding log of the last `quota` counted hits. A hit is over quota
// when `quota` hits lie in (now - quota_time, now]. No interval of length quota_time ever holds
// more than `quota` admitted hits, at any alignment (fixed windows admit 2× across a boundary).
// With `penalize` refused hits enter the log too, so a client that keeps hammering stays out.

import type { HitResult, TableSpec, Usage } from './types.js';

/** Guards the "count + 1 > quota" comparison against floating-point dust from the decay. */
const EPS = 1e-9;

/** Decay state of one key: the count as of time `t`. Mutated in place by decayHit. */
export interface DecayState {
  c: number;
  t: number;
}

/** Window state of one key: times of the counted hits, ascending, at most `quota` of them. */
export interface WindowState {
  ts: number[];
}

/** Count drained per ms. */
export function decayRate(spec: TableSpec): number {
  return spec.quota / spec.quotaTimeMs;
}

/** The count of `s` at time `now` (never below 0; a clock that steps back drains nothing). */
export function decayedCount(spec: TableSpec, s: DecayState, now: number): number {
  const elapsed = now > s.t ? now - s.t : 0;
  const c = s.c - elapsed * decayRate(spec);
  return c > 0 ? c : 0;
}

/**
 * ms until a hit is admitted again at `count`: the first whole ms at which the count has drained
 * to within EPS of quota - 1, the same tolerance decayHit admits with (so a hit one ms earlier is
 * still refused, even on slow tables whose rate per ms is below EPS).
 */
export function decayRetryAfter(spec: TableSpec, count: number): number {
  const excess = count + 1 - spec.quota;
  return excess > EPS ? Math.max(0, Math.ceil((excess - EPS) / decayRate(spec))) : 0;
}

/** Counts one hit; updates `s`. */
export function decayHit(spec: TableSpec, s: DecayState, now: number): HitResult {
  let c = decayedCount(spec, s, now);
  const over = c + 1 > spec.quota + EPS;
  if (!over || spec.penalize) c += 1;
  s.c = c;
  if (now > s.t) s.t = now;
  return { over, count: c, retryAfterMs: decayRetryAfter(spec, c) };
}

/** ms after which a key's decay state is empty (and may be dropped). */
export function decayLifetime(spec: TableSpec, count: number): number {
  return Math.max(1, Math.ceil(count / decayRate(spec)));
}

export function decayUsage(spec: TableSpec, key: string, s: DecayState, now: number): Usage {
  const count = decayedCount(spec, s, now);
  return {
    key,
    count,
    over: count + 1 > spec.quota + EPS,
    remaining: Math.max(0, Math.floor(spec.quota - count + EPS)),
    resetMs: count > 0 ? Math.ceil(count / decayRate(spec)) : 0,
    retryAfterMs: decayRetryAfter(spec, count),
  };
}

/** Drops the hits that left the window (time ≤ now - quota_time). */
function prune(spec: TableSpec, s: WindowState, now: number): void {
  const edge = now - spec.quotaTimeMs;
  let drop = 0;
  while (drop < s.ts.length && (s.ts[drop] as number) <= edge) drop++;
  if (drop > 0) s.ts.splice(0, drop);
}

function windowRetryAfter(spec: TableSpec, s: WindowState, now: number): number {
  const n = s.ts.length;
  if (n < spec.quota) return 0;
  return Math.max(0, (s.ts[n - spec.quota] as number) + spec.quotaTimeMs - now);
}

/** Counts one hit; updates `s`. A clock that steps back is treated as standing still. */
export function windowHit(spec: TableSpec, s: WindowState, now: number): HitResult {
  const last = s.ts[s.ts.length - 1];
  const t = last !== undefined && last > now ? last : now;
  prune(spec, s, t);
  const over = s.ts.length >= spec.quota;
  if (!over || spec.penalize) {
    s.ts.push(t);
    if (s.ts.length > spec.quota) s.ts.splice(0, s.ts.length - spec.quota);
  }
  return { over, count: s.ts.length, retryAfterMs: windowRetryAfter(spec, s, t) };
}

export function windowUsage(spec: TableSpec, key: string, s: WindowState, now: number): Usage {
  const edge = now - spec.quotaTimeMs;
  const live = s.ts.filter((t) => t > edge);
  const n = live.length;
  return {
    key,
    count: n,
    over: n >= spec.quota,
    remaining: Math.max(0, spec.quota - n),
    resetMs: n > 0 ? Math.max(0, (live[n - 1] as number) + spec.quotaTimeMs - now) : 0,
    retryAfterMs: windowRetryAfter(spec, { ts: live }, now),
  };
}

/** ms after which a key's window state is empty. */
export function windowLifetime(spec: TableSpec, s: WindowState, now: number): number {
  const last = s.ts[s.ts.length - 1];
  return last === undefined ? 0 : Math.max(1, last + spec.quotaTimeMs - now);
}

/** Parses an `adjust` delta: "n", "+n" or "-n" (spec §7.6). */
export function parseDelta(text: string): number | undefined {
  const t = text.trim();
  if (!/^[+-]?\d{1,15}$/.test(t)) return undefined;
  return Number(t);
}

export type Comparison = '=' | '>' | '>=' | '<' | '<=';

/** Parses a `test` condition such as ">= 10" or "=3" (spec §7.6). */
export function parseCondition(text: string): { op: Comparison; value: number } | undefined {
  const m = /^\s*(>=|<=|=|>|<)\s*([+-]?\d{1,15})\s*$/.exec(text);
  if (m === null) return undefined;
  return { op: m[1] as Comparison, value: Number(m[2]) };
}

export function compare(a: number, op: Comparison, b: number): boolean {
  switch (op) {
    case '=':
      return a === b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
  }
}
