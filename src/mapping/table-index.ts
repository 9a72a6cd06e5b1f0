// A candidate index for large tables. Entries are tried strictly top to bottom (spec §2.1), so the
// index must never change which entry wins; it only skips entries that cannot match.
//
// Every pattern literal must occur in any probe the pattern matches (literals are case-blind, so
// we index folded text). For each entry we pick one 4-character piece ("gram") of one of its
// literals — the gram fewest other entries use — and file the entry under that gram's hash. For a
// probe we hash every 4-character window, collect the entry lists filed under those hashes, add the
// entries that have no literal of 4 or more characters, and walk the union in entry order. Hash
// collisions only add candidates; the full matcher still decides.

import type { CompiledPattern } from './pattern.js';

const GRAM = 4;

/** Tables smaller than this are scanned linearly: building and probing the index costs more. */
export const INDEX_MIN_ENTRIES = 24;

function gramHash(s: string, at: number): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < GRAM; k++) h = Math.imul(h ^ s.charCodeAt(at + k), 0x01000193);
  return h >>> 0;
}

export class TableIndex {
  private readonly byGram: Map<number, Int32Array>;
  /** Entries with no indexable literal: always candidates. */
  private readonly always: Int32Array;
  readonly indexedCount: number;

  constructor(patterns: readonly CompiledPattern[]) {
    // Pass 1: how many entries contain each gram.
    const freq = new Map<number, number>();
    const gramsOf: number[][] = patterns.map((p) => {
      const seen = new Set<number>();
      for (const lit of p.literals) for (let k = 0; k + GRAM <= lit.length; k++) seen.add(gramHash(lit, k));
      for (const h of seen) freq.set(h, (freq.get(h) ?? 0) + 1);
      return [...seen];
    });
    // Pass 2: file each entry under its rarest gram.
    const lists = new Map<number, number[]>();
    const always: number[] = [];
    gramsOf.forEach((grams, entry) => {
      if (grams.length === 0) {
        always.push(entry);
        return;
      }
      let best = grams[0] as number;
      for (const h of grams) if ((freq.get(h) as number) < (freq.get(best) as number)) best = h;
      let list = lists.get(best);
      if (list === undefined) lists.set(best, (list = []));
      list.push(entry);
    });
    this.byGram = new Map([...lists].map(([h, l]) => [h, Int32Array.from(l)]));
    this.always = Int32Array.from(always);
    this.indexedCount = patterns.length - always.length;
  }

  /**
   * Calls `visit` for each entry number ≥ `from` that may match the folded probe, in increasing
   * order, until `visit` returns true. Returns the entry that stopped the walk, or -1.
   */
  scan(folded: string, from: number, visit: (entry: number) => boolean): number {
    const lists: Int32Array[] = [];
    if (this.always.length > 0) lists.push(this.always);
    for (let k = 0; k + GRAM <= folded.length; k++) {
      const list = this.byGram.get(gramHash(folded, k));
      if (list !== undefined && !lists.includes(list)) lists.push(list);
    }
    if (lists.length === 0) return -1;
    // k-way merge by repeated minimum; k is small in practice (a few grams hit).
    const pos = new Int32Array(lists.length);
    for (let l = 0; l < lists.length; l++) pos[l] = lowerBound(lists[l] as Int32Array, from);
    for (;;) {
      let best = -1;
      let bestVal = 0x7fffffff;
      for (let l = 0; l < lists.length; l++) {
        const list = lists[l] as Int32Array;
        const p = pos[l] as number;
        if (p < list.length && (list[p] as number) < bestVal) {
          bestVal = list[p] as number;
          best = l;
        }
      }
      if (best < 0) return -1;
      pos[best] = (pos[best] as number) + 1;
      if (visit(bestVal)) return bestVal;
    }
  }
}

function lowerBound(a: Int32Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
