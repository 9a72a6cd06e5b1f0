// `portcullis test mapping` and `portcullis test match`: the equivalents of `imsimta test -mapping`
// and `imsimta test -match` (spec §12.1, §12.2), for administrators and for scripts (--json).

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { dirname, resolve } from 'node:path';
import { readOptions } from '../config/msgconf.js';
import type { MeterMaidOptions } from '../config/types.js';
import { MeterMaid } from '../throttle/service.js';
import type { CliIO, CommandSpec } from './command.js';
import { EXIT, say } from './command.js';
import {
  accessResult,
  compilePattern,
  describePattern,
  flagDisplay,
  formatProblem,
  loadMappings,
  mapAsync,
  Matcher,
  parseFlagLetters,
} from '../mapping/index.js';
import type { CalloutServices, MappingResult, MappingSet } from '../mapping/index.js';
import { foldAscii } from '../mapping/fold.js';
import { parseDomainSpec, StaticDirectory } from '../mapping/services/static-directory.js';
import type { HostedDomain } from '../mapping/services/static-directory.js';
import { GeneralTextDatabase } from '../mapping/services/general-text-db.js';
import { FileSequenceStore } from '../mapping/services/sequence-file.js';
import { formatPos } from '../mapping/errors.js';

/** Each line of a stream, CR stripped; blank lines skipped (an empty probe is rarely meant). */
async function* lines(input: Readable): AsyncGenerator<string> {
  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.trim() !== '') yield line;
  }
}

interface MappingCliOptions {
  mappings: string;
  table: string;
  flags?: string;
  json?: boolean;
  trace?: boolean;
  domain?: string[];
  general?: string;
  msgconf?: string;
}

function buildServices(io: CliIO, o: MappingCliOptions): CalloutServices | null {
  const domains: HostedDomain[] = [];
  for (const spec of o.domain ?? []) {
    const d = parseDomainSpec(spec);
    if (d === null) {
      say(io.stderr, `portcullis: --domain ${spec}: write a domain name, or alias=canonical`);
      return null;
    }
    domains.push(d);
  }
  let general: GeneralTextDatabase | undefined;
  if (o.general !== undefined) {
    try {
      general = GeneralTextDatabase.parse(readFileSync(o.general, 'utf8'));
    } catch (err) {
      say(io.stderr, `portcullis: --general ${o.general}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      return null;
    }
  }
  let tables: MeterMaidOptions | null = null;
  if (o.msgconf !== undefined) {
    let text: string;
    try {
      text = readFileSync(o.msgconf, 'utf8');
    } catch (err) {
      say(io.stderr, `portcullis: --msgconf ${o.msgconf}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      return null;
    }
    const r = readOptions(o.msgconf, text, { configDir: dirname(resolve(o.msgconf)) });
    for (const p of r.problems) say(io.stderr, formatProblem(p));
    if (r.options === null) return null;
    tables = r.options.metermaid;
  }
  // MeterMaid tables count in a private store for this run: probes given one per line on
  // standard input are successive hits.
  const meter = new MeterMaid({}, { embeddedOnly: true });
  if (tables !== null) meter.reconfigure(tables);
  return {
    libraries: [meter.library(tables)],
    directory: new StaticDirectory(domains),
    sequence: new FileSequenceStore(),
    ...(general ? { general } : {}),
  };
}

function jsonLine(r: MappingResult): string {
  const a = accessResult(r);
  return JSON.stringify({
    table: r.table,
    input: r.input,
    matched: r.matched,
    output: r.output,
    flags: a.flags,
    args: a.args,
    decision: a.decision,
    entry: r.entry ? formatPos(r.entry) : null,
  });
}

function humanBlock(r: MappingResult, trace: boolean): string[] {
  const out: string[] = [];
  if (trace && r.trace) {
    for (const t of r.trace) {
      const pad = '  '.repeat(t.depth);
      out.push(`${pad}${t.table} entry ${formatPos(t.entry)} matched "${t.input}": ${t.outcome}${t.outcome === 'applied' ? ` -> "${t.output}" ($${t.control})` : ''}`);
    }
  }
  out.push(`Input string:  ${r.input}`);
  if (!r.matched && r.flags === 0 && r.output === r.input) {
    out.push('Input string did not match any entry');
  } else {
    const a = accessResult(r);
    out.push(`Output string: ${r.output}`);
    out.push(`Output flags:  ${flagDisplay(r.flags)}`);
    const args = Object.entries(a.args);
    if (args.length > 0) out.push(`Arguments:     ${args.map(([k, v]) => `${k}=${v}`).join('  ')}`);
    if (r.entry) out.push(`Entry:         ${formatPos(r.entry)}`);
  }
  for (const d of r.diagnostics) out.push(`Note:          ${d.entry ? formatPos(d.entry) + ': ' : ''}${d.message}`);
  return out;
}

const testMapping: CommandSpec = {
  path: ['test', 'mapping'],
  summary: 'apply a mapping table to probe strings (like imsimta test -mapping)',
  args: '[probe...]',
  options: [
    { flags: '--mappings <file>', description: 'the mappings file to load', required: true },
    { flags: '--table <name>', description: 'the table to apply (case-insensitive)', required: true },
    { flags: '--flags <letters>', description: 'input flags for $:x / $;x tests, e.g. A for the Dispatcher probe of PORT_ACCESS' },
    { flags: '--json', description: 'print one JSON object per probe per line' },
    { flags: '--trace', description: 'show every entry tried (human output)' },
    { flags: '--domain <name>', description: 'a hosted domain for $}domain,attribute{ lookups (repeatable; alias=canonical for an alias domain)', repeatable: true },
    { flags: '--general <file>', description: 'general text database for ${key} lookups ("key value" lines)' },
    { flags: '--msgconf <file>', description: 'a msg.conf whose metermaid.table.* define the MeterMaid tables (counted in memory for this run)' },
  ],
  help: [
    'Probes come from the arguments, or one per line on standard input when none are given.',
    'JSON fields: table, input, matched, output, flags (letters, sorted), args (by flag letter),',
    'decision (allow|reject|none) and entry (file:line of the deciding entry).',
    'Exit status: 0 after mapping every probe; 2 when the file has errors or the table is missing.',
  ].join('\n'),
  async run(io, probes, raw) {
    const o = raw as unknown as MappingCliOptions;
    const flags = parseFlagLetters(o.flags ?? '');
    if (flags === null) {
      say(io.stderr, `portcullis: --flags ${o.flags ?? ''}: use letters only, e.g. --flags AT`);
      return EXIT.usage;
    }
    const services = buildServices(io, o);
    if (services === null) return EXIT.usage;
    const loaded = loadMappings(o.mappings, { services });
    for (const p of loaded.problems) say(io.stderr, formatProblem(p));
    if (!loaded.ok) return EXIT.usage;
    const set: MappingSet = loaded.set;
    const table = set.table(o.table);
    if (table === undefined) {
      const names = [...set.tables.values()].map((t) => t.name);
      say(io.stderr, `${o.mappings}: no table named ${o.table} (tables: ${names.length ? names.join(', ') : 'none'})`);
      return EXIT.usage;
    }
    const one = async (probe: string): Promise<void> => {
      const r = await mapAsync(set, table.key, probe, { flags, trace: o.trace === true });
      if (o.json) say(io.stdout, jsonLine(r));
      else {
        for (const l of humanBlock(r, o.trace === true)) say(io.stdout, l);
        say(io.stdout, '');
      }
    };
    if (probes.length > 0) for (const p of probes) await one(p);
    else for await (const p of lines(io.stdin)) await one(p);
    return EXIT.ok;
  },
};

interface MatchCliOptions {
  pattern: string;
  input?: string;
  json?: boolean;
}

const testMatch: CommandSpec = {
  path: ['test', 'match'],
  summary: 'match one pattern against targets and show the captures (like imsimta test -match)',
  options: [
    { flags: '--pattern <pattern>', description: 'the pattern (left-hand side of a mapping entry)', required: true },
    { flags: '--input <target>', description: 'the string to match; without it, one target per line on standard input' },
    { flags: '--json', description: 'print {"matched":…,"captures":[…]} per target' },
  ],
  help: 'Captures are numbered from 0, left to right, as $0, $1, ... in templates (spec §2.7).',
  async run(io, _args, raw) {
    const o = raw as unknown as MatchCliOptions;
    const compiled = compilePattern(o.pattern);
    for (const p of compiled.problems) {
      say(io.stderr, `pattern:1:${p.offset + 1}: ${p.severity === 'warning' ? 'warning: ' : ''}${p.message}`);
    }
    if (compiled.pattern === null) return EXIT.usage;
    const matcher = new Matcher(compiled.pattern);
    if (!o.json) {
      say(io.stdout, `Pattern: ${o.pattern}`);
      for (const l of describePattern(compiled.pattern)) say(io.stdout, l);
    }
    const one = (target: string): void => {
      const m = matcher.match(foldAscii(target), target);
      if (o.json) {
        say(io.stdout, JSON.stringify({ matched: m.captures !== null, captures: m.captures ?? [] }));
        return;
      }
      say(io.stdout, `Target: ${target}`);
      if (m.captures === null) say(io.stdout, m.exhausted ? 'No match (search limit reached).' : 'No match.');
      else {
        say(io.stdout, 'Match.');
        m.captures.forEach((c, k) => say(io.stdout, `${k} - ${c}`));
      }
    };
    if (o.input !== undefined) one(o.input);
    else for await (const t of lines(io.stdin)) one(t);
    return EXIT.ok;
  },
};

export const TEST_COMMANDS: readonly CommandSpec[] = [testMapping, testMatch];
