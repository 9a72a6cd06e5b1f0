// From what happened in a session to one outcome per recipient. Pure: the session (client.ts)
// records replies and failures, this file decides (RFC 5321 §4.2.1 for the classes; RFC 2033 §4.2
// for LMTP's per-recipient replies after DATA).

import { parseReply, replyKind } from './reply.js';
import type { Reply } from './reply.js';
import type { OutcomeKind, OutcomeStage, OutboundRecipient, RecipientOutcome } from './types.js';

/** One answer, remote or local, before it is attached to a recipient. */
export interface Result {
  readonly kind: OutcomeKind;
  readonly code: number;
  readonly enhanced: string | null;
  readonly text: string;
  readonly origin: 'remote' | 'local';
}

export function fromReply(r: Reply): Result {
  return { kind: replyKind(r.code), code: r.code, enhanced: r.enhanced, text: r.text, origin: 'remote' };
}

/** A raw reply string as nodemailer reports it; null if it is not a reply. */
export function fromRaw(raw: string | undefined | false | null): Result | null {
  if (typeof raw !== 'string') return null;
  const r = parseReply(raw);
  return r === null ? null : fromReply(r);
}

export function local(kind: 'temporary' | 'permanent', code: number, enhanced: string, text: string): Result {
  return { kind, code, enhanced, text, origin: 'local' };
}

/** What a transaction produced, in the order things happen. */
export interface TransactionRecord {
  /** The reply to MAIL FROM; null if it never came. */
  readonly mail: Result | null;
  /** Per recipient, the reply to its RCPT TO; null if none came. */
  readonly rcpt: readonly (Result | null)[];
  /** SMTP: the reply that ended the transaction after RCPT (a refused DATA, or the reply after the message). */
  readonly data: Result | null;
  /** LMTP: per recipient, its reply after the message (RFC 2033 §4.2); null if none came. */
  readonly lmtpData: readonly (Result | null)[] | null;
  /** Why the transaction ended early (connection lost, timeout, unreadable message); null if it did not. */
  readonly failure: Result | null;
}

function attach(address: string, r: Result, stage: OutcomeStage, remote: string | null): RecipientOutcome {
  return { address, kind: r.kind, code: r.code, enhanced: r.enhanced, text: r.text, remote, stage, origin: r.origin };
}

/** The same result for every recipient (a failure before MAIL, or a local decision). */
export function allOutcomes(rcpts: readonly OutboundRecipient[], r: Result, stage: OutcomeStage, remote: string | null): RecipientOutcome[] {
  return rcpts.map((x) => attach(x.address, r, stage, remote));
}

const NO_ANSWER = local('temporary', 421, '4.4.2', 'the transaction ended without an answer for this recipient');

/** One outcome per recipient of a transaction. */
export function transactionOutcomes(rcpts: readonly OutboundRecipient[], t: TransactionRecord, remote: string | null): RecipientOutcome[] {
  const failure = t.failure ?? NO_ANSWER;
  return rcpts.map((x, i) => {
    if (t.mail === null) return attach(x.address, failure, 'mail', remote);
    // A refused MAIL FROM refuses the whole transaction.
    if (t.mail.kind !== 'delivered') return attach(x.address, t.mail, 'mail', remote);
    const rcpt = t.rcpt[i] ?? null;
    if (rcpt === null) return attach(x.address, failure, 'rcpt', remote);
    // RFC 5321 §4.5.3.1.10: 552 to RCPT from an old server means "too many recipients": the
    // recipient is retried in a later transaction rather than bounced.
    if (rcpt.kind !== 'delivered') return attach(x.address, rcpt.code === 552 ? { ...rcpt, kind: 'temporary' } : rcpt, 'rcpt', remote);
    if (t.lmtpData !== null) {
      // LMTP: a refused DATA command (t.data) applies to all; otherwise each has its own reply.
      const own = t.data ?? t.lmtpData[i] ?? null;
      return attach(x.address, own ?? failure, 'data', remote);
    }
    // RFC 5321 §4.2.5 / §6.1: the reply after the message applies to every accepted recipient;
    // without one (connection lost after "."), the message may or may not have arrived, and we
    // retry (a possible duplicate, never a loss).
    return attach(x.address, t.data ?? failure, 'data', remote);
  });
}
