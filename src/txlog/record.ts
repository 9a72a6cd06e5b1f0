// One transaction-log record (spec §13): what happened to one recipient of one message, or to one
// attempt to enqueue it. The same value becomes a line of mail.log_current, a line of mail.jsonl
// and the probe of the LOG_ACTION mapping table (§8.2); format.ts and log-action.ts say how.

/**
 * Action codes of spec §13.2. V is left out (the spec treats it as opaque); connection entries
 * (O, C, X, Y, T, U, I) are not message records and are not written yet.
 */
export type ActionCode =
  | 'E' // enqueued
  | 'D' // dequeued: delivered
  | 'R' // rejected on dequeue by the remote side, or a bounce generated
  | 'Q' // temporary dequeue failure
  | 'J' // enqueue attempt rejected at SMTP (access tables, routing, unknown user)
  | 'K' // as R or W, but the sender asked for no DSN
  | 'W' // warning (delay) notification generated
  | 'Z' // partial success: this recipient temporarily failed, re-enqueued with the rest
  | 'B'; // bad SMTP command (recipient field = the command, diagnostic = the reply)

/** Modifiers appended to the action code (§13.2): ESMTP, LMTP, CHUNKING, TLS, SASL. */
export type Modifier = 'E' | 'L' | 'C' | 'S' | 'A';

/**
 * The order modifiers are written in. Messaging Server's documentation shows `EEC` (ESMTP before
 * CHUNKING) and PMDF's `DSA` (TLS before SASL); the relative order of the two pairs is
 * undocumented, so protocol modifiers come first, then security (docs/compatibility.md).
 */
export const MODIFIER_ORDER: readonly Modifier[] = ['E', 'L', 'C', 'S', 'A'];

export interface TxRecord {
  /** When it happened (the caller's clock). */
  readonly time: Date;
  readonly action: ActionCode;
  /** In any order and with repeats; written in MODIFIER_ORDER, each once, on E and D records only. */
  readonly modifiers?: readonly Modifier[];
  /** The channel the message came from (tcp_local, tcp_auth, ...). */
  readonly sourceChannel: string;
  /** The channel it goes to (ims-ms, tcp_local, ...); '' when unknown (a refused MAIL FROM). */
  readonly destinationChannel: string;
  /** Message size in bytes; 0 when there is no message yet (J records). */
  readonly size: number;
  /** Envelope sender; '' for the null reverse-path <>. */
  readonly envFrom: string;
  /** Original recipient in ORCPT form, `rfc822;addr` (origRecipient() builds it); '' when none. */
  readonly origRecipient: string;
  /** Current recipient: after rewriting and alias expansion (E, D, R, Q), as given (J). */
  readonly recipient: string;
  /** The header Message-ID, with its angle brackets. */
  readonly messageId?: string | null;
  /** The spool id (docs/spool.md). */
  readonly spoolId?: string | null;
  /** Why: a policy reason such as `mapping:ORIG_SEND_ACCESS` or `builtin:unknown-recipient`. */
  readonly reason?: string | null;
  /** The reply that decided, typed: `smtp;550 5.1.1 unknown or illegal alias: <x@y>`. */
  readonly diagnostic?: string | null;
  /** The peer's name: the client's EHLO/HELO name inbound (no reverse DNS), the remote MTA outbound. */
  readonly remoteHost?: string | null;
  /** The authenticated login (SASL). */
  readonly username?: string | null;
  /** The client's IP address (inbound) or the remote MTA's (outbound). */
  readonly clientIp?: string | null;
}

/** Actions that carry modifiers: the transfers themselves (PMDF lists EA, ES, ESA, DA, DS, DSA only). */
const MODIFIED: ReadonlySet<ActionCode> = new Set(['E', 'D']);

/**
 * The action code with its modifiers, e.g. `EESA` (enqueued over ESMTP, with TLS and SASL).
 * Only E and D records carry modifiers; J, R, Q, ... are written bare, so the §8.3 recipe's
 * `J|tcp_auth|...` and `R|tcp_auth|...` patterns match them (docs/compatibility.md).
 */
export function entryCode(r: Pick<TxRecord, 'action' | 'modifiers'>): string {
  const m = r.modifiers ?? [];
  if (m.length === 0 || !MODIFIED.has(r.action)) return r.action;
  return r.action + MODIFIER_ORDER.filter((x) => m.includes(x)).join('');
}

/** ORCPT form of a recipient (RFC 3461): the client's ORCPT when it gave one, else `rfc822;<address>`. */
export function origRecipient(address: string, orcpt: string | null | undefined): string {
  if (orcpt !== null && orcpt !== undefined && orcpt !== '') return orcpt;
  return address === '' ? '' : `rfc822;${address}`;
}

/** An SMTP reply as a diagnostic field: `smtp;550 5.1.1 text` (lines of a multi-line reply joined by spaces). */
export function smtpDiagnostic(reply: { readonly code: number; readonly enhanced: string | null; readonly lines: readonly string[] }): string {
  const text = reply.lines.join(' ');
  return `smtp;${reply.code}${reply.enhanced !== null ? ` ${reply.enhanced}` : ''}${text !== '' ? ` ${text}` : ''}`;
}

/** Session facts an inbound record carries (E and J). */
export interface InboundFacts {
  readonly esmtp: boolean;
  readonly tls: boolean;
  readonly auth: boolean;
  readonly chunking?: boolean;
}

/** Modifiers of an inbound record (§13.2): E for ESMTP, C for BDAT, S for TLS, A for SASL. */
export function inboundModifiers(f: InboundFacts): Modifier[] {
  const out: Modifier[] = [];
  if (f.esmtp) out.push('E');
  if (f.chunking === true) out.push('C');
  if (f.tls) out.push('S');
  if (f.auth) out.push('A');
  return out;
}
