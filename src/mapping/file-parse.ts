// Reads the mappings file format of spec §1 into tables of raw entries, without compiling
// patterns or templates:
//   - `!` in column 1 starts a comment line; a blank line separates tables;
//   - a line starting with a letter names a table; an indented line is an entry
//     "pattern<whitespace>template", where "$ " and "$<TAB>" quote whitespace;
//   - a physical line ending in an unquoted "\" continues onto the next, whose leading
//     whitespace is dropped;
//   - "<file" in column 1 splices in another file (nested at most 3 deep, relative paths
//     resolved against the including file's folder).
// File access goes through the `read` function the caller supplies, so this module does no I/O.

import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { MappingProblem, SourcePos } from './errors.js';

export const LIMITS = {
  pattern: 256,
  template: 1024,
  line: 4096,
  includeDepth: 3,
} as const;

export type ReadResult = { ok: true; text: string } | { ok: false; message: string };
export type FileReader = (path: string) => ReadResult;

/** A position-preserving piece of a logical line. */
interface Segment {
  readonly offset: number; // where it starts in the logical text
  readonly line: number;
  readonly col: number; // column of the logical text's character at `offset`
}

/** A line after continuation joining, able to map offsets back to file positions. */
export class LogicalLine {
  constructor(
    readonly file: string,
    readonly text: string,
    private readonly segments: readonly Segment[],
  ) {}

  get line(): number {
    return (this.segments[0] as Segment).line;
  }

  pos(offset: number): SourcePos {
    let seg = this.segments[0] as Segment;
    for (const s of this.segments) {
      if (s.offset <= offset) seg = s;
      else break;
    }
    return { file: this.file, line: seg.line, col: seg.col + (offset - seg.offset) };
  }
}

export interface RawEntry {
  readonly pattern: string;
  readonly template: string;
  readonly patternPos: SourcePos;
  readonly templatePos: SourcePos;
  /** Maps an offset inside the pattern or template text to a file position. */
  readonly line: LogicalLine;
  readonly patternOffset: number;
  readonly templateOffset: number;
}

export interface RawTable {
  readonly name: string; // as written
  readonly key: string; // upper-cased lookup key
  readonly pos: SourcePos;
  readonly entries: RawEntry[];
}

export interface ParsedFile {
  readonly tables: RawTable[];
  readonly problems: MappingProblem[];
}

function prob(pos: SourcePos, code: string, message: string, severity: 'error' | 'warning' = 'error'): MappingProblem {
  return { ...pos, severity, code, message };
}

/**
 * Splits text into physical lines (LF or CRLF) and joins continuations (§1.4). Shared by every
 * configuration file written in the Messaging Server style (mappings, imta.cnf).
 */
export function logicalLines(file: string, text: string, problems: MappingProblem[]): LogicalLine[] {
  const physical = text.replace(/^\uFEFF/, '').split('\n');
  if (physical.length > 0 && physical[physical.length - 1] === '') physical.pop();
  const out: LogicalLine[] = [];
  let buf = '';
  let segs: Segment[] = [];
  for (let k = 0; k < physical.length; k++) {
    let raw = physical[k] as string;
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    const lineNo = k + 1;
    let piece = raw;
    let col = 1;
    if (segs.length > 0) {
      // A continuation line loses its leading whitespace (spec §1.4).
      const lead = raw.length - raw.trimStart().length;
      piece = raw.slice(lead);
      col = lead + 1;
    }
    segs.push({ offset: buf.length, line: lineNo, col });
    if (continues(piece)) {
      buf += piece.slice(0, -1);
      if (k === physical.length - 1) {
        problems.push(prob({ file, line: lineNo, col: raw.length }, 'continuation-at-eof', 'the last line ends with "\\" but nothing follows to continue it'));
        out.push(new LogicalLine(file, buf, segs));
      }
      continue;
    }
    if (/\\[ \t]+$/.test(piece) && !/\$\\[ \t]+$/.test(piece)) {
      problems.push(
        prob(
          { file, line: lineNo, col: piece.trimEnd().length + col - 1 },
          'space-after-backslash',
          'whitespace after a trailing "\\": the line is not continued — remove the whitespace if you meant a continuation',
          'warning',
        ),
      );
    }
    buf += piece;
    out.push(new LogicalLine(file, buf, segs));
    buf = '';
    segs = [];
  }
  return out;
}

/** A trailing "\" continues the line unless it is the `$\` metacharacter (odd run of "$" before it). */
function continues(piece: string): boolean {
  if (!piece.endsWith('\\')) return false;
  let dollars = 0;
  for (let i = piece.length - 2; i >= 0 && piece[i] === '$'; i--) dollars++;
  return dollars % 2 === 0;
}

/** Splits an entry line into whitespace-separated tokens; "$x" pairs never split. */
function tokenize(text: string, start: number): { text: string; offset: number }[] {
  const tokens: { text: string; offset: number }[] = [];
  let i = start;
  while (i < text.length) {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= text.length) break;
    const begin = i;
    while (i < text.length && text[i] !== ' ' && text[i] !== '\t') {
      i += text[i] === '$' && i + 1 < text.length ? 2 : 1;
    }
    tokens.push({ text: text.slice(begin, i), offset: begin });
  }
  return tokens;
}

const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** 'skip': entries of a table that was refused (e.g. a duplicate) are ignored until the next table. */
type State = 'none' | 'afterName' | 'inEntries' | 'closed' | 'skip';

/**
 * Parses a mappings file and everything it includes. `displayPath` is how the file is named in
 * messages (usually as the administrator gave it).
 */
export function parseMappingFile(displayPath: string, read: FileReader): ParsedFile {
  const problems: MappingProblem[] = [];
  const tables: RawTable[] = [];
  const byKey = new Map<string, RawTable>();
  let current: RawTable | null = null;
  let state: State = 'none';
  let closedName = '';

  const visit = (path: string, depth: number, chain: readonly string[], from: SourcePos | null): void => {
    const res = read(path);
    if (!res.ok) {
      problems.push(prob(from ?? { file: path, line: 1, col: 1 }, from ? 'include-unreadable' : 'file-unreadable', `cannot read ${path}: ${res.message}`));
      return;
    }
    for (const ll of logicalLines(path, res.text, problems)) handleLine(ll, path, depth, chain);
  };

  const handleLine = (ll: LogicalLine, path: string, depth: number, chain: readonly string[]): void => {
    const text = ll.text;
    if (text.length > LIMITS.line) {
      problems.push(prob(ll.pos(LIMITS.line), 'line-too-long', `line is ${text.length} characters long; the limit is ${LIMITS.line}`));
      return;
    }
    if (text.trim() === '') {
      if (state === 'skip') state = 'none';
      if (state === 'inEntries') {
        state = 'closed';
        closedName = current?.name ?? '';
      }
      return;
    }
    const c = text[0] as string;
    if (c === '!') return;
    if (c === '<') {
      const spec = text.slice(1).trim();
      const at = ll.pos(0);
      if (spec === '') {
        problems.push(prob(at, 'include-empty', 'include line "<" names no file — write <path/to/file'));
        return;
      }
      if (depth >= LIMITS.includeDepth) {
        problems.push(prob(at, 'include-too-deep', `include of ${spec} nests more than ${LIMITS.includeDepth} levels deep — flatten the includes`));
        return;
      }
      // Relative includes resolve against the including file's folder; joining (not resolving)
      // keeps messages in the form the administrator wrote.
      const target = isAbsolute(spec) ? spec : join(dirname(path), spec);
      const identity = resolve(target);
      if (chain.includes(identity)) {
        problems.push(prob(at, 'include-cycle', `include of ${spec} would include ${target} again (include cycle)`));
        return;
      }
      visit(target, depth + 1, [...chain, identity], at);
      return;
    }
    if (/[A-Za-z]/.test(c)) {
      const name = text.trim();
      const at = ll.pos(0);
      if (!TABLE_NAME.test(name)) {
        const looksLikeEntry = /[\s|*%$@]/.test(name);
        problems.push(
          prob(
            at,
            'bad-table-name',
            looksLikeEntry
              ? `"${name}" starts in column 1, so it is read as a table name, but it is not one — indent entries with a space or tab`
              : `"${name}" is not a valid table name (letters, digits, "_", "-" and "." only)`,
          ),
        );
        // Leave the state alone: an unindented entry in the middle of a table should not make
        // the entries after it look orphaned.
        return;
      }
      const key = name.toUpperCase();
      const dup = byKey.get(key);
      if (dup) {
        problems.push(prob(at, 'duplicate-table', `table ${name} is already defined at ${dup.pos.file}:${dup.pos.line} (table names are case-insensitive)`));
        current = null;
        state = 'skip';
        return;
      }
      current = { name, key, pos: at, entries: [] };
      tables.push(current);
      byKey.set(key, current);
      state = 'afterName';
      return;
    }
    if (c === ' ' || c === '\t') {
      const toks = tokenize(text, 0);
      const first = toks[0] as { text: string; offset: number };
      if (state === 'skip') return;
      if (state === 'none' || current === null) {
        problems.push(prob(ll.pos(first.offset), 'entry-outside-table', 'entry line before any table name — put a table name (in column 1) above it'));
        return;
      }
      if (state === 'closed') {
        problems.push(
          prob(
            ll.pos(first.offset),
            'entry-after-blank',
            `entry after the blank line that ended table ${closedName} — remove the blank line, or start a new table`,
          ),
        );
        return;
      }
      if (toks.length > 2) {
        const extra = toks[2] as { text: string; offset: number };
        problems.push(
          prob(ll.pos(extra.offset), 'extra-text', `unexpected text "${extra.text}" after the template — quote spaces inside a template as "$ "`),
        );
        return;
      }
      const tpl = toks[1];
      const pattern = first.text;
      const template = tpl?.text ?? '';
      if (pattern.length > LIMITS.pattern) {
        problems.push(prob(ll.pos(first.offset), 'pattern-too-long', `pattern is ${pattern.length} characters long; the limit is ${LIMITS.pattern}`));
        return;
      }
      if (template.length > LIMITS.template) {
        problems.push(prob(ll.pos(tpl?.offset ?? 0), 'template-too-long', `template is ${template.length} characters long; the limit is ${LIMITS.template}`));
        return;
      }
      const templateOffset = tpl?.offset ?? text.length;
      current.entries.push({
        pattern,
        template,
        patternPos: ll.pos(first.offset),
        templatePos: ll.pos(templateOffset),
        line: ll,
        patternOffset: first.offset,
        templateOffset,
      });
      state = 'inEntries';
      return;
    }
    problems.push(
      prob(ll.pos(0), 'unrecognised-line', `unrecognised line starting with "${c}" — table names start with a letter, entries with a space or tab, comments with "!"`),
    );
  };

  visit(displayPath, 0, [resolve(displayPath)], null);
  return { tables, problems };
}
