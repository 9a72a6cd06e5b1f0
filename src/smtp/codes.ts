// Named SMTP replies, with the RFC section each comes from. Enhanced status codes per RFC 3463 /
// RFC 5248. Only the session writes replies; everything else refers to these by name.

import type { SmtpReply } from '../policy/verdict.js';

function r(code: number, enhanced: string | null, ...lines: string[]): SmtpReply {
  return { code, enhanced, lines };
}

export const REPLY = {
  // RFC 5321 §4.2.2 / §4.3.2
  ok: r(250, '2.0.0', 'OK'),
  senderOk: r(250, '2.1.0', 'Sender OK'),
  recipientOk: r(250, '2.1.5', 'Recipient OK'),
  resetOk: r(250, '2.0.0', 'Reset OK'),
  bye: r(221, '2.0.0', 'Bye'),
  startData: r(354, null, 'End data with <CR><LF>.<CR><LF>'),
  readyTls: r(220, '2.0.0', 'Ready to start TLS'),
  authOk: r(235, '2.7.0', 'Authentication successful'),
  // RFC 5321 §3.5.3: VRFY is not refused outright, but we do not confirm addresses.
  vrfy: r(252, '2.5.0', 'Cannot verify the user, but will accept the message and attempt delivery'),
  help: r(214, '2.0.0', 'See RFC 5321'),

  // Temporary failures
  shuttingDown: r(421, '4.3.2', 'Service shutting down, closing connection'),
  tooManyConnections: r(421, '4.7.0', 'Too many connections, try again later'),
  tooManyFromYou: r(421, '4.7.0', 'Too many connections from your address, try again later'),
  commandTimeout: r(421, '4.4.2', 'Timeout waiting for a command, closing connection'),
  dataTimeout: r(421, '4.4.2', 'Timeout waiting for message data, closing connection'),
  tooManyErrors: r(421, '4.7.0', 'Too many errors, closing connection'),
  tooManyAuthFailures: r(421, '4.7.0', 'Too many failed authentication attempts, closing connection'),
  // RFC 5321 §4.5.3.1.10: 452 for too many recipients.
  tooManyRecipients: r(452, '4.5.3', 'Too many recipients'),
  // RFC 5321 §4.2.2 452 "insufficient system storage"; RFC 3463 4.3.1 "mail system full".
  insufficientStorage: r(452, '4.3.1', 'Insufficient system storage, try again later'),
  localError: r(451, '4.3.0', 'Local error in processing, message not accepted; try again later'),
  tlsUnavailable: r(454, '4.7.0', 'TLS not available'),
  authTempFail: r(454, '4.7.0', 'Temporary authentication failure'),

  // Permanent failures
  syntax: r(500, '5.5.2', 'Syntax error, command unrecognized'),
  lineTooLong: r(500, '5.5.6', 'Line too long'),
  badSequence: r(503, '5.5.1', 'Bad sequence of commands'),
  needHelo: r(503, '5.5.1', 'Send EHLO or HELO first'),
  needMail: r(503, '5.5.1', 'Send MAIL FROM first'),
  needRcpt: r(503, '5.5.1', 'No valid recipients'),
  nestedMail: r(503, '5.5.1', 'Sender already specified'),
  alreadyTls: r(503, '5.5.1', 'TLS already active'),
  alreadyAuth: r(503, '5.5.1', 'Already authenticated'),
  notImplemented: r(502, '5.5.1', 'Command not implemented'),
  paramSyntax: r(501, '5.5.4', 'Syntax error in parameters'),
  authMechanism: r(504, '5.5.4', 'Unrecognized authentication type'),
  authFailed: r(535, '5.7.8', 'Authentication credentials invalid'),
  // RFC 4954 §6: 538 when the mechanism needs an encrypted channel.
  encryptionRequired: r(538, '5.7.11', 'Encryption required for requested authentication mechanism'),
  authRequired: r(530, '5.7.0', 'Authentication required'),
  authCancelled: r(501, '5.0.0', 'Authentication cancelled'),
  messageTooBig: r(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  // RFC 5321 §2.3.8 and the 2023 SMTP smuggling advisories: refuse bare line breaks in content.
  bareLineBreak: r(554, '5.6.11', 'Message contains a bare CR or LF; lines must end with CRLF'),
  textLineTooLong: r(554, '5.6.0', 'Message contains a line longer than 998 characters'),
  utf8NotDeclared: r(553, '5.6.7', 'Non-ASCII address requires the SMTPUTF8 parameter'),
  earlyTalker: r(554, '5.5.1', 'Protocol error: client sent data before the greeting'),
} as const;

export function reply(code: number, enhanced: string | null, text: string): SmtpReply {
  return { code, enhanced, lines: [text] };
}

/** The wire form: "250-..." continuation lines, "250 ..." last, enhanced code on each line. */
export function encodeReply(rep: SmtpReply): string {
  const n = rep.lines.length;
  let out = '';
  for (let k = 0; k < n; k++) {
    out += `${rep.code}${k < n - 1 ? '-' : ' '}${rep.enhanced ? rep.enhanced + ' ' : ''}${rep.lines[k] ?? ''}\r\n`;
  }
  return out;
}
