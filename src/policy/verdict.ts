// What a policy check returns to the SMTP session. Policy never writes to the socket: it returns a
// Verdict, and only the session turns verdicts into replies (shared/conventions.md). Reasons are a
// closed set of string literals so they can label log records and metrics.

export type AccessTable =
  | 'PORT_ACCESS'
  | 'FROM_ACCESS'
  | 'ORIG_SEND_ACCESS'
  | 'SEND_ACCESS'
  | 'ORIG_MAIL_ACCESS'
  | 'MAIL_ACCESS';

/**
 * Why a verdict was given: the access table that decided, or one of the built-in checks. A closed
 * set: these label transaction-log records and metrics.
 */
export type VerdictReason =
  | `mapping:${AccessTable}`
  | 'builtin:accept'
  | 'builtin:relay-denied'
  | 'builtin:unknown-recipient'
  | 'builtin:auth-required'
  | 'builtin:early-talker';

/** An SMTP reply: basic code, optional RFC 3463 enhanced code, one or more text lines. */
export interface SmtpReply {
  readonly code: number;
  readonly enhanced: string | null;
  readonly lines: readonly string[];
}

/** `$D` (spec §4.3): hold replies back, for every later reply of the transaction or just this one. */
export interface ReplyDelay {
  readonly ms: number;
  readonly scope: 'transaction' | 'this-reply';
}

/** Side effects an access entry asks for on an accepted message or session (spec §4.2–§4.3). */
export interface AccessActions {
  readonly hold: boolean; // $H
  readonly bitbucket: boolean; // $B
  readonly discard: boolean; // $V
  readonly jettison: boolean; // $Z
  readonly novacation: boolean; // $!
  readonly debugLevel: number | null; // $U
  readonly replaceFrom: string | null; // $J
  readonly replaceSender: string | null; // $K
  readonly groupCheck: string | null; // $I user|identifier
  readonly syslogOnMatch: string | null; // $<
  readonly syslogOnReject: string | null; // $>
  readonly tag: string | null; // $T
  readonly addHeader: string | null; // $A
}

/** No side effects: the actions of a plain accept. */
export const NO_ACTIONS: AccessActions = {
  hold: false,
  bitbucket: false,
  discard: false,
  jettison: false,
  novacation: false,
  debugLevel: null,
  replaceFrom: null,
  replaceSender: null,
  groupCheck: null,
  syslogOnMatch: null,
  syslogOnReject: null,
  tag: null,
  addHeader: null,
};

/** Combines the side effects of several accepting entries: any flag set stays set; the first argument wins. */
export function mergeActions(a: AccessActions, b: AccessActions): AccessActions {
  if (a === NO_ACTIONS) return b;
  if (b === NO_ACTIONS) return a;
  return {
    hold: a.hold || b.hold,
    bitbucket: a.bitbucket || b.bitbucket,
    discard: a.discard || b.discard,
    jettison: a.jettison || b.jettison,
    novacation: a.novacation || b.novacation,
    debugLevel: a.debugLevel ?? b.debugLevel,
    replaceFrom: a.replaceFrom ?? b.replaceFrom,
    replaceSender: a.replaceSender ?? b.replaceSender,
    groupCheck: a.groupCheck ?? b.groupCheck,
    syslogOnMatch: a.syslogOnMatch ?? b.syslogOnMatch,
    syslogOnReject: a.syslogOnReject ?? b.syslogOnReject,
    tag: a.tag ?? b.tag,
    addHeader: a.addHeader ?? b.addHeader,
  };
}

export const ACCEPT: Verdict = { kind: 'accept', reason: 'builtin:accept', delay: null, actions: NO_ACTIONS };

/** A rejection by a built-in check (not an access table). */
export function rejectWith(reason: VerdictReason, reply: SmtpReply, close = false): Verdict {
  return { kind: 'reject', reason, reply, raw: false, close, temporary: reply.code < 500, delay: null, actions: NO_ACTIONS };
}

export type Verdict =
  | {
      readonly kind: 'accept';
      readonly reason: VerdictReason;
      readonly delay: ReplyDelay | null;
      readonly actions: AccessActions;
    }
  | {
      readonly kind: 'reject';
      readonly reason: VerdictReason;
      /** PORT_ACCESS rejections are sent verbatim (`raw`); the others are built replies. */
      readonly reply: SmtpReply;
      readonly raw: boolean;
      /** Close the connection after the reply (PORT_ACCESS). */
      readonly close: boolean;
      readonly temporary: boolean;
      readonly delay: ReplyDelay | null;
      readonly actions: AccessActions;
    };
