// What the session writes to the transaction log (spec §13.2): E records once a message is
// committed, J records when policy refuses a sender or a recipient (with the reply sent as the
// diagnostic). Protocol errors (syntax, sequence, limits) are not J records.

import type { EnvelopeV1 } from '../../queue/spool.js';
import type { Verdict } from '../../policy/verdict.js';
import { enqueueRecords, rejectRecord } from '../../txlog/index.js';
import type { SessionSide } from '../../txlog/index.js';
import type { Path, RcptParams } from '../commands.js';
import type { Session, Transaction } from './session.js';

function side(s: Session): SessionSide {
  const st = s.state;
  return { channel: s.channel(), esmtp: st.esmtp, tls: st.tls !== null, authUser: st.authUser, clientIp: st.clientIp, helo: st.helo };
}

/** E records for a committed message, one per recipient and mailbox. */
export function logEnqueued(s: Session, env: EnvelopeV1, tx: Transaction): void {
  const log = s.env.txlog;
  if (log === undefined) return;
  for (const r of enqueueRecords(env, { esmtp: s.state.esmtp, chunking: tx.mode === 'bdat', messageId: tx.messageId }, s.env.now())) log.record(r);
}

/**
 * A J record for a refusal by policy. `to` is null when MAIL FROM was refused; `channel` is the
 * destination channel when routing found one.
 */
export function logRefused(s: Session, v: Verdict, from: Path, to: { path: Path; params: RcptParams } | null, channel: string | null): void {
  const log = s.env.txlog;
  if (log === undefined || v.kind !== 'reject') return;
  log.record(
    rejectRecord({
      session: side(s),
      from: from.address,
      to: to === null ? null : { address: to.path.address, orcpt: to.params.orcpt },
      destinationChannel: channel,
      reply: v.reply,
      reason: v.reason,
      time: s.env.now(),
    }),
  );
}
