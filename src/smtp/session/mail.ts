// MAIL FROM (RFC 5321 §4.1.1.2): starts a transaction. The reverse-path and parameters are
// parsed here; whether the sender may send is policy's (FROM_ACCESS in the access-table policy).

import { REPLY } from '../codes.js';
import { mailParams, parseParams, parsePath } from '../commands.js';
import type { Session } from './session.js';

export async function handleMail(s: Session, rest: string): Promise<void> {
  if (s.state.helo === null) {
    s.send(REPLY.needHelo);
    return;
  }
  if (s.state.tx !== null) {
    s.send(REPLY.nestedMail);
    return;
  }
  if (!/^FROM:/i.test(rest)) {
    s.protocolError({ code: 501, enhanced: '5.5.4', lines: ['Syntax: MAIL FROM:<address>'] });
    return;
  }
  const p = parsePath(rest.slice(5), true);
  if (!p.ok) {
    s.protocolError({ code: p.code, enhanced: p.enhanced, lines: [p.text] });
    return;
  }
  const pp = parseParams(p.rest);
  if (!pp.ok) {
    s.protocolError({ code: pp.code, enhanced: pp.enhanced, lines: [pp.text] });
    return;
  }
  const mp = mailParams(pp.params, s.options.limits.maxMessageSize);
  if (!mp.ok) {
    s.send({ code: mp.code, enhanced: mp.enhanced, lines: [mp.text] });
    return;
  }
  // RFC 6531 §3.4: a non-ASCII address needs SMTPUTF8 on this MAIL command.
  if (p.path.utf8 && !mp.mail.smtputf8) {
    s.send(REPLY.utf8NotDeclared);
    return;
  }
  const verdict = await s.env.policy().mail(s.facts(), p.path, mp.mail);
  if (await s.refuse(verdict)) return;
  s.state.tx = {
    from: p.path,
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
    prevCr: false,
    lineLen: 0,
  };
  s.send(REPLY.senderOk);
}
