// Turns a parsed mappings file into a MappingSet: every pattern and template compiled, callouts
// linked to the routine libraries and services the host offers, large tables indexed. All problems
// are collected (with file:line:col) rather than stopping at the first.

import { readFileSync } from 'node:fs';
import type { CalloutRoutine, CalloutServices } from './callouts.js';
import type { MappingProblem, SourcePos } from './errors.js';
import { parseMappingFile } from './file-parse.js';
import type { FileReader, LogicalLine, RawEntry, RawTable } from './file-parse.js';
import { Matcher } from './match.js';
import { compilePattern } from './pattern.js';
import type { CompiledPattern } from './pattern.js';
import { INDEX_MIN_ENTRIES, TableIndex } from './table-index.js';
import { compileTemplate } from './template.js';
import type { CompiledTemplate, Op } from './template.js';
import { ACCESS_OUTPUT_FLAGS, isAccessTable } from './access-tables.js';

export interface CompiledEntry {
  /** 0-based position in its table. */
  readonly index: number;
  readonly pattern: CompiledPattern;
  readonly matcher: Matcher;
  readonly template: CompiledTemplate;
  /** Where the entry's pattern starts. */
  readonly pos: SourcePos;
  /** Routine ops linked to their implementations. */
  readonly routines: ReadonlyMap<Op, CalloutRoutine>;
  /** The template cannot call out, directly or through sub-mappings (set after linking). */
  pure: boolean;
}

export interface CompiledTable {
  readonly name: string;
  readonly key: string;
  readonly pos: SourcePos;
  readonly entries: readonly CompiledEntry[];
  readonly index: TableIndex | null;
  /** No entry can call out, directly or through sub-mappings: evaluation needs no generator. */
  readonly pure: boolean;
}

export class MappingSet {
  constructor(
    readonly tables: ReadonlyMap<string, CompiledTable>,
    /** Warnings (a set is only built when there are no errors). */
    readonly warnings: readonly MappingProblem[],
    readonly services: CalloutServices,
  ) {}

  /** Looks a table up case-insensitively (spec §1.2). */
  table(name: string): CompiledTable | undefined {
    return this.tables.get(name) ?? this.tables.get(name.toUpperCase());
  }
}

export type LoadResult =
  | { readonly ok: true; readonly set: MappingSet; readonly problems: readonly MappingProblem[] }
  | { readonly ok: false; readonly problems: readonly MappingProblem[] };

/** Reads files from disk for parseMappingFile. */
export const diskReader: FileReader = (path) => {
  try {
    return { ok: true, text: readFileSync(path, 'utf8') };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, message: e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message };
  }
};

export interface CompileOptions {
  /** Routine libraries and lookup services the host offers; constructs needing absent ones are errors. */
  readonly services?: CalloutServices;
  /** Tables with at least this many entries get a candidate index (default INDEX_MIN_ENTRIES). */
  readonly indexThreshold?: number;
}

export interface LoadOptions extends CompileOptions {
  /** How files are read (default: from disk). */
  readonly read?: FileReader;
}

/** Loads and compiles a mappings file (and its includes). */
export function loadMappings(path: string, opts: LoadOptions = {}): LoadResult {
  return compileParsed(parseMappingFile(path, opts.read ?? diskReader), opts);
}

export interface TextOptions extends CompileOptions {
  /** Name used in positions (default "mappings"). */
  readonly name?: string;
  /** Files reachable by "<file" includes, by the path the include resolves to. */
  readonly includes?: Readonly<Record<string, string>>;
}

/** Compiles mappings text held in memory (tests, generated configurations). */
export function compileMappingsText(text: string, opts: TextOptions = {}): LoadResult {
  const name = opts.name ?? 'mappings';
  const includes = opts.includes ?? {};
  const read: FileReader = (path) => {
    if (path === name) return { ok: true, text };
    const inc = includes[path];
    return inc === undefined ? { ok: false, message: 'no such file' } : { ok: true, text: inc };
  };
  return compileParsed(parseMappingFile(name, read), opts);
}

function at(line: LogicalLine, base: number, offset: number): SourcePos {
  return line.pos(base + offset);
}

function walkOps(ops: readonly Op[], visit: (op: Op) => void): void {
  for (const op of ops) {
    visit(op);
    switch (op.k) {
      case 'sub':
        walkOps(op.arg, visit);
        break;
      case 'routine':
        walkOps(op.arg, visit);
        break;
      case 'domain':
        walkOps(op.domain, visit);
        walkOps(op.attribute, visit);
        break;
      case 'general':
        walkOps(op.key, visit);
        break;
      case 'url':
        walkOps(op.url, visit);
        break;
      default:
        break;
    }
  }
}

function compileParsed(parsed: { tables: RawTable[]; problems: MappingProblem[] }, opts: CompileOptions): LoadResult {
  const services = opts.services ?? {};
  const threshold = opts.indexThreshold ?? INDEX_MIN_ENTRIES;
  const problems: MappingProblem[] = [...parsed.problems];
  const names = new Set(parsed.tables.map((t) => t.key));
  const built: { raw: RawTable; entries: CompiledEntry[] }[] = [];
  const push = (pos: SourcePos, code: string, message: string, severity: 'error' | 'warning' = 'error'): void => {
    problems.push({ ...pos, code, message, severity });
  };

  for (const raw of parsed.tables) {
    const entries: CompiledEntry[] = [];
    const access = isAccessTable(raw.key);
    raw.entries.forEach((e: RawEntry) => {
      const pr = compilePattern(e.pattern);
      for (const p of pr.problems) push(at(e.line, e.patternOffset, p.offset), p.code, p.message, p.severity);
      const tr = compileTemplate(e.template);
      for (const p of tr.problems) push(at(e.line, e.templateOffset, p.offset), p.code, p.message, p.severity);
      if (pr.pattern === null || tr.template === null) return;
      const routines = new Map<Op, CalloutRoutine>();
      const tplPos = (offset: number): SourcePos => at(e.line, e.templateOffset, offset);
      walkOps(tr.template.ops, (op) => {
        switch (op.k) {
          case 'routine': {
            const lib = services.libraries?.find((l) => l.claims(op.image));
            if (lib === undefined) {
              const known = (services.libraries ?? []).map((l) => l.name);
              push(
                tplPos(op.offset),
                'unknown-image',
                `callout image "${op.image}" is not available: known images are ${known.length ? known.join(', ') : 'none in this configuration'} — the check would never run`,
              );
              return;
            }
            const routine = lib.routine(op.routine);
            if (routine === undefined) {
              push(tplPos(op.offset), 'unknown-routine', `${lib.name} has no routine "${op.routine}" (it has: ${lib.routineNames().join(', ')})`);
              return;
            }
            const bad = routine.validate?.(op.argSource);
            if (bad !== undefined) push(tplPos(op.offset), 'bad-callout-argument', `${lib.name},${op.routine}: ${bad}`);
            routines.set(op, routine);
            return;
          }
          case 'sub':
            if (!names.has(op.table)) {
              push(
                tplPos(op.offset),
                'missing-sub-table',
                `sub-mapping $|${op.table};...| names a table that is not defined — this entry will always fail`,
                'warning',
              );
            }
            return;
          case 'domain':
            if (!services.directory) push(tplPos(op.offset), 'no-directory', '$}domain,attribute{ needs the directory, which this configuration does not provide');
            return;
          case 'general':
            if (!services.general) push(tplPos(op.offset), 'no-general-database', '${key} needs the general text database, which this configuration does not provide');
            return;
          case 'url':
            if (!services.url) push(tplPos(op.offset), 'no-url-resolver', '$]url[ URL lookups are not available in this configuration');
            return;
          case 'sequence':
            if (!services.sequence) push(tplPos(op.offset), 'no-sequence-store', '$#file# sequence numbers are not available in this configuration');
            return;
          case 'flag':
            if (access && !ACCESS_OUTPUT_FLAGS.includes(op.letter)) {
              push(tplPos(op.offset), 'unknown-access-flag', `$${op.letter} is not an access-mapping flag (allowed: ${ACCESS_OUTPUT_FLAGS.split('').map((f) => '$' + f).join(' ')})`);
            }
            return;
          default:
            return;
        }
      });
      entries.push({
        index: entries.length,
        pattern: pr.pattern,
        matcher: new Matcher(pr.pattern),
        template: tr.template,
        pos: e.patternPos,
        routines,
        pure: false,
      });
    });
    built.push({ raw, entries });
  }

  const pure = purity(built.map((b) => [b.raw.key, b.entries]));
  for (const { entries } of built) {
    for (const e of entries) e.pure = !e.template.callsOut && e.template.subTables.every((t) => pure.has(t) || !names.has(t));
  }
  const tables = new Map<string, CompiledTable>();
  for (const { raw, entries } of built) {
    const index = entries.length >= threshold ? new TableIndex(entries.map((x) => x.pattern)) : null;
    tables.set(raw.key, { name: raw.name, key: raw.key, pos: raw.pos, entries, index, pure: pure.has(raw.key) });
  }

  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) return { ok: false, problems: sortProblems(problems) };
  const warnings = sortProblems(problems);
  return { ok: true, set: new MappingSet(tables, warnings, services), problems: warnings };
}

/** Tables none of whose entries can call out, directly or through the tables they sub-map to. */
function purity(tables: readonly (readonly [string, readonly CompiledEntry[]])[]): Set<string> {
  const pure = new Set(tables.filter(([, es]) => es.every((e) => !e.template.callsOut)).map(([k]) => k));
  for (let changed = true; changed; ) {
    changed = false;
    for (const [key, entries] of tables) {
      if (pure.has(key) && entries.some((e) => e.template.subTables.some((t) => !pure.has(t) && tables.some(([k]) => k === t)))) {
        pure.delete(key);
        changed = true;
      }
    }
  }
  return pure;
}

/** Orders problems by file (in order of first mention), line and column. */
function sortProblems(list: MappingProblem[]): MappingProblem[] {
  const rank = new Map<string, number>();
  for (const p of list) if (!rank.has(p.file)) rank.set(p.file, rank.size);
  return [...list].sort((a, b) => (rank.get(a.file) as number) - (rank.get(b.file) as number) || a.line - b.line || a.col - b.col);
}
