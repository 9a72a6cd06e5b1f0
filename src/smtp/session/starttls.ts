// STARTTLS (RFC 3207). Anything the client pipelined after the command is thrown away before the
// handshake (§4.2: it must not be read as if it had come over TLS), and after the handshake the
// session forgets what it knew (§4.2: HELO, AUTH, transaction); the client must EHLO again.

import { REPLY } from '../codes.js';
import type { Session } from './session.js';
import { tlsOffered } from './ehlo.js';

export async function handleStartTls(s: Session, arg: string): Promise<void> {
  if (arg.trim() !== '') {
    s.protocolError({ code: 501, enhanced: '5.5.4', lines: ['Syntax: STARTTLS (no parameters)'] });
    return;
  }
  if (s.state.tls !== null) {
    s.send(REPLY.alreadyTls);
    return;
  }
  if (!tlsOffered(s)) {
    s.send(REPLY.tlsUnavailable);
    return;
  }
  s.send(REPLY.readyTls);
  const dropped = s.decoder.discardBuffered();
  if (dropped > 0) s.env.log.log('warn', 'smtp-starttls-pipelined', { client: s.state.clientIp, bytes: dropped });
  s.transport.uncork();
  // No plaintext 421 may land in the middle of a handshake: the transport bounds it instead.
  s.transport.setTimer(0, () => undefined);
  const tls = await s.transport.startTls();
  if (tls === null) {
    s.env.log.log('info', 'smtp-tls-failed', { client: s.state.clientIp });
    s.close();
    return;
  }
  s.resetTransaction();
  s.state.tls = tls;
  s.state.channel = s.env.policy().channelAfterTls(s.state.channel);
  s.state.helo = null;
  s.state.esmtp = false;
  s.state.authUser = null;
  s.armCommandTimer();
  s.transport.cork();
}
