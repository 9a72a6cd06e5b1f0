// Reader for the golden `.cases` files of tests/golden/mapping/. The format:
//
//   * Blocks are separated by blank lines. A line starting with "#" is a comment and never ends a
//     block. Every other line is `key: value`; the value is the rest of the line after ": ",
//     verbatim, and `""` stands for the empty string. Trailing whitespace is an error (it would be
//     invisible in a diff).
//   * The first block is the file header when it has no `case:` line. Header keys:
//       map: F1.map                      mappings file, relative to the .cases file
//       domain: example.com              a hosted domain (for $}domain,attribute{)
//       domain: alias.example=example.com  an alias of a hosted domain
//     A hosted domain answers `_domain_name_` and `_canonical_name_` with its own name, an alias
//     with the name of the domain it stands for; anything else fails the lookup.
//   * Every other block is one case. Common keys:
//       case: 57          spec row (a number, optionally "/variant"), or a short name for an
//                         extra case; unique within the file
//       ref: §15.6        the spec section the expectation comes from (required)
//     A pattern case (spec §15.2) has `pattern:` and `target:` and expects
//       expect.matched: true|false
//       expect.cap.N: text        saved wildcard N; when any is given, the captures must be
//                                 exactly the ones listed (`expect.captures: ""` = none at all)
//     A mapping case has `table:` and `input:`, optionally `flags: AT` (input flags), repeated
//       callout: check_metermaid.so,throttle ext_throttle,192.0.2.7 -> ok <value>
//       callout: check_metermaid.so,throttle ext_throttle,192.0.2.7 -> fail
//     (the callouts the mapping must make, in order, with exactly that argument, and their answers;
//     `-> ok` alone answers the empty string), repeated `random: 0.5` (what the random source
//     returns for each `$?x?` draw, in order), and `recipient:` (for the reply; by default the last
//     "|" field of the input). Its expectations:
//       expect.matched: true|false     expect.output: text       expect.flags: DN ("" = none;
//                                                                letters as flagString prints them)
//       expect.arg.X: text             one line per argument of flag X (D, N, <, ...); when any is
//                                      given the arguments must be exactly these. `expect.args: ""`
//                                      asserts that there are none.
//       expect.decision: allow|reject|none    (accessResult)
//       expect.entry: 2|none           1-based position in the table of the entry that decided
//       expect.steps: 11               how many times an entry of the probed table was applied or
//                                      failed (restarts and $C chains included, sub-mappings not)
//       expect.verdict: accept|reject  expect.close: true|false    (accessVerdict)
//       expect.reply: 550 5.7.1 text   the wire reply without its CRLF; repeat for multi-line
//     Callouts and random draws are part of the expectation: an unscripted one, or a scripted one
//     that does not happen, fails the case.
//   * `pending: reason` marks a row whose machinery does not exist yet. It is listed as a todo and
//     not run. Besides the keys above it may carry `context:` (the setting, in words) and
//     `expect:` (the expected behaviour, in words); it must say what is expected one way or the
//     other.
//
// Anything else — an unknown key, a repeated single key, a case without expectations — is an
// error naming the file and line, so a typo can never turn a case into one that asserts nothing.

import { flagString, parseFlagLetters } from '../../src/mapping/index.js';

export class CasesFormatError extends Error {
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = 'CasesFormatError';
  }
}

export interface HostedDomain {
  readonly name: string;
  /** The hosted domain an alias stands for; its own name for a real domain. */
  readonly canonical: string;
}

export interface CasesHeader {
  readonly map: string | null;
  readonly domains: readonly HostedDomain[];
}

export type ScriptedAnswer = { readonly ok: true; readonly value: string } | { readonly ok: false };

export interface ScriptedCallout {
  /** Image base name, e.g. "check_metermaid.so". */
  readonly image: string;
  readonly routine: string;
  readonly arg: string;
  readonly answer: ScriptedAnswer;
}

interface CaseBase {
  readonly id: string;
  /** Spec row number, or null for an extra case with a name. */
  readonly row: number | null;
  readonly ref: string;
  readonly file: string;
  readonly line: number;
}

export interface PatternCase extends CaseBase {
  readonly kind: 'pattern';
  readonly pattern: string;
  readonly target: string;
  readonly matched: boolean;
  /** Every capture, or null when the case does not check them. */
  readonly captures: readonly string[] | null;
}

export type Decision = 'allow' | 'reject' | 'none';

export interface MappingExpect {
  readonly matched?: boolean;
  readonly output?: string;
  readonly flags?: string;
  /** Every argument by flag letter, or undefined when the case does not check them. */
  readonly args?: Readonly<Record<string, string>>;
  readonly decision?: Decision;
  /** 1-based entry position, or null for "no entry". */
  readonly entry?: number | null;
  readonly steps?: number;
  readonly verdict?: 'accept' | 'reject';
  readonly close?: boolean;
  /** Reply lines without CRLF. */
  readonly reply?: readonly string[];
}

export interface MappingCase extends CaseBase {
  readonly kind: 'mapping';
  readonly table: string;
  readonly input: string;
  readonly flags: string;
  readonly callouts: readonly ScriptedCallout[];
  readonly random: readonly number[];
  readonly recipient: string | null;
  readonly expect: MappingExpect;
}

export interface PendingCase extends CaseBase {
  readonly kind: 'pending';
  readonly reason: string;
  readonly table: string | null;
  readonly input: string | null;
}

export type Case = PatternCase | MappingCase | PendingCase;

export interface CasesFile {
  readonly file: string;
  readonly header: CasesHeader;
  readonly cases: readonly Case[];
}

interface Field {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

const HEADER_KEYS = new Set(['map', 'domain']);
const COMMON_KEYS = new Set(['case', 'ref']);
const PATTERN_KEYS = new Set(['pattern', 'target', 'expect.matched', 'expect.captures']);
const MAPPING_KEYS = new Set([
  'table',
  'input',
  'flags',
  'callout',
  'random',
  'recipient',
  'expect.matched',
  'expect.output',
  'expect.flags',
  'expect.args',
  'expect.decision',
  'expect.entry',
  'expect.steps',
  'expect.verdict',
  'expect.close',
  'expect.reply',
]);
const PENDING_KEYS = new Set([...MAPPING_KEYS, 'pending', 'context', 'expect', 'pattern', 'target']);
const REPEATABLE = new Set(['domain', 'callout', 'random', 'expect.reply']);
const ARG_FLAGS = new Set(['U', 'J', 'K', 'I', '<', '>', 'D', 'T', 'A', 'X', 'N', 'F']);

function splitBlocks(file: string, text: string): Field[][] {
  const blocks: Field[][] = [];
  let cur: Field[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, k) => {
    const n = k + 1;
    if (raw.includes('\r')) throw new CasesFormatError(file, n, 'carriage return in line — use LF line ends');
    if (raw.trim() === '') {
      if (raw !== '') throw new CasesFormatError(file, n, 'blank line containing whitespace');
      if (cur.length > 0) blocks.push(cur);
      cur = [];
      return;
    }
    if (raw.startsWith('#')) return;
    if (/\s$/.test(raw)) throw new CasesFormatError(file, n, 'trailing whitespace (write "" for an empty value)');
    const sep = raw.indexOf(': ');
    if (sep <= 0) throw new CasesFormatError(file, n, `expected "key: value", got ${JSON.stringify(raw)}`);
    const key = raw.slice(0, sep);
    if (!/^[a-z][a-z.]*(\.[A-Za-z0-9<>]+)?$/.test(key)) throw new CasesFormatError(file, n, `malformed key ${JSON.stringify(key)}`);
    const v = raw.slice(sep + 2);
    cur.push({ key, value: v === '""' ? '' : v, line: n });
  });
  if (cur.length > 0) blocks.push(cur);
  return blocks;
}

/** Field access for one block, with the checks every block shares. */
class BlockReader {
  constructor(
    readonly file: string,
    readonly fields: readonly Field[],
    allowed: ReadonlySet<string>,
    /** Key prefixes allowed with any suffix, e.g. "expect.arg.". */
    prefixes: readonly string[],
  ) {
    const seen = new Set<string>();
    for (const f of fields) {
      const known = allowed.has(f.key) || prefixes.some((p) => f.key.startsWith(p) && f.key.length > p.length);
      if (!known) throw this.error(f.line, `unknown key "${f.key}" here`);
      if (!REPEATABLE.has(f.key) && seen.has(f.key)) throw this.error(f.line, `"${f.key}" given twice`);
      seen.add(f.key);
    }
  }

  get line(): number {
    return (this.fields[0] as Field).line;
  }

  error(line: number, message: string): CasesFormatError {
    return new CasesFormatError(this.file, line, message);
  }

  has(key: string): boolean {
    return this.fields.some((f) => f.key === key);
  }

  field(key: string): Field | undefined {
    return this.fields.find((f) => f.key === key);
  }

  all(key: string): Field[] {
    return this.fields.filter((f) => f.key === key);
  }

  optional(key: string): string | null {
    return this.field(key)?.value ?? null;
  }

  required(key: string): string {
    const f = this.field(key);
    if (f === undefined) throw this.error(this.line, `missing "${key}:"`);
    return f.value;
  }

  withPrefix(prefix: string): Field[] {
    return this.fields.filter((f) => f.key.startsWith(prefix));
  }

  choice<T extends string>(key: string, options: readonly T[]): T | undefined {
    const f = this.field(key);
    if (f === undefined) return undefined;
    if (!(options as readonly string[]).includes(f.value)) throw this.error(f.line, `${key} must be one of ${options.join(', ')}`);
    return f.value as T;
  }

  bool(key: string): boolean | undefined {
    const v = this.choice(key, ['true', 'false'] as const);
    return v === undefined ? undefined : v === 'true';
  }
}

function parseHeader(r: BlockReader): CasesHeader {
  const domains: HostedDomain[] = r.all('domain').map((f) => {
    const [alias, target, ...rest] = f.value.split('=');
    if (alias === undefined || alias === '' || rest.length > 0 || target === '') throw r.error(f.line, 'domain: write "name" or "alias=name"');
    return { name: alias.toLowerCase(), canonical: (target ?? alias).toLowerCase() };
  });
  return { map: r.optional('map'), domains };
}

const CALLOUT = /^([^,\s]+),(\S+) (.*?) -> (?:ok(?: (.*))?|(fail))$/;

function parseCallout(r: BlockReader, f: Field): ScriptedCallout {
  const m = CALLOUT.exec(f.value);
  if (m === null) throw r.error(f.line, 'callout: write "image.so,routine <arg> -> ok <value>" or "... -> fail" (<arg> "" when empty)');
  const unquote = (s: string | undefined): string => (s === undefined || s === '""' ? '' : s);
  return {
    image: m[1] as string,
    routine: m[2] as string,
    arg: unquote(m[3]),
    answer: m[5] === 'fail' ? { ok: false } : { ok: true, value: unquote(m[4]) },
  };
}

function caseId(r: BlockReader): { id: string; row: number | null } {
  const f = r.field('case');
  if (f === undefined) throw r.error(r.line, 'missing "case:"');
  const m = /^(\d+)(\/[a-z0-9-]+)?$/.exec(f.value);
  if (m !== null) return { id: f.value, row: Number(m[1]) };
  if (!/^[a-z][a-z0-9-]*$/.test(f.value)) throw r.error(f.line, 'case: write a spec row ("57", "84/first-50") or a short kebab-case name');
  return { id: f.value, row: null };
}

function parseArgs(r: BlockReader): Record<string, string> | undefined {
  const lines = r.withPrefix('expect.arg.');
  const none = r.field('expect.args');
  if (none !== undefined) {
    if (none.value !== '') throw r.error(none.line, 'expect.args only takes "" (no arguments); list arguments with expect.arg.X lines');
    if (lines.length > 0) throw r.error(none.line, 'expect.args: "" contradicts the expect.arg.X lines');
    return {};
  }
  if (lines.length === 0) return undefined;
  const args: Record<string, string> = {};
  for (const f of lines) {
    const flag = f.key.slice('expect.arg.'.length);
    if (!ARG_FLAGS.has(flag)) throw r.error(f.line, `"${flag}" is not an argument-taking access flag (U J K I < > D T A X N F)`);
    if (flag in args) throw r.error(f.line, `argument ${flag} given twice`);
    args[flag] = f.value;
  }
  return args;
}

function parseMappingExpect(r: BlockReader): MappingExpect {
  const flagsField = r.field('expect.flags');
  if (flagsField !== undefined) {
    const mask = parseFlagLetters(flagsField.value);
    if (mask === null || flagString(mask) !== flagsField.value) {
      throw r.error(flagsField.line, `expect.flags: write the letters as flagString prints them (${mask === null ? 'bad letter' : JSON.stringify(flagString(mask))})`);
    }
  }
  const entryField = r.field('expect.entry');
  let entry: number | null | undefined;
  if (entryField !== undefined) {
    if (entryField.value === 'none') entry = null;
    else if (/^[1-9]\d*$/.test(entryField.value)) entry = Number(entryField.value);
    else throw r.error(entryField.line, 'expect.entry: a 1-based entry number, or none');
  }
  const stepsField = r.field('expect.steps');
  if (stepsField !== undefined && !/^\d+$/.test(stepsField.value)) throw r.error(stepsField.line, 'expect.steps: a count');
  const reply = r.all('expect.reply').map((f) => f.value);
  const expect: MappingExpect = {
    matched: r.bool('expect.matched'),
    output: r.optional('expect.output') ?? undefined,
    flags: flagsField?.value,
    args: parseArgs(r),
    decision: r.choice('expect.decision', ['allow', 'reject', 'none'] as const),
    entry,
    steps: stepsField === undefined ? undefined : Number(stepsField.value),
    verdict: r.choice('expect.verdict', ['accept', 'reject'] as const),
    close: r.bool('expect.close'),
    reply: reply.length > 0 ? reply : undefined,
  };
  if (Object.values(expect).every((v) => v === undefined)) throw r.error(r.line, 'case has no expectations (expect.*)');
  return expect;
}

function parseRandom(r: BlockReader): number[] {
  return r.all('random').map((f) => {
    const x = Number(f.value);
    if (f.value.trim() === '' || !Number.isFinite(x) || x < 0 || x >= 1) throw r.error(f.line, 'random: a number in [0, 1)');
    return x;
  });
}

function parseCase(file: string, fields: readonly Field[]): Case {
  const kind = fields.some((f) => f.key === 'pending') ? 'pending' : fields.some((f) => f.key === 'pattern') ? 'pattern' : 'mapping';
  const allowed = new Set([...COMMON_KEYS, ...(kind === 'pending' ? PENDING_KEYS : kind === 'pattern' ? PATTERN_KEYS : MAPPING_KEYS)]);
  const prefixes = kind === 'pattern' ? ['expect.cap.'] : ['expect.arg.'];
  const r = new BlockReader(file, fields, allowed, prefixes);
  const { id, row } = caseId(r);
  const ref = r.required('ref');
  if (!/^§\d+(\.\d+)*$/.test(ref)) throw r.error(r.field('ref')?.line ?? r.line, 'ref: a spec section such as §15.6');
  const base = { id, row, ref, file, line: r.line };

  if (kind === 'pending') {
    const reason = r.required('pending');
    if (reason === '') throw r.error(r.line, 'pending: give the reason');
    if (!r.has('expect') && r.withPrefix('expect.').length === 0) throw r.error(r.line, 'a pending case must still say what is expected (expect: or expect.*)');
    return { ...base, kind, reason, table: r.optional('table'), input: r.optional('input') };
  }

  if (kind === 'pattern') {
    const matched = r.bool('expect.matched');
    if (matched === undefined) throw r.error(r.line, 'missing "expect.matched:"');
    const capFields = r.withPrefix('expect.cap.');
    const none = r.field('expect.captures');
    let captures: string[] | null = null;
    if (none !== undefined) {
      if (none.value !== '' || capFields.length > 0) throw r.error(none.line, 'expect.captures only takes "" (no captures at all)');
      captures = [];
    } else if (capFields.length > 0) {
      if (!matched) throw r.error((capFields[0] as Field).line, 'captures of a pattern that must not match');
      captures = [];
      capFields.forEach((f, k) => {
        if (f.key !== `expect.cap.${k}`) throw r.error(f.line, `expected expect.cap.${k} here (list captures in order from 0, without gaps)`);
        captures?.push(f.value);
      });
    }
    return { ...base, kind, pattern: r.required('pattern'), target: r.required('target'), matched, captures };
  }

  const flags = r.optional('flags') ?? '';
  if (parseFlagLetters(flags) === null) throw r.error(r.field('flags')?.line ?? r.line, 'flags: input flag letters such as AT');
  return {
    ...base,
    kind,
    table: r.required('table'),
    input: r.required('input'),
    flags,
    callouts: r.all('callout').map((f) => parseCallout(r, f)),
    random: parseRandom(r),
    recipient: r.optional('recipient'),
    expect: parseMappingExpect(r),
  };
}

/** Parses a .cases file; throws CasesFormatError (with file:line) on anything malformed. */
export function parseCasesFile(file: string, text: string): CasesFile {
  const blocks = splitBlocks(file, text);
  let header: CasesHeader = { map: null, domains: [] };
  let rest = blocks;
  const first = blocks[0];
  if (first !== undefined && !first.some((f) => f.key === 'case')) {
    header = parseHeader(new BlockReader(file, first, HEADER_KEYS, []));
    rest = blocks.slice(1);
  }
  const cases = rest.map((b) => parseCase(file, b));
  if (cases.length === 0) throw new CasesFormatError(file, 1, 'no cases in file');
  const ids = new Map<string, number>();
  for (const c of cases) {
    const prev = ids.get(c.id);
    if (prev !== undefined) throw new CasesFormatError(file, c.line, `case ${c.id} already defined at line ${prev}`);
    ids.set(c.id, c.line);
  }
  if (header.map === null && cases.some((c) => c.kind === 'mapping')) {
    throw new CasesFormatError(file, 1, 'mapping cases need a header block with "map:"');
  }
  return { file, header, cases };
}
