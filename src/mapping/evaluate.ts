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
import { CaseMode, compileTemplate } from './template.js';
import type { CompiledTemplate, Control, Op } from './template.js';

/** The loop guard of spec §3.3: restarts stop being honoured once the counter exceeds this. */
const LOOP_GUARD = 10;
/** Nesting limit for $|TABLE;arg| sub-mappings and for re-expansion of callout results (§3.6). */
const MAX_DEPTH = 8;
/** Longest output string a template may build. */
export const MAX_OUTPUT = 16384;
/** Entry applications per top-level mapping; a safety net far beyond what the loop guard allows in practice. */
const MAX_STEPS = 100_000;

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
  steps: number;
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

/** Runs a mapping; yields callout requests. Prefer mapSync / mapAsync. */
export function* evaluate(set: MappingSet, tableName: string, input: string, opts: MapOptions = {}): Eval<MappingResult> {
  const table = set.table(tableName);
  const ctx: Ctx = {
    set,
    inFlags: opts.flags ?? 0,
    random: opts.random ?? Math.random,
    diagnostics: [],
    trace: opts.trace ? [] : null,
    steps: 0,
  };
  if (table === undefined) {
    return { table: tableName.toUpperCase(), input, tableFound: false, matched: false, output: input, flags: 0, entry: null, diagnostics: [], trace: ctx.trace };
  }
  const r = yield* runTable(ctx, table, input, 0);
  return { table: table.name, input, tableFound: true, ...r, diagnostics: ctx.diagnostics, trace: ctx.trace };
}

/** Finds the first entry ≥ from whose pattern matches s. */
function findEntry(ctx: Ctx, table: CompiledTable, s: string, folded: string, from: number): { entry: CompiledEntry; caps: string[] } | null {
  let caps: string[] | null = null;
  const tryEntry = (k: number): boolean => {
    const e = table.entries[k] as CompiledEntry;
    const m = e.matcher.match(folded, s);
    if (m.exhausted) {
      ctx.diagnostics.push({
        code: 'match-budget',
        message: `pattern ${e.pattern.source} gave up on a ${s.length}-character probe (back-match search limit); treated as not matching`,
        entry: e.pos,
      });
    }
    caps = m.captures;
    return caps !== null;
  };
  if (table.index !== null) {
    const k = table.index.scan(folded, from, tryEntry);
    return k < 0 ? null : { entry: table.entries[k] as CompiledEntry, caps: caps as unknown as string[] };
  }
  for (let k = from; k < table.entries.length; k++) {
    if (tryEntry(k)) return { entry: table.entries[k] as CompiledEntry, caps: caps as unknown as string[] };
  }
  return null;
}

function* runTable(ctx: Ctx, table: CompiledTable, input: string, depth: number): Eval<TableOutcome> {
  let s = input;
  let from = 0;
  let extraPass = false;
  let acc = 0;
  let applied = false;
  let last: SourcePos | null = null;
  let guard = 0;
  let passLength = s.length;
  // Spec §3.3: count restarts with a string at least as long as the previous pass's; reset when shorter.
  const restartAllowed = (next: string): boolean => {
    guard = next.length >= passLength ? guard + 1 : 0;
    passLength = next.length;
    return guard <= LOOP_GUARD;
  };
  for (;;) {
    if (++ctx.steps > MAX_STEPS) {
      ctx.diagnostics.push({ code: 'step-limit', message: `mapping stopped after ${MAX_STEPS} steps`, entry: last });
      return { matched: applied, output: s, flags: acc, entry: last };
    }
    const hit = findEntry(ctx, table, s, foldAscii(s), from);
    if (hit === null) {
      if (extraPass) {
        extraPass = false;
        if (restartAllowed(s)) {
          from = 0;
          continue;
        }
      }
      return { matched: applied, output: s, flags: acc, entry: last };
    }
    const { entry, caps } = hit;
    const x = yield* expandEntry(ctx, entry, caps, depth);
    if (ctx.trace !== null) {
      ctx.trace.push({
        table: table.name,
        entry: entry.pos,
        pattern: entry.pattern.source,
        template: entry.template.source,
        input: s,
        outcome: x.ok ? 'applied' : 'failed',
        output: x.ok ? x.out : s,
        control: x.ctl ?? 'E',
        depth,
      });
    }
    if (!x.ok) {
      // Spec §3.4: continue with the input unchanged only if $C/$L/$R came before the failure.
      switch (x.ctl) {
        case 'C':
          from = entry.index + 1;
          extraPass = false;
          continue;
        case 'L':
          from = entry.index + 1;
          extraPass = true;
          continue;
        case 'R':
          if (!restartAllowed(s)) return { matched: applied, output: s, flags: acc, entry: last };
          from = 0;
          continue;
        default:
          return { matched: true, output: s, flags: 0, entry: entry.pos };
      }
    }
    acc |= x.flags;
    applied = true;
    last = entry.pos;
    switch (x.ctl ?? 'E') {
      case 'E':
        return { matched: true, output: x.out, flags: acc, entry: entry.pos };
      case 'C':
        s = x.out;
        from = entry.index + 1;
        extraPass = false;
        continue;
      case 'L':
        s = x.out;
        from = entry.index + 1;
        extraPass = true;
        continue;
      case 'R':
        if (!restartAllowed(x.out)) return { matched: true, output: x.out, flags: acc, entry: entry.pos };
        s = x.out;
        from = 0;
        continue;
    }
  }
}

interface EntryExpansion {
  readonly ok: boolean;
  readonly out: string;
  readonly flags: number;
  readonly ctl: Control | null;
}

function* expandEntry(ctx: Ctx, entry: CompiledEntry, caps: readonly string[], depth: number): Eval<EntryExpansion> {
  const x: Expansion = { out: '', mode: CaseMode.Keep, ldap: false, flags: 0, ctl: null, stopped: false };
  const ok = entry.template.callsOut || entry.template.subTables.length > 0
    ? yield* runOps(ctx, entry, x, entry.template.ops, caps, depth)
    : runSimpleOps(ctx, entry, x, entry.template.ops, caps);
  return { ok, out: x.out, flags: x.flags, ctl: x.ctl };
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
    ctx.diagnostics.push({ code: 'output-too-long', message: `template output exceeded ${MAX_OUTPUT} characters; entry failed`, entry: entry.pos });
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

function runSimpleOps(ctx: Ctx, entry: CompiledEntry, x: Expansion, ops: readonly Op[], caps: readonly string[]): boolean {
  for (const op of ops) {
    if (!simpleOp(ctx, entry, x, op, caps)) return false;
    if (x.stopped) return true;
  }
  return true;
}

function* runOps(ctx: Ctx, entry: CompiledEntry, x: Expansion, ops: readonly Op[], caps: readonly string[], depth: number): Eval<boolean> {
  for (const op of ops) {
    switch (op.k) {
      case 'sub': {
        const arg = yield* expandArg(ctx, entry, op.arg, caps, depth);
        if (arg === null) return false;
        const table = ctx.set.table(op.table);
        if (table === undefined) return false;
        if (depth + 1 > MAX_DEPTH) {
          ctx.diagnostics.push({ code: 'depth-limit', message: `sub-mappings nested more than ${MAX_DEPTH} deep at $|${op.table};...|; entry failed`, entry: entry.pos });
          return false;
        }
        const r = yield* runTable(ctx, table, arg, depth + 1);
        // Spec §3.6: only a result carrying $Y counts, and only its string comes back.
        if ((r.flags & Y_BIT) === 0) return false;
        if (!emit(ctx, entry, x, r.output, true)) return false;
        break;
      }
      case 'routine': {
        const arg = yield* expandArg(ctx, entry, op.arg, caps, depth);
        if (arg === null) return false;
        const routine = entry.routines.get(op) ?? linkRoutine(ctx.set.services, op.image, op.routine);
        if (routine === undefined) {
          ctx.diagnostics.push({ code: 'unknown-routine', message: `no routine ${op.routine} in ${imageBaseName(op.image)}`, entry: entry.pos });
          return false;
        }
        const a: CalloutAnswer = yield { kind: 'routine', routine, image: op.image, name: op.routine, arg };
        if (!(yield* acceptAnswer(ctx, entry, x, a, caps, depth, `${imageBaseName(op.image)},${op.routine}`))) return false;
        break;
      }
      case 'domain': {
        const domain = yield* expandArg(ctx, entry, op.domain, caps, depth);
        if (domain === null) return false;
        const attribute = yield* expandArg(ctx, entry, op.attribute, caps, depth);
        if (attribute === null) return false;
        const a: CalloutAnswer = yield { kind: 'domain', domain, attribute };
        if (!(yield* acceptAnswer(ctx, entry, x, a, caps, depth, `$}${domain},${attribute}{`))) return false;
        break;
      }
      case 'general': {
        const key = yield* expandArg(ctx, entry, op.key, caps, depth);
        if (key === null) return false;
        const a: CalloutAnswer = yield { kind: 'general', key };
        if (!(yield* acceptAnswer(ctx, entry, x, a, caps, depth, `\${${key}}`))) return false;
        break;
      }
      case 'url': {
        const url = yield* expandArg(ctx, entry, op.url, caps, depth);
        if (url === null) return false;
        const a: CalloutAnswer = yield { kind: 'url', url };
        if (!(yield* acceptAnswer(ctx, entry, x, a, caps, depth, `$]${url}[`))) return false;
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
  if (!a.ok && a.error !== undefined) ctx.diagnostics.push({ code: 'callout-error', message: `${what}: ${a.error}`, entry: entry.pos });
}

/** Expands an argument (no flags or controls can occur in it); null when a construct inside fails. */
function* expandArg(ctx: Ctx, entry: CompiledEntry, ops: readonly Op[], caps: readonly string[], depth: number): Eval<string | null> {
  if (ops.length === 1 && ops[0]?.k === 'text') return ops[0].s;
  const x: Expansion = { out: '', mode: CaseMode.Keep, ldap: false, flags: 0, ctl: null, stopped: false };
  const ok = yield* runOps(ctx, entry, x, ops, caps, depth);
  return ok ? x.out : null;
}

/**
 * Splices a callout's result into the output. Spec §3.6: the result is template text and is
 * scanned again, so a returned "$N..." or "$y" sets flags; nesting is capped at MAX_DEPTH.
 */
function* acceptAnswer(ctx: Ctx, entry: CompiledEntry, x: Expansion, a: CalloutAnswer, caps: readonly string[], depth: number, what: string): Eval<boolean> {
  if (!a.ok) {
    noteError(ctx, entry, a, what);
    return false;
  }
  const text = a.value;
  if (!text.includes('$')) return emit(ctx, entry, x, text, true);
  if (depth + 1 > MAX_DEPTH) {
    ctx.diagnostics.push({ code: 'depth-limit', message: `callout results re-expanded more than ${MAX_DEPTH} deep; entry failed`, entry: entry.pos });
    return false;
  }
  const tpl = compileResult(text);
  if (tpl === null) {
    ctx.diagnostics.push({ code: 'bad-callout-result', message: `${what} returned text that is not a valid template: ${JSON.stringify(text)}; entry failed`, entry: entry.pos });
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
  const gen = evaluate(set, table, input, opts);
  let step = gen.next();
  while (!step.done) {
    const a = safeAnswer(set.services, step.value);
    if (isThenable(a)) throw new TypeError(`mapSync: the ${step.value.kind} callout answered asynchronously; use mapAsync`);
    step = gen.next(a);
  }
  return step.value;
}

/** Runs a mapping, awaiting callouts that answer with promises. A rejected promise fails the callout. */
export async function mapAsync(set: MappingSet, table: string, input: string, opts: MapOptions = {}): Promise<MappingResult> {
  const gen = evaluate(set, table, input, opts);
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
  return step.value;
}
