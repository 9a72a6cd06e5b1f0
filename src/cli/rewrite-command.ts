// `portcullis test rewrite`: the equivalent of `imsimta test -rewrite` (spec §12.3). It shows how
// an address rewrites (rule, routing host, destination channel) and what each recipient access
// table says about it, in the order the server asks them (spec §5.0). The verdicts are not
// recomputed here: the tool asks the server's own MappingPolicy.rcpt with made-up session facts
// and reports the DecisionEvents it emits, so it cannot disagree with a running server.
//
// openOffline() — the configuration, the directory (read-only) and the policy wired as the daemon
// wires them, without listeners or spool — is shared with `portcullis test session`.

import { isIP } from 'node:net';
import { isAbsolute, relative } from 'node:path';
import { serverCallouts } from '../daemon/setup.js';
import { MeterMaid } from '../throttle/service.js';
import type { CliIO, CommandSpec } from './command.js';
import { EXIT, say } from './command.js';
import { loadConfig } from '../config/load.js';
import type { ConfigSnapshot } from '../config/types.js';
import { routerFor } from '../daemon/daemon.js';
import { DirectoryStore } from '../directory/store.js';
import type { Directory, UserRecord } from '../directory/types.js';
import type { Router } from '../channels/routing.js';
import { splitAddress } from '../channels/rewrite.js';
import type { RewriteResult } from '../channels/rewrite.js';
import { formatProblem } from '../mapping/index.js';
import type { SourcePos } from '../mapping/index.js';
import { MappingPolicy } from '../policy/mapping-policy.js';
import type { DecisionEvent, DecisionSink } from '../policy/events.js';
import type { ConnectionFacts, RcptAnswer, SessionFacts } from '../policy/session-policy.js';
import type { SmtpReply, Verdict } from '../policy/verdict.js';
import { encodeReply } from '../smtp/codes.js';
import { parsePath } from '../smtp/commands.js';
import type { Path } from '../smtp/commands.js';

// ---- shared with `test session` ------------------------------------------------------------

/** A server's policy side, built from a configuration directory without network or spool. */
export interface Offline {
  readonly snapshot: ConfigSnapshot;
  readonly directory: Directory;
  readonly router: Router;
  readonly policy: MappingPolicy;
}

/** Only the lookups: the tools must not change the directory (no add, remove or passwd). */
function readOnly(d: DirectoryStore): Directory {
  return {
    domain: (n) => d.domain(n),
    userByAddress: (a) => d.userByAddress(a),
    userByLogin: (l) => d.userByLogin(l),
    authenticate: (l, p) => d.authenticate(l, p),
  };
}

/**
 * Loads DIR as the daemon does and opens its directory store read-only. Problems are written to
 * standard error (file:line:col) and null is returned: the caller exits with status 2.
 */
export async function openOffline(
  io: CliIO,
  configDir: string,
  onDecision: DecisionSink,
  wrapDirectory: (d: Directory) => Directory = (d) => d,
): Promise<Offline | null> {
  let store: DirectoryStore | null = null;
  const loaded = loadConfig(configDir, { services: serverCallouts(() => store, new MeterMaid({}, { embeddedOnly: true })) });
  if (!loaded.ok) {
    for (const p of loaded.problems) say(io.stderr, formatProblem(p));
    const errors = loaded.problems.filter((p) => p.severity === 'error').length;
    say(io.stderr, `config has ${errors} error${errors === 1 ? '' : 's'}`);
    return null;
  }
  const snapshot = loaded.snapshot;
  // Warnings (an open relay, keywords without effect) matter when reading verdicts: say them.
  for (const w of snapshot.warnings) say(io.stderr, formatProblem(w));
  const opened = await DirectoryStore.open(snapshot.options.dataDir, { create: false });
  if (!opened.ok) {
    say(io.stderr, `portcullis: ${opened.error.message}`);
    return null;
  }
  store = opened.value;
  const directory = wrapDirectory(readOnly(opened.value));
  const router = routerFor(snapshot, directory);
  const policy = new MappingPolicy({ config: () => snapshot, router: () => router, directory: () => directory, onDecision });
  return { snapshot, directory, router, policy };
}

/** "mappings:14" for an entry of a file inside the configuration directory, else the full path. */
export function entryName(pos: SourcePos | null, configDir: string): string | null {
  if (pos === null) return null;
  const rel = relative(configDir, pos.file);
  return `${rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : pos.file}:${pos.line}`;
}

/** A reply as one line of text (a multi-line reply's lines joined with " / "). */
export function replyText(r: SmtpReply): string {
  return encodeReply(r)
    .split('\r\n')
    .filter((l) => l !== '')
    .join(' / ');
}

/** The connection facts the tools assume when not told otherwise (see the help texts). */
export const DEFAULT_SERVER_IP = '192.0.2.10';
export const DEFAULT_CLIENT = { ip: '203.0.113.1', port: 40000 } as const;

// ---- test rewrite -----------------------------------------------------------------------------

const HELO = 'client.invalid';

type TableName = 'ORIG_SEND_ACCESS' | 'ORIG_MAIL_ACCESS' | 'SEND_ACCESS' | 'MAIL_ACCESS';

type Step =
  | {
      readonly step: TableName;
      readonly status: 'checked';
      readonly probe: string;
      readonly inputFlags: string;
      readonly matched: boolean;
      readonly entry: string | null;
      readonly output: string;
      readonly flags: string;
      readonly decision: 'allow' | 'reject' | 'none';
      /** The reply the server sends when this table refused the recipient. */
      readonly reply: string | null;
      readonly delayMs: number | null;
    }
  | { readonly step: TableName; readonly status: 'no-table' | 'not-reached' }
  | {
      readonly step: 'alias-expansion';
      readonly status: 'expanded' | 'unknown-user' | 'not-local' | 'not-reached';
      /** The mailboxes the address expanded to (null when not known). */
      readonly deliverTo: readonly { readonly address: string; readonly channel: string | null }[] | null;
      readonly reply: string | null;
    };

interface RewriteReport {
  readonly config: string;
  readonly address: string;
  readonly rewrite: {
    readonly rule: { readonly pattern: string; readonly template: string; readonly entry: string | null } | null;
    /** Why no rule is shown: the domain is a channel's host name, or hosted in the directory. */
    readonly implicit: 'channel-host' | 'hosted-domain' | null;
    readonly address: string;
    readonly host: string;
    readonly channel: string;
  } | null;
  readonly from: string;
  readonly source: {
    readonly channel: string;
    readonly how: 'given' | 'service' | 'switchchannel';
    readonly switchEntry: string | null;
    readonly before: string | null;
    readonly authUser: string | null;
  };
  readonly connection: { readonly server: string; readonly client: string; readonly helo: string };
  readonly steps: readonly Step[];
  readonly verdict: { readonly decision: 'accept' | 'reject'; readonly reason: string; readonly reply: string | null; readonly delayMs: number | null };
  readonly deliverTo: readonly { readonly address: string; readonly channel: string }[] | null;
}

interface RewriteCliOptions {
  config: string;
  from?: string;
  sourceChannel?: string;
  clientIp?: string;
  authUser?: string;
  json?: boolean;
}

/** An address as typed on the command line, with or without angle brackets. */
function parseAddress(text: string, allowNull: boolean): Path | string {
  const t = text.trim();
  const p = parsePath(t.startsWith('<') ? t : `<${t}>`, allowNull);
  if (!p.ok) return p.text;
  if (p.rest !== '') return 'unexpected text after the address';
  return p.path;
}

function delayOf(v: Verdict): number | null {
  return v.delay?.ms ?? null;
}

function tableStep(e: DecisionEvent, configDir: string, refusal: Verdict | null): Step {
  return {
    step: e.table as TableName,
    status: 'checked',
    probe: e.probe,
    inputFlags: e.inputFlags,
    matched: e.matched,
    entry: entryName(e.entry, configDir),
    output: e.output,
    flags: e.flags,
    decision: e.decision,
    reply: refusal !== null && refusal.kind === 'reject' ? replyText(refusal.reply) : null,
    delayMs: refusal !== null ? delayOf(refusal) : null,
  };
}

/** The steps of one RCPT, from the policy's events and answer (spec §5.0 order). */
function steps(snap: ConfigSnapshot, events: readonly DecisionEvent[], answer: RcptAnswer, lookups: readonly Lookup[]): Step[] {
  const v = answer.verdict;
  const out: Step[] = [];
  const last = events[events.length - 1];
  const refusedBy = (e: DecisionEvent): Verdict | null => (e === last && v.kind === 'reject' && v.reason === `mapping:${e.table}` ? v : null);
  const tables = (names: readonly TableName[]): void => {
    for (const t of names) {
      const mine = events.filter((e) => e.table === t);
      if (mine.length > 0) for (const e of mine) out.push(tableStep(e, snap.dir, refusedBy(e)));
      else out.push({ step: t, status: snap.mappings.table(t) === undefined ? 'no-table' : 'not-reached' });
    }
  };
  tables(['ORIG_SEND_ACCESS', 'ORIG_MAIL_ACCESS']);
  // Alias expansion leaves no event; what the policy looked up in the directory says what it did.
  const looked = lookups[0];
  const stoppedBefore = v.kind === 'reject' && (v.reason === 'mapping:ORIG_SEND_ACCESS' || v.reason === 'mapping:ORIG_MAIL_ACCESS' || v.reason === 'builtin:relay-denied');
  if (v.kind === 'reject' && v.reason === 'builtin:unknown-recipient') {
    out.push({ step: 'alias-expansion', status: 'unknown-user', deliverTo: null, reply: replyText(v.reply) });
  } else if (stoppedBefore) {
    out.push({ step: 'alias-expansion', status: 'not-reached', deliverTo: null, reply: null });
  } else if (looked === undefined) {
    out.push({ step: 'alias-expansion', status: 'not-local', deliverTo: null, reply: null });
  } else {
    const deliverTo = answer.route?.deliverTo ?? (looked.user !== undefined ? [{ address: looked.user.address, channel: null }] : null);
    out.push({ step: 'alias-expansion', status: 'expanded', deliverTo, reply: null });
  }
  tables(['SEND_ACCESS', 'MAIL_ACCESS']);
  return out;
}

interface Lookup {
  readonly address: string;
  readonly user: UserRecord | undefined;
}

/** A directory that remembers the address lookups the policy makes (alias expansion). */
function recording(d: Directory, into: Lookup[]): Directory {
  return {
    domain: (n) => d.domain(n),
    userByAddress: (a) => {
      const user = d.userByAddress(a);
      into.push({ address: a, user });
      return user;
    },
    userByLogin: (l) => d.userByLogin(l),
    authenticate: (l, p) => d.authenticate(l, p),
  };
}

function describeRewrite(off: Offline, target: string, r: RewriteResult | null): RewriteReport['rewrite'] {
  if (r === null) return null;
  const { domain } = splitAddress(target);
  const implicit = r.rule !== null ? null : off.router.channels.forHost(domain) !== undefined ? 'channel-host' : 'hosted-domain';
  return {
    rule: r.rule === null ? null : { pattern: r.rule.pattern, template: r.rule.source, entry: entryName(r.rule.pos, off.snapshot.dir) },
    implicit,
    address: r.address,
    host: r.host,
    channel: r.channel.name,
  };
}

function render(r: RewriteReport): string[] {
  const out: string[] = [];
  const field = (name: string, value: string): void => void out.push(`${(name + ':').padEnd(21)}${value}`);
  field('Address', r.address);
  if (r.rewrite === null) {
    field('Rewrite rule', 'none: no rewrite rule routes this address');
  } else {
    const w = r.rewrite;
    if (w.rule !== null) field('Rewrite rule', `${w.rule.pattern}  ${w.rule.template}  (${w.rule.entry ?? '?'})`);
    else field('Rewrite rule', w.implicit === 'channel-host' ? `none: the domain is a host name of channel ${w.channel}` : 'none: the domain is hosted (directory)');
    field('Rewritten address', w.address);
    field('Routing host', w.host);
    field('Destination channel', w.channel);
  }
  out.push('');
  field('Sender', `<${r.from}>${r.from === '' ? ' (null reverse-path)' : ''}`);
  const s = r.source;
  const how =
    s.how === 'given'
      ? '--source-channel'
      : s.how === 'switchchannel'
        ? `switchchannel: [${r.connection.client.replace(/:\d+$/, '')}] rewrote to it at ${s.switchEntry ?? '?'}`
        : 'where the smtp service starts';
  field('Source channel', s.before !== null ? `${s.channel} (after AUTH as ${s.authUser ?? '?'}; before AUTH ${s.before}, ${how})` : `${s.channel} (${how})`);
  field('Connection', `client ${r.connection.client} (EHLO ${r.connection.helo}) to server ${r.connection.server}, no TLS${s.authUser !== null ? `, authenticated as ${s.authUser}` : ''}`);
  out.push('');
  for (const st of r.steps) {
    if (st.step === 'alias-expansion') {
      out.push('Alias expansion');
      if (st.status === 'not-reached') out.push('  not reached: the recipient was refused before it');
      else if (st.status === 'not-local') out.push(`  none: channel ${r.rewrite?.channel ?? '?'} is not the alias-expansion channel`);
      else if (st.status === 'unknown-user') out.push(`  no such user or alias -- ${st.reply ?? ''}`);
      else for (const d of st.deliverTo ?? []) out.push(`  ${r.address} -> ${d.address}${d.channel !== null ? ` on ${d.channel}` : ''}`);
      continue;
    }
    out.push(st.step);
    if (st.status !== 'checked') {
      out.push(st.status === 'no-table' ? '  no such table in the mappings file: no check' : '  not consulted: the server stops at the first refusal');
    } else {
      out.push(`  probe:    ${st.probe}${st.inputFlags !== '' ? `  (input flags ${st.inputFlags})` : ''}`);
      if (!st.matched) out.push('  entry:    none matched');
      else {
        out.push(`  entry:    ${st.entry ?? '?'}`);
        out.push(`  output:   "${st.output}"${st.flags !== '' ? `  flags ${st.flags}` : ''}`);
      }
      const decision = st.decision === 'reject' ? 'reject' : 'allow';
      out.push(`  decision: ${decision}${st.reply !== null ? ` -- ${st.reply}${st.delayMs !== null ? ` (after ${st.delayMs} ms)` : ''}` : ''}`);
    }
  }
  out.push('', 'Submitted address list:');
  if (r.verdict.decision === 'reject') {
    out.push(`  Address list error -- ${r.verdict.reply ?? ''}`);
  } else {
    const byChannel = new Map<string, string[]>();
    for (const d of r.deliverTo ?? []) byChannel.set(d.channel, [...(byChannel.get(d.channel) ?? []), d.address]);
    for (const [channel, addresses] of byChannel) {
      out.push(`  ${channel}`);
      for (const a of addresses) out.push(`    ${a} (orig ${r.address})`);
    }
  }
  return out;
}

export const testRewrite: CommandSpec = {
  path: ['test', 'rewrite'],
  summary: 'show how an address rewrites and what each recipient access table says (like imsimta test -rewrite)',
  args: '<address>',
  options: [
    { flags: '--config <dir>', description: 'the configuration directory (msg.conf, mappings, imta.cnf)', required: true },
    { flags: '--from <address>', description: 'the envelope sender (default: the null reverse-path <>)' },
    { flags: '--source-channel <channel>', description: 'the channel the message arrives on, taken as given (default tcp_local)' },
    { flags: '--client-ip <ip>', description: 'the client address; without --source-channel, the channel switchchannel picks for it on the SMTP port' },
    { flags: '--auth-user <login>', description: 'the client authenticated as this login: input flag A, and without --source-channel the channel switches as after AUTH' },
    { flags: '--json', description: 'print one JSON object' },
  ],
  help: [
    'The recipient is checked exactly as the server checks RCPT TO (spec §5.0): rewrite to a destination',
    'channel, ORIG_SEND_ACCESS, ORIG_MAIL_ACCESS, alias expansion from the directory, then SEND_ACCESS and',
    'MAIL_ACCESS for each mailbox; the first refusal ends the checks. Each table shows its probe, the entry',
    '(file:line) that decided, output and flags, and the reply a refusal gives.',
    `Connection facts the probes need and the command does not take: server ${DEFAULT_SERVER_IP} on the configured`,
    `SMTP port, client ${DEFAULT_CLIENT.ip}:${DEFAULT_CLIENT.port} (or --client-ip), EHLO ${HELO}, no TLS. For full control use`,
    '`portcullis test session`. The directory store is only read.',
    'JSON fields: address, rewrite {rule, implicit, address, host, channel}, from, source {channel, how,',
    'switchEntry, before, authUser}, connection, steps [{step, status, probe, entry, output, flags, decision,',
    'reply, ...}], verdict {decision, reason, reply, delayMs}, deliverTo.',
    'Exit status: 0 when the address was checked, whatever the verdict; 2 on bad arguments or a bad configuration.',
  ].join('\n'),
  async run(io, args, raw) {
    const o = raw as unknown as RewriteCliOptions;
    const to = parseAddress(args[0] ?? '', false);
    if (typeof to === 'string') return usage(io, `address ${args[0] ?? ''}: ${to}`);
    const from = parseAddress(o.from ?? '', true);
    if (typeof from === 'string') return usage(io, `--from ${o.from ?? ''}: ${from}`);
    if (o.clientIp !== undefined && isIP(o.clientIp) === 0) return usage(io, `--client-ip ${o.clientIp}: not an IP address`);
    const events: DecisionEvent[] = [];
    const lookups: Lookup[] = [];
    const off = await openOffline(io, o.config, (e) => events.push(e), (d) => recording(d, lookups));
    if (off === null) return EXIT.usage;
    const { snapshot, policy, router } = off;
    if (o.sourceChannel !== undefined && router.channel(o.sourceChannel) === undefined) {
      return usage(io, `--source-channel ${o.sourceChannel}: imta.cnf defines no such channel (channels: ${router.channels.all.map((c) => c.name).join(', ')})`);
    }
    let user: UserRecord | undefined;
    if (o.authUser !== undefined) {
      user = off.directory.userByLogin(o.authUser);
      if (user === undefined) return usage(io, `--auth-user ${o.authUser}: the directory has no user with this login (see portcullis user list)`);
    }

    const conn: ConnectionFacts = {
      service: 'smtp',
      localIp: DEFAULT_SERVER_IP,
      localPort: snapshot.options.ports.smtp || 25,
      clientIp: o.clientIp ?? DEFAULT_CLIENT.ip,
      clientPort: DEFAULT_CLIENT.port,
      via: null,
    };
    let channel: string;
    let how: RewriteReport['source']['how'] = 'given';
    let switchEntry: string | null = null;
    let before: string | null = null;
    if (o.sourceChannel !== undefined) channel = router.channel(o.sourceChannel)?.name ?? o.sourceChannel;
    else {
      channel = await policy.sourceChannel(conn);
      const sw = events.find((e) => e.phase === 'routing');
      how = sw !== undefined ? 'switchchannel' : 'service';
      switchEntry = sw !== undefined ? entryName(sw.entry, snapshot.dir) : null;
      if (user !== undefined) {
        before = channel;
        channel = policy.channelAfterAuth(channel);
      }
    }
    events.length = 0;

    // The rewrite on its own, for display: the same call the policy makes first.
    const target = to.domain === '' ? `${to.local}@${snapshot.options.hostname}` : to.address;
    const dest = await router.destination(target, policy.mapTable);
    lookups.length = 0;
    const facts: SessionFacts = { ...conn, helo: HELO, esmtp: true, tls: null, authUser: user?.login ?? null, channel };
    const answer = await policy.rcpt(facts, from, to, { notify: null, orcpt: null }, { rcptCount: 1, recipientCount: 0 });
    const v = answer.verdict;
    const report: RewriteReport = {
      config: snapshot.dir,
      address: to.address,
      rewrite: describeRewrite(off, target, dest),
      from: from.address,
      source: { channel, how, switchEntry, before, authUser: user?.login ?? null },
      connection: { server: `${conn.localIp}:${conn.localPort}`, client: `${conn.clientIp}:${conn.clientPort}`, helo: HELO },
      steps: steps(snapshot, events, answer, lookups),
      verdict: { decision: v.kind, reason: v.reason, reply: v.kind === 'reject' ? replyText(v.reply) : null, delayMs: delayOf(v) },
      deliverTo: answer.route?.deliverTo ?? null,
    };
    if (o.json) say(io.stdout, JSON.stringify(report));
    else for (const l of render(report)) say(io.stdout, l);
    return EXIT.ok;
  },
};

function usage(io: CliIO, message: string): number {
  say(io.stderr, `portcullis: ${message}`);
  return EXIT.usage;
}
