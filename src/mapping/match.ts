// Runs a compiled pattern against a probe (spec §2.8): anchored at both ends, case-blind, greedy
// or lazy wildcards, full backtracking, captures numbered as in §2.7.
//
// Bounded time. A naive backtracker is exponential on patterns like `*a*a*a*a*a*a*a*a*a*b` against
// 4 KB of "a". We run the backtracker with a step budget first (it is the fastest on ordinary
// probes); past the budget we switch to a dynamic-programming matcher that fills a table
// reach[token][position] in O(tokens × length) and then walks it choosing, for each wildcard, the
// longest (greedy) or shortest (lazy) run after which the rest still matches. Without back-matches
// "the rest matches" does not depend on earlier captures, so that walk picks exactly the captures
// the backtracker would have picked. Patterns with back-matches keep the backtracker, with failures
// memoised per (token, position, captures still referenced later) and a hard step cap; a probe that
// exhausts it counts as not matching and is reported (MatchOutcome.exhausted).

import { TokKind } from './pattern.js';
import type { CharClass, CompiledPattern, PatternToken } from './pattern.js';
import { ipv6PrefixEqual, parseIPv4, parseIPv6 } from './ip.js';

/** Steps the plain backtracker may take before the DP matcher takes over. */
const FAST_BUDGET = 4096;
/** Hard cap for patterns with back-matches (not convertible to DP). */
const BACKREF_BUDGET = 10_000;

/**
 * A 32-bit summary of which characters occur in a folded string: a–z are bits 0–25, digits 26,
 * "|" 27, "@" 28, "." 29, "-" and "_" 30, anything else 31. If a pattern's literals need a bit
 * the probe lacks, the pattern cannot match — a test that costs one AND.
 */
export function charMask(folded: string): number {
  let m = 0;
  for (let i = 0; i < folded.length; i++) m |= charBit(folded.charCodeAt(i));
  return m;
}

function charBit(c: number): number {
  if (c >= 97 && c <= 122) return 1 << (c - 97);
  if (c >= 48 && c <= 57) return 1 << 26;
  if (c === 124) return 1 << 27;
  if (c === 64) return 1 << 28;
  if (c === 46) return 1 << 29;
  if (c === 45 || c === 95) return 1 << 30;
  return 1 << 31;
}

export interface MatchOutcome {
  /** Captured texts ($0, $1, ...) from the original (not folded) probe, or null for no match. */
  readonly captures: string[] | null;
  /** True when a back-match pattern ran out of steps; captures is then null. */
  readonly exhausted: boolean;
  /**
   * Search effort beyond the quick checks, in backtracking steps (the DP matcher counts a step
   * per 64 table cells). Callers charge it to their work budget.
   */
  readonly work: number;
}

const NO_MATCH: MatchOutcome = { captures: null, exhausted: false, work: 0 };

function inClass(cls: CharClass, c: number): boolean {
  if (cls.any) return true;
  if (c < 128) return cls.ascii[c] === 1;
  return cls.other !== '' && cls.other.includes(String.fromCharCode(c));
}

function isIp4Char(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 46;
}

function isIp6Char(c: number): boolean {
  return (c >= 48 && c <= 58) || (c >= 97 && c <= 102) || c === 46; // folded: a-f only
}

/** Length of the maximal address-character run at j (spec §2.5: only the maximal run is tried). */
function ipRun(tok: PatternToken, text: string, j: number): number {
  const six = tok.kind === TokKind.Ip6;
  let k = j;
  while (k < text.length && (six ? isIp6Char(text.charCodeAt(k)) : isIp4Char(text.charCodeAt(k)))) k++;
  return k - j;
}

function ipMatches(tok: PatternToken, text: string, j: number, len: number): boolean {
  if (len === 0) return false;
  if (tok.kind === TokKind.Ip4) {
    const a = parseIPv4(text, j, j + len);
    return a >= 0 && ((a & tok.mask4) >>> 0) === tok.net4;
  }
  const a6 = parseIPv6(text, j, j + len);
  return a6 !== null && tok.net6 !== null && ipv6PrefixEqual(a6, tok.net6, tok.bits6);
}

/** Minimum number of characters tokens i.. need; used to bound runs. */
function minRest(tokens: readonly PatternToken[]): Int32Array {
  const out = new Int32Array(tokens.length + 1);
  for (let i = tokens.length - 1; i >= 0; i--) {
    const t = tokens[i] as PatternToken;
    const own = t.kind === TokKind.Lit ? t.lit.length : t.kind === TokKind.One ? 1 : t.kind === TokKind.Ip4 ? 7 : t.kind === TokKind.Ip6 ? 2 : 0;
    out[i] = (out[i + 1] as number) + own;
  }
  return out;
}

/**
 * A compiled pattern ready to match. Not re-entrant across concurrent calls of the same instance
 * in one thread? It is: all per-call state lives in a MatchRun object.
 */
export class Matcher {
  readonly pattern: CompiledPattern;
  private readonly tokens: readonly PatternToken[];
  private readonly rest: Int32Array;
  /** Literal the pattern must start / end with (folded), for quick rejection. */
  private readonly head: string;
  private readonly tail: string;
  /** For each token index, the captures set before it that back-matches at or after it read. */
  private readonly live: readonly (readonly number[])[];
  /** Literal-and-greedy-star patterns take the linear path (matchGlob). */
  private readonly glob: boolean;
  /** Reused backtracker state: matching is synchronous and never re-entered. */
  private readonly run: MatchRun;
  /** Scratch for matchGlob's literal positions. */
  private readonly litAt: Int32Array;
  /** Literals in pattern order, for a quick "do they all occur, in order?" test. */
  private readonly lits: readonly string[];
  /** charMask bits every matching probe has. */
  readonly needMask: number;
  /** The longest literal that is neither the head nor the tail, or '': one includes() rejects most probes. */
  private readonly middle: string;

  constructor(pattern: CompiledPattern) {
    this.pattern = pattern;
    this.tokens = pattern.tokens;
    this.rest = minRest(pattern.tokens);
    const first = pattern.tokens[0];
    const last = pattern.tokens[pattern.tokens.length - 1];
    this.head = first?.kind === TokKind.Lit ? first.lit : '';
    this.tail = last?.kind === TokKind.Lit && pattern.tokens.length > 1 ? last.lit : '';
    const live: number[][] = [];
    for (let i = 0; i <= pattern.tokens.length; i++) {
      const set = new Set<number>();
      for (let k = i; k < pattern.tokens.length; k++) {
        const t = pattern.tokens[k] as PatternToken;
        if (t.kind !== TokKind.Back) continue;
        const capTok = pattern.tokens.findIndex((x) => x.cap === t.ref);
        if (capTok >= 0 && capTok < i) set.add(t.ref);
      }
      live.push([...set].sort((a, b) => a - b));
    }
    this.live = live;
    this.glob = pattern.tokens.every((t) => t.kind === TokKind.Lit || (t.kind === TokKind.Many && t.cls.any && !t.lazy));
    this.run = new MatchRun(this.tokens, this.rest, pattern.captureCount);
    this.litAt = new Int32Array(pattern.tokens.length);
    this.lits = pattern.tokens.filter((t) => t.kind === TokKind.Lit).map((t) => t.lit);
    this.needMask = charMask(this.lits.join('')) | 0;
    const inner = pattern.tokens.slice(first?.kind === TokKind.Lit ? 1 : 0, this.tail !== '' ? -1 : undefined);
    this.middle = inner.filter((t) => t.kind === TokKind.Lit).reduce((a, t) => (t.lit.length > a.length ? t.lit : a), '');
  }

  /** Necessary condition: every literal occurs, left to right, without overlapping. */
  private literalsInOrder(text: string): boolean {
    let j = 0;
    for (const lit of this.lits) {
      const k = text.indexOf(lit, j);
      if (k < 0) return false;
      j = k + lit.length;
    }
    return true;
  }

  /**
   * Matches `folded` (the probe after foldAscii) and cuts captures from `original`. Both strings
   * have the same length.
   */
  match(folded: string, original: string, probeMask: number = charMask(folded)): MatchOutcome {
    const p = this.pattern;
    if (p.exact !== null) {
      return folded === p.exact ? { captures: [], exhausted: false, work: 0 } : NO_MATCH;
    }
    if ((this.needMask & ~probeMask) !== 0) return NO_MATCH;
    const n = folded.length;
    if (n < (this.rest[0] as number)) return NO_MATCH;
    if (this.head !== '' && !folded.startsWith(this.head)) return NO_MATCH;
    if (this.tail !== '' && !folded.endsWith(this.tail)) return NO_MATCH;
    if (this.middle !== '' && !folded.includes(this.middle)) return NO_MATCH;
    if (this.glob) return matchGlob(this.tokens, folded, original, p.captureCount, this.litAt);
    if (!this.literalsInOrder(folded)) return NO_MATCH;
    const run = this.run;
    run.reset(folded, FAST_BUDGET, null);
    if (run.bt(0, 0)) return { captures: run.captures(original), exhausted: false, work: run.used };
    let work = run.used;
    if (!run.exhausted) return work === 0 ? NO_MATCH : { captures: null, exhausted: false, work };
    if (!p.hasBackref) {
      const r = matchByTable(this.tokens, folded, original, p.captureCount);
      return { captures: r.captures, exhausted: false, work: work + r.work };
    }
    // Back-matches: retry with failures memoised and a larger, hard budget.
    run.reset(folded, BACKREF_BUDGET, this.live);
    const ok = run.bt(0, 0);
    work += run.used;
    return { captures: ok ? run.captures(original) : null, exhausted: !ok && run.exhausted, work };
  }
}

/** State of the backtracker, reset for each probe. */
class MatchRun {
  exhausted = false;
  private budget = 0;
  private start = 0;
  private text = '';
  private readonly capStart: Int32Array;
  private readonly capEnd: Int32Array;
  private memo: Set<number | string> | null = null;
  private live: readonly (readonly number[])[] | null = null;

  constructor(
    private readonly tokens: readonly PatternToken[],
    private readonly rest: Int32Array,
    capCount: number,
  ) {
    this.capStart = new Int32Array(capCount);
    this.capEnd = new Int32Array(capCount);
  }

  reset(text: string, budget: number, live: readonly (readonly number[])[] | null): void {
    this.text = text;
    this.budget = budget;
    this.start = budget;
    this.exhausted = false;
    this.live = live;
    this.memo = live === null ? null : new Set();
  }

  /** Steps taken since the last reset. */
  get used(): number {
    return this.start - Math.max(this.budget, 0);
  }

  captures(original: string): string[] {
    const out: string[] = new Array<string>(this.capStart.length);
    for (let k = 0; k < this.capStart.length; k++) out[k] = original.slice(this.capStart[k], this.capEnd[k]);
    return out;
  }

  /**
   * Memo key of a failed state: the token, the position, and the captures a later back-match
   * reads. A number while it fits in 2^53 (always for at most one live capture), else a string.
   */
  private key(i: number, j: number): number | string {
    const w = this.text.length + 1;
    const live = (this.live as readonly (readonly number[])[])[i] as readonly number[];
    const k = i * w + j;
    if (live.length === 0) return k;
    if (live.length === 1 && this.tokens.length * w * w * w < Number.MAX_SAFE_INTEGER) {
      const c = live[0] as number;
      return (k * w + (this.capStart[c] as number)) * w + (this.capEnd[c] as number);
    }
    let str = String(k);
    for (const c of live) str += ',' + this.capStart[c] + ':' + this.capEnd[c];
    return str;
  }

  bt(i: number, j: number): boolean {
    if (this.budget-- <= 0) {
      this.exhausted = true;
      return false;
    }
    const tokens = this.tokens;
    const text = this.text;
    const n = text.length;
    if (i === tokens.length) return j === n;
    const memo = this.memo;
    if (memo === null) return this.step(i, j, tokens[i] as PatternToken, text, n);
    const key = this.key(i, j);
    if (memo.has(key)) return false;
    const ok = this.step(i, j, tokens[i] as PatternToken, text, n);
    if (!ok && !this.exhausted) memo.add(key);
    return ok;
  }

  private step(i: number, j: number, t: PatternToken, text: string, n: number): boolean {
    const room = n - j - (this.rest[i + 1] as number); // longest run that leaves room for the rest
    switch (t.kind) {
      case TokKind.Lit:
        return text.startsWith(t.lit, j) && this.bt(i + 1, j + t.lit.length);
      case TokKind.One:
        if (j >= n || !inClass(t.cls, text.charCodeAt(j))) return false;
        if (t.cap >= 0) {
          this.capStart[t.cap] = j;
          this.capEnd[t.cap] = j + 1;
        }
        return this.bt(i + 1, j + 1);
      case TokKind.Back: {
        const s = this.capStart[t.ref] as number;
        const e = this.capEnd[t.ref] as number;
        const len = e - s;
        if (j + len > n) return false;
        this.budget -= len >> 6; // long comparisons cost like the steps they stand for
        // substring is a cheap slice; startsWith compares natively (captures can be kilobytes).
        if (len > 0 && !text.startsWith(text.substring(s, e), j)) return false;
        return this.bt(i + 1, j + len);
      }
      case TokKind.Ip4:
      case TokKind.Ip6: {
        const len = ipRun(t, text, j);
        if (!ipMatches(t, text, j, len)) return false;
        if (t.cap >= 0) {
          this.capStart[t.cap] = j;
          this.capEnd[t.cap] = j + len;
        }
        return this.bt(i + 1, j + len);
      }
      case TokKind.Many:
        return this.many(i, j, t, text, room);
    }
  }

  private many(i: number, j: number, t: PatternToken, text: string, room: number): boolean {
    if (room < 0) return false;
    const cap = t.cap;
    const next = this.tokens[i + 1];
    // Trailing `*`: it must take everything that is left.
    if (next === undefined && t.cls.any) {
      if (cap >= 0) {
        this.capStart[cap] = j;
        this.capEnd[cap] = j + room;
      }
      return this.bt(i + 1, j + room);
    }
    let max = 0;
    if (t.cls.any) max = room;
    else while (max < room && inClass(t.cls, text.charCodeAt(j + max))) max++;
    // When a literal follows, only positions where that literal starts can succeed.
    const lit = next !== undefined && next.kind === TokKind.Lit ? next.lit : '';
    if (!t.lazy) {
      let k = j + max;
      while (k >= j) {
        if (lit !== '') {
          k = text.lastIndexOf(lit, k);
          if (k < j) return false;
        }
        if (cap >= 0) {
          this.capStart[cap] = j;
          this.capEnd[cap] = k;
        }
        if (this.bt(i + 1, k)) return true;
        if (this.exhausted) return false;
        k--;
      }
      return false;
    }
    let k = j;
    const end = j + max;
    while (k <= end) {
      if (lit !== '') {
        k = text.indexOf(lit, k);
        if (k < 0 || k > end) return false;
      }
      if (cap >= 0) {
        this.capStart[cap] = j;
        this.capEnd[cap] = k;
      }
      if (this.bt(i + 1, k)) return true;
      if (this.exhausted) return false;
      k++;
    }
    return false;
  }
}

/**
 * Linear matcher for patterns made only of literals and greedy `*` (the common case:
 * `*|*|*|*|*`, `tcp_local|*|tcp_local|*`). Greedy backtracking gives the first `*` the longest
 * run after which the rest still matches, then the second, and so on; that is the same as placing
 * each literal as far right as it can go, last literal first. Between two literals the first of
 * several adjacent stars takes the whole gap.
 */
function matchGlob(tokens: readonly PatternToken[], text: string, original: string, capCount: number, at: Int32Array): MatchOutcome {
  const n = text.length;
  const T = tokens.length;
  // `at` receives the start of each literal token.
  let limit = n; // literals to the right start at or after this
  let starAfter = false; // is there a star between this literal and `limit`?
  for (let i = T - 1; i >= 0; i--) {
    const t = tokens[i] as PatternToken;
    if (t.kind !== TokKind.Lit) {
      starAfter = true;
      continue;
    }
    const len = t.lit.length;
    let pos: number;
    if (i === 0) {
      // A leading literal is anchored at the start.
      pos = 0;
      if (!text.startsWith(t.lit, 0) || (starAfter ? len > limit : len !== limit)) return NO_MATCH;
    } else if (starAfter) {
      pos = text.lastIndexOf(t.lit, limit - len);
      if (pos < 0 || pos + len > limit) return NO_MATCH;
    } else {
      pos = limit - len;
      if (pos < 0 || !text.startsWith(t.lit, pos)) return NO_MATCH;
    }
    at[i] = pos;
    limit = pos;
    starAfter = false;
  }
  // Anything left before the first literal must be covered by a leading star.
  if (limit > 0 && !starAfter) return NO_MATCH;
  const caps: string[] = new Array<string>(capCount);
  let j = 0;
  for (let i = 0; i < T; i++) {
    const t = tokens[i] as PatternToken;
    if (t.kind === TokKind.Lit) {
      j = (at[i] as number) + t.lit.length;
      continue;
    }
    // The gap runs to the next literal's start (or the end); the first star of a run takes it all.
    let k = i + 1;
    while (k < T && (tokens[k] as PatternToken).kind !== TokKind.Lit) k++;
    const end = k < T ? (at[k] as number) : n;
    if (t.cap >= 0) caps[t.cap] = original.slice(j, end);
    j = end;
  }
  return { captures: caps, exhausted: false, work: 0 };
}

/**
 * The bounded-time matcher for patterns without back-matches: reach[i*(n+1)+j] is 1 when tokens
 * i.. match text[j..]. Filled right to left in O(tokens × length), then walked left to right.
 */
function matchByTable(tokens: readonly PatternToken[], text: string, original: string, capCount: number): MatchOutcome {
  const n = text.length;
  const w = n + 1;
  const T = tokens.length;
  const reach = new Uint8Array((T + 1) * w);
  reach[T * w + n] = 1;
  for (let i = T - 1; i >= 0; i--) {
    const t = tokens[i] as PatternToken;
    const row = i * w;
    const nextRow = (i + 1) * w;
    switch (t.kind) {
      case TokKind.Lit: {
        const len = t.lit.length;
        for (let j = 0; j + len <= n; j++) if (reach[nextRow + j + len] === 1 && text.startsWith(t.lit, j)) reach[row + j] = 1;
        break;
      }
      case TokKind.One:
        for (let j = 0; j < n; j++) if (reach[nextRow + j + 1] === 1 && inClass(t.cls, text.charCodeAt(j))) reach[row + j] = 1;
        break;
      case TokKind.Many:
        reach[row + n] = reach[nextRow + n] as number;
        for (let j = n - 1; j >= 0; j--) {
          if (reach[nextRow + j] === 1 || (reach[row + j + 1] === 1 && inClass(t.cls, text.charCodeAt(j)))) reach[row + j] = 1;
        }
        break;
      case TokKind.Ip4:
      case TokKind.Ip6:
        for (let j = 0; j < n; j++) {
          const len = ipRun(t, text, j);
          if (len > 0 && reach[nextRow + j + len] === 1 && ipMatches(t, text, j, len)) reach[row + j] = 1;
        }
        break;
      case TokKind.Back:
        throw new Error('matchByTable: back-matches are handled by the backtracker');
    }
  }
  const work = ((T + 1) * w) >> 6;
  if (reach[0] !== 1) return { captures: null, exhausted: false, work };
  const caps: string[] = new Array<string>(capCount).fill('');
  let j = 0;
  for (let i = 0; i < T; i++) {
    const t = tokens[i] as PatternToken;
    const nextRow = (i + 1) * w;
    let len: number;
    switch (t.kind) {
      case TokKind.Lit:
        len = t.lit.length;
        break;
      case TokKind.One:
        len = 1;
        break;
      case TokKind.Ip4:
      case TokKind.Ip6:
        len = ipRun(t, text, j);
        break;
      case TokKind.Many: {
        let max = 0;
        while (j + max < n && inClass(t.cls, text.charCodeAt(j + max))) max++;
        len = -1;
        if (t.lazy) {
          for (let L = 0; L <= max; L++) if (reach[nextRow + j + L] === 1) { len = L; break; }
        } else {
          for (let L = max; L >= 0; L--) if (reach[nextRow + j + L] === 1) { len = L; break; }
        }
        break;
      }
      default:
        len = 0;
    }
    if (t.cap >= 0) caps[t.cap] = original.slice(j, j + len);
    j += len;
  }
  return { captures: caps, exhausted: false, work };
}
