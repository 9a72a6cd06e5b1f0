// The msg.conf option schema: one row per option with its type, default and a one-line
// description. The same table validates msg.conf, builds the typed Options, writes the commented
// msg.conf of `portcullis init` and prints `portcullis check --options`. Defaults are written as
// msg.conf text and go through the same parser as the administrator's values, so a default can
// never mean something different from the same text typed into the file.

import { hostname as osHostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { parseCidr, parseIp } from './cidr.js';
import type { Cidr } from './types.js';

export type OptionType =
  | { readonly kind: 'string'; /** Checks an explicitly given value; returns a message or undefined. */ readonly check?: (value: string) => string | undefined }
  | { readonly kind: 'integer'; readonly min: number; readonly max: number }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'list'; /** Checks one item; returns a message or undefined. */ readonly item?: (item: string) => string | undefined }
  | { readonly kind: 'cidr-list' }
  | { readonly kind: 'path'; /** An empty value means "not set" (null) instead of an error. */ readonly optional?: boolean }
  | { readonly kind: 'duration'; /** Bounds in seconds. */ readonly min: number; readonly max: number };

export type OptionKind = OptionType['kind'];

/** The value each kind parses to. Durations are seconds; paths are absolute or null. */
export interface ParsedValue {
  string: string;
  integer: number;
  boolean: boolean;
  list: readonly string[];
  'cidr-list': readonly Cidr[];
  path: string | null;
  duration: number;
}

export interface OptionDef {
  readonly key: string;
  readonly type: OptionType;
  /** The default as msg.conf text; a function for defaults taken from the machine. */
  readonly default: string | (() => string);
  /** How the default is described in documentation when it is computed. */
  readonly defaultDoc?: string;
  readonly description: string;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

export function isHostname(s: string): boolean {
  return HOSTNAME.test(s);
}

const port = (service: string, dflt: number): OptionDef => ({
  key: `service.${service}.port`,
  type: { kind: 'integer', min: 0, max: 65535 },
  default: String(dflt),
  description: `TCP port of the ${service === 'smtp' ? 'SMTP (MX) service' : service === 'submit' ? 'message submission service (STARTTLS, AUTH required)' : 'submission service with implicit TLS'}; 0 disables it`,
});

export const OPTION_SCHEMA: readonly OptionDef[] = [
  {
    key: 'service.hostname',
    type: { kind: 'string', check: (v) => (isHostname(v) ? undefined : `"${v}" is not a host name (letters, digits, "-" and "." only)`) },
    default: () => osHostname(),
    defaultDoc: "the machine's host name",
    description: 'Name used in the greeting, the EHLO reply and Received headers',
  },
  {
    key: 'service.listenaddr',
    type: { kind: 'list', item: (v) => (parseIp(v) !== null && !v.includes('%') ? undefined : `"${v}" is not an IP address`) },
    default: '',
    defaultDoc: 'empty, all addresses',
    description: 'IP addresses to listen on, comma-separated; empty means all addresses',
  },
  port('smtp', 25),
  port('submit', 587),
  port('smtps', 465),
  {
    key: 'service.tls.certfile',
    type: { kind: 'path', optional: true },
    default: '',
    defaultDoc: 'empty, no TLS',
    description: 'PEM certificate (chain) for STARTTLS and implicit TLS; relative to the configuration directory; set together with service.tls.keyfile',
  },
  {
    key: 'service.tls.keyfile',
    type: { kind: 'path', optional: true },
    default: '',
    defaultDoc: 'empty, no TLS',
    description: 'PEM private key of the certificate (keep it mode 0600); relative to the configuration directory',
  },
  {
    key: 'store.datadir',
    type: { kind: 'path' },
    default: 'data',
    description: 'Data directory (spool, directory store, logs, control socket); relative to the configuration directory',
  },
  {
    key: 'store.minfree',
    type: { kind: 'integer', min: 0, max: 2 ** 50 },
    default: '104857600',
    description: 'Bytes that must stay free in the data directory\'s file system: MAIL FROM is answered 452 4.3.1 while less than this plus the declared SIZE is free (0: no check)',
  },
  {
    key: 'smtp.maxmessagesize',
    type: { kind: 'integer', min: 1, max: 2 ** 40 },
    default: '52428800',
    description: 'Largest message accepted, in bytes (advertised with SIZE)',
  },
  {
    key: 'smtp.maxrecipients',
    type: { kind: 'integer', min: 1, max: 1_000_000 },
    default: '100',
    description: 'Recipients accepted per message; further RCPT TO get 452 4.5.3',
  },
  {
    key: 'smtp.maxconnections',
    type: { kind: 'integer', min: 1, max: 1_000_000 },
    default: '1000',
    description: 'Connections open at once, all clients together; more are refused with 421',
  },
  {
    key: 'smtp.maxconnectionsperip',
    type: { kind: 'integer', min: 1, max: 1_000_000 },
    default: '20',
    description: 'Connections open at once from one client address',
  },
  {
    key: 'smtp.commandtimeout',
    type: { kind: 'duration', min: 1, max: 86_400 },
    default: '300',
    description: 'Idle time allowed while waiting for a command (RFC 5321 4.5.3.2 asks for at least 5m)',
  },
  {
    key: 'smtp.datatimeout',
    type: { kind: 'duration', min: 1, max: 86_400 },
    default: '180',
    description: 'Idle time allowed between data blocks during DATA or BDAT (RFC 5321 4.5.3.2: 3m)',
  },
  {
    key: 'smtp.maxerrors',
    type: { kind: 'integer', min: 1, max: 100_000 },
    default: '20',
    description: 'Protocol errors (unknown commands, bad syntax) in a session before the server hangs up with 421',
  },
  {
    key: 'smtp.maxauthfailures',
    type: { kind: 'integer', min: 1, max: 100_000 },
    default: '3',
    description: 'Failed AUTH attempts in a session before the server hangs up with 421',
  },
  {
    key: 'smtp.proxyhosts',
    type: { kind: 'cidr-list' },
    default: '',
    defaultDoc: 'empty, nobody',
    description: 'Networks whose connections start with a PROXY protocol header (v1 or v2), comma-separated',
  },
  {
    key: 'smtp.xclienthosts',
    type: { kind: 'cidr-list' },
    default: '',
    defaultDoc: 'empty, nobody',
    description: 'Networks allowed to use XCLIENT, comma-separated',
  },
  {
    key: 'smtp.authwithouttls',
    type: { kind: 'boolean' },
    default: 'no',
    description: 'Offer AUTH on connections without TLS (passwords would cross the network in clear)',
  },
  {
    key: 'smtp.greetingdelayms',
    type: { kind: 'integer', min: 0, max: 300_000 },
    default: '0',
    description: 'Milliseconds to wait before the greeting; a client that talks first is an early talker',
  },
  {
    key: 'log.level',
    type: { kind: 'string', check: (v) => (['debug', 'info', 'warn', 'error'].includes(v) ? undefined : `"${v}" is not a log level: debug, info, warn or error`) },
    default: 'info',
    description: 'Least severe log records written: debug (adds every access-table decision), info, warn or error',
  },
  {
    key: 'log.transactions.format',
    type: { kind: 'string', check: (v) => (['text', 'json', 'both', 'none'].includes(v) ? undefined : `"${v}" is not a transaction log format: text, json, both or none`) },
    default: 'both',
    description: 'Transaction log (spec §13) in the log directory: text (mail.log_current, Messaging Server layout), json (mail.jsonl), both or none',
  },
  {
    key: 'log.transactions.rotate_size',
    type: { kind: 'integer', min: 0, max: 2 ** 40 },
    default: '104857600',
    description: 'Start a new transaction log file before one would grow past this many bytes (besides the daily rotation at midnight); 0: daily only',
  },
  {
    key: 'log.transactions.keep',
    type: { kind: 'integer', min: 0, max: 100_000 },
    default: '30',
    description: 'Rotated transaction log files kept per form (mail.log.DAY.N, mail.jsonl.DAY.N); older ones are deleted',
  },
  {
    key: 'log.transactions.block_size',
    type: { kind: 'integer', min: 1, max: 1_048_576 },
    default: '1024',
    description: 'Bytes per unit of the size field of mail.log_current and of LOG_ACTION probes (Messaging Server BLOCK_SIZE; 1024: kilobytes, 1: bytes)',
  },
  {
    key: 'log.transactions.utc',
    type: { kind: 'boolean' },
    default: 'no',
    description: 'Write transaction log times, and rotate at midnight, in UTC instead of local time',
  },
  {
    key: 'mta.access_orcpt',
    type: { kind: 'integer', min: 0, max: 31 },
    default: '0',
    description:
      'Bit mask (Messaging Server ACCESS_ORCPT): append |ORCPT to recipient-table probes; 1 all four tables, 2 ORIG_SEND_ACCESS, 4 SEND_ACCESS, 8 ORIG_MAIL_ACCESS, 16 MAIL_ACCESS',
  },
  {
    key: 'mta.access_counts',
    type: { kind: 'integer', min: 0, max: 31 },
    default: '0',
    description: 'Bit mask (ACCESS_COUNTS), same bits as mta.access_orcpt: append |RCPT-TO-count/total-recipient-count/ to recipient-table probes',
  },
  {
    key: 'mta.mapping_paranoia',
    type: { kind: 'string', check: (v) => (v.length <= 1 && v !== '|' ? undefined : 'mta.mapping_paranoia is one character (not "|"), or empty for off') },
    default: '',
    defaultDoc: 'empty, off',
    description: 'A character that replaces "|" inside addresses in access probes (MAPPING_PARANOIA), so an address cannot fake field boundaries',
  },
  {
    key: 'mta.log_reason',
    type: { kind: 'integer', min: 0, max: 3 },
    default: '1',
    description: 'Bit mask (Messaging Server LOG_REASON): 1 writes the reason of a refusal or failure in mail.log_current, 2 appends it to LOG_ACTION probes',
  },
  {
    key: 'mta.log_diagnostics',
    type: { kind: 'integer', min: 0, max: 3 },
    default: '1',
    description: 'Bit mask (LOG_DIAGNOSTICS): 1 writes the diagnostic (the SMTP reply, e.g. smtp;550 5.1.1 ...) in mail.log_current, 2 appends it to LOG_ACTION probes',
  },
  {
    key: 'mta.log_action_suppress',
    type: { kind: 'boolean' },
    default: 'yes',
    description: 'A LOG_ACTION entry that sets $N keeps the transaction record out of the log (spec §8.1 UNSURE reading); no: $N has no effect',
  },
  {
    key: 'mta.log_action_queue',
    type: { kind: 'integer', min: 1, max: 1_000_000 },
    default: '10000',
    description: 'Transaction records waiting for LOG_ACTION at most; past it records are written without it, counted and logged (log-action-overflow)',
  },
  {
    key: 'metermaid.config.serverhost',
    type: { kind: 'string', check: (v) => (v === '' || isHostname(v) || parseIp(v) !== null ? undefined : `"${v}" is not a host name or IP address`) },
    default: '',
    defaultDoc: 'empty, the embedded in-process store',
    description: 'Redis server holding the MeterMaid tables shared by every node; empty keeps them in this process (one node only)',
  },
  {
    key: 'metermaid.config.port',
    type: { kind: 'integer', min: 1, max: 65535 },
    default: '6379',
    description: "TCP port of the MeterMaid Redis server (Redis's own default; Messaging Server's daemon used 63837)",
  },
  {
    key: 'metermaid.config.secret',
    type: { kind: 'string' },
    default: '',
    defaultDoc: 'empty, no AUTH',
    description: 'Password sent with AUTH to the MeterMaid Redis server (its requirepass)',
  },
  {
    key: 'metermaid.mtaclient.connectfrequency',
    type: { kind: 'duration', min: 1, max: 3600 },
    default: '15',
    description: 'After the MeterMaid store is lost, wait this long between reconnection attempts; meanwhile the tables answer per their on_error',
  },
  {
    key: 'metermaid.mtaclient.connectwait',
    type: { kind: 'duration', min: 1, max: 60 },
    default: '5',
    description: 'Longest wait for a connection to the MeterMaid store to be established',
  },
  {
    key: 'metermaid.mtaclient.timeoutms',
    type: { kind: 'integer', min: 10, max: 60_000 },
    default: '500',
    description: 'Longest wait in milliseconds for one MeterMaid decision from the store; past it the table answers per its on_error',
  },
  {
    key: 'delivery.runner',
    type: { kind: 'boolean' },
    default: 'yes',
    description: 'Deliver queued mail; no keeps every accepted message in the queue (maintenance, or a node that only accepts)',
  },
  {
    key: 'delivery.smarthost',
    type: { kind: 'string', check: (v) => (v === '' || hostPort(v) !== null ? undefined : `"${v}" is not host:port (e.g. relay.example.net:25 or [192.0.2.1]:587)`) },
    default: '',
    defaultDoc: 'empty, deliver to each domain\'s MX',
    description: 'Send all Internet mail (tcp_* channels) through this host:port instead of looking up MX records',
  },
  {
    key: 'delivery.mx_port',
    type: { kind: 'integer', min: 1, max: 65535 },
    default: '25',
    description: 'TCP port used for hosts found through MX records (25 on the Internet; tests use others)',
  },
  {
    key: 'delivery.dns_servers',
    type: {
      kind: 'list',
      // What dns.Resolver#setServers takes: an address, IPv4:port or [IPv6]:port.
      item: (v) => {
        const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([\d.]+)):(\d{1,5})$/.exec(v);
        const ip = m === null ? v : ((m[1] ?? m[2]) as string);
        const port = m === null ? 53 : Number(m[3]);
        // No brackets without a port, no zone, no network; brackets only around IPv6.
        const ok = /^[0-9A-Fa-f:.]+$/.test(ip) && parseIp(ip) !== null && (m?.[1] === undefined || ip.includes(':')) && port >= 1 && port <= 65535;
        return ok ? undefined : `"${v}" is not a DNS server (an IP address, IPv4:port or [IPv6]:port)`;
      },
    },
    default: '',
    defaultDoc: "empty, the system's resolvers (/etc/resolv.conf)",
    description: 'DNS servers asked for MX and address records of outbound mail, e.g. 192.0.2.53, [2001:db8::53]:5353',
  },
  {
    key: 'delivery.lmtp.server',
    type: { kind: 'string', check: (v) => (v === '' || hostPort(v) !== null ? undefined : `"${v}" is not host:port (e.g. 127.0.0.1:24)`) },
    default: '',
    defaultDoc: 'empty, the embedded Maildir store',
    description: 'Message store for local mailboxes (ims-ms), spoken to over LMTP; empty keeps mailboxes as Maildirs in the data directory',
  },
  {
    key: 'delivery.backoff',
    type: { kind: 'list', item: (v) => (parseDurationText(v) === null ? `"${v}" is not a duration (30s, 5m, 1h)` : undefined) },
    default: '5m,10m,20m,40m,1h',
    description: 'Waits before the 1st, 2nd, ... retry of a temporary failure; the last repeats (each spread by 10 % at random)',
  },
  {
    key: 'delivery.maxage',
    type: { kind: 'duration', min: 60, max: 30 * 86_400 },
    default: '120h',
    description: 'A message still undelivered this long after it arrived is returned to its sender',
  },
  {
    key: 'delivery.concurrency',
    type: { kind: 'integer', min: 1, max: 1000 },
    default: '100',
    description: 'Delivery attempts in progress at once, all destinations together',
  },
  {
    key: 'delivery.perdestination',
    type: { kind: 'integer', min: 1, max: 100 },
    default: '20',
    description: 'Delivery attempts in progress at once to one destination (a recipient domain, the smarthost or the message store)',
  },
  {
    key: 'delivery.recipientlimit',
    type: { kind: 'integer', min: 1, max: 10_000 },
    default: '50',
    description: 'Recipients per outbound SMTP or LMTP transaction; a message for more recipients at one destination goes in several transactions (old servers refuse long lists)',
  },
  {
    key: 'delivery.nobounce_sources',
    type: { kind: 'list' },
    default: '',
    defaultDoc: 'empty, every source bounces',
    description: 'Source channels whose undeliverable mail is not returned to its sender (e.g. tcp_local: senders of relayed Internet mail may be forged, and bounces to them are backscatter)',
  },
];

/** Parses "host:port", "[ipv4]:port" or "[ipv6]:port"; null when malformed. */
export function hostPort(v: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(v.trim());
  if (m === null) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  const host = (m[1] ?? m[2]) as string;
  if (m[1] !== undefined ? parseIp(host) === null : !isHostname(host) && parseIp(host) === null) return null;
  return { host, port };
}

/** Seconds of "30", "30s", "5m", "1h"; null when malformed. */
export function parseDurationText(v: string): number | null {
  const m = /^(\d+)\s*([smhSMH]?)$/.exec(v.trim());
  if (m === null) return null;
  return Number(m[1]) * (UNIT_SECONDS[(m[2] as string).toLowerCase()] as number);
}

const BY_KEY: ReadonlyMap<string, OptionDef> = new Map(OPTION_SCHEMA.map((d) => [d.key, d]));

/** The schema row of a key (case-insensitive), or undefined. */
export function optionDef(key: string): OptionDef | undefined {
  return BY_KEY.get(key.toLowerCase());
}

export function defaultText(def: OptionDef): string {
  return typeof def.default === 'function' ? def.default() : def.default;
}

/** A problem in a value, located by character offset inside the value text. */
export interface ValueProblem {
  readonly offset: number;
  readonly message: string;
  readonly severity?: 'error' | 'warning';
}

export type ValueParse<K extends OptionKind = OptionKind> =
  | { readonly ok: true; readonly value: ParsedValue[K]; readonly warnings: readonly ValueProblem[] }
  | { readonly ok: false; readonly problems: readonly ValueProblem[] };

/** Splits a comma-separated list into trimmed, non-empty items with their offsets. */
function splitList(text: string): { item: string; offset: number }[] {
  const out: { item: string; offset: number }[] = [];
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i === text.length || text[i] === ',') {
      const raw = text.slice(start, i);
      const lead = raw.length - raw.trimStart().length;
      const item = raw.trim();
      if (item !== '') out.push({ item, offset: start + lead });
      start = i + 1;
    }
  }
  return out;
}

const BOOLEANS: Readonly<Record<string, boolean>> = { yes: true, true: true, '1': true, no: false, false: false, '0': false };
const UNIT_SECONDS: Readonly<Record<string, number>> = { '': 1, s: 1, m: 60, h: 3600 };

function describeSeconds(n: number): string {
  if (n % 3600 === 0) return `${n / 3600}h`;
  if (n % 60 === 0) return `${n / 60}m`;
  return `${n}s`;
}

/**
 * Parses one value. `explicit` is false for defaults (computed defaults skip the extra checks:
 * the machine's host name is used as it is).
 */
export function parseValue(def: OptionDef, text: string, configDir: string, explicit = true): ValueParse {
  const fail = (message: string, offset = 0): ValueParse => ({ ok: false, problems: [{ offset, message }] });
  const ok = <K extends OptionKind>(value: ParsedValue[K], warnings: readonly ValueProblem[] = []): ValueParse => ({ ok: true, value, warnings });
  const t = def.type;
  switch (t.kind) {
    case 'string': {
      const bad = explicit ? t.check?.(text) : undefined;
      return bad === undefined ? ok<'string'>(text) : fail(bad);
    }
    case 'integer': {
      if (!/^[+-]?\d+$/.test(text)) return fail(`${def.key} expects a whole number${text === '' ? '' : `, not "${text}"`}`);
      const n = Number(text);
      if (n < t.min || n > t.max) return fail(`${def.key} must be from ${t.min} to ${t.max}; ${text} is out of range`);
      return ok<'integer'>(n);
    }
    case 'boolean': {
      const b = BOOLEANS[text.toLowerCase()];
      return b === undefined ? fail(`${def.key} expects yes or no (also true/false, 1/0), not "${text}"`) : ok<'boolean'>(b);
    }
    case 'duration': {
      const seconds = parseDurationText(text);
      if (seconds === null) return fail(`${def.key} expects a duration such as 30, 30s, 5m or 1h (a bare number is seconds), not "${text}"`);
      if (seconds < t.min || seconds > t.max) {
        return fail(`${def.key} must be from ${describeSeconds(t.min)} to ${describeSeconds(t.max)}; ${text} is out of range`);
      }
      return ok<'duration'>(seconds);
    }
    case 'path': {
      if (text === '') return t.optional ? ok<'path'>(null) : fail(`${def.key} needs a path`);
      return ok<'path'>(isAbsolute(text) ? text : resolve(configDir, text));
    }
    case 'list': {
      const items = splitList(text);
      const problems: ValueProblem[] = [];
      for (const { item, offset } of items) {
        const bad = t.item?.(item);
        if (bad !== undefined) problems.push({ offset, message: `${def.key}: ${bad}` });
      }
      return problems.length > 0 ? { ok: false, problems } : ok<'list'>(items.map((i) => i.item));
    }
    case 'cidr-list': {
      const cidrs: Cidr[] = [];
      const problems: ValueProblem[] = [];
      const warnings: ValueProblem[] = [];
      for (const { item, offset } of splitList(text)) {
        const c = parseCidr(item);
        if (!c.ok) {
          problems.push({ offset, message: `${def.key}: ${c.message} (write an address or a network such as 192.0.2.0/24 or 2001:db8::/32)` });
          continue;
        }
        if (c.hostBits) {
          warnings.push({ offset, severity: 'warning', message: `${def.key}: ${item} has bits set below the prefix length; it is read as the network ${describeNetwork(c.cidr)}` });
        }
        cidrs.push(c.cidr);
      }
      return problems.length > 0 ? { ok: false, problems } : ok<'cidr-list'>(cidrs, warnings);
    }
  }
}

function describeNetwork(c: Cidr): string {
  if (c.family === 4) return `${[...c.bytes].join('.')}/${c.prefix}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((c.bytes[i] as number) << 8) | (c.bytes[i + 1] as number)).toString(16));
  return `${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}/${c.prefix}`;
}

/** Human description of a type, for documentation and messages. */
export function describeType(t: OptionType): string {
  switch (t.kind) {
    case 'string':
      return 'string';
    case 'integer':
      return `integer ${t.min}..${t.max}`;
    case 'boolean':
      return 'yes|no';
    case 'list':
      return 'comma-separated list';
    case 'cidr-list':
      return 'comma-separated addresses/networks';
    case 'path':
      return t.optional ? 'path or empty' : 'path';
    case 'duration':
      return `duration ${describeSeconds(t.min)}..${describeSeconds(t.max)} (30, 30s, 5m, 1h)`;
  }
}

/** The option reference: one block per option, for `portcullis check --options`. */
export function optionReference(): string[] {
  const out: string[] = [];
  for (const d of OPTION_SCHEMA) {
    const dflt = d.defaultDoc ?? (defaultText(d) === '' ? 'empty' : defaultText(d));
    out.push(`${d.key}  (${describeType(d.type)}; default: ${dflt})`);
    out.push(`    ${d.description}`);
  }
  return out;
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

/** The known key closest to an unknown one (edit distance 2 at most, or the same last part), or undefined. */
export function suggestKey(unknown: string): string | undefined {
  const k = unknown.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const d of OPTION_SCHEMA) {
    const dist = editDistance(k, d.key);
    if (dist < bestDistance) {
      best = d.key;
      bestDistance = dist;
    }
  }
  if (best !== undefined) return best;
  const last = k.slice(k.lastIndexOf('.') + 1);
  return OPTION_SCHEMA.find((d) => d.key.endsWith('.' + last))?.key;
}
