// The questions an SMTP session asks policy, one per phase. The session collects the facts and
// writes the replies; policy only answers with a Verdict (verdict.ts). Implementations: the
// built-in policy of basic-policy.ts now; the access-table policy (PORT_ACCESS, FROM_ACCESS,
// ORIG_SEND_ACCESS, ...) plugs in behind the same interface.

import type { MailParams, Path, RcptParams } from '../smtp/commands.js';
import type { Verdict } from './verdict.js';

export type ServiceName = 'smtp' | 'submit' | 'smtps';

export interface TlsFacts {
  readonly protocol: string;
  readonly cipher: string;
}

/** What is known when a connection arrives (after any PROXY header). */
export interface ConnectionFacts {
  readonly service: ServiceName;
  readonly localIp: string;
  readonly localPort: number;
  readonly clientIp: string;
  readonly clientPort: number;
  /** The peer that really connected, when PROXY/XCLIENT replaced the client address. */
  readonly via: string | null;
}

/** What is known at a command: the connection plus the session's state. */
export interface SessionFacts extends ConnectionFacts {
  readonly helo: string | null;
  readonly esmtp: boolean;
  readonly tls: TlsFacts | null;
  /** The authenticated login, or null. */
  readonly authUser: string | null;
  /** The channel the session is on (tcp_local, tcp_submit, tcp_auth, ...). */
  readonly channel: string;
}

export type Answer = Verdict | Promise<Verdict>;

export type Mode = 'may' | 'must' | 'none';

/** Where this RCPT stands in its transaction (for the ACCESS_COUNTS probe field). */
export interface RcptCounts {
  /** This RCPT TO's number in the transaction, from 1. */
  readonly rcptCount: number;
  /** Recipients accepted before it. */
  readonly recipientCount: number;
}

/** Where an accepted recipient goes: its destination channel and, after alias expansion, the mailboxes. */
export interface RecipientRoute {
  readonly channel: string;
  readonly deliverTo: readonly { readonly address: string; readonly channel: string }[];
}

export interface RcptAnswer {
  readonly verdict: Verdict;
  /** Set when the recipient is accepted. */
  readonly route: RecipientRoute | null;
  /** The destination channel routing found, also for a refused recipient (its J record, spec §13). */
  readonly channel?: string | null;
}

export interface SessionPolicy {
  /** Before the greeting; a rejection sends its reply (if any) and closes. */
  connect(c: ConnectionFacts): Answer;
  /** Milliseconds to wait before the greeting on this connection (0 = greet at once). */
  greetingDelay(c: ConnectionFacts): number;
  /** The client sent data before the greeting. */
  earlyTalker(c: ConnectionFacts): Answer;
  /** The channel the session starts on (switchchannel applied). */
  sourceChannel(c: ConnectionFacts): string | Promise<string>;
  /** The channel after STARTTLS / after a successful AUTH (tlsswitchchannel, saslswitchchannel). */
  channelAfterTls(channel: string): string;
  channelAfterAuth(channel: string): string;
  /** Whether AUTH and STARTTLS are offered (may), required before MAIL (must), or not offered. */
  authMode(channel: string, service: ServiceName): Mode;
  tlsMode(channel: string, service: ServiceName): Mode;
  /** MAIL FROM. */
  mail(s: SessionFacts, from: Path, params: MailParams): Answer;
  /** RCPT TO; `from` is the transaction's sender. */
  rcpt(s: SessionFacts, from: Path, to: Path, params: RcptParams, counts: RcptCounts): RcptAnswer | Promise<RcptAnswer>;
  /** The end of DATA/BDAT, before the message is committed. */
  message(s: SessionFacts, from: Path, recipients: readonly Path[], size: number): Answer;
}
