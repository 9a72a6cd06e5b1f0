// The pattern language of the mappings file (spec §2): literals compared case-blind, `*` and `%`
// wildcards, the `$_` `$@` `$^` modifiers, globs (`$A%`, `$D*`, `$[a-z]*`, ...), IP globs and
// back-matches. A pattern compiles once into a flat token list that match.ts runs.

import { foldAscii, foldCode } from './fold.js';
import { ipv4PrefixMask, parseIPv4, parseIPv6 } from './ip.js';
import type { LocalProblem } from './errors.js';

/** Characters a glob accepts, over folded (lower-case) text. */
export interface CharClass {
  readonly any: boolean;
  /** 1 at index c when ASCII code c (folded) is a member. */
  readonly ascii: Uint8Array;
  /** Folded non-ASCII members, or '' when none. */
  readonly other: string;
  /** Source form for listings, e.g. "*" or "$D" or "$[a-c]". */
  readonly label: string;
}

export const enum TokKind {
  Lit = 0,
  One = 1,
  Many = 2,
  Ip4 = 3,
  Ip6 = 4,
  Back = 5,
}

/**
 * One pattern token. Every token has every field so that the matcher's property accesses stay
 * monomorphic; fields a kind does not use hold neutral values.
 */
export interface PatternToken {
  readonly kind: TokKind;
  /** Lit: folded literal text. */
  readonly lit: string;
  /** One/Many: the class. */
  readonly cls: CharClass;
  /** Many: shortest first. */
  readonly lazy: boolean;
  /** Capture number for saved tokens, -1 when not saved. */
  readonly cap: number;
  /** Back: the capture number referred to. */
  readonly ref: number;
  /** Ip4: network and mask (unsigned). */
  readonly net4: number;
  readonly mask4: number;
  /** Ip6: network and prefix length. */
  readonly net6: Uint16Array | null;
  readonly bits6: number;
  /** Offset of the construct in the pattern source, for listings and errors. */
  readonly offset: number;
}

export interface CompiledPattern {
  readonly source: string;
  readonly tokens: readonly PatternToken[];
  readonly captureCount: number;
  readonly hasBackref: boolean;
  /** Folded literals of the pattern, longest runs, for indexing (see table-index.ts). */
  readonly literals: readonly string[];
  /** The whole pattern is one literal (or empty): matching is string equality. */
  readonly exact: string | null;
}

export interface PatternCompileResult {
  readonly pattern: CompiledPattern | null;
  readonly problems: LocalProblem[];
}

const NO_NET6: Uint16Array | null = null;

function classFromPredicate(label: string, pred: (c: number) => boolean): CharClass {
  const ascii = new Uint8Array(128);
  for (let c = 0; c < 128; c++) if (pred(c)) ascii[foldCode(c)] = 1;
  return { any: false, ascii, other: '', label };
}

export const ANY: CharClass = { any: true, ascii: new Uint8Array(128).fill(1), other: '', label: '*' };

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isAlpha = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isHex = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

/** The named globs of spec §2.4. `$X` is a synonym of `$H`. */
const NAMED_CLASSES: ReadonlyMap<string, CharClass> = new Map([
  ['A', classFromPredicate('$A', isAlpha)],
  ['B', classFromPredicate('$B', (c) => c === 48 || c === 49)],
  ['D', classFromPredicate('$D', isDigit)],
  ['H', classFromPredicate('$H', isHex)],
  ['O', classFromPredicate('$O', (c) => c >= 48 && c <= 55)],
  ['S', classFromPredicate('$S', (c) => isDigit(c) || isAlpha(c) || c === 95 || c === 36)],
  ['T', classFromPredicate('$T', (c) => c === 9 || c === 11 || c === 32)],
  ['X', classFromPredicate('$X', isHex)],
]);

function token(kind: TokKind, offset: number, over: Partial<PatternToken>): PatternToken {
  return {
    kind,
    lit: '',
    cls: ANY,
    lazy: false,
    cap: -1,
    ref: -1,
    net4: 0,
    mask4: 0,
    net6: NO_NET6,
    bits6: 0,
    offset,
    ...over,
  };
}

/** Parses the body of `$[...]` (after the `[`); returns the class and the index after `]`. */
function parseSet(
  src: string,
  start: number,
  problems: LocalProblem[],
): { cls: CharClass; next: number } | null {
  const members: number[] = [];
  let i = start;
  let prev = -1; // last member added, for ranges
  let closed = false;
  while (i < src.length) {
    let c = src.charCodeAt(i);
    if (c === 93 /* ] */) {
      closed = true;
      i++;
      break;
    }
    if (c === 92 /* \ */) {
      if (i + 1 >= src.length) break;
      c = src.charCodeAt(i + 1);
      i += 2;
      members.push(c);
      prev = c;
      continue;
    }
    if (c === 45 /* - */ && prev >= 0 && i + 1 < src.length && src.charCodeAt(i + 1) !== 93) {
      let hi = src.charCodeAt(i + 1);
      let width = 2;
      if (hi === 92 && i + 2 < src.length) {
        hi = src.charCodeAt(i + 2);
        width = 3;
      }
      if (hi < prev) {
        problems.push({
          offset: i,
          code: 'bad-range',
          message: `character range ${String.fromCharCode(prev)}-${String.fromCharCode(hi)} runs backwards; write the lower character first`,
        });
        return null;
      }
      for (let x = prev + 1; x <= hi; x++) members.push(x);
      prev = -1;
      i += width;
      continue;
    }
    members.push(c);
    prev = c;
    i++;
  }
  if (!closed) {
    problems.push({
      offset: start - 2,
      code: 'unterminated-set',
      message: 'unterminated $[ character set — add "]" (write \\] for a literal right bracket)',
    });
    return null;
  }
  if (members.length === 0) {
    problems.push({ offset: start - 2, code: 'empty-set', message: 'empty $[] character set — list at least one character' });
    return null;
  }
  const ascii = new Uint8Array(128);
  let other = '';
  for (const m of members) {
    if (m < 128) ascii[foldCode(m)] = 1;
    else other += String.fromCharCode(m);
  }
  return { cls: { any: false, ascii, other, label: src.slice(start - 2, i) }, next: i };
}

/** Parses `a.b.c.d[/n]`; returns null when malformed. */
function parseIpArg(text: string, v6: boolean): { net4: number; net6: Uint16Array | null; bits: number | null } | null {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  let bits: number | null = null;
  if (slash !== -1) {
    const b = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return null;
    bits = Number(b);
    if (bits > (v6 ? 128 : 32)) return null;
  }
  if (v6) {
    const net6 = parseIPv6(addr);
    return net6 ? { net4: 0, net6, bits } : null;
  }
  const net4 = parseIPv4(addr);
  return net4 < 0 ? null : { net4, net6: null, bits };
}

/**
 * Compiles pattern source text (already split out of its mappings-file line, with `$ ` still
 * quoted). Problems carry offsets into `src`.
 */
export function compilePattern(src: string): PatternCompileResult {
  const problems: LocalProblem[] = [];
  const tokens: PatternToken[] = [];
  let litBuf = '';
  let litStart = 0;
  let capCount = 0;
  let hasBackref = false;
  // Pending modifiers: they apply to the next wildcard or glob only (spec §2.3).
  let modLazy = false;
  let modSave: boolean | null = null;
  let modAt = -1;

  const flushLit = (): void => {
    if (litBuf !== '') {
      tokens.push(token(TokKind.Lit, litStart, { lit: foldAscii(litBuf) }));
      litBuf = '';
    }
  };
  const addLit = (ch: string, at: number): void => {
    if (modAt >= 0) {
      problems.push({
        offset: modAt,
        code: 'dangling-modifier',
        message: `modifier ${src.slice(modAt, modAt + 2)} must come right before a wildcard or glob (*, %, $D*, $[...]%, ...)`,
      });
      modAt = -1;
      modLazy = false;
      modSave = null;
    }
    if (litBuf === '') litStart = at;
    litBuf += ch;
  };
  const addWild = (kind: TokKind, at: number, over: Partial<PatternToken>): void => {
    flushLit();
    const save = modSave ?? true;
    const cap = save ? capCount++ : -1;
    if (modLazy && kind !== TokKind.Many) {
      problems.push({
        offset: modAt,
        code: 'lazy-needs-star',
        message: '$_ (shortest match) only makes sense before a "*" wildcard or glob',
        severity: 'warning',
      });
    }
    tokens.push(token(kind, at, { ...over, cap, lazy: kind === TokKind.Many && modLazy }));
    modLazy = false;
    modSave = null;
    modAt = -1;
  };

  let i = 0;
  while (i < src.length) {
    const ch = src[i] as string;
    if (ch === '*') {
      addWild(TokKind.Many, i, { cls: ANY });
      i++;
      continue;
    }
    if (ch === '%') {
      addWild(TokKind.One, i, { cls: ANY });
      i++;
      continue;
    }
    if (ch !== '$') {
      addLit(ch, i);
      i++;
      continue;
    }
    // A `$` construct.
    const at = i;
    if (i + 1 >= src.length) {
      problems.push({ offset: at, code: 'dangling-dollar', message: 'pattern ends with a lone "$" — write $$ for a literal dollar sign' });
      break;
    }
    const n = src[i + 1] as string;
    const nc = n.charCodeAt(0);
    if (n === '*' || n === '%' || n === '$' || n === ' ' || n === '\t') {
      addLit(n, at);
      i += 2;
      continue;
    }
    if (n === '_' || n === '@' || n === '^') {
      if (modAt < 0) modAt = at;
      if (n === '_') modLazy = true;
      else modSave = n === '^';
      i += 2;
      continue;
    }
    if (isDigit(nc)) {
      let j = i + 1;
      while (j < src.length && isDigit(src.charCodeAt(j))) j++;
      const ref = Number(src.slice(i + 1, j));
      if (src[j] !== '*') {
        problems.push({
          offset: at,
          code: 'bad-backmatch',
          message: `"${src.slice(at, j)}" in a pattern must be written ${src.slice(at, j)}* (a back-match); $n alone is template syntax`,
        });
        i = j;
        continue;
      }
      if (ref >= capCount) {
        problems.push({
          offset: at,
          code: 'backmatch-ahead',
          message: `back-match $${ref}* refers to wildcard ${ref}, but only ${capCount} saved wildcard(s) come before it (numbering starts at 0)`,
        });
      }
      flushLit();
      if (modAt >= 0) {
        problems.push({ offset: modAt, code: 'dangling-modifier', message: 'a modifier cannot apply to a back-match' });
        modAt = -1;
        modLazy = false;
        modSave = null;
      }
      tokens.push(token(TokKind.Back, at, { ref }));
      hasBackref = true;
      i = j + 1;
      continue;
    }
    const upper = n.toUpperCase();
    const named = NAMED_CLASSES.get(upper);
    if (named !== undefined || n === '[') {
      let cls: CharClass;
      let j: number;
      if (named !== undefined) {
        cls = named;
        j = i + 2;
      } else {
        const set = parseSet(src, i + 2, problems);
        if (set === null) return { pattern: null, problems };
        cls = set.cls;
        j = set.next;
      }
      const q = src[j];
      if (q !== '%' && q !== '*') {
        problems.push({
          offset: at,
          code: 'glob-needs-quantifier',
          message: `glob ${src.slice(at, j)} must be followed by % (one character) or * (any number)`,
        });
        i = j;
        continue;
      }
      addWild(q === '*' ? TokKind.Many : TokKind.One, at, { cls: q === '*' ? { ...cls, label: cls.label + '*' } : { ...cls, label: cls.label + '%' } });
      i = j + 1;
      continue;
    }
    if (n === '(' || n === '<' || n === '{') {
      const close = n === '(' ? ')' : n === '<' ? '>' : '}';
      const end = src.indexOf(close, i + 2);
      if (end === -1) {
        problems.push({
          offset: at,
          code: 'unterminated-ip',
          message: `unterminated $${n} address match — add "${close}"`,
        });
        break;
      }
      const body = src.slice(i + 2, end);
      const v6 = n === '{';
      const parsed = parseIpArg(body, v6);
      if (parsed === null) {
        const want = v6 ? 'an IPv6 address, optionally /0-128' : 'a dotted IPv4 address a.b.c.d, optionally /0-32';
        problems.push({ offset: at, code: 'bad-ip', message: `"${body}" is not ${want}` });
        i = end + 1;
        continue;
      }
      if (n === '(') {
        const mask = ipv4PrefixMask(parsed.bits ?? 32);
        addWild(TokKind.Ip4, at, { net4: (parsed.net4 & mask) >>> 0, mask4: mask });
      } else if (n === '<') {
        // Ignore-bits form: compare all but the low n bits (default 0 = exact).
        const mask = ipv4PrefixMask(32 - (parsed.bits ?? 0));
        addWild(TokKind.Ip4, at, { net4: (parsed.net4 & mask) >>> 0, mask4: mask });
      } else {
        addWild(TokKind.Ip6, at, { net6: parsed.net6, bits6: parsed.bits ?? 128 });
      }
      i = end + 1;
      continue;
    }
    problems.push({
      offset: at,
      code: 'unknown-pattern-construct',
      message: `unknown pattern construct "$${n}" — write $$ for a literal dollar sign, $* or $% for a literal * or %`,
    });
    i += 2;
  }
  if (modAt >= 0) {
    problems.push({
      offset: modAt,
      code: 'dangling-modifier',
      message: `modifier ${src.slice(modAt, modAt + 2)} at the end of the pattern applies to nothing`,
    });
  }
  flushLit();
  if (problems.some((p) => (p.severity ?? 'error') === 'error')) return { pattern: null, problems };

  const literals = tokens.filter((t) => t.kind === TokKind.Lit).map((t) => t.lit);
  const exact = tokens.length === 0 ? '' : tokens.length === 1 && tokens[0]?.kind === TokKind.Lit ? tokens[0].lit : null;
  return {
    pattern: { source: src, tokens, captureCount: capCount, hasBackref, literals, exact },
    problems,
  };
}

/**
 * A listing of the compiled pattern in the spirit of `imsimta test -match` (spec §2.7, §12.2):
 * one numbered line per token, "S" marking saved ones.
 */
export function describePattern(p: CompiledPattern): string[] {
  return p.tokens.map((t, k) => {
    const saved = t.cap >= 0 ? `S${t.cap}` : '';
    const tag = `[${k + 1}${saved ? ' ' + saved : ''}]`;
    switch (t.kind) {
      case TokKind.Lit:
        return `${tag} literal "${t.lit}"`;
      case TokKind.One:
        return `${tag} one ${t.cls.label}`;
      case TokKind.Many:
        return `${tag} ${t.lazy ? 'lazy' : 'greedy'} run ${t.cls.label}`;
      case TokKind.Ip4:
      case TokKind.Ip6:
        return `${tag} address match ${p.source.slice(t.offset, p.source.indexOf(t.kind === TokKind.Ip4 ? (p.source[t.offset + 1] === '(' ? ')' : '>') : '}', t.offset) + 1)}`;
      case TokKind.Back:
        return `${tag} back-match $${t.ref}`;
    }
  });
}
