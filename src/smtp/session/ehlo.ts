// EHLO and HELO (RFC 5321 §4.1.1.1): record the client's name, reset any transaction, and list
// the extensions on offer. STARTTLS is offered only where a certificate is configured and TLS is
// not yet active; AUTH only over TLS unless smtp.authwithouttls allows it (RFC 4954 §4).

import { reply } from '../codes.js';
import type { Session } from './session.js';

/** AUTH is on offer: the channel allows it (maysaslserver/mustsaslserver) and the connection is safe for passwords. */
export function authOffered(s: Session): boolean {
  return s.state.authUser === null && authAllowed(s) && (s.state.tls !== null || s.options.authWithoutTls);
}

export function authAllowed(s: Session): boolean {
  return s.env.policy().authMode(s.state.channel, s.service) !== 'none';
}

export function tlsOffered(s: Session): boolean {
  return s.transport.canStartTls && s.state.tls === null && s.env.policy().tlsMode(s.state.channel, s.service) !== 'none';
}

function validHeloName(name: string): boolean {
  // Control characters (NUL, ESC, ...) would be copied into our Received: header.
  // eslint-disable-next-line no-control-regex
  return name !== '' && !/[\s\x00-\x1f\x7f]/.test(name) && name.length <= 255;
}

export function handleEhlo(s: Session, arg: string): void {
  const name = arg.trim();
  if (!validHeloName(name)) {
    s.protocolError(reply(501, '5.5.4', 'Syntax: EHLO hostname'));
    return;
  }
  s.resetTransaction();
  s.state.helo = name;
  s.state.esmtp = true;
  const o = s.options;
  const lines = [
    `${o.hostname} Hello ${name} [${s.state.clientIp}]`,
    'PIPELINING',
    `SIZE ${o.limits.maxMessageSize}`,
    '8BITMIME',
    'SMTPUTF8',
    'ENHANCEDSTATUSCODES',
    'DSN',
    'CHUNKING',
  ];
  if (tlsOffered(s)) lines.push('STARTTLS');
  if (authOffered(s)) lines.push('AUTH PLAIN LOGIN');
  if (s.env.xclientAllowed(s.peer.ip)) lines.push('XCLIENT ADDR PORT NAME HELO PROTO LOGIN DESTADDR DESTPORT');
  s.send({ code: 250, enhanced: null, lines });
}

export function handleHelo(s: Session, arg: string): void {
  const name = arg.trim();
  if (!validHeloName(name)) {
    s.protocolError(reply(501, '5.5.4', 'Syntax: HELO hostname'));
    return;
  }
  s.resetTransaction();
  s.state.helo = name;
  s.state.esmtp = false;
  s.send({ code: 250, enhanced: null, lines: [`${s.options.hostname} Hello ${name} [${s.state.clientIp}]`] });
}
