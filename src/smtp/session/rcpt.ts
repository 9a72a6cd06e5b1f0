// RCPT TO (RFC 5321 §4.1.1.3): one recipient. Syntax and the recipient limit are checked here;
// whether the recipient is acceptable (local user, relaying) is policy's.

import { REPLY } from '../codes.js';
import { parsePathCommand, rcptParams } from '../commands.js';
import type { Session } from './session.js';
import { mergeActions } from '../../policy/verdict.js';
import { logRefused } from './txlog.js';

export async function handleRcpt(s: Session, rest: string): Promise<void> {
  const tx = s.state.tx;
  if (tx === null) {
    s.send(REPLY.needMail);
    return;
  }
  if (tx.mode !== 'none') {
    s.send(REPLY.badSequence);
    return;
  }
  const c = parsePathCommand(rest, 'TO:', false);
  if (!c.ok) {
    s.protocolError({ code: c.code, enhanced: c.enhanced, lines: [c.text] });
    return;
  }
  const rp = rcptParams(c.params);
  if (!rp.ok) {
    s.send({ code: rp.code, enhanced: rp.enhanced, lines: [rp.text] });
    return;
  }
  if (c.path.utf8 && !tx.params.smtputf8) {
    s.send(REPLY.utf8NotDeclared);
    return;
  }
  if (tx.recipients.length >= s.options.limits.maxRecipients) {
    s.send(REPLY.tooManyRecipients);
    return;
  }
  tx.rcptCommands++;
  const answer = await s.env.policy().rcpt(s.facts(), tx.from, c.path, rp.rcpt, { rcptCount: tx.rcptCommands, recipientCount: tx.recipients.length });
  const verdict = answer.verdict;
  // The J record goes out before the reply (and any $D delay), so LOG_ACTION's counting is done
  // by the time the client can send its next command.
  if (verdict.kind === 'reject') logRefused(s, verdict, tx.from, { path: c.path, params: rp.rcpt }, answer.channel ?? null);
  if (await s.refuse(verdict)) {
    if (verdict.kind === 'reject' && !verdict.temporary) s.noteRefusal();
    return;
  }
  if (s.state.tx !== tx || answer.route === null) return; // the session moved on (closed) while policy answered
  tx.actions = mergeActions(tx.actions, verdict.actions);
  tx.recipients.push({ path: c.path, params: rp.rcpt, route: answer.route });
  s.send(REPLY.recipientOk);
}
