// SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, checked against the
// directory. Offered only over TLS unless configured otherwise; an inactive account is refused
// like a wrong password (the reply does not tell which); every failure is logged with the client
// address, and too many failures end the session.

import { REPLY } from '../codes.js';
import { authAllowed, authOffered } from './ehlo.js';
import type { Session } from './session.js';

/** An AUTH exchange waiting for the client's next line. */
export interface AuthExchange {
  readonly mechanism: 'PLAIN' | 'LOGIN';
  /** LOGIN: the user name once received. */
  user: string | null;
}

function b64(s: string): string | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return null;
  return Buffer.from(s, 'base64').toString('utf8');
}

const USERNAME = Buffer.from('Username:').toString('base64');
const PASSWORD = Buffer.from('Password:').toString('base64');

export async function handleAuth(s: Session, arg: string): Promise<void> {
  if (s.state.helo === null || !s.state.esmtp) {
    s.send(REPLY.needHelo);
    return;
  }
  if (s.state.authUser !== null) {
    s.send(REPLY.alreadyAuth);
    return;
  }
  if (s.state.tx !== null) {
    s.send(REPLY.badSequence);
    return;
  }
  if (!authAllowed(s)) {
    s.send(REPLY.notImplemented);
    return;
  }
  if (!authOffered(s)) {
    s.send(REPLY.encryptionRequired);
    return;
  }
  const [mechRaw = '', initial, ...extra] = arg.split(' ');
  const mechanism = mechRaw.toUpperCase();
  if (extra.length > 0) {
    s.protocolError(REPLY.paramSyntax);
    return;
  }
  if (mechanism === 'PLAIN') {
    if (initial === undefined) {
      s.state.auth = { mechanism, user: null };
      s.send({ code: 334, enhanced: null, lines: [''] });
      return;
    }
    await plain(s, initial);
    return;
  }
  if (mechanism === 'LOGIN') {
    s.state.auth = { mechanism, user: null };
    if (initial !== undefined) {
      await continueAuth(s, initial);
      return;
    }
    s.send({ code: 334, enhanced: null, lines: [USERNAME] });
    return;
  }
  s.send(REPLY.authMechanism);
}

/** The client's answer to a 334 challenge. */
export async function continueAuth(s: Session, line: string): Promise<void> {
  const ex = s.state.auth;
  if (ex === null) return;
  if (line === '*') {
    s.state.auth = null;
    s.send(REPLY.authCancelled);
    return;
  }
  if (ex.mechanism === 'PLAIN') {
    s.state.auth = null;
    await plain(s, line);
    return;
  }
  const text = b64(line);
  if (text === null) {
    s.state.auth = null;
    s.protocolError({ code: 501, enhanced: '5.5.2', lines: ['Cannot decode the base64 response'] });
    return;
  }
  if (ex.user === null) {
    ex.user = text;
    s.send({ code: 334, enhanced: null, lines: [PASSWORD] });
    return;
  }
  s.state.auth = null;
  await verify(s, ex.user, text, 'LOGIN');
}

async function plain(s: Session, response: string): Promise<void> {
  const text = response === '=' ? '' : b64(response);
  if (text === null) {
    s.protocolError({ code: 501, enhanced: '5.5.2', lines: ['Cannot decode the base64 response'] });
    return;
  }
  const parts = text.split('\0');
  if (parts.length !== 3) {
    s.protocolError({ code: 501, enhanced: '5.5.2', lines: ['PLAIN response must be authzid NUL authcid NUL password'] });
    return;
  }
  const [authzid = '', authcid = '', password = ''] = parts;
  // RFC 4616 §2: acting for another identity is not offered.
  if (authzid !== '' && authzid !== authcid) {
    await fail(s, authcid, 'authzid-mismatch', 'PLAIN');
    return;
  }
  await verify(s, authcid, password, 'PLAIN');
}

async function verify(s: Session, login: string, password: string, mechanism: string): Promise<void> {
  const result = await s.env.directory().authenticate(login, password);
  if (s.state.closing) return;
  if (result.ok) {
    s.state.authUser = result.user.login;
    s.state.channel = s.env.policy().channelAfterAuth(s.state.channel);
    s.env.log.log('info', 'smtp-auth', { client: s.state.clientIp, login: result.user.login, mechanism });
    s.send(REPLY.authOk);
    return;
  }
  await fail(s, login, result.reason, mechanism);
}

async function fail(s: Session, login: string, reason: string, mechanism: string): Promise<void> {
  s.state.authFailures++;
  s.env.log.log('warn', 'smtp-auth-failed', { client: s.state.clientIp, login, reason, mechanism, failures: s.state.authFailures });
  // A small pause slows password guessing without holding up anyone else.
  await s.delay(Math.min(1000, 200 * s.state.authFailures));
  if (s.state.authFailures >= s.options.limits.maxAuthFailures) {
    s.send(REPLY.tooManyAuthFailures);
    s.close();
    return;
  }
  s.send(REPLY.authFailed);
}
