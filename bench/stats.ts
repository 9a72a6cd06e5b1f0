// Small statistics and formatting helpers shared by the throttle benchmark's parts.

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

/** "median (min-max)" of repeated measurements, formatted by `f`. */
export function medianRange(xs: readonly number[], f: (x: number) => string): string {
  if (xs.length === 0) return '-';
  if (xs.length === 1) return f(xs[0] as number);
  return `${f(median(xs))} (${f(Math.min(...xs))}-${f(Math.max(...xs))})`;
}

/** A text table: the first `left` columns left-aligned, the rest right-aligned. */
export function textTable(rows: readonly (readonly string[])[], left = 1): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((x, i) => (i < left ? x.padEnd(widths[i] as number) : x.padStart(widths[i] as number))).join('  ').trimEnd()).join('\n');
}

/** The list rotated left by k: each contender takes its turn first. */
export function rotate<T>(xs: readonly T[], k: number): T[] {
  if (xs.length === 0) return [];
  const r = k % xs.length;
  return [...xs.slice(r), ...xs.slice(0, r)];
}

export const rate = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0));
export const micros = (ns: number): string => (ns / 1000).toFixed(ns < 10_000 ? 2 : 1);
