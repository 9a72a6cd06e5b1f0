// MAIL FROM (RFC 5321 §4.1.1.2): starts a transaction. The reverse-path and parameters are
// parsed here; whether the sender may send is policy's (FROM_ACCESS in the access-table policy).

import { REPLY } from '../codes.js';
import { mailParams, parsePath, parsePathCommand } from '../commands.js';
import type { Session } from './session.js';
import { logRefused } from './txlog.js';

export async function handleMail(s: Session, rest: string): Promise<void> {
  if (s.state.helo === null) {
    s.send(REPLY.needHelo);
    return;
  }
  if (s.state.tx !== null) {
    s.send(REPLY.nestedMail);
    return;
  }
  const c = parsePathCommand(rest, 'FROM:', true);
  if (!c.ok) {
    s.protocolError({ code: c.code, enhanced: c.enhanced, lines: [c.text] });
    return;
  }
  const mp = mailParams(c.params, s.options.limits.maxMessageSize);
  if (!mp.ok) {
    s.send({ code: mp.code, enhanced: mp.enhanced, lines: [mp.text] });
    return;
  }
  // Refused before any policy work while the spool's disk is low (src/queue/space.ts).
  const space = s.env.spool.space;
  if (!(await space.hasRoom(s.options.limits.spoolMinFree, mp.mail.size ?? 0))) {
    if (space.shouldWarn()) s.env.log.log('warn', 'spool-low-space', { free: space.lastFree, minfree: s.options.limits.spoolMinFree, dir: s.env.spool.dir });
    s.send(REPLY.insufficientStorage);
    return;
  }
  // RFC 6531 §3.4: a non-ASCII address needs SMTPUTF8 on this MAIL command.
  if (c.path.utf8 && !mp.mail.smtputf8) {
    s.send(REPLY.utf8NotDeclared);
    return;
  }
  const verdict = await s.env.policy().mail(s.facts(), c.path, mp.mail);
  if (verdict.kind === 'reject') logRefused(s, verdict, c.path, null, null);
  if (await s.refuse(verdict)) return;
  // FROM_ACCESS's $J replaces the envelope sender (spec §4.3).
  let from = c.path;
  if (verdict.actions.replaceFrom !== null) {
    const j = parsePath(`<${verdict.actions.replaceFrom}>`, true);
    if (j.ok) from = j.path;
    else s.env.log.log('warn', 'mapping-bad-replacement', { client: s.state.clientIp, value: verdict.actions.replaceFrom });
  }
  s.state.tx = {
    from,
    actions: verdict.actions,
    rcptCommands: 0,
    params: mp.mail,
    recipients: [],
    body: null,
    failed: false,
    mode: 'none',
    received: 0,
    oversize: false,
    bareLineBreak: false,
    longLine: false,
    last: false,
    headerSeen: [],
    headerDone: false,
    messageId: null,
    prevCr: false,
    lineLen: 0,
  };
  s.send(REPLY.senderOk);
}
