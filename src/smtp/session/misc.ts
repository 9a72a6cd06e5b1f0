// The small commands (RFC 5321 §4.1.1.5–§4.1.1.10) and XCLIENT (Postfix's extension, honoured
// only from configured hosts: behind a firewall or proxy the MTA must still see the real client).

import { REPLY, reply } from '../codes.js';
import { decodeXtext } from '../commands.js';
import type { Session } from './session.js';

const XCLIENT_ATTRS = new Set(['ADDR', 'PORT', 'NAME', 'HELO', 'PROTO', 'LOGIN', 'DESTADDR', 'DESTPORT']);

export async function handleMisc(s: Session, verb: string, rest: string): Promise<void> {
  switch (verb) {
    case 'RSET':
      s.resetTransaction();
      s.send(REPLY.resetOk);
      return;
    case 'NOOP':
      s.send(REPLY.ok);
      return;
    case 'QUIT':
      s.send(REPLY.bye);
      s.close();
      return;
    case 'VRFY':
      s.send(REPLY.vrfy);
      return;
    case 'EXPN':
      s.send(REPLY.notImplemented);
      return;
    case 'HELP':
      s.send(REPLY.help);
      return;
    case 'XCLIENT':
      await xclient(s, rest);
      return;
    default:
      s.protocolError(REPLY.syntax);
  }
}

function unavailable(v: string): boolean {
  return v === '[UNAVAILABLE]' || v === '[TEMPUNAVAIL]';
}

async function xclient(s: Session, rest: string): Promise<void> {
  if (!s.env.xclientAllowed(s.peer.ip)) {
    s.protocolError(reply(550, '5.7.0', 'XCLIENT not permitted from your address'));
    return;
  }
  if (s.state.tx !== null) {
    s.send(REPLY.badSequence);
    return;
  }
  const attrs = new Map<string, string>();
  for (const word of rest.split(' ').filter(Boolean)) {
    const eq = word.indexOf('=');
    const key = word.slice(0, eq).toUpperCase();
    if (eq <= 0 || !XCLIENT_ATTRS.has(key)) {
      s.protocolError(reply(501, '5.5.4', `Bad XCLIENT attribute: ${word}`));
      return;
    }
    // Values are xtext (RFC 3461 §4: "+XX" escapes). Control characters would end up in our
    // Received: header (CR LF: header injection), so they are refused.
    const value = decodeXtext(word.slice(eq + 1));
    // eslint-disable-next-line no-control-regex
    if (value === null || /[\x00-\x1f\x7f]/.test(value)) {
      s.protocolError(reply(501, '5.5.4', `Bad XCLIENT attribute value: ${word}`));
      return;
    }
    attrs.set(key, value);
  }
  const addr = attrs.get('ADDR');
  if (addr !== undefined && !unavailable(addr)) {
    const ip = addr.replace(/^IPV6:/i, '');
    if (!/^[0-9.]+$/.test(ip) && !/^[0-9A-Fa-f:.]+$/.test(ip)) {
      s.protocolError(reply(501, '5.5.4', `Bad XCLIENT ADDR: ${addr}`));
      return;
    }
    s.state.clientIp = ip.toLowerCase();
  }
  const port = attrs.get('PORT');
  if (port !== undefined && /^\d{1,5}$/.test(port)) s.state.clientPort = Number(port);
  const helo = attrs.get('HELO');
  if (helo !== undefined) s.state.helo = unavailable(helo) ? null : helo;
  const login = attrs.get('LOGIN');
  if (login !== undefined) s.state.authUser = unavailable(login) ? null : login;
  s.state.via = s.peer.ip;
  s.env.log.log('info', 'smtp-xclient', { peer: s.peer.ip, client: s.state.clientIp, login: s.state.authUser });
  // The session now stands for the named client: the connect-time checks and channel selection run
  // again for it (PORT_ACCESS, switchchannel), and a LOGIN counts as an AUTH (saslswitchchannel).
  const policy = s.env.policy();
  const facts = s.connectionFacts();
  if (await s.refuse(await policy.connect(facts))) {
    s.close();
    return;
  }
  s.state.channel = await policy.sourceChannel(facts);
  if (s.state.authUser !== null) s.state.channel = policy.channelAfterAuth(s.state.channel);
  // Postfix semantics: XCLIENT is answered with a fresh greeting; the client starts over with EHLO.
  s.state.esmtp = attrs.get('PROTO')?.toUpperCase() === 'ESMTP';
  if (helo === undefined) s.state.helo = null;
  s.send({ code: 220, enhanced: null, lines: [`${s.options.hostname} ESMTP Portcullis`] });
}
