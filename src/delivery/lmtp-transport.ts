// LMTP delivery to a message store (RFC 2033): the SMTP transport speaking LHLO, to one host (or
// UNIX socket), with one reply per accepted recipient after the message — the role of Messaging
// Server's tcp_lmtpcs channel in front of the store (Dovecot here).

import { SmtpTransport } from './smtp-transport.js';
import type { SmtpTransportOptions } from './smtp-transport.js';

export type LmtpTransportOptions = Omit<SmtpTransportOptions, 'lmtp' | 'mxPort'>;

/** An LMTP transport; deliver() takes `{ kind: 'host', host, port }` destinations only. */
export function createLmtpTransport(opts: LmtpTransportOptions): SmtpTransport {
  return new SmtpTransport({ ...opts, lmtp: true });
}
