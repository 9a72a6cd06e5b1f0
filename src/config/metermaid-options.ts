// The MeterMaid table family of msg.conf (spec §7.4): `metermaid.table.NAME.SUBOPTION = value`,
// one group of keys per table, NAME chosen by the administrator. The sub-options share the option
// parser of options.ts, so values and errors look like every other option's.

import type { SourcePos } from '../mapping/errors.js';
import type { TableSpec } from '../throttle/types.js';
import type { MsgConfEntry } from './msgconf.js';
import { editDistance, parseValue } from './options.js';
import type { OptionDef, ParsedValue } from './options.js';
import type { ConfigProblem } from './types.js';

export const TABLE_PREFIX = 'metermaid.table.';

const oneOf =
  (what: string, allowed: readonly string[]) =>
  (v: string): string | undefined =>
    allowed.includes(v.toLowerCase()) ? undefined : `"${v}" is not a ${what}: ${allowed.join(' or ')}`;

/** Sub-options; `key` is the part after NAME. */
export const TABLE_OPTIONS: readonly OptionDef[] = [
  {
    key: 'type',
    type: {
      kind: 'string',
      check: (v) => (v.toLowerCase() === 'greylisting' ? 'greylisting tables are not available yet (they come with greylisting)' : oneOf('table type', ['throttle', 'simple'])(v)),
    },
    default: 'throttle',
    description: 'throttle (counts hits against a quota) or simple (a key/value store)',
  },
  { key: 'data_type', type: { kind: 'string', check: oneOf('key type', ['string', 'ipv4']) }, default: 'string', description: 'Key type: string, or ipv4 (IP addresses; IPv6 is accepted too)' },
  { key: 'value_type', type: { kind: 'string', check: oneOf('value type', ['string', 'integer']) }, default: 'string', description: 'Simple tables: string or integer (adjust and test need integer)' },
  { key: 'quota', type: { kind: 'integer', min: 1, max: 1_000_000_000 }, default: '10', description: 'Hits allowed per quota_time (throttle tables)' },
  {
    key: 'quota_time',
    type: { kind: 'duration', min: 1, max: 30 * 86_400 },
    default: '60',
    description: 'Window length; for simple tables, how long an entry lives after its last change',
  },
  {
    key: 'options',
    type: { kind: 'list', item: (v) => (['penalize', 'nocase'].includes(v.toLowerCase()) ? undefined : `"${v}" is not a table option: penalize, nocase`) },
    default: '',
    description: 'Comma list: penalize (refused hits keep counting), nocase (keys compare case-insensitively)',
  },
  { key: 'max_entries', type: { kind: 'integer', min: 1, max: 100_000_000 }, default: '1000', description: 'Keys kept; past it the least recently used key is forgotten' },
  {
    key: 'on_error',
    type: { kind: 'string', check: oneOf('choice', ['allow', 'deny']) },
    default: 'allow',
    description: 'When the store cannot answer or a key does not fit: allow (fail open, as Messaging Server) or deny (refuse)',
  },
  {
    key: 'mode',
    type: { kind: 'string', check: oneOf('counting mode', ['decay', 'window']) },
    default: 'decay',
    description: 'decay (Messaging Server: a used-up quota frees up linearly over quota_time) or window (never more than quota hits in any quota_time)',
  },
  { key: 'storage', type: { kind: 'string' }, default: '', description: 'Accepted for Messaging Server compatibility; has no effect' },
];

/** Window mode keeps one timestamp per counted hit and key; this bounds its memory. */
export const MAX_WINDOW_QUOTA = 10_000;

const TABLE_NAME = /^[a-z0-9_-]+$/;

export interface TablesRead {
  readonly tables: ReadonlyMap<string, TableSpec>;
  readonly problems: readonly ConfigProblem[];
}

function problem(pos: SourcePos, code: string, message: string, severity: 'error' | 'warning' = 'error'): ConfigProblem {
  return { ...pos, severity, code, message };
}

/** True for keys of the table family (the caller hands those entries to readTables). */
export function isTableKey(key: string): boolean {
  return key.startsWith(TABLE_PREFIX);
}

/** Builds the table specs from the family's entries. */
export function readTables(entries: readonly MsgConfEntry[], configDir: string): TablesRead {
  const problems: ConfigProblem[] = [];
  const byTable = new Map<string, Map<string, MsgConfEntry>>();
  for (const e of entries) {
    const rest = e.key.slice(TABLE_PREFIX.length);
    const dot = rest.lastIndexOf('.');
    const name = dot === -1 ? '' : rest.slice(0, dot);
    const sub = dot === -1 ? rest : rest.slice(dot + 1);
    if (name === '' || !TABLE_NAME.test(name)) {
      problems.push(problem(e.keyPos, 'bad-table-name', `${e.rawKey}: write metermaid.table.NAME.OPTION with a NAME of letters, digits, "_" and "-"`));
      continue;
    }
    if (!TABLE_OPTIONS.some((d) => d.key === sub)) {
      const near = TABLE_OPTIONS.map((d) => d.key).find((k) => editDistance(k, sub) <= 2);
      problems.push(
        problem(e.keyPos, 'unknown-option', `unknown MeterMaid table option "${sub}" in ${e.rawKey}${near ? ` — did you mean metermaid.table.${name}.${near}?` : ''} (options: ${TABLE_OPTIONS.map((d) => d.key).join(', ')})`),
      );
      continue;
    }
    let t = byTable.get(name);
    if (t === undefined) byTable.set(name, (t = new Map<string, MsgConfEntry>()));
    t.set(sub, e);
  }

  const tables = new Map<string, TableSpec>();
  for (const [name, given] of byTable) {
    const values = new Map<string, unknown>();
    let failed = false;
    for (const def of TABLE_OPTIONS) {
      const e = given.get(def.key);
      const full: OptionDef = { ...def, key: `${TABLE_PREFIX}${name}.${def.key}` };
      const r = parseValue(full, e ? e.value : (def.default as string), configDir, e !== undefined);
      const at = (offset: number): SourcePos => (e ? { ...e.valuePos, col: e.valuePos.col + offset } : (given.values().next().value as MsgConfEntry).keyPos);
      if (!r.ok) {
        failed = true;
        for (const p of r.problems) problems.push(problem(at(p.offset), 'bad-value', p.message));
        continue;
      }
      for (const w of r.warnings) problems.push(problem(at(w.offset), 'value-warning', w.message, 'warning'));
      values.set(def.key, r.value);
    }
    if (failed) continue;
    const str = (k: string): string => (values.get(k) as ParsedValue['string']).toLowerCase();
    const opts = (values.get('options') as ParsedValue['list']).map((o) => o.toLowerCase());
    const spec: TableSpec = {
      name,
      type: str('type') as TableSpec['type'],
      dataType: str('data_type') as TableSpec['dataType'],
      valueType: str('value_type') as TableSpec['valueType'],
      quota: values.get('quota') as number,
      quotaTimeMs: (values.get('quota_time') as number) * 1000,
      penalize: opts.includes('penalize'),
      nocase: opts.includes('nocase'),
      maxEntries: values.get('max_entries') as number,
      onError: str('on_error') as TableSpec['onError'],
      mode: str('mode') as TableSpec['mode'],
    };
    const first = (given.values().next().value as MsgConfEntry).keyPos;
    if (spec.mode === 'window' && spec.quota > MAX_WINDOW_QUOTA) {
      problems.push(
        problem(
          given.get('quota')?.valuePos ?? first,
          'window-quota-too-large',
          `metermaid.table.${name}: mode = window keeps one timestamp per hit, so quota is limited to ${MAX_WINDOW_QUOTA}; use mode = decay for larger quotas`,
        ),
      );
      continue;
    }
    if (spec.type === 'simple' && given.has('quota')) {
      problems.push(problem(given.get('quota')?.keyPos ?? first, 'quota-on-simple-table', `metermaid.table.${name} is a simple table: quota has no effect there`, 'warning'));
    }
    if (given.has('storage')) {
      problems.push(problem(given.get('storage')?.keyPos ?? first, 'no-effect', `metermaid.table.${name}.storage has no effect in Portcullis`, 'warning'));
    }
    tables.set(name, spec);
  }
  return { tables, problems };
}

/** Lines for `portcullis check --options`. */
export function tableOptionReference(describe: (d: OptionDef) => string): string[] {
  const out: string[] = [`${TABLE_PREFIX}NAME.OPTION  (one group per MeterMaid table; NAME of letters, digits, "_" and "-")`];
  for (const d of TABLE_OPTIONS) {
    out.push(`    ${d.key}  (${describe(d)}; default: ${(d.default as string) === '' ? 'empty' : (d.default as string)})`);
    out.push(`        ${d.description}`);
  }
  return out;
}
