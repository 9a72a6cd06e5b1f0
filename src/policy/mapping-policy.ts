// The access-table policy: Messaging Server's decisions from the mappings file at every SMTP phase
// (spec §5.0). Connect: PORT_ACCESS, probed as the Dispatcher does (input flag A) and again as the
// SMTP server does (no flags). MAIL: the channel's SASL/TLS requirements, then FROM_ACCESS. RCPT:
// rewrite to the destination channel, ORIG_SEND_ACCESS and ORIG_MAIL_ACCESS on the address as
// given, alias expansion from the directory, then SEND_ACCESS and MAIL_ACCESS for each mailbox it
// expands to; the first rejection wins. Every probe is reported as a DecisionEvent.

import type { Router } from '../channels/routing.js';
import type { MapTable } from '../channels/rewrite.js';
import type { ConfigSnapshot } from '../config/types.js';
import type { Directory } from '../directory/types.js';
import { accessResult, flagString, mapAsync, parseFlagLetters } from '../mapping/index.js';
import type { MappingSet } from '../mapping/index.js';
import { REPLY, reply } from '../smtp/codes.js';
import type { MailParams, Path, RcptParams } from '../smtp/commands.js';
import { accessVerdict } from './access-reply.js';
import type { DecisionEvent, DecisionPhase, DecisionSink } from './events.js';
import { appInfo, fromAccessProbe, portAccessProbe, recipientProbe } from './probes.js';
import type { RecipientTable } from './probes.js';
import type { ConnectionFacts, Mode, RcptAnswer, RcptCounts, RecipientRoute, ServiceName, SessionFacts, SessionPolicy } from './session-policy.js';
import { ACCEPT, mergeActions, NO_ACTIONS, rejectWith } from './verdict.js';
import type { AccessTable, Verdict } from './verdict.js';

export interface MappingPolicyEnv {
  readonly config: () => ConfigSnapshot;
  readonly router: () => Router;
  readonly directory: () => Directory;
  readonly onDecision?: DecisionSink;
}

/** The alias-expansion channel: hosted-domain recipients rewrite here (spec §6.1). */
const LOCAL_CHANNEL = 'l';
/** Where an expanded local recipient is delivered (the message store). */
const STORE_CHANNEL = 'ims-ms';

const FLAG_A = parseFlagLetters('A') as number;

export class MappingPolicy implements SessionPolicy {
  constructor(private readonly env: MappingPolicyEnv) {}

  private get mappings(): MappingSet {
    return this.env.config().mappings;
  }

  /** Maps for rewrite rules' ${TABLE,arg}. */
  readonly mapTable: MapTable = async (table, arg) => {
    const r = await mapAsync(this.mappings, table, arg);
    return { yes: (r.flags & (parseFlagLetters('Y') as number)) !== 0, output: r.output };
  };

  /** Probes one access table; a missing table is "no check" (accept). */
  private async ask(phase: DecisionPhase, table: AccessTable, probe: string, inFlags: number, recipient?: string): Promise<Verdict> {
    if (this.mappings.table(table) === undefined) return ACCEPT;
    const r = await mapAsync(this.mappings, table, probe, { flags: inFlags });
    const a = accessResult(r);
    const verdict = accessVerdict(table, a, recipient !== undefined ? { recipient } : {});
    this.report({
      phase,
      table,
      probe,
      inputFlags: flagString(inFlags),
      matched: r.matched,
      output: r.output,
      flags: a.flags,
      entry: r.entry,
      decision: a.decision,
      reason: a.decision === 'none' && !r.matched ? null : verdict.reason,
    });
    return verdict;
  }

  private report(e: DecisionEvent): void {
    this.env.onDecision?.(e);
  }

  async connect(c: ConnectionFacts): Promise<Verdict> {
    const probe = portAccessProbe(c.localIp, c.localPort, c.clientIp, c.clientPort);
    // The Dispatcher's probe (flag A) — where MeterMaid connection counting belongs — then the
    // SMTP server's own probe without it (§4.1, §15.4 rows 46–48).
    const dispatcher = await this.ask('connect', 'PORT_ACCESS', probe, FLAG_A);
    if (dispatcher.kind === 'reject') return dispatcher;
    const server = await this.ask('connect', 'PORT_ACCESS', probe, 0);
    if (server.kind === 'reject') return server;
    return dispatcher.delay !== null ? dispatcher : server;
  }

  greetingDelay(): number {
    return this.env.config().options.greetingDelayMs;
  }

  earlyTalker(): Verdict {
    return rejectWith('builtin:early-talker', REPLY.earlyTalker, true);
  }

  async sourceChannel(c: ConnectionFacts): Promise<string> {
    const r = await this.env.router().sourceChannel(c.service, c.clientIp, this.mapTable);
    if (r.switched !== null) {
      this.report({
        phase: 'routing',
        table: 'switchchannel',
        probe: `[${c.clientIp}]`,
        inputFlags: '',
        matched: true,
        output: r.channel,
        flags: '',
        entry: r.switched.rule?.pos ?? null,
        decision: 'none',
        reason: null,
      });
    }
    return r.channel;
  }

  channelAfterTls(channel: string): string {
    return this.env.router().afterTls(channel);
  }

  channelAfterAuth(channel: string): string {
    return this.env.router().afterAuth(channel);
  }

  authMode(channel: string, service: ServiceName): Mode {
    return this.env.router().sasl(channel, service);
  }

  tlsMode(channel: string, service: ServiceName): Mode {
    return this.env.router().tls(channel, service);
  }

  private inputFlags(s: SessionFacts, extra = ''): number {
    return parseFlagLetters((s.authUser !== null ? 'A' : '') + (s.tls !== null ? 'T' : '') + extra) ?? 0;
  }

  private authFrom(s: SessionFacts): string {
    if (s.authUser === null) return '';
    return this.env.directory().userByLogin(s.authUser)?.address ?? s.authUser;
  }

  /** Reports a decision made by a built-in check rather than a table. */
  private builtin(phase: DecisionPhase, check: string, subject: string, v: Verdict, output = ''): Verdict {
    this.report({
      phase,
      table: check,
      probe: subject,
      inputFlags: '',
      matched: true,
      output: v.kind === 'reject' ? v.reply.lines.join(' ') : output,
      flags: '',
      entry: null,
      decision: v.kind === 'reject' ? 'reject' : 'allow',
      reason: v.reason,
    });
    return v;
  }

  async mail(s: SessionFacts, from: Path, _params: MailParams): Promise<Verdict> {
    // A channel that must see AUTH or TLS refuses MAIL without it (mustsaslserver, musttlsserver).
    if (this.authMode(s.channel, s.service) === 'must' && s.authUser === null) {
      return this.builtin('mail', 'mustsaslserver', s.channel, rejectWith('builtin:auth-required', REPLY.authRequired));
    }
    if (this.tlsMode(s.channel, s.service) === 'must' && s.tls === null) {
      return this.builtin('mail', 'musttlsserver', s.channel, rejectWith('builtin:auth-required', reply(530, '5.7.0', 'Must issue a STARTTLS command first')));
    }
    const o = this.env.config().options.access;
    const probe = fromAccessProbe(this.portInfo(s), appInfo(s.helo, s.tls), s.channel, from.address, this.authFrom(s), o.paranoia);
    return this.ask('mail', 'FROM_ACCESS', probe, this.inputFlags(s));
  }

  private portInfo(s: ConnectionFacts): string {
    return portAccessProbe(s.localIp, s.localPort, s.clientIp, s.clientPort);
  }

  async rcpt(s: SessionFacts, from: Path, to: Path, params: RcptParams, counts: RcptCounts): Promise<RcptAnswer> {
    const router = this.env.router();
    // RFC 5321 §4.1.1.3: a bare "postmaster" is this server's postmaster.
    const target = to.domain === '' ? `${to.local}@${this.env.config().options.hostname}` : to.address;
    const dest = await router.destination(target, this.mapTable);
    if (dest === null) {
      return { verdict: this.builtin('rcpt', 'rewrite', to.address, rejectWith('builtin:relay-denied', reply(550, '5.1.2', `unknown host or domain: ${to.mailbox}`))), route: null };
    }
    const o = this.env.config().options.access;
    const notify = params.notify ?? [];
    const flags = this.inputFlags(
      s,
      (s.esmtp ? 'E' : '') + (notify.includes('DELAY') ? 'D' : '') + (notify.includes('FAILURE') ? 'F' : '') + (notify.includes('SUCCESS') ? 'S' : ''),
    );
    const base = {
      portInfo: this.portInfo(s),
      app: appInfo(s.helo, s.tls),
      source: s.channel,
      from: from.address,
      orcpt: params.orcpt,
      rcptTo: to.address,
      rcptCount: counts.rcptCount,
      recipientCount: counts.recipientCount,
    };
    const check = async (table: RecipientTable, dst: string, addr: string): Promise<Verdict> =>
      this.ask('rcpt', table, recipientProbe(table, { ...base, dest: dst, to: addr }, o), flags, to.address);
    const accepted: Verdict[] = [];
    // Before alias expansion: the address as given, the channel it rewrote to (§5.4–§5.5).
    for (const table of ['ORIG_SEND_ACCESS', 'ORIG_MAIL_ACCESS'] as const) {
      const v = await check(table, dest.channel.name, to.address);
      if (v.kind === 'reject') return { verdict: v, route: null, channel: dest.channel.name };
      accepted.push(v);
    }
    let deliverTo: RecipientRoute['deliverTo'];
    if (dest.channel.name === LOCAL_CHANNEL) {
      const user = this.env.directory().userByAddress(dest.address);
      if (user !== undefined) deliverTo = [{ address: user.address, channel: STORE_CHANNEL }];
      else if (to.local.toLowerCase() === 'postmaster') deliverTo = [{ address: dest.address, channel: LOCAL_CHANNEL }];
      else {
        // Unknown local users are refused here, at RCPT; the store behind is never asked.
        const v = rejectWith('builtin:unknown-recipient', reply(550, '5.1.1', `unknown or illegal alias: ${to.mailbox}`));
        return { verdict: this.builtin('rcpt', 'alias expansion', dest.address, v), route: null, channel: dest.channel.name };
      }
      this.builtin('rcpt', 'alias expansion', dest.address, ACCEPT, deliverTo.map((d) => `${d.address} on ${d.channel}`).join(', '));
    } else {
      deliverTo = [{ address: dest.address, channel: dest.channel.name }];
    }
    for (const d of deliverTo) {
      for (const table of ['SEND_ACCESS', 'MAIL_ACCESS'] as const) {
        const v = await check(table, d.channel, d.address);
        if (v.kind === 'reject') return { verdict: v, route: null, channel: d.channel };
        accepted.push(v);
      }
    }
    return { verdict: mergeAccepts(accepted), route: { channel: dest.channel.name, deliverTo } };
  }

  message(): Verdict {
    return ACCEPT;
  }
}

/** One accept for several accepting tables: their side effects combined, the first delay. */
function mergeAccepts(vs: readonly Verdict[]): Verdict {
  let actions = NO_ACTIONS;
  for (const v of vs) actions = mergeActions(actions, v.actions);
  const delay = vs.find((v) => v.delay !== null)?.delay ?? null;
  const reason = vs.find((v) => v.actions !== NO_ACTIONS || v.delay !== null)?.reason ?? 'builtin:accept';
  return { kind: 'accept', reason, delay, actions };
}
