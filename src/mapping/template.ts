// The template language (right-hand side of a mapping entry, spec §3): literal text, `$n`
// substitutions, case control, processing control, flag tests, output flags, and the constructs
// that call out (`$|TABLE;arg|`, `$[image,routine,arg]`, `$}domain,attr{`, `${key}`, `$]url[`,
// `$#file|radix|width|mod#`, `$?x?`). A template compiles once into a list of ops that
// evaluate.ts runs; arguments of the calling-out constructs are op lists themselves.

import type { LocalProblem } from './errors.js';
import { flagBit } from './flags.js';

export type Control = 'E' | 'C' | 'L' | 'R';

/** How subsequent output is transformed (spec §3.2; `$=` from the rewrite-rule table). */
export const enum CaseMode {
  Keep = 0,
  Lower = 1,
  Upper = 2,
}

export type Op =
  | { readonly k: 'text'; readonly s: string }
  | { readonly k: 'cap'; readonly n: number }
  | { readonly k: 'case'; readonly mode: CaseMode }
  /** `$=`: quote later substitutions for an LDAP search filter (RFC 4515) until `$_`. */
  | { readonly k: 'ldapquote' }
  | { readonly k: 'ctl'; readonly c: Control }
  | { readonly k: 'end' }
  | { readonly k: 'flag'; readonly bit: number; readonly letter: string; readonly offset: number }
  | { readonly k: 'test'; readonly letter: string; readonly want: boolean }
  | { readonly k: 'random'; readonly percent: number }
  | { readonly k: 'sub'; readonly table: string; readonly arg: readonly Op[]; readonly offset: number }
  | {
      readonly k: 'routine';
      readonly image: string;
      readonly routine: string;
      readonly arg: readonly Op[];
      readonly argSource: string;
      readonly offset: number;
    }
  | { readonly k: 'domain'; readonly domain: readonly Op[]; readonly attribute: readonly Op[]; readonly offset: number }
  | { readonly k: 'general'; readonly key: readonly Op[]; readonly offset: number }
  | { readonly k: 'url'; readonly url: readonly Op[]; readonly offset: number }
  | {
      readonly k: 'sequence';
      readonly file: string;
      readonly radix: number;
      readonly width: number;
      readonly mod: number;
      readonly offset: number;
    };

export interface CompiledTemplate {
  readonly source: string;
  readonly ops: readonly Op[];
  /** Contains a construct that can fail (spec §3.4). */
  readonly canFail: boolean;
  /** Contains a construct answered outside the engine (routine, directory, database, URL, sequence). */
  readonly callsOut: boolean;
  /** Tables named by `$|TABLE;...|`, upper-cased. */
  readonly subTables: readonly string[];
}

export interface TemplateCompileResult {
  readonly template: CompiledTemplate | null;
  readonly problems: LocalProblem[];
}

/** Limits of spec §1.6 that apply inside templates. */
export const MAX_URL_LENGTH = 1024;

const CONTROL_LETTERS = 'ECLR';
/** Flag-test letters are the input flags of spec §4.1 (plus R of DEQUEUE_ACCESS). */
const INPUT_FLAG = /^[A-Za-z]$/;

type Terminator = '' | '|' | ']' | '{' | '}' | '[' | ',' | '#' | '?';

interface ParseState {
  readonly src: string;
  i: number;
  readonly problems: LocalProblem[];
  canFail: boolean;
  callsOut: boolean;
  readonly subTables: string[];
  /** Depth of nested arguments; flags and controls are only meaningful at depth 0. */
  depth: number;
}

function problem(st: ParseState, offset: number, code: string, message: string, severity: 'error' | 'warning' = 'error'): void {
  st.problems.push({ offset, code, message, severity });
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

function isLetter(c: string): boolean {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/** Characters that, after `$`, open a construct with an argument. */
const OPENERS = '|[]{}#?';

/**
 * Reads literal text (no `$` constructs) up to `stop`; used for image and routine names and the
 * sequence-file fields, which are names, not templates.
 */
function readPlain(st: ParseState, stops: string, what: string, openAt: number): string | null {
  const start = st.i;
  while (st.i < st.src.length && !stops.includes(st.src[st.i] as string)) {
    if (st.src[st.i] === '$') {
      problem(st, st.i, 'dynamic-name', `${what} must be written literally; "$" constructs are not allowed in it`);
      return null;
    }
    st.i++;
  }
  if (st.i >= st.src.length) {
    problem(st, openAt, 'unterminated-construct', `unterminated ${what} — expected one of ${[...stops].map((c) => `"${c}"`).join(', ')}`);
    return null;
  }
  return st.src.slice(start, st.i);
}

function describeOpen(open: string): string {
  switch (open) {
    case '|':
      return '$| sub-mapping';
    case '[':
      return '$[ callout';
    case '}':
      return '$} domain lookup';
    case '{':
      return '${ general-database lookup';
    case ']':
      return '$] URL lookup';
    case '#':
      return '$# sequence number';
    default:
      return '$? random test';
  }
}

/**
 * Parses ops until an unquoted `term` (consumed) or the end of the source. Returns null when
 * the terminator was required and missing (a problem has been recorded).
 */
function parseOps(st: ParseState, term: Terminator, also: Terminator, openAt: number, openName: string): Op[] | null {
  const ops: Op[] = [];
  // Problems found inside an argument that turns out to be unterminated are consequences of the
  // missing terminator (the rest of the template was read as the argument); only that one is reported.
  const mark = st.problems.length;
  let text = '';
  const flush = (): void => {
    if (text !== '') {
      ops.push({ k: 'text', s: text });
      text = '';
    }
  };
  const src = st.src;
  while (st.i < src.length) {
    const ch = src[st.i] as string;
    if (term !== '' && (ch === term || (also !== '' && ch === also))) {
      flush();
      return ops;
    }
    if (ch !== '$') {
      text += ch;
      st.i++;
      continue;
    }
    const at = st.i;
    const n = src[st.i + 1];
    if (n === undefined) {
      problem(st, at, 'dangling-dollar', 'template ends with a lone "$" — write $$ for a literal dollar sign');
      st.i++;
      continue;
    }
    if (n === '$' || n === ' ' || n === '\t') {
      text += n;
      st.i += 2;
      continue;
    }
    if (isDigit(n)) {
      let j = st.i + 1;
      while (isDigit(src[j])) j++;
      flush();
      const num = Number(src.slice(st.i + 1, j));
      ops.push({ k: 'cap', n: num });
      const after = src[j];
      if (after === 'A' || after === 'X') {
        problem(
          st,
          at,
          'address-meta',
          `"${src.slice(at, j + 1)}" is read as substitution $${num} followed by the letter ${after}; Messaging Server's $n${after} (part of the current address) has no meaning in mapping tables`,
          'warning',
        );
      }
      st.i = j;
      continue;
    }
    if (n === '\\' || n === '^' || n === '_') {
      flush();
      ops.push({ k: 'case', mode: n === '\\' ? CaseMode.Lower : n === '^' ? CaseMode.Upper : CaseMode.Keep });
      st.i += 2;
      continue;
    }
    if (n === '=') {
      flush();
      ops.push({ k: 'ldapquote' });
      st.i += 2;
      continue;
    }
    if (n === '+') {
      if (src.startsWith('$+1E', st.i)) {
        flush();
        if (st.depth > 0) problem(st, at, 'control-in-argument', '$+1E cannot appear inside an argument');
        ops.push({ k: 'end' });
        st.i += 4;
        continue;
      }
      problem(st, at, 'unknown-template-construct', `unknown template construct "${src.slice(at, at + 4)}" — did you mean $+1E?`);
      st.i += 2;
      continue;
    }
    if (n === ':' || n === ';') {
      const letter = src[st.i + 2];
      if (letter === undefined || !INPUT_FLAG.test(letter)) {
        problem(st, at, 'bad-flag-test', `${src.slice(at, at + 2)} must be followed by a flag letter (e.g. $:A for "SMTP AUTH was used")`);
        st.i += 2;
        continue;
      }
      flush();
      if (st.depth > 0) problem(st, at, 'test-in-argument', `flag test ${src.slice(at, at + 3)} cannot appear inside an argument`);
      ops.push({ k: 'test', letter: letter.toUpperCase(), want: n === ':' });
      st.canFail = true;
      st.i += 3;
      continue;
    }
    if (OPENERS.includes(n)) {
      flush();
      const op = parseCallout(st, n, at);
      if (op === null) return term === '' ? ops : null;
      ops.push(op);
      continue;
    }
    if (n === '!' || n === '<' || n === '>') {
      flush();
      if (st.depth > 0) problem(st, at, 'flag-in-argument', `flag $${n} inside an argument — write $$${n} to pass it as text`);
      ops.push({ k: 'flag', bit: flagBit(n), letter: n, offset: at });
      st.i += 2;
      continue;
    }
    if (isLetter(n)) {
      flush();
      if (CONTROL_LETTERS.includes(n)) {
        if (st.depth > 0) problem(st, at, 'control-in-argument', `control $${n} cannot appear inside an argument — write $$${n} to pass it as text`);
        ops.push({ k: 'ctl', c: n as Control });
      } else if (n >= 'a' && n <= 'z' && n !== 'y' && n !== 'n' && n !== 'f') {
        problem(
          st,
          at,
          'lowercase-meta',
          `unknown metacharacter $${n} — metacharacters are case-sensitive; only $y, $n and $f have lower-case forms (did you mean $${n.toUpperCase()}?)`,
        );
      } else {
        if (st.depth > 0) problem(st, at, 'flag-in-argument', `flag $${n} inside an argument — write $$${n} to pass it as text`);
        const letter = n.toUpperCase();
        ops.push({ k: 'flag', bit: flagBit(letter), letter, offset: at });
      }
      st.i += 2;
      continue;
    }
    problem(st, at, 'unknown-template-construct', `unknown template construct "$${n}" — write $$ for a literal dollar sign`);
    st.i += 2;
  }
  flush();
  if (term !== '') {
    st.problems.length = mark;
    problem(st, openAt, 'unterminated-construct', `unterminated ${openName} — add "${term}"`);
    return null;
  }
  return ops;
}

/** Parses the construct opened by `$` + `open` at `at`; st.i points at the `$`. */
function parseCallout(st: ParseState, open: string, at: number): Op | null {
  const name = describeOpen(open);
  st.i = at + 2;
  st.depth++;
  try {
    switch (open) {
      case '|': {
        // $|TABLE;arg|
        const table = readPlain(st, ';|', 'table name of a $| sub-mapping', at);
        if (table === null) return null;
        if (st.src[st.i] !== ';') {
          problem(st, at, 'sub-needs-semicolon', `$|${table}| needs an argument: write $|${table};$0| (table name, ";", then the string to map)`);
          st.i++;
          return null;
        }
        st.i++;
        const arg = parseOps(st, '|', '', at, name);
        if (arg === null) return null;
        st.i++;
        if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(table)) {
          problem(st, at + 2, 'bad-table-name', `"${table}" is not a table name`);
          return null;
        }
        st.canFail = true;
        st.subTables.push(table.toUpperCase());
        return { k: 'sub', table: table.toUpperCase(), arg, offset: at };
      }
      case '[': {
        // $[image,routine,argument]
        const image = readPlain(st, ',]', 'image name of a $[ callout', at);
        if (image === null) return null;
        if (st.src[st.i] !== ',') {
          problem(st, at, 'callout-needs-routine', `$[${image}] names no routine: write $[image,routine,argument]`);
          st.i++;
          return null;
        }
        st.i++;
        const routine = readPlain(st, ',]', 'routine name of a $[ callout', at);
        if (routine === null) return null;
        let arg: Op[] = [];
        const argStart = st.i + 1;
        if (st.src[st.i] === ',') {
          st.i++;
          const parsed = parseOps(st, ']', '', at, name);
          if (parsed === null) return null;
          arg = parsed;
        }
        const argSource = st.src[argStart - 1] === ',' ? st.src.slice(argStart, st.i) : '';
        st.i++;
        if (image.trim() === '' || routine.trim() === '') {
          problem(st, at, 'callout-empty-name', 'a $[ callout needs both an image and a routine name: $[image,routine,argument]');
          return null;
        }
        st.canFail = true;
        st.callsOut = true;
        return { k: 'routine', image: image.trim(), routine: routine.trim(), arg, argSource, offset: at };
      }
      case '}': {
        // $}domain,attribute{
        const domain = parseOps(st, ',', '{', at, name);
        if (domain === null) return null;
        if (st.src[st.i] !== ',') {
          problem(st, at, 'domain-needs-attribute', '$} domain lookup needs an attribute: write $}domain,attribute{');
          st.i++;
          return null;
        }
        st.i++;
        const attribute = parseOps(st, '{', '', at, name);
        if (attribute === null) return null;
        st.i++;
        st.canFail = true;
        st.callsOut = true;
        return { k: 'domain', domain, attribute, offset: at };
      }
      case '{': {
        const key = parseOps(st, '}', '', at, name);
        if (key === null) return null;
        st.i++;
        st.canFail = true;
        st.callsOut = true;
        return { k: 'general', key, offset: at };
      }
      case ']': {
        const start = st.i;
        const url = parseOps(st, '[', '', at, name);
        if (url === null) return null;
        if (st.i - start > MAX_URL_LENGTH) {
          problem(st, at, 'url-too-long', `URL in $]...[ is ${st.i - start} characters; the limit is ${MAX_URL_LENGTH}`);
        }
        st.i++;
        st.canFail = true;
        st.callsOut = true;
        return { k: 'url', url, offset: at };
      }
      case '#': {
        // $#file|radix|width|mod#
        const body = readPlain(st, '#', 'sequence-number construct $#...#', at);
        if (body === null) return null;
        st.i++;
        const [file = '', radixS, widthS, modS, ...extra] = body.split('|');
        const num = (s: string | undefined, dflt: number): number => (s === undefined || s === '' ? dflt : /^-?\d+$/.test(s) ? Number(s) : NaN);
        const radix = num(radixS, 10);
        const width = num(widthS, 0);
        const mod = num(modS, 0);
        if (file === '' || extra.length > 0 || Number.isNaN(radix) || Number.isNaN(width) || Number.isNaN(mod)) {
          problem(st, at, 'bad-sequence', 'write a sequence number as $#file|radix|width|mod# (radix, width and mod are optional integers)');
          return null;
        }
        if (Math.abs(radix) < 2 || Math.abs(radix) > 36) {
          problem(st, at, 'bad-sequence', `sequence radix ${radix} is out of range: use 2..36 (or -36..-2 for upper-case digits)`);
          return null;
        }
        st.canFail = true;
        st.callsOut = true;
        return { k: 'sequence', file, radix, width, mod, offset: at };
      }
      default: {
        // $?x?
        const body = readPlain(st, '?', 'random test $?x?', at);
        if (body === null) return null;
        st.i++;
        if (!/^\d{1,3}$/.test(body) || Number(body) > 100) {
          problem(st, at, 'bad-random', `$?${body}? needs a percentage from 0 to 100, e.g. $?25?`);
          return null;
        }
        st.canFail = true;
        return { k: 'random', percent: Number(body) };
      }
    }
  } finally {
    st.depth--;
  }
}

/** Compiles template source (as split from its line, `$ ` still quoted). */
export function compileTemplate(src: string): TemplateCompileResult {
  const st: ParseState = { src, i: 0, problems: [], canFail: false, callsOut: false, subTables: [], depth: 0 };
  const ops = parseOps(st, '', '', 0, '');
  const failed = st.problems.some((p) => (p.severity ?? 'error') === 'error');
  if (failed || ops === null) return { template: null, problems: st.problems };
  return {
    template: { source: src, ops, canFail: st.canFail, callsOut: st.callsOut, subTables: st.subTables },
    problems: st.problems,
  };
}
