// The mapping algorithm (spec §3.8): try entries top to bottom, expand the first matching entry's
// template, and follow its processing control ($E end, $C next entry, $L next entry plus one more
// pass, $R restart) with the loop guard of §3.3 and the failure rule of §3.4.
//
// Evaluation is a generator: where a template calls out it yields a CalloutRequest and resumes
// with the host's CalloutAnswer, so the engine itself never performs I/O. mapSync drives it for
// hosts whose answers are immediate; mapAsync awaits answers that are promises.

import { answer, imageBaseName } from './callouts.js';
import type { CalloutAnswer, CalloutRequest, CalloutRoutine, CalloutServices } from './callouts.js';
import type { CompiledEntry, CompiledTable, MappingSet } from './compile.js';
import type { SourcePos } from './errors.js';
import { flagBit } from './flags.js';
import { foldAscii, upperAscii } from './fold.js';
import { charMask } from './match.js';
import { CaseMode, compileTemplate } from './template.js';
import type { CompiledTemplate, Control, Op } from './template.js';

/** The loop guard of spec §3.3: restarts stop being honoured once the counter exceeds this. */
const LOOP_GUARD = 10;
/** Nesting limit for $|TABLE;arg| sub-mappings and for re-expansion of callout results (§3.6). */
const MAX_DEPTH = 8;
/** Longest output string a template may build. */
export const MAX_OUTPUT = 16384;
/**
 * Work budget of one top-level mapping, in rough units of "one pattern tried on 64 characters".
 * The loop guard bounds each table walk, but sub-mappings under $R multiply walks, and a string
 * that keeps shrinking resets the guard; this budget bounds the total (tens of milliseconds at worst).
 */
const MAX_WORK = 100_000;
/** A back-match pattern that exhausted its step budget costs about as much as this many units. */
const EXHAUSTED_COST = 50_000;
/** Diagnostics kept per mapping; repeats of the same code at the same entry are dropped. */
const MAX_DIAGNOSTICS = 16;

const Y_BIT = flagBit('Y');

export interface MapOptions {
  /** Input flags for `$:x` / `$;x` (spec §4.1), as a mask from flags.ts. */
  readonly flags?: number;
  /** Source of randomness for `$?x?`, returning [0, 1). Defaults to Math.random. */
  readonly random?: () => number;
  /** Record every entry tried (for `test mapping --trace` and `test session`). */
  readonly trace?: boolean;
}

/** Something noteworthy that did not stop the mapping: a callout error, a limit reached. */
export interface Diagnostic {
  readonly code: 'callout-error' | 'match-budget' | 'depth-limit' | 'output-too-long' | 'step-limit' | 'bad-callout-result' | 'unknown-routine';
  readonly message: string;
  readonly entry: SourcePos | null;
}

export interface TraceStep {
  readonly table: string;
  readonly entry: SourcePos;
  readonly pattern: string;
  readonly template: string;
  readonly input: string;
  /** applied: template expanded; failed: a construct failed (§3.4). */
  readonly outcome: 'applied' | 'failed';
  readonly output: string;
  readonly control: Control;
  readonly depth: number;
}

export interface MappingResult {
  readonly table: string;
  readonly input: string;
  /** False when the table does not exist. */
  readonly tableFound: boolean;
  /** An entry matched and decided the result (see docs/compatibility.md for $C chains). */
  readonly matched: boolean;
  readonly output: string;
  /** Output flags as a mask (flags.ts). */
  readonly flags: number;
  /** The entry that produced the result, or null. */
  readonly entry: SourcePos | null;
  readonly diagnostics: readonly Diagnostic[];
  readonly trace: readonly TraceStep[] | null;
}

type Eval<T> = Generator<CalloutRequest, T, CalloutAnswer>;

interface Ctx {
  readonly set: MappingSet;
  readonly inFlags: number;
  readonly random: () => number;
  readonly diagnostics: Diagnostic[];
  readonly trace: TraceStep[] | null;
  work: number;
}

interface TableOutcome {
  readonly matched: boolean;
  readonly output: string;
  readonly flags: number;
  readonly entry: SourcePos | null;
}

/** Mutable state of one template expansion. */
interface Expansion {
  out: string;
  mode: CaseMode;
  ldap: boolean;
  flags: number;
  ctl: Control | null;
  stopped: boolean;
}

function newCtx(set: MappingSet, opts: MapOptions): Ctx {
  return {
    set,
    inFlags: opts.flags ?? 0,
    random: opts.random ?? Math.random,
    diagnostics: [],
    trace: opts.trace ? [] : null,
    work: 0,
  };
}

function finish(ctx: Ctx, table: CompiledTable, input: string, r: TableOutcome): MappingResult {
  return {
    table: table.name,
    input,
    tableFound: true,
    matched: r.matched,
    output: r.output,
    flags: r.flags,
    entry: r.entry,
    diagnostics: ctx.diagnostics,
    trace: ctx.trace,
  };
}

function missing(tableName: string, input: string, opts: MapOptions): MappingResult {
  return { table: tableName.toUpperCase(), input, tableFound: false, matched: false, output: input, flags: 0, entry: null, diagnostics: [], trace: opts.trace ? [] : null };
}

/** Runs a mapping; yields callout requests. Prefer mapSync / mapAsync. */
export function* evaluate(set: MappingSet, tableName: string, input: string, opts: MapOptions = {}): Eval<MappingResult> {
  const table = set.table(tableName);
  if (table === undefined) return missing(tableName, input, opts);
  const ctx = newCtx(set, opts);
  const r = table.pure ? runTablePure(ctx, table, input, 0) : yield* runTable(ctx, table, input, 0);
  return finish(ctx, table, input, r);
}

/** Records a diagnostic once per code and entry, up to MAX_DIAGNOSTICS. */
function note(ctx: Ctx, d: Diagnostic): void {
  if (ctx.diagnostics.length >= MAX_DIAGNOSTICS) return;
  const same = ctx.diagnostics.some((x) => x.code === d.code && x.entry?.line === d.entry?.line && x.entry?.file === d.entry?.file);
  if (!same) ctx.diagnostics.push(d);
}

function overBudget(ctx: Ctx): boolean {
  return ctx.work > MAX_WORK;
}

/** Tries one entry's pattern, charging the effort to the work budget. */
function attempt(ctx: Ctx, e: CompiledEntry, folded: string, s: string, mask: number): string[] | null {
  const m = e.matcher.match(folded, s, mask);
  ctx.work += 1 + (s.length >> 6) + m.work;
  if (m.exhausted) {
    ctx.work += EXHAUSTED_COST;
    note(ctx, {
      code: 'match-budget',
      message: `pattern ${e.pattern.source} gave up on a ${s.length}-character probe (back-match search limit); treated as not matching`,
      entry: e.pos,
    });
  }
  return m.captures;
}

/** Below this many entries left to try, the character-mask gate costs more than it saves. */
const MASK_MIN_ENTRIES = 6;

/** Finds the first entry ≥ from whose pattern matches s; null also when the work budget runs out. */
function findEntry(ctx: Ctx, table: CompiledTable, s: string, folded: string, from: number): { entry: CompiledEntry; caps: string[] } | null {
  const entries = table.entries;
  if (table.index !== null) {
    const mask = charMask(folded);
    let caps: string[] | null = null;
    const k = table.index.scan(folded, from, (k) => {
      if (overBudget(ctx)) return true;
      caps = attempt(ctx, entries[k] as CompiledEntry, folded, s, mask);
      return caps !== null;
    });
    return k < 0 || caps === null ? null : { entry: entries[k] as CompiledEntry, caps };
  }
  const mask = entries.length - from >= MASK_MIN_ENTRIES ? charMask(folded) : -1;
  for (let k = from; k < entries.length && !overBudget(ctx); k++) {
    const e = entries[k] as CompiledEntry;
    const caps = attempt(ctx, e, folded, s, mask);
    if (caps !== null) return { entry: e, caps };
  }
  return null;
}

/**
 * Where a walk through one table stands. The two table runners (with and without callouts) share
 * every decision through stepFailed / stepApplied / stepNoMatch, so the algorithm lives once.
 */
interface Walk {
  s: string;
  /** foldAscii(s), computed once per string: a $C failure re-walks the same string. */
  foldedOf: string;
  folded: string;
  from: number;
  extraPass: boolean;
  acc: number;
  applied: boolean;
  last: SourcePos | null;
  guard: number;
  passLength: number;
}

function newWalk(input: string): Walk {
  return { s: input, foldedOf: '', folded: '', from: 0, extraPass: false, acc: 0, applied: false, last: null, guard: 0, passLength: input.length };
}

function folded(w: Walk): string {
  if (w.foldedOf !== w.s || w.folded === '') {
    w.folded = foldAscii(w.s);
    w.foldedOf = w.s;
  }
  return w.folded;
}

function ending(w: Walk): TableOutcome {
  return { matched: w.applied, output: w.s, flags: w.acc, entry: w.last };
}

/** Spec §3.3 loop guard: count restarts with a string at least as long as the previous pass's; reset when shorter. */
function restartAllowed(w: Walk, next: string): boolean {
  w.guard = next.length >= w.passLength ? w.guard + 1 : 0;
  w.passLength = next.length;
  return w.guard <= LOOP_GUARD;
}

function stepNoMatch(w: Walk): TableOutcome | null {
  if (w.extraPass) {
    w.extraPass = false;
    if (restartAllowed(w, w.s)) {
      w.from = 0;
      return null;
    }
  }
  return ending(w);
}

function stepLimit(ctx: Ctx, w: Walk): TableOutcome | null {
  if (!overBudget(ctx)) return null;
  note(ctx, { code: 'step-limit', message: 'mapping stopped: it exceeded its work budget (restart or sub-mapping loop)', entry: w.last });
  return ending(w);
}

function stepDone(ctx: Ctx, table: CompiledTable, w: Walk, entry: CompiledEntry, x: EntryExpansion, depth: number): TableOutcome | null {
  ctx.work += 1 + (x.out.length >> 6);
  if (ctx.trace !== null) {
    ctx.trace.push({
      table: table.name,
      entry: entry.pos,
      pattern: entry.pattern.source,
      template: entry.template.source,
      input: w.s,
      outcome: x.ok ? 'applied' : 'failed',
      output: x.ok ? x.out : w.s,
      control: x.ctl ?? 'E',
      depth,
    });
  }
  if (!x.ok) {
    // Spec §3.4: continue with the input unchanged only if $C/$L/$R came before the failure;
    // otherwise the mapping ends with the input unchanged and no flags.
    switch (x.ctl) {
      case 'C':
        w.from = entry.index + 1;
        w.extraPass = false;
        return null;
      case 'L':
        w.from = entry.index + 1;
        w.extraPass = true;
        return null;
      case 'R':
        if (!restartAllowed(w, w.s)) return ending(w);
        w.from = 0;
        return null;
      default:
        return { matched: true, output: w.s, flags: 0, entry: entry.pos };
    }
  }
  w.acc |= x.flags;
  w.applied = true;
  w.last = entry.pos;
  switch (x.ctl ?? 'E') {
    case 'E':
      return { matched: true, output: x.out, flags: w.acc, entry: entry.pos };
    case 'C':
      w.s = x.out;
      w.from = entry.index + 1;
      w.extraPass = false; // a later $C overrides an earlier $L
      return null;
    case 'L':
      w.s = x.out;
      w.from = entry.index + 1;
      w.extraPass = true;
      return null;
    case 'R':
      if (!restartAllowed(w, x.out)) return { matched: true, output: x.out, flags: w.acc, entry: entry.pos };
      w.s = x.out;
      w.from = 0;
      return null;
  }
}

function* runTable(ctx: Ctx, table: CompiledTable, input: string, depth: number): Eval<TableOutcome> {
  const w = newWalk(input);
  for (;;) {
    const hit = findEntry(ctx, table, w.s, folded(w), w.from);
    // findEntry also stops when the work budget runs out; report that rather than "no match".
    const stop = stepLimit(ctx, w);
    if (stop !== null) return stop;
    if (hit === null) {
      const end = stepNoMatch(w);
      if (end !== null) return end;
      continue;
    }
    const x = hit.entry.pure ? expandPure(ctx, hit.entry, hit.caps, depth) : yield* expandEntry(ctx, hit.entry, hit.caps, depth);
    const end = stepDone(ctx, table, w, hit.entry, x, depth);
    if (end !== null) return end;
  }
}

/** runTable for tables that cannot call out: the same steps, no generator. */
function runTablePure(ctx: Ctx, table: CompiledTable, input: string, depth: number): TableOutcome {
  const w = newWalk(input);
  for (;;) {
    const hit = findEntry(ctx, table, w.s, folded(w), w.from);
    // findEntry also stops when the work budget runs out; report that rather than "no match".
    const stop = stepLimit(ctx, w);
    if (stop !== null) return stop;
    const end = hit === null ? stepNoMatch(w) : stepDone(ctx, table, w, hit.entry, expandPure(ctx, hit.entry, hit.caps, depth), depth);
    if (end !== null) return end;
  }
}

interface EntryExpansion {
  readonly ok: boolean;
  readonly out: string;
  readonly flags: number;
  readonly ctl: Control | null;
}

function newExpansion(): Expansion {
  return { out: '', mode: CaseMode.Keep, ldap: false, flags: 0, ctl: null, stopped: false };
}

function* expandEntry(ctx: Ctx, entry: CompiledEntry, caps: readonly string[], depth: number): Eval<EntryExpansion> {
  const x = newExpansion();
  const ok = yield* runOps(ctx, entry, x, entry.template.ops, caps, depth);
  return { ok, out: x.out, flags: x.flags, ctl: x.ctl };
}

function expandPure(ctx: Ctx, entry: CompiledEntry, caps: readonly string[], depth: number): EntryExpansion {
  const x = newExpansion();
  const ok = runPureOps(ctx, entry, x, entry.template.ops, caps, depth);
  return { ok, out: x.out, flags: x.flags, ctl: x.ctl };
}

/** A sub-mapping (spec §3.6): only a result carrying $Y counts, and only its string comes back. */
function subResult(ctx: Ctx, entry: CompiledEntry, op: Extract<Op, { k: 'sub' }>, depth: number): CompiledTable | null {
  const table = ctx.set.table(op.table);
  if (table === undefined) return null;
  if (depth + 1 > MAX_DEPTH) {
    note(ctx, { code: 'depth-limit', message: `sub-mappings nested more than ${MAX_DEPTH} deep at $|${op.table};...|; entry failed`, entry: entry.pos });
    return null;
  }
  return table;
}

/** Runs ops of a template that cannot call out (its sub-mapped tables are pure too). */
function runPureOps(ctx: Ctx, entry: CompiledEntry, x: Expansion, ops: readonly Op[], caps: readonly string[], depth: number): boolean {
  for (const op of ops) {
    if (op.k === 'sub') {
      const arg = expandPureArg(ctx, entry, op.arg, caps, depth);
      const table = arg === null ? null : subResult(ctx, entry, op, depth);
      if (arg === null || table === null) return false;
      const r = runTablePure(ctx, table, arg, depth + 1);
      if ((r.flags & Y_BIT) === 0 || !emit(ctx, entry, x, r.output, true)) return false;
    } else if (!simpleOp(ctx, entry, x, op, caps)) return false;
    if (x.stopped) return true;
  }
  return true;
}

function expandPureArg(ctx: Ctx, entry: CompiledEntry, ops: readonly Op[], caps: readonly string[], depth: number): string | null {
  if (ops.length === 1 && ops[0]?.k === 'text') return ops[0].s;
  const x = newExpansion();
  return runPureOps(ctx, entry, x, ops, caps, depth) ? x.out : null;
}

/** RFC 4515 escaping for `$=` (values placed into LDAP search filters). */
function ldapEscape(s: string): string {
  return s.replace(/[*()\\\0]/g, (c) => '\\' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

function emit(ctx: Ctx, entry: CompiledEntry, x: Expansion, s: string, substituted: boolean): boolean {
  let t = substituted && x.ldap ? ldapEscape(s) : s;
  if (x.mode === CaseMode.Lower) t = foldAscii(t);
  else if (x.mode === CaseMode.Upper) t = upperAscii(t);
  x.out += t;
  if (x.out.length > MAX_OUTPUT) {
    note(ctx, { code: 'output-too-long', message: `template output exceeded ${MAX_OUTPUT} characters; entry failed`, entry: entry.pos });
    return false;
  }
  return true;
}

/**
 * Ops that never call out. Returns false when the op fails (§3.4); handles everything except
 * sub-mappings and callouts, which runOps handles.
 */
function simpleOp(ctx: Ctx, entry: CompiledEntry, x: Expansion, op: Op, caps: readonly string[]): boolean {
  switch (op.k) {
    case 'text':
      return emit(ctx, entry, x, op.s, false);
    case 'cap':
      return emit(ctx, entry, x, caps[op.n] ?? '', true);
    case 'case':
      x.mode = op.mode;
      if (op.mode === CaseMode.Keep) x.ldap = false;
      return true;
    case 'ldapquote':
      x.ldap = true;
      return true;
    case 'ctl':
      x.ctl = op.c;
      return true;
    case 'end':
      x.ctl = 'E';
      x.stopped = true;
      return true;
    case 'flag':
      x.flags |= op.bit;
      return true;
    case 'test':
      return ((ctx.inFlags & flagBit(op.letter)) !== 0) === op.want;
    case 'random':
      return ctx.random() * 100 < op.percent;
    default:
      throw new Error(`simpleOp: ${op.k} calls out`);
  }
}

function* runOps(ctx: Ctx, entry: CompiledEntry, x: Expansion, ops: readonly Op[], caps: readonly string[], depth: number): Eval<boolean> {
  for (const op of ops) {
    switch (op.k) {
      case 'sub': {
        const arg = yield* expandArg(ctx, entry, op.arg, caps, depth);
        const table = arg === null ? null : subResult(ctx, entry, op, depth);
        if (arg === null || table === null) return false;
        const r = table.pure ? runTablePure(ctx, table, arg, depth + 1) : yield* runTable(ctx, table, arg, depth + 1);
        if ((r.flags & Y_BIT) === 0 || !emit(ctx, entry, x, r.output, true)) return false;
        break;
      }
      case 'routine': {
        const arg = yield* expandArg(ctx, entry, op.arg, caps, depth);
        if (arg === null) return false;
        const routine = entry.routines.get(op) ?? linkRoutine(ctx.set.services, op.image, op.routine);
        if (routine === undefined) {
          note(ctx, { code: 'unknown-routine', message: `no routine ${op.routine} in ${imageBaseName(op.image)}`, entry: entry.pos });
          return false;
        }
        const a: CalloutAnswer = yield { kind: 'routine', routine, image: op.image, name: op.routine, arg };
        if (!(isPlain(a) ? emit(ctx, entry, x, a.value, true) : yield* acceptAnswer(ctx, entry, x, a, caps, depth, () => `${imageBaseName(op.image)},${op.routine}`))) return false;
        break;
      }
      case 'domain': {
        const domain = yield* expandArg(ctx, entry, op.domain, caps, depth);
        if (domain === null) return false;
        const attribute = yield* expandArg(ctx, entry, op.attribute, caps, depth);
        if (attribute === null) return false;
        const a: CalloutAnswer = yield { kind: 'domain', domain, attribute };
        if (!(isPlain(a) ? emit(ctx, entry, x, a.value, true) : yield* acceptAnswer(ctx, entry, x, a, caps, depth, () => `$}${domain},${attribute}{`))) return false;
        break;
      }
      case 'general': {
        const key = yield* expandArg(ctx, entry, op.key, caps, depth);
        if (key === null) return false;
        const a: CalloutAnswer = yield { kind: 'general', key };
        if (!(isPlain(a) ? emit(ctx, entry, x, a.value, true) : yield* acceptAnswer(ctx, entry, x, a, caps, depth, () => `\${${key}}`))) return false;
        break;
      }
      case 'url': {
        const url = yield* expandArg(ctx, entry, op.url, caps, depth);
        if (url === null) return false;
        const a: CalloutAnswer = yield { kind: 'url', url };
        if (!(isPlain(a) ? emit(ctx, entry, x, a.value, true) : yield* acceptAnswer(ctx, entry, x, a, caps, depth, () => `$]${url}[`))) return false;
        break;
      }
      case 'sequence': {
        const a: CalloutAnswer = yield { kind: 'sequence', file: op.file, radix: op.radix, width: op.width, mod: op.mod };
        if (!a.ok) {
          noteError(ctx, entry, a, `$#${op.file}#`);
          return false;
        }
        if (!emit(ctx, entry, x, a.value, true)) return false;
        break;
      }
      default:
        if (!simpleOp(ctx, entry, x, op, caps)) return false;
    }
    if (x.stopped) return true;
  }
  return true;
}

function noteError(ctx: Ctx, entry: CompiledEntry, a: CalloutAnswer, what: string): void {
  if (!a.ok && a.error !== undefined) note(ctx, { code: 'callout-error', message: `${what}: ${a.error}`, entry: entry.pos });
}

/** Expands an argument (no flags or controls can occur in it); null when a construct inside fails. */
function* expandArg(ctx: Ctx, entry: CompiledEntry, ops: readonly Op[], caps: readonly string[], depth: number): Eval<string | null> {
  if (ops.every((op) => op.k === 'text' || op.k === 'cap' || op.k === 'case' || op.k === 'ldapquote')) return expandPureArg(ctx, entry, ops, caps, depth);
  const x = newExpansion();
  const ok = yield* runOps(ctx, entry, x, ops, caps, depth);
  return ok ? x.out : null;
}

/**
 * Splices a callout's result into the output. Spec §3.6: the result is template text and is
 * scanned again, so a returned "$N..." or "$y" sets flags; nesting is capped at MAX_DEPTH.
 */
/** A successful answer with no "$" in it is inserted as is, without a generator step. */
function isPlain(a: CalloutAnswer): a is { ok: true; value: string } {
  return a.ok && typeof a.value === 'string' && !a.value.includes('$');
}

function* acceptAnswer(ctx: Ctx, entry: CompiledEntry, x: Expansion, a: CalloutAnswer, caps: readonly string[], depth: number, describe: () => string): Eval<boolean> {
  const what = describe();
  if (!a.ok) {
    noteError(ctx, entry, a, what);
    return false;
  }
  // Routines are host code; tolerate one that answers success without a value.
  const text = typeof a.value === 'string' ? a.value : '';
  if (!text.includes('$')) return emit(ctx, entry, x, text, true);
  if (depth + 1 > MAX_DEPTH) {
    note(ctx, { code: 'depth-limit', message: `callout results re-expanded more than ${MAX_DEPTH} deep; entry failed`, entry: entry.pos });
    return false;
  }
  const tpl = compileResult(text);
  if (tpl === null) {
    note(ctx, { code: 'bad-callout-result', message: `${what} returned text that is not a valid template: ${JSON.stringify(text)}; entry failed`, entry: entry.pos });
    return false;
  }
  return yield* runOps(ctx, entry, x, tpl.ops, caps, depth + 1);
}

/** Compiled callout results, by text; results repeat (e.g. "$y"), so a small cache pays. */
const resultCache = new Map<string, CompiledTemplate | null>();
const RESULT_CACHE_MAX = 512;

function compileResult(text: string): CompiledTemplate | null {
  const hit = resultCache.get(text);
  if (hit !== undefined) return hit;
  const r = compileTemplate(text);
  const tpl = r.problems.some((p) => (p.severity ?? 'error') === 'error') ? null : r.template;
  if (resultCache.size >= RESULT_CACHE_MAX) resultCache.clear();
  resultCache.set(text, tpl);
  return tpl;
}

/** Finds the routine for a callout met at run time (in a re-expanded result). */
function linkRoutine(services: CalloutServices, image: string, name: string): CalloutRoutine | undefined {
  return services.libraries?.find((l) => l.claims(image))?.routine(name);
}

function isThenable(v: unknown): v is PromiseLike<CalloutAnswer> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function safeAnswer(services: CalloutServices, req: CalloutRequest): CalloutAnswer | PromiseLike<CalloutAnswer> {
  try {
    return answer(services, req);
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Runs a mapping whose callouts answer synchronously. A callout that returns a promise is a
 * programming error here (use mapAsync); it throws.
 */
export function mapSync(set: MappingSet, table: string, input: string, opts: MapOptions = {}): MappingResult {
  const t = set.table(table);
  if (t !== undefined && t.pure) {
    const ctx = newCtx(set, opts);
    return finish(ctx, t, input, runTablePure(ctx, t, input, 0));
  }
  if (t === undefined) return missing(table, input, opts);
  const ctx = newCtx(set, opts);
  const gen = runTable(ctx, t, input, 0);
  let step = gen.next();
  while (!step.done) {
    const a = safeAnswer(set.services, step.value);
    if (isThenable(a)) throw new TypeError(`mapSync: the ${step.value.kind} callout answered asynchronously; use mapAsync`);
    step = gen.next(a);
  }
  return finish(ctx, t, input, step.value);
}

/** Runs a mapping, awaiting callouts that answer with promises. A rejected promise fails the callout. */
export async function mapAsync(set: MappingSet, table: string, input: string, opts: MapOptions = {}): Promise<MappingResult> {
  const t = set.table(table);
  if (t === undefined || t.pure) return mapSync(set, table, input, opts);
  const ctx = newCtx(set, opts);
  const gen = runTable(ctx, t, input, 0);
  let step = gen.next();
  while (!step.done) {
    let a = safeAnswer(set.services, step.value);
    if (isThenable(a)) {
      try {
        a = await a;
      } catch (err) {
        a = { ok: false, error: err instanceof Error ? err.message : String(err) };
      }
    }
    step = gen.next(a);
  }
  return finish(ctx, t, input, step.value);
}
