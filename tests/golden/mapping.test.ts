// Runs the golden conformance suite of the mapping engine: every tests/golden/mapping/*.cases file
// against the mappings file its header names (spec §15). Each case is one test whose name carries
// the spec section and row, and every assertion message repeats them (with the .cases line and a
// trace of the entries tried), so a failure points straight at the row of the spec.
//
// The .cases format is specified in full at the top of cases-file.ts. In short: blank-line
// separated blocks of `key: value` lines, `#` comments, `""` for an empty value; a header block
// (`map:`, `domain:`), then cases (`case:`, `ref:`, `table:`, `input:`, `flags:`, `callout:`,
// `random:`, `recipient:` or `pending:`) with `expect.*` lines. Flag arguments are written one per
// line as `expect.arg.N: Relaying not allowed`, `expect.arg.D: 30` (not as one K=V line, so texts
// may contain anything); `expect.args: ""` asserts there are none. Callouts and random draws are
// scripted per case and must happen exactly as scripted. Pending cases are registered as todos.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { accessResult, compilePattern, diskReader, formatProblem, loadMappings, Matcher, mapSync, flagString, parseFlagLetters } from '../../src/mapping/index.js';
import type { LoadResult, MappingResult, TraceStep } from '../../src/mapping/index.js';
import { foldAscii } from '../../src/mapping/fold.js';
import { accessVerdict, formatReply } from '../../src/policy/access-reply.js';
import type { AccessTable } from '../../src/policy/verdict.js';
import { CasesFormatError, parseCasesFile } from './cases-file.js';
import type { Case, CasesFile, MappingCase, PatternCase } from './cases-file.js';
import { Script, scriptedServices } from './scripted-services.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const CASES_DIR = join(HERE, 'mapping');
/** Spec §15 numbers its rows 1–87; every one must have a case (run or pending). */
const SPEC_ROWS = 87;
/** Rows a .cases file cannot express, each run by a test file of its own in tests/golden/. */
const ROWS_ELSEWHERE: ReadonlyMap<number, string> = new Map([[50, 'row-50-metermaid-decay.test.ts']]);

const ACCESS_TABLES: readonly AccessTable[] = ['PORT_ACCESS', 'FROM_ACCESS', 'ORIG_SEND_ACCESS', 'SEND_ACCESS', 'ORIG_MAIL_ACCESS', 'MAIL_ACCESS'];
const RECIPIENT_TABLES: readonly AccessTable[] = ['ORIG_SEND_ACCESS', 'SEND_ACCESS', 'ORIG_MAIL_ACCESS', 'MAIL_ACCESS'];

/** Reads paths relative to the repository root, so positions read "tests/golden/..." from any cwd. */
const fromRoot = (path: string): ReturnType<typeof diskReader> => diskReader(resolve(ROOT, path));

function label(c: Case): string {
  return `${c.ref} ${c.row !== null ? 'row' : 'case'} ${c.id} (${basename(c.file)}:${c.line})`;
}

function shorten(s: string, max = 72): string {
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

function testName(c: Case): string {
  const head = `${c.ref} ${c.row !== null ? 'row' : 'case'} ${c.id}`;
  switch (c.kind) {
    case 'pattern':
      return `${head} ${c.pattern} ~ ${shorten(c.target)}`;
    case 'mapping':
      return `${head} ${c.table}${c.flags ? ` [${c.flags}]` : ''} ${shorten(c.input)}`;
    case 'pending':
      return `${head}${c.table ? ' ' + c.table : ''}${c.input ? ' ' + shorten(c.input) : ''}`;
  }
}

function loadMap(file: CasesFile, script: Script | null): { path: string; loaded: LoadResult } {
  // file.file is relative to the repository root already.
  const path = join(dirname(file.file), file.header.map as string);
  return { path, loaded: loadMappings(path, { services: scriptedServices(script, file.header.domains), read: fromRoot }) };
}

function formatTrace(steps: readonly TraceStep[] | null): string {
  if (steps === null || steps.length === 0) return '\n  (no entry matched)';
  return steps
    .map((s) => `\n  ${'  '.repeat(s.depth)}${s.table} line ${s.entry.line}: ${s.pattern}  ${s.template}  on ${JSON.stringify(s.input)} -> ${s.outcome} ${JSON.stringify(s.output)} ${s.control}`)
    .join('');
}

function entryNumber(r: MappingResult, loaded: LoadResult): number | null {
  if (r.entry === null || !loaded.ok) return null;
  const at = r.entry;
  const k = loaded.set.table(r.table)?.entries.findIndex((e) => e.pos.file === at.file && e.pos.line === at.line && e.pos.col === at.col) ?? -1;
  return k < 0 ? null : k + 1;
}

function runPatternCase(c: PatternCase): void {
  const where = label(c);
  const compiled = compilePattern(c.pattern);
  assert.deepEqual(compiled.problems, [], `${where}: pattern ${c.pattern} has problems`);
  assert.ok(compiled.pattern !== null, `${where}: pattern ${c.pattern} did not compile`);
  const got = new Matcher(compiled.pattern).match(foldAscii(c.target), c.target);
  assert.equal(got.exhausted, false, `${where}: matcher gave up`);
  assert.equal(got.captures !== null, c.matched, `${where}: expect.matched`);
  if (c.captures !== null) assert.deepEqual(got.captures, c.captures, `${where}: expect.cap.N (the saved wildcards $0, $1, ...)`);
}

function runMappingCase(file: CasesFile, c: MappingCase): void {
  const where = label(c);
  const script = new Script(c.callouts, c.random);
  const { path, loaded } = loadMap(file, script);
  if (!loaded.ok) assert.fail(`${where}: ${path} does not compile:\n${loaded.problems.map(formatProblem).join('\n')}`);
  const table = loaded.set.table(c.table);
  assert.ok(table !== undefined, `${where}: ${path} has no table ${c.table}`);
  const r = mapSync(loaded.set, c.table, c.input, { flags: parseFlagLetters(c.flags) ?? 0, random: () => script.random(), trace: true });
  const trace = formatTrace(r.trace);
  const what = (key: string): string => `${where}: ${key}; the mapping went:${trace}`;

  assert.deepEqual([...script.departures, ...script.leftovers()], [], what('callout/random script'));
  assert.deepEqual(r.diagnostics, [], what('engine diagnostics'));
  const e = c.expect;
  if (e.matched !== undefined) assert.equal(r.matched, e.matched, what('expect.matched'));
  if (e.output !== undefined) assert.equal(r.output, e.output, what('expect.output'));
  if (e.flags !== undefined) assert.equal(flagString(r.flags), e.flags, what('expect.flags'));
  if (e.entry !== undefined) assert.equal(entryNumber(r, loaded), e.entry, what('expect.entry'));
  if (e.steps !== undefined) assert.equal(r.trace?.filter((s) => s.depth === 0).length, e.steps, what('expect.steps'));
  const acc = accessResult(r);
  if (e.args !== undefined) assert.deepEqual({ ...acc.args }, e.args, what('expect.arg.X'));
  if (e.decision !== undefined) assert.equal(acc.decision, e.decision, what('expect.decision'));
  if (e.verdict === undefined && e.close === undefined && e.reply === undefined) return;

  const key = table.key as AccessTable;
  assert.ok(ACCESS_TABLES.includes(key), `${where}: expect.verdict/close/reply need an access table with replies, not ${table.key}`);
  const recipient = c.recipient ?? (RECIPIENT_TABLES.includes(key) ? c.input.slice(c.input.lastIndexOf('|') + 1) : undefined);
  const v = accessVerdict(key, acc, recipient === undefined ? {} : { recipient });
  if (e.verdict !== undefined) assert.equal(v.kind, e.verdict, what('expect.verdict'));
  if (e.close !== undefined) assert.equal(v.kind === 'reject' && v.close, e.close, what('expect.close'));
  if (e.reply !== undefined) {
    assert.equal(v.kind, 'reject', what('expect.reply (a reply needs a rejection)'));
    if (v.kind === 'reject') assert.equal(formatReply(v.reply, v.raw), e.reply.map((l) => l + '\r\n').join(''), what('expect.reply'));
  }
}

function register(file: CasesFile): void {
  const name = basename(file.file);
  void describe(name, () => {
    if (file.header.map !== null) {
      void test(`${file.header.map} compiles without problems`, () => {
        const { path, loaded } = loadMap(file, null);
        assert.deepEqual(loaded.problems.map(formatProblem), [], `${path} (used by ${name})`);
        assert.ok(loaded.ok);
      });
    }
    for (const c of file.cases) {
      switch (c.kind) {
        case 'pending':
          void test(testName(c), { todo: `pending: ${c.reason}` });
          break;
        case 'pattern':
          void test(testName(c), () => runPatternCase(c));
          break;
        case 'mapping':
          void test(testName(c), () => runMappingCase(file, c));
          break;
      }
    }
  });
}

const files = readdirSync(CASES_DIR)
  .filter((f) => f.endsWith('.cases'))
  .sort();
const parsed: CasesFile[] = [];
for (const f of files) {
  const path = join(CASES_DIR, f);
  try {
    parsed.push(parseCasesFile(relative(ROOT, path), readFileSync(path, 'utf8')));
  } catch (err) {
    if (!(err instanceof CasesFormatError)) throw err;
    void test(`${f} is well-formed`, () => {
      throw err;
    });
  }
}
parsed.forEach(register);

void test('§15 every worked-example row 1–87 has a case', () => {
  assert.ok(files.length > 0, `no .cases files in ${CASES_DIR}`);
  for (const [row, file] of ROWS_ELSEWHERE) assert.ok(existsSync(join(HERE, file)), `row ${row} is said to be covered by ${file}, which does not exist`);
  const covered = new Set([...parsed.flatMap((f) => f.cases.map((c) => c.row)), ...ROWS_ELSEWHERE.keys()]);
  const missing = Array.from({ length: SPEC_ROWS }, (_, k) => k + 1).filter((row) => !covered.has(row));
  assert.deepEqual(missing, [], 'spec rows without a case');
});
