// Turns a decoded access-table result into a Verdict and its SMTP reply (spec §4.5, §4.7):
//   PORT_ACCESS        the $N text verbatim ("~" separates lines), then close
//   FROM_ACCESS        550 5.7.1 <text>
//   recipient tables   550 5.7.1 <text>: <recipient>
// `$X` replaces the enhanced code; a class-4 code makes the rejection temporary (451 at MAIL,
// 450 at RCPT). A bare `$N` says "Access denied". See docs/compatibility.md for the decisions.

import type { AccessResult } from '../mapping/access.js';
import { delayArgument } from '../mapping/access.js';
import { encodeReply } from '../smtp/codes.js';
import type { AccessActions, AccessTable, ReplyDelay, SmtpReply, Verdict } from './verdict.js';
import { NO_ACTIONS } from './verdict.js';

export const DEFAULT_REJECT_TEXT = 'Access denied';
/** RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including the code and CRLF. */
const MAX_REPLY_TEXT = 512 - 2 - 4 - 8;

export interface ReplyContext {
  /** The recipient as given in RCPT TO, for the recipient tables. */
  readonly recipient?: string;
}

function has(r: AccessResult, letter: string): boolean {
  return r.flags.includes(letter);
}

/** Replies carry no control characters: a CR or LF from a probe must not split the reply. */
function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\x00-\x1f\x7f]/g, ' ');
  return t.length > MAX_REPLY_TEXT ? t.slice(0, MAX_REPLY_TEXT) : t;
}

export function accessActions(r: AccessResult): AccessActions {
  if (r.mask === 0) return NO_ACTIONS;
  const a = r.args;
  const debug = a.U !== undefined && /^\s*-?\d+\s*$/.test(a.U) ? Number(a.U) : null;
  return {
    hold: has(r, 'H'),
    bitbucket: has(r, 'B'),
    discard: has(r, 'V'),
    jettison: has(r, 'Z'),
    novacation: has(r, '!'),
    debugLevel: debug,
    replaceFrom: a.J ?? null,
    replaceSender: a.K ?? null,
    groupCheck: a.I ?? null,
    syslogOnMatch: a['<'] ?? null,
    syslogOnReject: a['>'] ?? null,
    tag: a.T ?? null,
    addHeader: a.A ?? null,
  };
}

function replyDelay(r: AccessResult): ReplyDelay | null {
  const d = delayArgument(r.args);
  if (d === null || d === 0) return null;
  return { ms: Math.abs(d) * 10, scope: d > 0 ? 'transaction' : 'this-reply' };
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

export function accessVerdict(table: AccessTable, r: AccessResult, ctx: ReplyContext = {}): Verdict {
  const reason = `mapping:${table}` as const;
  const actions = accessActions(r);
  const delay = replyDelay(r);
  if (r.decision !== 'reject') return { kind: 'accept', reason, delay, actions };
  const text = r.args.N ?? r.args.F ?? '';
  if (table === 'PORT_ACCESS') {
    // Sent as written: the text carries its own SMTP code (spec §4.5).
    const lines = text === '' ? [] : text.split('~').map(clean);
    const m = /^([2-5]\d\d)/.exec(lines[0] ?? '');
    const reply: SmtpReply = { code: m ? Number(m[1]) : 0, enhanced: null, lines };
    return { kind: 'reject', reason, reply, raw: true, close: true, temporary: reply.code >= 400 && reply.code < 500, delay, actions };
  }
  const x = ENHANCED.exec((r.args.X ?? '').trim());
  const enhanced = x ? `${x[1]}.${x[2]}.${x[3]}` : '5.7.1';
  const temporary = enhanced.startsWith('4');
  const rcpt = table !== 'FROM_ACCESS';
  const code = temporary ? (rcpt ? 450 : 451) : 550;
  let line = text.trim() === '' ? DEFAULT_REJECT_TEXT : text;
  if (rcpt && ctx.recipient !== undefined) line = `${line}: ${ctx.recipient}`;
  return { kind: 'reject', reason, reply: { code, enhanced, lines: [clean(line)] }, raw: false, close: false, temporary, delay, actions };
}

/** The wire form of a reply, CRLF-terminated; raw replies are sent exactly as written. */
export function formatReply(reply: SmtpReply, raw: boolean): string {
  return raw ? reply.lines.map((l) => l + '\r\n').join('') : encodeReply(reply);
}
