// The outbound transport: delivers one message to a destination (a domain's MX hosts, a smarthost,
// or an LMTP message store) and reports one outcome per recipient.
//
// Hops are tried in order (RFC 5321 §5.1) until one takes responsibility: it delivered or refused
// at least one recipient for good. A hop that only failed temporarily (no connection, 4xx greeting,
// 4xx MAIL, lost connection) sends us to the next; when every hop failed, the outcome of the last
// hop that said something is reported, else the last connection failure. A 5xx to MAIL, RCPT or
// DATA is an answer: refused permanently (RFC 5321 §4.2.1), no other hop is tried. A 5xx greeting
// or EHLO/HELO refusal is about that host, not the message: the next hop is tried, and if none
// takes it the message is retried later (skipRefusingHost, as Postfix's smtp_skip_5xx_greeting).
//
// TLS (RFC 3207, RFC 7435): by default opportunistic; the certificate is not checked, so a
// self-signed or expired certificate still gives an encrypted session. A TLS handshake that fails
// (no common protocol, reset) is retried once on a new plaintext connection to the same host: an
// attacker who can break the handshake can strip STARTTLS anyway, and RFC 7435 §6 lets opportunistic
// security fall back to cleartext. With tls 'required' nothing is sent without TLS (temporary).

import type tls from 'node:tls';
import { RFC5321_TIMEOUTS, SmtpSession, describeEndpoint } from './client.js';
import type { Endpoint, SessionOptions, SessionTimeouts, TlsMode } from './client.js';
import { resolveHost, resolveNextHops } from './mx.js';
import type { HopLookup, MxOptions, MxResolver } from './mx.js';
import { allOutcomes, local, transactionOutcomes } from './outcome.js';
import type { Result } from './outcome.js';
import { mailParams, rcptParams } from './params.js';
import { Limiter, SessionPool } from './pool.js';
import type { PoolOptions } from './pool.js';
import { addressProblem, headerHasNonAscii, isLocalFailure, preflight } from './preflight.js';
import type { EightBitPolicy } from './preflight.js';
import type { DeliverOptions, DeliveryAttempt, Destination, OutboundMessage, OutboundRecipient, RecipientOutcome, Transport } from './types.js';
import type { Logger } from '../telemetry/log.js';

export interface SmtpTransportOptions {
  /** Our host name, sent in EHLO/LHLO. */
  readonly hostname: string;
  /** DNS for MX and address lookups (dns.promises.Resolver in the daemon). */
  readonly resolver: MxResolver;
  /** Speak LMTP (RFC 2033) instead of SMTP; destinations must then be hosts. */
  readonly lmtp?: boolean;
  /** Port of MX hosts (default 25; tests use a high port). */
  readonly mxPort?: number;
  /** Default 'opportunistic'. */
  readonly tls?: TlsMode;
  /** With tls 'required': check the certificate against the host name. */
  readonly tlsVerify?: boolean;
  readonly tlsOptions?: tls.ConnectionOptions;
  /** Overrides of the RFC 5321 §4.5.3.2 time limits (ms). */
  readonly timeouts?: Partial<SessionTimeouts>;
  /** Addresses tried per delivery (default 5). */
  readonly maxHops?: number;
  readonly families?: MxOptions['families'];
  readonly prefer?: MxOptions['prefer'];
  /** Deliveries in flight per destination (default 10); more wait their turn. */
  readonly perDestination?: number;
  /** Connection reuse (default: 5 s idle, 100 transactions, 300 s per connection). */
  readonly pool?: Partial<PoolOptions>;
  /** 8-bit content for a server without 8BITMIME: 'send' (default) or 'refuse' (RFC 6152 §3). */
  readonly eightBit?: EightBitPolicy;
  readonly localAddress?: string;
  /** Uniform in [0, 1), for MX shuffling (default Math.random). */
  readonly random?: () => number;
  readonly log?: Logger;
}

export const DEFAULT_POOL: PoolOptions = { idleMs: 5_000, maxUses: 100, maxAgeMs: 300_000 };

interface HopAttempt {
  readonly outcomes: RecipientOutcome[];
  readonly remote: string | null;
  readonly tls: boolean;
  /** The attempt ended for a reason no other hop can change (message unreadable, interrupted). */
  readonly final: boolean;
}

/**
 * A host that refuses service in its greeting or to EHLO/HELO (5xx before MAIL) says nothing about
 * the recipients: the next MX is tried, and if none takes the message it is retried later —
 * Postfix's smtp_skip_5xx_greeting. One misconfigured or blocklisting backup MX must not bounce
 * mail that another host would take.
 */
function skipRefusingHost(a: HopAttempt): HopAttempt {
  if (a.outcomes.length === 0 || !a.outcomes.every((o) => o.stage === 'connect' && o.kind === 'permanent')) return a;
  return { ...a, outcomes: a.outcomes.map((o) => ({ ...o, kind: 'temporary' as const })) };
}

function destinationKey(d: Destination): string {
  return d.kind === 'mx' ? `mx:${d.domain.toLowerCase()}` : `host:${d.host.toLowerCase()}:${d.port}`;
}

export class SmtpTransport implements Transport {
  private readonly pool: SessionPool;
  private readonly limiter: Limiter;
  private readonly session: SessionOptions;
  private readonly mx: MxOptions;
  private closed = false;

  constructor(private readonly opts: SmtpTransportOptions) {
    this.pool = new SessionPool({ ...DEFAULT_POOL, ...opts.pool });
    this.limiter = new Limiter(opts.perDestination ?? 10);
    this.session = {
      hostname: opts.hostname,
      lmtp: opts.lmtp === true,
      tls: opts.tls ?? 'opportunistic',
      timeouts: { ...RFC5321_TIMEOUTS, ...opts.timeouts },
      ...(opts.tlsVerify !== undefined ? { tlsVerify: opts.tlsVerify } : {}),
      ...(opts.tlsOptions !== undefined ? { tlsOptions: opts.tlsOptions } : {}),
      ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
    };
    this.mx = {
      resolver: opts.resolver,
      ...(opts.maxHops !== undefined ? { maxHops: opts.maxHops } : {}),
      ...(opts.families !== undefined ? { families: opts.families } : {}),
      ...(opts.prefer !== undefined ? { prefer: opts.prefer } : {}),
      ...(opts.random !== undefined ? { random: opts.random } : {}),
    };
  }

  /** Idle connections kept for reuse (for tests and status). */
  get idleConnections(): number {
    return this.pool.size;
  }

  /** Deliveries in flight to `dest` now. */
  inFlight(dest: Destination): number {
    return this.limiter.inFlight(destinationKey(dest));
  }

  async deliver(dest: Destination, msg: OutboundMessage, opts: DeliverOptions = {}): Promise<DeliveryAttempt> {
    const lmtp = this.session.lmtp;
    // Addresses that cannot be written into a command fail for good; the others still go.
    const senderProblem = msg.sender === '' ? null : addressProblem(msg.sender);
    if (senderProblem !== null) {
      return { outcomes: allOutcomes(msg.recipients, local('permanent', 553, '5.1.7', `sender <${printable(msg.sender)}> cannot be sent: ${senderProblem}`), 'mail', null), remote: null, tls: false, lmtp };
    }
    const problems = msg.recipients.map((r) => addressProblem(r.address));
    if (problems.every((p) => p === null)) return this.deliverValid(dest, msg, opts);
    const valid = msg.recipients.filter((_, i) => problems[i] === null);
    const inner = valid.length > 0 ? await this.deliverValid(dest, withRecipients(msg, valid), opts) : { outcomes: [], remote: null, tls: false, lmtp };
    let k = 0;
    const outcomes = msg.recipients.map((r, i): RecipientOutcome => {
      const p = problems[i];
      if (p === null || p === undefined) return inner.outcomes[k++] as RecipientOutcome;
      return { address: r.address, kind: 'permanent', code: 553, enhanced: '5.1.3', text: `recipient <${printable(r.address)}> cannot be sent: ${p}`, remote: null, stage: 'rcpt', origin: 'local' };
    });
    return { ...inner, outcomes };
  }

  private async deliverValid(dest: Destination, msg: OutboundMessage, opts: DeliverOptions): Promise<DeliveryAttempt> {
    const lmtp = this.session.lmtp;
    const everyone = (r: Result, remote: string | null = null): DeliveryAttempt => ({ outcomes: allOutcomes(msg.recipients, r, 'connect', remote), remote, tls: false, lmtp });
    if (msg.recipients.length === 0) return { outcomes: [], remote: null, tls: false, lmtp };
    if (this.closed) return everyone(local('temporary', 421, '4.3.2', 'the delivery transport is closed (server shutting down); will try again'));
    if (lmtp && dest.kind === 'mx') {
      // RFC 3463 X.3.5: system incorrectly configured. The mail waits until the channel is fixed.
      return everyone(local('temporary', 451, '4.3.5', `LMTP delivers to a message store host, not to the MX of ${dest.domain}: give the LMTP channel a host and port`));
    }
    const release = await this.limiter.acquire(destinationKey(dest), opts.signal);
    if (release === null) return everyone(interrupted);
    try {
      const lookup = await this.hops(dest);
      if (lookup.kind !== 'hops') return everyone(local(lookup.kind, lookup.code, lookup.enhanced, lookup.text));
      const port = dest.kind === 'mx' ? (this.opts.mxPort ?? 25) : dest.port;
      let best: HopAttempt | null = null;
      for (const hop of lookup.hops) {
        if (opts.signal?.aborted === true) break;
        const a = skipRefusingHost(await this.attemptHop({ name: hop.name, address: hop.address, port }, msg, opts.signal));
        // The hop took responsibility for at least one recipient: its word stands for all.
        if (a.outcomes.some((o) => o.kind !== 'temporary')) return { outcomes: a.outcomes, remote: a.remote, tls: a.tls, lmtp };
        // Otherwise remember the most informative temporary failure: a server's reply beats a connection error.
        if (best === null || answered(a) || !answered(best)) best = a;
        if (a.final) break;
        this.opts.log?.log('debug', 'delivery-hop-failed', { id: msg.id, hop: describeEndpoint({ name: hop.name, address: hop.address, port }), reason: a.outcomes[0]?.text });
      }
      if (best === null) return everyone(interrupted);
      return { outcomes: best.outcomes, remote: best.remote, tls: best.tls, lmtp };
    } finally {
      release();
    }
  }

  private hops(dest: Destination): Promise<HopLookup> {
    if (dest.kind === 'mx') return resolveNextHops(dest.domain, this.mx);
    if (dest.host.startsWith('/')) return Promise.resolve({ kind: 'hops', hops: [{ name: dest.host, address: dest.host, preference: null }] });
    return resolveHost(dest.host, this.mx);
  }

  /** A session to `ep`: an idle one that answers RSET, or a new one. */
  private async sessionFor(ep: Endpoint, signal?: AbortSignal): Promise<{ session: SmtpSession } | { failure: Result }> {
    const key = poolKey(ep);
    for (let s = this.pool.take(key); s !== null; s = this.pool.take(key)) {
      if (await s.reset()) return { session: s };
      s.destroy();
    }
    let r = await SmtpSession.open(ep, this.session, signal);
    if (!r.ok && r.tlsHandshake && this.session.tls === 'opportunistic') {
      this.opts.log?.log('info', 'delivery-tls-fallback', { remote: describeEndpoint(ep), reason: r.failure.text });
      r = await SmtpSession.open(ep, { ...this.session, tls: 'none' }, signal);
    }
    return r.ok ? { session: r.session } : { failure: r.failure };
  }

  private async attemptHop(ep: Endpoint, msg: OutboundMessage, signal?: AbortSignal): Promise<HopAttempt> {
    const got = await this.sessionFor(ep, signal);
    if ('failure' in got) {
      const remote = got.failure.origin === 'remote' ? describeEndpoint(ep) : null;
      return { outcomes: allOutcomes(msg.recipients, got.failure, 'connect', remote), remote, tls: false, final: signal?.aborted === true };
    }
    const session = got.session;
    const caps = session.capabilities;
    const plan = await preflight(msg, caps, this.opts.eightBit ?? 'send', () => headerHasNonAscii(msg.open()));
    if (isLocalFailure(plan)) {
      this.pool.put(poolKey(ep), session);
      return { outcomes: allOutcomes(msg.recipients, local(plan.kind, plan.code, plan.enhanced, plan.text), 'mail', session.remote), remote: session.remote, tls: session.secure, final: false };
    }
    let unreadable = false;
    const body = (): NodeJS.ReadableStream | Buffer => {
      let b: NodeJS.ReadableStream | Buffer;
      try {
        b = msg.open();
      } catch (e) {
        unreadable = true;
        throw e;
      }
      if (!Buffer.isBuffer(b)) b.once('error', () => (unreadable = true));
      return b;
    };
    const rcpts = msg.recipients.map((r) => ({ address: r.address, params: rcptParams(r, caps) }));
    const record = await session.transaction(msg.sender, rcpts, mailParams(msg, caps, plan.smtputf8), body, signal);
    const outcomes = transactionOutcomes(msg.recipients, record, session.remote);
    const tlsUsed = session.secure;
    this.pool.put(poolKey(ep), session);
    return { outcomes, remote: session.remote, tls: tlsUsed, final: unreadable || signal?.aborted === true };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.close();
  }
}

/** The same message with other recipients (a copy that keeps open() working for class instances). */
function withRecipients(msg: OutboundMessage, recipients: OutboundRecipient[]): OutboundMessage {
  return { id: msg.id, sender: msg.sender, recipients, size: msg.size, envid: msg.envid, ret: msg.ret, body8bit: msg.body8bit, smtputf8: msg.smtputf8, open: () => msg.open() };
}

function printable(s: string): string {
  return JSON.stringify(s).slice(1, -1);
}

const interrupted = local('temporary', 421, '4.4.2', 'delivery interrupted before completion; will try again');

function answered(a: HopAttempt): boolean {
  return a.outcomes.some((o) => o.origin === 'remote');
}

function poolKey(ep: Endpoint): string {
  return `${ep.address}|${ep.port}`;
}

/** An SMTP transport (MX or smarthost). */
export function createSmtpTransport(opts: SmtpTransportOptions): SmtpTransport {
  return new SmtpTransport({ ...opts, lmtp: false });
}
