// Building records from what their writers know (spec §13.2). The SMTP service writes E for each
// recipient of a committed message and J for each recipient or sender refused by the access
// tables, routing or alias expansion; the queue runner writes D, Q, R (and E for the DSNs it
// makes) for each delivery target of a spooled message. Pure functions.

import type { EnvelopeV1 } from '../queue/spool.js';
import { inboundModifiers, origRecipient, smtpDiagnostic } from './record.js';
import type { ActionCode, Modifier, TxRecord } from './record.js';

/** What the session knows about itself when it writes a record. */
export interface SessionSide {
  readonly channel: string;
  readonly esmtp: boolean;
  readonly tls: boolean;
  readonly authUser: string | null;
  readonly clientIp: string;
  readonly helo: string | null;
}

/**
 * E records of a committed message: one per place each recipient goes after alias expansion
 * (the mailbox on ims-ms, the remote address on tcp_local, ...), with the modifiers of the
 * session (ESMTP, CHUNKING when it arrived by BDAT, TLS, SASL).
 */
export function enqueueRecords(env: EnvelopeV1, s: { readonly esmtp: boolean; readonly chunking: boolean; readonly messageId: string | null }, time: Date): TxRecord[] {
  const modifiers = inboundModifiers({ esmtp: s.esmtp, chunking: s.chunking, tls: env.tls !== null, auth: env.auth !== null });
  const out: TxRecord[] = [];
  for (const rcpt of env.recipients) {
    const targets = rcpt.deliverTo && rcpt.deliverTo.length > 0 ? rcpt.deliverTo : [{ address: rcpt.address, channel: rcpt.channel ?? '' }];
    for (const t of targets) {
      out.push({
        time,
        action: 'E',
        modifiers,
        sourceChannel: env.sourceChannel,
        destinationChannel: t.channel,
        size: env.size,
        envFrom: env.sender,
        origRecipient: origRecipient(rcpt.address, rcpt.orcpt),
        recipient: t.address,
        messageId: s.messageId,
        spoolId: env.id,
        remoteHost: env.client.helo,
        username: env.auth,
        clientIp: env.client.ip,
      });
    }
  }
  return out;
}

/** A refusal at SMTP, as a J record: the reply is the diagnostic, the verdict's reason the reason. */
export interface Refusal {
  readonly session: SessionSide;
  /** The envelope sender ('' for <>). */
  readonly from: string;
  /** The refused recipient, or null when MAIL FROM itself was refused. */
  readonly to: { readonly address: string; readonly orcpt: string | null } | null;
  /** The channel the recipient rewrote to, when routing found one. */
  readonly destinationChannel: string | null;
  readonly reply: { readonly code: number; readonly enhanced: string | null; readonly lines: readonly string[] };
  readonly reason: string;
  readonly time: Date;
}

/**
 * The J record of a refusal. No modifiers (only E and D carry them); size 0 (no message was
 * received); a refused MAIL FROM has empty destination channel and recipient fields.
 */
export function rejectRecord(f: Refusal): TxRecord {
  const s = f.session;
  return {
    time: f.time,
    action: 'J',
    sourceChannel: s.channel,
    destinationChannel: f.destinationChannel ?? '',
    size: 0,
    envFrom: f.from,
    origRecipient: f.to === null ? '' : origRecipient(f.to.address, f.to.orcpt),
    recipient: f.to?.address ?? '',
    reason: f.reason,
    diagnostic: smtpDiagnostic(f.reply),
    remoteHost: s.helo,
    username: s.authUser,
    clientIp: s.clientIp,
  };
}

/** One delivery target of a spooled message, as the runner sees it (structurally its Target). */
export interface QueueTarget {
  /** Index of the envelope recipient. */
  readonly rcpt: number;
  /** Where it goes: the mailbox or remote address. */
  readonly address: string;
  /** The last remote answer or local diagnostic, e.g. "smtp;550 5.1.1 no such user". */
  readonly diagnostic?: string | null;
  /** The remote host of the attempt, e.g. "mx.example[192.0.2.1]". */
  readonly remote?: string | null;
}

export interface QueueEvent {
  /** D delivered, Q deferred, R failed or bounced, K failed without DSN, E the runner's own message (a DSN). */
  readonly action: ActionCode;
  readonly destinationChannel: string;
  /** L over LMTP, S over TLS, E over ESMTP, ... */
  readonly modifiers?: readonly Modifier[];
  readonly reason?: string | null;
  readonly time: Date;
}

/**
 * A record for the queue runner: D, Q, R (or K, Z, W, E) for one target of a spooled message.
 * The source channel, sender, original recipient and size come from the envelope; the remote
 * host and diagnostic from the target.
 */
export function queueRecord(env: EnvelopeV1, target: QueueTarget, e: QueueEvent): TxRecord {
  const rcpt = env.recipients[target.rcpt];
  const remote = target.remote ?? null;
  // "mx.example[192.0.2.1]", or "relay.example[192.0.2.1]:587" off port 25 → host and address.
  const m = remote !== null ? /^(.*)\[([^\]]+)\](?::\d+)?$/.exec(remote) : null;
  return {
    time: e.time,
    action: e.action,
    modifiers: e.modifiers ?? [],
    sourceChannel: env.sourceChannel,
    destinationChannel: e.destinationChannel,
    size: env.size,
    envFrom: env.sender,
    origRecipient: rcpt === undefined ? '' : origRecipient(rcpt.address, rcpt.orcpt),
    recipient: target.address,
    spoolId: env.id,
    reason: e.reason ?? null,
    diagnostic: target.diagnostic ?? null,
    remoteHost: m !== null ? m[1] || null : remote,
    username: env.auth,
    clientIp: m !== null ? (m[2] ?? null) : null,
  };
}
