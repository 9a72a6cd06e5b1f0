// `portcullis throttle show` and `throttle reset`: a running server's MeterMaid tables (spec §7),
// read and cleared over its control socket — the counts live in the server's memory or in the
// Redis it shares with other nodes, never in a file this command could read.

import type { Writable } from 'node:stream';
import type { CommandSpec } from './command.js';
import { EXIT, say } from './command.js';
import { askServer } from './ask-server.js';
import type { ControlReply, ControlRequest } from '../daemon/control.js';
import type { TableView } from '../throttle/service.js';

const CONFIG_OPTION = { flags: '--config <dir>', description: 'the configuration directory the server runs from', required: true } as const;

/** Whole numbers as they are, fractions (a decaying count) with two decimals. */
export function formatCount(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

/** Milliseconds as whole seconds, rounded up: "retry after 0 s" must mean now. */
function seconds(ms: number): string {
  return `${Math.ceil(ms / 1000)}s`;
}

function columns(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 2))).join(''));
}

/** The human form of a table view: a header line, then one row per key. */
export function formatView(v: TableView, key: string | undefined): string[] {
  if (v.type === 'simple') {
    const out = [`table ${v.table}: simple, entries live ${v.quotaTimeSeconds} s, store ${v.store}`];
    const entries = v.entries ?? [];
    if (entries.length === 0) return [...out, key === undefined ? '(no entries)' : `${key}: no entry`];
    return [...out, ...columns([['KEY', 'VALUE', 'TTL'], ...entries.map((e) => [e.key, e.value, seconds(e.ttlMs)])])];
  }
  const out = [`table ${v.table}: throttle, mode ${v.mode}, quota ${v.quota} per ${v.quotaTimeSeconds} s, store ${v.store}`];
  const keys = v.keys ?? [];
  if (keys.length === 0) return [...out, key === undefined ? '(no keys counted)' : `${key}: nothing counted (${v.quota} remaining)`];
  const rows = keys.map((u) => [u.key, formatCount(u.count), String(u.remaining), u.over ? 'yes' : 'no', seconds(u.retryAfterMs), seconds(u.resetMs)]);
  return [...out, ...columns([['KEY', 'COUNT', 'REMAINING', 'OVER', 'RETRY-AFTER', 'RESET'], ...rows])];
}

/**
 * Sends a throttle request to the server of `configDir`. Returns the reply, or the exit status
 * after saying what went wrong: no server (1), a request the server refused as bad (2), a store
 * that could not answer (1).
 */
function ask(configDir: string, req: ControlRequest, stderr: Writable): Promise<ControlReply | number> {
  return askServer(configDir, req, stderr, { timeoutMs: 10_000 });
}

const show: CommandSpec = {
  path: ['throttle', 'show'],
  summary: "show a MeterMaid table's counts in the running server (all keys, or one)",
  args: '<table> [key]',
  options: [
    CONFIG_OPTION,
    { flags: '--json', description: 'print the table view as one JSON object' },
    { flags: '--limit <n>', description: 'show at most N keys, most recently used first (default 100)' },
  ],
  help: [
    'Throttle tables: KEY, COUNT (two decimals while a decaying count drains), REMAINING hits admitted now,',
    'OVER (the next hit is refused), RETRY-AFTER (seconds until a hit is admitted again) and RESET',
    '(seconds until the count is back to zero). Simple tables: KEY, VALUE and TTL in seconds.',
    'Exit status: 0 shown; 1 no server running or the store did not answer; 2 unknown table or a key',
    'that does not fit the table.',
  ].join('\n'),
  async run(io, args, raw) {
    const o = raw as { config: string; json?: boolean; limit?: string };
    const [table, key] = args;
    if (table === undefined) {
      say(io.stderr, 'portcullis: throttle show needs a table name, e.g. portcullis throttle show ext_throttle --config DIR');
      return EXIT.usage;
    }
    let limit: number | undefined;
    if (o.limit !== undefined) {
      limit = Number(o.limit);
      if (!/^\d+$/.test(o.limit) || limit < 1) {
        say(io.stderr, `portcullis: --limit takes a whole number of keys from 1, not "${o.limit}"`);
        return EXIT.usage;
      }
    }
    const req: ControlRequest = { cmd: 'throttle-show', table, ...(key !== undefined ? { key } : {}), ...(limit !== undefined ? { limit } : {}) };
    const rep = await ask(o.config, req, io.stderr);
    if (typeof rep === 'number') return rep;
    const view = rep.view as TableView;
    if (o.json) say(io.stdout, JSON.stringify(view));
    else for (const line of formatView(view, key)) say(io.stdout, line);
    return EXIT.ok;
  },
};

const reset: CommandSpec = {
  path: ['throttle', 'reset'],
  summary: 'forget the counts of one key of a MeterMaid table, or of the whole table, in the running server',
  args: '<table> [key]',
  options: [CONFIG_OPTION],
  help: [
    'Without KEY every key of the table is forgotten. With a Redis store the reset holds for every node',
    'sharing it. Exit status as for throttle show.',
  ].join('\n'),
  async run(io, args, raw) {
    const o = raw as { config: string };
    const [table, key] = args;
    if (table === undefined) {
      say(io.stderr, 'portcullis: throttle reset needs a table name, e.g. portcullis throttle reset ext_throttle 192.0.2.7 --config DIR');
      return EXIT.usage;
    }
    const rep = await ask(o.config, { cmd: 'throttle-reset', table, ...(key !== undefined ? { key } : {}) }, io.stderr);
    if (typeof rep === 'number') return rep;
    const removed = typeof rep.removed === 'number' ? rep.removed : 0;
    if (key !== undefined) say(io.stdout, removed > 0 ? `${table}: reset ${key}` : `${table}: ${key} had nothing counted`);
    else say(io.stdout, `${table}: reset, ${removed} key${removed === 1 ? '' : 's'} removed`);
    return EXIT.ok;
  },
};

export const THROTTLE_COMMANDS: readonly CommandSpec[] = [show, reset];
