// msg.conf, in the style of Messaging Server's configutil file:
//   - one `key = value` per line; keys are case-insensitive; the value is trimmed and may be
//     wrapped in double quotes (which are removed; there are no escapes);
//   - a line whose first non-blank character is `!` or `#` is a comment; blank lines are ignored;
//   - a key given twice: the later value wins, with a warning at the second.
// parseMsgConfText does the syntax; readOptions checks every key and value against the schema
// (options.ts) and builds the typed Options. All problems carry file:line:col.

import type { SourcePos } from '../mapping/errors.js';
import { defaultText, hostPort, OPTION_SCHEMA, optionDef, parseDurationText, parseValue, suggestKey } from './options.js';
import type { OptionDef, OptionKind, ParsedValue } from './options.js';
import type { ConfigProblem, Options } from './types.js';
import { isTableKey, readTables } from './metermaid-options.js';

export interface MsgConfEntry {
  /** Lower-cased key. */
  readonly key: string;
  /** The key as written. */
  readonly rawKey: string;
  /** Trimmed value without its quotes. */
  readonly value: string;
  readonly keyPos: SourcePos;
  /** Position of the value's first character (inside the quotes); for an empty value, where it would start. */
  readonly valuePos: SourcePos;
}

export interface MsgConfSyntax {
  /** The effective entry of each key (the last one given), in file order of those entries. */
  readonly entries: readonly MsgConfEntry[];
  readonly problems: readonly ConfigProblem[];
}

const KEY = /^[A-Za-z0-9_.-]+$/;

function problem(pos: SourcePos, code: string, message: string, severity: 'error' | 'warning' = 'error'): ConfigProblem {
  return { ...pos, severity, code, message };
}

/** Reads msg.conf text into entries (no schema knowledge). */
export function parseMsgConfText(file: string, text: string): MsgConfSyntax {
  const problems: ConfigProblem[] = [];
  const byKey = new Map<string, MsgConfEntry>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((physical, index) => {
    const line = physical.endsWith('\r') ? physical.slice(0, -1) : physical;
    const lineNo = index + 1;
    const at = (col: number): SourcePos => ({ file, line: lineNo, col });
    const lead = line.length - line.trimStart().length;
    const first = line[lead];
    if (first === undefined || first === '!' || first === '#') return;
    const eq = line.indexOf('=');
    if (eq === -1) {
      problems.push(problem(at(lead + 1), 'malformed-line', `expected "key = value", found "${line.trim()}" — comment lines start with ! or #`));
      return;
    }
    const rawKey = line.slice(lead, eq).trimEnd();
    if (rawKey === '') {
      problems.push(problem(at(lead + 1), 'missing-key', 'a value without a key: write "key = value"'));
      return;
    }
    if (!KEY.test(rawKey)) {
      problems.push(problem(at(lead + 1), 'malformed-key', `"${rawKey}" is not an option name (letters, digits, ".", "_" and "-" only, no spaces)`));
      return;
    }
    const afterEq = line.slice(eq + 1);
    const valueLead = afterEq.length - afterEq.trimStart().length;
    let value = afterEq.trim();
    let valueCol = eq + 1 + valueLead + 1;
    if (value.startsWith('"')) {
      const close = value.indexOf('"', 1);
      if (close === -1) {
        problems.push(problem(at(valueCol), 'unterminated-quote', `the value of ${rawKey} opens a double quote that is never closed`));
        return;
      }
      if (close !== value.length - 1) {
        problems.push(problem(at(valueCol + close + 1), 'text-after-quote', `unexpected text after the closing quote of ${rawKey}'s value`));
        return;
      }
      value = value.slice(1, -1);
      valueCol += 1;
    }
    const key = rawKey.toLowerCase();
    const entry: MsgConfEntry = { key, rawKey, value, keyPos: at(lead + 1), valuePos: at(valueCol) };
    const earlier = byKey.get(key);
    if (earlier !== undefined) {
      problems.push(
        problem(entry.keyPos, 'duplicate-key', `${rawKey} is also set at line ${earlier.keyPos.line}; this later value wins — remove one of them`, 'warning'),
      );
      byKey.delete(key); // re-insert so the effective entry keeps file order
    }
    byKey.set(key, entry);
  });
  return { entries: [...byKey.values()], problems };
}

export interface ReadOptionsContext {
  /** Relative paths are resolved against this folder (the configuration directory). */
  readonly configDir: string;
}

export interface OptionsRead {
  /** Null when there are errors. */
  readonly options: Options | null;
  readonly problems: readonly ConfigProblem[];
  /** Where an option's value was written, or undefined when it has its default. */
  valuePos(key: string): SourcePos | undefined;
}

interface Resolved {
  readonly def: OptionDef;
  readonly value: unknown;
  readonly entry: MsgConfEntry | undefined;
}

/** Validates msg.conf text against the schema and builds the typed Options. */
export function readOptions(file: string, text: string, ctx: ReadOptionsContext): OptionsRead {
  const syntax = parseMsgConfText(file, text);
  const problems: ConfigProblem[] = [...syntax.problems];
  const given = new Map<string, MsgConfEntry>();
  const tableEntries: MsgConfEntry[] = [];
  for (const e of syntax.entries) {
    if (isTableKey(e.key)) {
      tableEntries.push(e);
      continue;
    }
    if (optionDef(e.key) === undefined) {
      const hint = suggestKey(e.key);
      problems.push(
        problem(e.keyPos, 'unknown-option', `unknown option ${e.rawKey}${hint ? ` — did you mean ${hint}?` : ''} (portcullis check --options lists them all)`),
      );
      continue;
    }
    given.set(e.key, e);
  }

  const resolved = new Map<string, Resolved>();
  let failed = false;
  for (const def of OPTION_SCHEMA) {
    const entry = given.get(def.key);
    const r = parseValue(def, entry ? entry.value : defaultText(def), ctx.configDir, entry !== undefined);
    const where = (offset: number): SourcePos => (entry ? { ...entry.valuePos, col: entry.valuePos.col + offset } : { file, line: 1, col: 1 });
    if (!r.ok) {
      failed = true;
      for (const p of r.problems) {
        const hint = entry && /\s[!#]/.test(entry.value) ? ' (comments go on lines of their own)' : '';
        problems.push(problem(where(p.offset), 'bad-value', entry ? p.message + hint : `the default of ${def.key} is invalid here: ${p.message}`));
      }
      continue;
    }
    for (const w of r.warnings) problems.push(problem(where(w.offset), 'value-warning', w.message, 'warning'));
    resolved.set(def.key, { def, value: r.value, entry });
  }

  const tables = readTables(tableEntries, ctx.configDir);
  problems.push(...tables.problems);

  const posOf = (key: string): SourcePos | undefined => given.get(key)?.valuePos;
  const get = <K extends OptionKind>(key: string, kind: K): ParsedValue[K] => {
    const r = resolved.get(key);
    if (r === undefined || r.def.type.kind !== kind) throw new Error(`internal: option ${key} is not a valid ${kind}`);
    return r.value as ParsedValue[K];
  };

  if (!failed) {
    // Both TLS files or neither.
    const cert = get('service.tls.certfile', 'path');
    const key = get('service.tls.keyfile', 'path');
    if ((cert === null) !== (key === null)) {
      const [set, missing] = cert !== null ? ['service.tls.certfile', 'service.tls.keyfile'] : ['service.tls.keyfile', 'service.tls.certfile'];
      problems.push(
        problem(posOf(set) ?? { file, line: 1, col: 1 }, 'tls-incomplete', `${set} is set but ${missing} is not: give both (TLS on) or neither (TLS off)`),
      );
      failed = true;
    }
    // Two services cannot share a port.
    const seen = new Map<number, string>();
    const ports = ['service.smtp.port', 'service.submit.port', 'service.smtps.port'];
    // Report a clash at an explicitly written value, the later one when both are written.
    const ordered = [...ports].sort((a, b) => (posOf(a)?.line ?? 0) - (posOf(b)?.line ?? 0));
    for (const k of ordered) {
      const p = get(k, 'integer');
      if (p === 0) continue;
      const other = seen.get(p);
      if (other !== undefined) {
        problems.push(problem(posOf(k) ?? { file, line: 1, col: 1 }, 'port-collision', `${k} and ${other} are both ${p}: each service needs its own port (0 disables one)`));
        failed = true;
      } else seen.set(p, k);
    }
  }

  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  if (failed || problems.some((p) => p.severity === 'error')) return { options: null, problems, valuePos: posOf };

  const ms = (key: string): number => get(key, 'duration') * 1000;
  const options: Options = {
    hostname: get('service.hostname', 'string'),
    listenAddresses: get('service.listenaddr', 'list'),
    ports: {
      smtp: get('service.smtp.port', 'integer'),
      submit: get('service.submit.port', 'integer'),
      smtps: get('service.smtps.port', 'integer'),
    },
    tls: { certFile: get('service.tls.certfile', 'path'), keyFile: get('service.tls.keyfile', 'path') },
    dataDir: get('store.datadir', 'path') as string,
    limits: {
      maxMessageSize: get('smtp.maxmessagesize', 'integer'),
      maxRecipients: get('smtp.maxrecipients', 'integer'),
      maxConnections: get('smtp.maxconnections', 'integer'),
      maxConnectionsPerIp: get('smtp.maxconnectionsperip', 'integer'),
      commandTimeoutMs: ms('smtp.commandtimeout'),
      dataTimeoutMs: ms('smtp.datatimeout'),
      maxErrors: get('smtp.maxerrors', 'integer'),
      maxAuthFailures: get('smtp.maxauthfailures', 'integer'),
      spoolMinFree: get('store.minfree', 'integer'),
    },
    proxyHosts: get('smtp.proxyhosts', 'cidr-list'),
    xclientHosts: get('smtp.xclienthosts', 'cidr-list'),
    authWithoutTls: get('smtp.authwithouttls', 'boolean'),
    greetingDelayMs: get('smtp.greetingdelayms', 'integer'),
    logLevel: get('log.level', 'string') as Options['logLevel'],
    access: {
      orcpt: get('mta.access_orcpt', 'integer'),
      counts: get('mta.access_counts', 'integer'),
      paranoia: get('mta.mapping_paranoia', 'string'),
    },
    transactions: {
      format: get('log.transactions.format', 'string') as Options['transactions']['format'],
      rotateSize: get('log.transactions.rotate_size', 'integer'),
      keep: get('log.transactions.keep', 'integer'),
      blockSize: get('log.transactions.block_size', 'integer'),
      utc: get('log.transactions.utc', 'boolean'),
      logReason: get('mta.log_reason', 'integer'),
      logDiagnostics: get('mta.log_diagnostics', 'integer'),
      logActionSuppress: get('mta.log_action_suppress', 'boolean'),
      logActionQueue: get('mta.log_action_queue', 'integer'),
    },
    metermaid: {
      tables: tables.tables,
      server: get('metermaid.config.serverhost', 'string') === '' ? null : { host: get('metermaid.config.serverhost', 'string'), port: get('metermaid.config.port', 'integer'), secret: get('metermaid.config.secret', 'string') },
      client: {
        connectFrequencyMs: ms('metermaid.mtaclient.connectfrequency'),
        connectWaitMs: ms('metermaid.mtaclient.connectwait'),
        timeoutMs: get('metermaid.mtaclient.timeoutms', 'integer'),
      },
    },
    delivery: {
      runner: get('delivery.runner', 'boolean'),
      smarthost: hostPort(get('delivery.smarthost', 'string')),
      mxPort: get('delivery.mx_port', 'integer'),
      dnsServers: get('delivery.dns_servers', 'list'),
      lmtp: hostPort(get('delivery.lmtp.server', 'string')),
      backoffMs: get('delivery.backoff', 'list').map((d) => (parseDurationText(d) ?? 60) * 1000),
      maxAgeMs: ms('delivery.maxage'),
      concurrency: get('delivery.concurrency', 'integer'),
      perDestination: get('delivery.perdestination', 'integer'),
      recipientLimit: get('delivery.recipientlimit', 'integer'),
      noBounceSources: get('delivery.nobounce_sources', 'list').map((c) => c.toLowerCase()),
    },
  };
  return { options, problems, valuePos: posOf };
}
