// Delivery state of one spooled message, as pure data and pure transitions. The runner keeps it in
// `<id>.state` beside the message file (docs/spool.md); the message file itself is never rewritten.
//
// A message has one *target* per place it must reach: each accepted recipient after alias
// expansion (`deliverTo`), on its destination channel. A target is pending until an attempt
// delivers it or fails it permanently; a temporary failure schedules the next attempt by the
// backoff schedule, and past the maximum age the target fails for good. A failed target needs a
// DSN unless NOTIFY says otherwise; once the DSN is enqueued the target is `notified`. When no
// target is pending or awaiting its DSN, the message is finished and leaves the spool.

import type { EnvelopeV1 } from './spool.js';

export type TargetStatus = 'pending' | 'delivered' | 'failed' | 'notified';

export interface Target {
  /** Index of the envelope recipient this target comes from. */
  readonly rcpt: number;
  /** Where it goes: a mailbox address (after alias expansion) or a remote address. */
  readonly address: string;
  readonly channel: string;
  status: TargetStatus;
  attempts: number;
  /** ms since the epoch; the earliest time of the next attempt (pending targets). */
  nextAttemptAt: number;
  /** The last remote answer or local diagnostic, e.g. "smtp;550 5.1.1 no such user". */
  diagnostic: string | null;
  /** Remote host of the last attempt, "mx.example[192.0.2.1]". */
  remote: string | null;
  /** RFC 3463 status for the DSN (e.g. 5.1.1, 4.4.1). */
  dsnStatus: string | null;
  /** Delay warnings already sent to the sender for this target (absent: none). */
  warned?: number;
}

export interface DeliveryState {
  readonly version: 1;
  readonly id: string;
  targets: Target[];
  /** Released by qm after a hold: an access table's $H does not hold it again. */
  released?: boolean;
}

export interface RetryPolicy {
  /** Waits after the 1st, 2nd, ... temporary failure (ms); the last one repeats. */
  readonly backoffMs: readonly number[];
  /** A target still undelivered this long after receipt fails permanently (ms). */
  readonly maxAgeMs: number;
  /** Spread each wait uniformly by ± this fraction, so retries do not arrive in waves. */
  readonly jitter: number;
  /**
   * Ages (ms after receipt, ascending) at which the sender of a still-undelivered message is
   * warned with a "delayed" DSN — Messaging Server's `notices` before the last; none when absent.
   */
  readonly warnAtMs?: readonly number[];
}

/** Postfix-like defaults: retry after 5, 10, 20, 40 minutes, then hourly, give up after 5 days. */
export const DEFAULT_RETRY: RetryPolicy = {
  backoffMs: [5, 10, 20, 40, 60].map((m) => m * 60_000),
  maxAgeMs: 5 * 86_400_000,
  jitter: 0.1,
};

/** The initial state: every target pending, due now. */
export function initialState(env: EnvelopeV1, now: number): DeliveryState {
  const targets: Target[] = [];
  env.recipients.forEach((r, rcpt) => {
    const to = r.deliverTo && r.deliverTo.length > 0 ? r.deliverTo : [{ address: r.address, channel: r.channel ?? 'tcp_local' }];
    for (const d of to) {
      targets.push({ rcpt, address: d.address, channel: d.channel, status: 'pending', attempts: 0, nextAttemptAt: now, diagnostic: null, remote: null, dsnStatus: null });
    }
  });
  return { version: 1, id: env.id, targets };
}

/** The outcome of one attempt for one target. */
export interface TargetOutcome {
  readonly kind: 'delivered' | 'temporary' | 'permanent';
  readonly diagnostic: string;
  readonly remote: string | null;
  /** RFC 3463 status, when known. */
  readonly dsnStatus: string | null;
  /** How a delivered target went, for the D record's modifiers (spec §13.2: L over LMTP, S over TLS). */
  readonly via?: { readonly lmtp: boolean; readonly tls: boolean };
  /**
   * Delivered into the recipient's mailbox (the message store), not relayed on: where RFC 3461
   * §4.1 NOTIFY=SUCCESS is answered with a "delivered" DSN.
   */
  readonly final?: boolean;
}

/** What applying an outcome did, for the transaction log (D, Q or R). */
export type Transition = 'delivered' | 'deferred' | 'failed';

/**
 * Applies an attempt's outcome to a target. A temporary failure becomes permanent once the
 * message is older than maxAge. `random` is in [0, 1) (a parameter, so tests are exact).
 */
export function applyOutcome(t: Target, o: TargetOutcome, receivedAt: number, now: number, policy: RetryPolicy, random: number): Transition {
  t.attempts += 1;
  t.diagnostic = o.diagnostic;
  t.remote = o.remote;
  t.dsnStatus = o.dsnStatus;
  if (o.kind === 'delivered') {
    t.status = 'delivered';
    return 'delivered';
  }
  if (o.kind === 'permanent') {
    t.status = 'failed';
    return 'failed';
  }
  // Give up only once the maximum age has passed, not when the next wait would cross it: the
  // retry that would land past the deadline is moved to the deadline, so the last attempt is
  // made at maxAge and a target is never returned before maxAge (options: delivery.maxage).
  const deadline = receivedAt + policy.maxAgeMs;
  if (now >= deadline) {
    t.status = 'failed';
    t.dsnStatus = expiredStatus(o.dsnStatus);
    t.diagnostic = `${o.diagnostic} (gave up after ${Math.round((now - receivedAt) / 3_600_000)} h)`;
    return 'failed';
  }
  t.nextAttemptAt = Math.min(now + backoff(policy, t.attempts, random), deadline);
  return 'deferred';
}

/** RFC 3463: a temporary condition that lasted too long is reported as 4.x.y turned 5.x.y, or 5.4.7 (delivery time expired). */
function expiredStatus(s: string | null): string {
  if (s !== null && /^4\.\d{1,3}\.\d{1,3}$/.test(s)) return `5${s.slice(1)}`;
  return '5.4.7';
}

/** The wait after the n-th temporary failure (n ≥ 1), with jitter. */
export function backoff(policy: RetryPolicy, n: number, random: number): number {
  const list = policy.backoffMs;
  const base = list[Math.min(n, list.length) - 1] ?? 60_000;
  const spread = base * policy.jitter * (2 * random - 1);
  return Math.max(1000, Math.round(base + spread));
}

/** Targets due for an attempt at `now`. */
export function dueTargets(s: DeliveryState, now: number): Target[] {
  return s.targets.filter((t) => t.status === 'pending' && t.nextAttemptAt <= now);
}

/** The earliest next attempt among pending targets, or null when none is pending. */
export function nextDue(s: DeliveryState): number | null {
  let best: number | null = null;
  for (const t of s.targets) if (t.status === 'pending' && (best === null || t.nextAttemptAt < best)) best = t.nextAttemptAt;
  return best;
}

/**
 * Failed targets whose sender must be told: not for the null sender (RFC 5321 §4.5.5: never bounce a
 * bounce), not when NOTIFY excludes FAILURE (RFC 3461 §4.1), and not when the source is one whose
 * failures must not bounce (backscatter).
 */
export function needsDsn(s: DeliveryState, env: EnvelopeV1, bounces: boolean): Target[] {
  return s.targets.filter((t) => {
    if (t.status !== 'failed') return false;
    if (!bounces || env.sender === '') return false;
    const notify = env.recipients[t.rcpt]?.notify;
    return notify === null || notify === undefined || notify.includes('FAILURE');
  });
}

/** True when every target is delivered, or failed and no longer awaiting a DSN. */
export function finished(s: DeliveryState, env: EnvelopeV1, bounces: boolean): boolean {
  return s.targets.every((t) => t.status === 'delivered' || t.status === 'notified' || (t.status === 'failed' && needsDsn({ ...s, targets: [t] }, env, bounces).length === 0));
}

/**
 * Pending targets whose sender is owed a delay warning now: the message is older than the next
 * warning age of the target's policy, the sender is not the null sender, the source bounces, and
 * NOTIFY allows it (RFC 3461 §4.1: DELAY asked for, or no NOTIFY at all, where warnings are the
 * MTA's choice). Only targets that failed at least once are warned about.
 */
export function delayWarningsDue(s: DeliveryState, env: EnvelopeV1, now: number, policyOf: (t: Target) => RetryPolicy, bounces: boolean): Target[] {
  if (!bounces || env.sender === '') return [];
  const age = now - Date.parse(env.receivedAt);
  return s.targets.filter((t) => {
    if (t.status !== 'pending' || t.attempts === 0) return false;
    const at = policyOf(t).warnAtMs ?? [];
    const next = at[t.warned ?? 0];
    if (next === undefined || age < next) return false;
    const notify = env.recipients[t.rcpt]?.notify;
    return notify === null || notify === undefined || notify.includes('DELAY');
  });
}

/** Records that a warning went out: every warning age already passed counts as sent (one message, not a burst after a long outage). */
export function markWarned(t: Target, age: number, policy: RetryPolicy): void {
  const at = policy.warnAtMs ?? [];
  let n = t.warned ?? 0;
  while (n < at.length && (at[n] as number) <= age) n++;
  t.warned = n;
}
