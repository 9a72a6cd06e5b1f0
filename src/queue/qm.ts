// Queue management (`portcullis qm`, the `imsimta qm` analogue) as pure functions: what a queued
// message looks like to an administrator (a summary built from its envelope, its delivery state
// and where it is: queued, in flight or held), which messages a selection names, the per-channel
// counts, and the human forms of all three. No I/O: src/daemon/qm-control.ts reads the spool and
// acts through the queue runner; src/cli/qm-commands.ts prints.
//
// Address selections match the whole address case-insensitively; `*@domain` matches every address
// of that domain (not its subdomains) and, for senders, `<>` the null reverse-path.

import type { EnvelopeV1 } from './spool.js';
import { initialState } from './state.js';
import type { DeliveryState, Target } from './state.js';

export type QmState = 'queued' | 'in-flight' | 'held';

/** What `qm list` shows of one message (the JSON form of a row; keys are stable). */
export interface QmSummary {
  readonly id: string;
  readonly receivedAt: string;
  readonly ageSeconds: number;
  readonly size: number;
  readonly sourceChannel: string;
  /** Envelope sender; "" for the null reverse-path. */
  readonly sender: string;
  /** The SMTP AUTH login, or null. */
  readonly auth: string | null;
  /** Destination channels of the pending targets, sorted, each once. */
  readonly channels: readonly string[];
  readonly pending: number;
  readonly targets: number;
  /** Attempts made so far: the most any target has had. */
  readonly attempts: number;
  /** ISO 8601 time of the next attempt; null when held or nothing is pending. */
  readonly nextAttemptAt: string | null;
  readonly state: QmState;
  /** The last remote answer or local diagnostic (of a pending target first). */
  readonly diagnostic: string | null;
}

/** A selection by attributes; every given field must match (AND). */
export interface QmFilter {
  /** Destination channel of a pending target. */
  readonly channel?: string;
  readonly sender?: string;
  readonly authUser?: string;
  /** Only held messages. */
  readonly held?: boolean;
}

/** A mistake the administrator can fix, said so that they know how. */
export interface QmUsageError {
  readonly error: string;
}

/** The targets of a message: from its saved state, else as the runner will first build them. */
export function targetsOf(env: EnvelopeV1, state: DeliveryState | null): readonly Target[] {
  return state?.targets ?? initialState(env, Date.parse(env.receivedAt)).targets;
}

export function summarize(env: EnvelopeV1, state: DeliveryState | null, where: { readonly held: boolean; readonly inFlight: boolean }, now: number): QmSummary {
  const targets = targetsOf(env, state);
  const pending = targets.filter((t) => t.status === 'pending');
  const received = Date.parse(env.receivedAt);
  let next: number | null = null;
  for (const t of pending) if (next === null || t.nextAttemptAt < next) next = t.nextAttemptAt;
  const withDiagnostic = [...pending, ...targets].find((t) => t.diagnostic !== null);
  return {
    id: env.id,
    receivedAt: env.receivedAt,
    ageSeconds: Number.isFinite(received) ? Math.max(0, Math.floor((now - received) / 1000)) : 0,
    size: env.size,
    sourceChannel: env.sourceChannel,
    sender: env.sender,
    auth: env.auth,
    channels: [...new Set(pending.map((t) => t.channel))].sort(),
    pending: pending.length,
    targets: targets.length,
    attempts: targets.reduce((m, t) => Math.max(m, t.attempts), 0),
    nextAttemptAt: where.held || next === null ? null : new Date(next).toISOString(),
    state: where.held ? 'held' : where.inFlight ? 'in-flight' : 'queued',
    diagnostic: withDiagnostic?.diagnostic ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// Selection

export type AddressPattern = { readonly kind: 'address'; readonly address: string } | { readonly kind: 'domain'; readonly domain: string } | { readonly kind: 'null' };

/**
 * Parses `--sender`/`--auth-user`: a whole address, `*@domain`, or (senders only) `<>`. Other
 * wildcards are refused rather than guessed at: a selection deletes mail.
 */
export function parseAddressPattern(text: string, option: '--sender' | '--auth-user'): AddressPattern | QmUsageError {
  const t = text.trim();
  if (t === '<>' && option === '--sender') return { kind: 'null' };
  if (t === '') return { error: `${option} needs an address, e.g. ${option} alice@example.test or ${option} '*@example.test'` };
  if (t.startsWith('*@')) {
    const domain = t.slice(2).toLowerCase().replace(/\.$/, '');
    if (domain === '' || /[*@\s]/.test(domain)) return { error: `${option} "${text}": after *@ comes a domain, e.g. '*@example.test'` };
    return { kind: 'domain', domain };
  }
  if (/[*?<>\s]/.test(t)) return { error: `${option} "${text}": give a whole address or *@domain${option === '--sender' ? ' or <>' : ''}; other wildcards are not supported` };
  return { kind: 'address', address: t.toLowerCase() };
}

export function matchesAddress(p: AddressPattern, address: string | null): boolean {
  if (address === null) return false;
  const a = address.toLowerCase();
  switch (p.kind) {
    case 'null':
      return a === '';
    case 'domain':
      return a.endsWith(`@${p.domain}`) && a.length > p.domain.length + 1;
    case 'address':
      return a === p.address;
  }
}

/** A filter compiled once: its patterns parsed. */
export interface CompiledFilter {
  readonly channel: string | null;
  readonly sender: AddressPattern | null;
  readonly authUser: AddressPattern | null;
  readonly held: boolean;
}

export function compileFilter(f: QmFilter): CompiledFilter | QmUsageError {
  let sender: AddressPattern | null = null;
  let authUser: AddressPattern | null = null;
  if (f.sender !== undefined) {
    const p = parseAddressPattern(f.sender, '--sender');
    if ('error' in p) return p;
    sender = p;
  }
  if (f.authUser !== undefined) {
    const p = parseAddressPattern(f.authUser, '--auth-user');
    if ('error' in p) return p;
    authUser = p;
  }
  if (f.channel !== undefined && f.channel.trim() === '') return { error: '--channel needs a channel name, e.g. --channel tcp_local' };
  return { channel: f.channel?.trim().toLowerCase() ?? null, sender, authUser, held: f.held === true };
}

/** True when a filter names something (an empty filter would select the whole queue). */
export function filterGiven(f: QmFilter): boolean {
  return f.channel !== undefined || f.sender !== undefined || f.authUser !== undefined || f.held === true;
}

export function matches(s: QmSummary, f: CompiledFilter): boolean {
  if (f.held && s.state !== 'held') return false;
  if (f.channel !== null && !s.channels.some((c) => c.toLowerCase() === f.channel)) return false;
  if (f.sender !== null && !matchesAddress(f.sender, s.sender)) return false;
  if (f.authUser !== null && !matchesAddress(f.authUser, s.auth)) return false;
  return true;
}

/** Message ids name files in the spool: nothing that could leave the queue directory. */
export function validId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/.test(id);
}

/** What qm delete/hold/release act on: ids, or a filter (never both, never neither). */
export type QmSelection = { readonly kind: 'ids'; readonly ids: readonly string[] } | { readonly kind: 'filter'; readonly filter: QmFilter };

export function selection(ids: readonly string[], filter: QmFilter, verb: string): QmSelection | QmUsageError {
  const bad = ids.find((id) => !validId(id));
  if (bad !== undefined) return { error: `"${bad}" is not a message id (ids look like mwug8kib-cfcce5e8ac; portcullis qm list shows them)` };
  const given = filterGiven(filter);
  if (ids.length > 0 && given) return { error: `qm ${verb} takes message ids or a filter (--sender, --auth-user, --channel, --held), not both` };
  if (ids.length === 0 && !given) return { error: `qm ${verb} needs message ids or a filter (--sender, --auth-user, --channel, --held), e.g. portcullis qm ${verb} --auth-user alice@example.test` };
  return ids.length > 0 ? { kind: 'ids', ids: [...new Set(ids)] } : { kind: 'filter', filter };
}

// ---------------------------------------------------------------------------------------------
// Counts

export interface QmTally {
  readonly messages: number;
  readonly bytes: number;
}

/** `qm counts`: per destination channel the messages with a pending target there (held ones apart). */
export interface QmCounts {
  readonly channels: readonly ({ readonly channel: string } & QmTally)[];
  readonly held: QmTally;
  readonly inFlight: QmTally;
  readonly total: QmTally;
}

export function countQueue(messages: readonly QmSummary[]): QmCounts {
  const per = new Map<string, { messages: number; bytes: number }>();
  const held = { messages: 0, bytes: 0 };
  const inFlight = { messages: 0, bytes: 0 };
  const total = { messages: 0, bytes: 0 };
  const add = (t: { messages: number; bytes: number }, size: number): void => {
    t.messages += 1;
    t.bytes += size;
  };
  for (const m of messages) {
    add(total, m.size);
    if (m.state === 'held') {
      add(held, m.size);
      continue;
    }
    if (m.state === 'in-flight') add(inFlight, m.size);
    for (const c of m.channels) {
      let t = per.get(c);
      if (t === undefined) per.set(c, (t = { messages: 0, bytes: 0 }));
      add(t, m.size);
    }
  }
  const channels = [...per.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([channel, t]) => ({ channel, ...t }));
  return { channels, held, inFlight, total };
}

// ---------------------------------------------------------------------------------------------
// Human forms

/** Seconds as the two largest units: 45s, 3m12s, 2h05m, 3d04h. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const two = (n: number): string => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3600))}h`;
}

function next(s: QmSummary, now: number): string {
  if (s.nextAttemptAt === null) return '-';
  const wait = Date.parse(s.nextAttemptAt) - now;
  return wait <= 0 ? 'now' : `in ${formatDuration(Math.ceil(wait / 1000))}`;
}

export function showSender(sender: string): string {
  return sender === '' ? '<>' : sender;
}

/** Left-aligned columns two spaces apart; the last column is not padded. */
export function columns(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 2))).join(''));
}

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? '' : 's'}`;
}

export function formatList(messages: readonly QmSummary[], now: number): string[] {
  if (messages.length === 0) return ['(no messages)'];
  const head = ['ID', 'AGE', 'SIZE', 'SOURCE', 'SENDER', 'AUTH', 'CHANNELS', 'TARGETS', 'ATTEMPTS', 'NEXT', 'STATE', 'DIAGNOSTIC'];
  const rows = messages.map((m) => [
    m.id,
    formatDuration(m.ageSeconds),
    String(m.size),
    m.sourceChannel,
    showSender(m.sender),
    m.auth ?? '-',
    m.channels.length > 0 ? m.channels.join(',') : '-',
    `${m.pending}/${m.targets}`,
    String(m.attempts),
    next(m, now),
    m.state,
    m.diagnostic ?? '-',
  ]);
  const bytes = messages.reduce((n, m) => n + m.size, 0);
  return [...columns([head, ...rows]), `${plural(messages.length, 'message')}, ${plural(bytes, 'byte')}`];
}

export function formatCounts(c: QmCounts): string[] {
  const row = (name: string, t: QmTally): string[] => [name, String(t.messages), String(t.bytes)];
  return columns([['CHANNEL', 'MESSAGES', 'BYTES'], ...c.channels.map((x) => row(x.channel, x)), row('(in flight)', c.inFlight), row('(held)', c.held), row('(total)', c.total)]);
}

/** Everything `qm show` prints about one message. */
export interface QmDetail {
  readonly summary: QmSummary;
  readonly envelope: EnvelopeV1;
  readonly targets: readonly Target[];
  /** False while no attempt has saved a state (the targets are the ones the first attempt will build). */
  readonly stateSaved: boolean;
  /** The message's header section, CRLFs as LFs, without the blank line that ends it. */
  readonly header: string;
  /** True when the header section was longer than what was read. */
  readonly headerTruncated: boolean;
}

export function formatShow(d: QmDetail, now: number): string[] {
  const s = d.summary;
  const e = d.envelope;
  const client = `${e.client.ip}:${e.client.port}${e.client.helo !== null ? ` (${e.client.helo})` : ''}${e.client.via !== null ? ` via ${e.client.via}` : ''}`;
  const out = [
    `Message:     ${s.id}`,
    `State:       ${s.state}${s.nextAttemptAt !== null ? `, next attempt ${next(s, now)} (${s.nextAttemptAt})` : ''}`,
    `Received:    ${e.receivedAt} (${formatDuration(s.ageSeconds)} ago) on ${e.sourceChannel} (${e.service}) from ${client}`,
    `TLS:         ${e.tls !== null ? `${e.tls.protocol} ${e.tls.cipher}` : 'no'}`,
    `Sender:      ${showSender(e.sender)}`,
    `Auth user:   ${e.auth ?? '-'}`,
    `Size:        ${e.size} bytes`,
    `Flags:       ${e.flags.length > 0 ? e.flags.join(' ') : '-'}`,
    `Recipients:`,
    ...e.recipients.map((r) => `  ${r.address}${r.notify !== null ? ` NOTIFY=${r.notify.join(',')}` : ''}${r.orcpt !== null ? ` ORCPT=${r.orcpt}` : ''}`),
    `Targets:${d.stateSaved ? '' : ' (no attempt yet)'}`,
  ];
  const rows = d.targets.map((t) => {
    const nextAt = t.status === 'pending' && s.state !== 'held' ? (t.nextAttemptAt <= now ? 'now' : `in ${formatDuration(Math.ceil((t.nextAttemptAt - now) / 1000))}`) : '-';
    return [t.address, t.channel, t.status, String(t.attempts), nextAt, t.diagnostic ?? '-'];
  });
  out.push(...columns([['ADDRESS', 'CHANNEL', 'STATUS', 'ATTEMPTS', 'NEXT', 'DIAGNOSTIC'], ...rows]).map((l) => `  ${l}`));
  out.push(`Header:${d.headerTruncated ? ' (truncated)' : ''}`);
  for (const l of d.header.split('\n')) out.push(`  ${l}`);
  return out;
}
