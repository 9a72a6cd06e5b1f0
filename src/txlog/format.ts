// The two written forms of a transaction record (spec §13.1), as pure functions.
//
// mail.log_current — one line per record, for people and for tools written for Messaging Server:
//
//   24-Nov-2026 14:54:13.72 tcp_auth     ims-ms       EESA 1 alice@example.test rfc822;bob@example.test bob@example.test spool;lz3k9a1-0a1b2c3d4e <lz3k9a1-0a1b2c3d4e@mx.example.test> dns;laptop [203.0.113.5] auth;alice@example.test
//
//   1-2  date and time, `dd-Mon-yyyy hh:mm:ss.cc` (hundredths, truncated), local time or UTC
//   3-4  source and destination channel, each padded to 12 columns (longer names just push on)
//   5    entry code: action and modifiers (record.ts)
//   6    size in blocks of log.transactions.block_size bytes (1024: kilobytes), rounded up
//   7    envelope From, blank for <> (Messaging Server's default LOG_FORMAT 1)
//   8    original recipient, `rfc822;addr`
//   9    current recipient
//   then, each only when known, in this order and each recognisable by its form:
//        spool;ID  <message-id>  dns;REMOTE-HOST  [CLIENT-IP]  auth;LOGIN  (REASON)  DIAGNOSTIC
//   The reason and the diagnostic (e.g. `smtp;550 5.1.1 ...`) are free text with spaces, so they
//   come last; mta.log_reason / mta.log_diagnostics bit 0 decide whether they are written.
//
// Fields 1-9 and the tail tokens never contain a space or a control character (they become "?"),
// so splitting a line on runs of spaces finds them — except field 7, which is blank for <>,
// exactly as in Messaging Server. mail.jsonl is the exact form for machines.
//
// mail.jsonl — one JSON object per record, every field named, null when unknown, the size in
// bytes and the time in ISO 8601 UTC with milliseconds (formatJsonLine).

import { entryCode } from './record.js';
import type { TxRecord } from './record.js';

export interface TextFormat {
  /** Bytes per size unit (Messaging Server's BLOCK_SIZE); 1024 logs kilobytes. */
  readonly blockSize: number;
  /** Write times in UTC instead of local time. */
  readonly utc: boolean;
  /** Write the reason (mta.log_reason bit 0). */
  readonly reason: boolean;
  /** Write the diagnostic (mta.log_diagnostics bit 0). */
  readonly diagnostic: boolean;
}

export const DEFAULT_TEXT_FORMAT: TextFormat = { blockSize: 1024, utc: false, reason: true, diagnostic: true };

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const CHANNEL_WIDTH = 12;

const p2 = (n: number): string => String(n).padStart(2, '0');

interface Parts {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly ms: number;
}

function parts(d: Date, utc: boolean): Parts {
  return utc
    ? { year: d.getUTCFullYear(), month: d.getUTCMonth(), day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds(), ms: d.getUTCMilliseconds() }
    : { year: d.getFullYear(), month: d.getMonth(), day: d.getDate(), hour: d.getHours(), minute: d.getMinutes(), second: d.getSeconds(), ms: d.getMilliseconds() };
}

/** `24-Nov-2026 14:54:13.72`: Messaging Server's log time, hundredths truncated. */
export function logTime(d: Date, utc: boolean): string {
  const t = parts(d, utc);
  return `${p2(t.day)}-${MONTHS[t.month]}-${t.year} ${p2(t.hour)}:${p2(t.minute)}:${p2(t.second)}.${p2(Math.floor(t.ms / 10))}`;
}

/** The calendar day of a time, `2026-11-24`, in the log's zone: what daily rotation compares. */
export function logDay(d: Date, utc: boolean): string {
  const t = parts(d, utc);
  return `${t.year}-${p2(t.month + 1)}-${p2(t.day)}`;
}

/** Size in blocks, rounded up: a 200-byte message is 1 (KB), an empty one 0. */
export function sizeInBlocks(bytes: number, blockSize: number): number {
  return bytes <= 0 ? 0 : Math.ceil(bytes / Math.max(1, blockSize));
}

/** A field that must stay one token: spaces and control characters become "?". */
function token(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x20\x7f]/g, '?');
}

/** Free text (reason, diagnostic): control characters become spaces so a record stays one line. */
function freeText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, ' ').trim();
}

function present(s: string | null | undefined): s is string {
  return s !== null && s !== undefined && s !== '';
}

/** The mail.log_current line of a record, with its "\n". */
export function formatTextLine(r: TxRecord, f: TextFormat = DEFAULT_TEXT_FORMAT): string {
  const fields = [
    logTime(r.time, f.utc),
    token(r.sourceChannel).padEnd(CHANNEL_WIDTH),
    token(r.destinationChannel).padEnd(CHANNEL_WIDTH),
    token(entryCode(r)),
    String(sizeInBlocks(r.size, f.blockSize)),
    token(r.envFrom),
    token(r.origRecipient),
    token(r.recipient),
  ];
  if (present(r.spoolId)) fields.push(`spool;${token(r.spoolId)}`);
  if (present(r.messageId)) fields.push(token(r.messageId.startsWith('<') ? r.messageId : `<${r.messageId}>`));
  if (present(r.remoteHost)) fields.push(`dns;${token(r.remoteHost)}`);
  if (present(r.clientIp)) fields.push(`[${token(r.clientIp)}]`);
  if (present(r.username)) fields.push(`auth;${token(r.username)}`);
  if (f.reason && present(r.reason)) fields.push(`(${freeText(r.reason)})`);
  if (f.diagnostic && present(r.diagnostic)) fields.push(freeText(r.diagnostic));
  return fields.join(' ') + '\n';
}

/** The record as mail.jsonl names it; every key is always present (null when unknown). */
export interface JsonRecord {
  readonly time: string;
  readonly code: string;
  readonly action: string;
  readonly modifiers: string;
  readonly source: string;
  readonly destination: string;
  readonly size: number;
  readonly from: string;
  readonly orcpt: string;
  readonly to: string;
  readonly spoolId: string | null;
  readonly messageId: string | null;
  readonly remoteHost: string | null;
  readonly clientIp: string | null;
  readonly username: string | null;
  readonly reason: string | null;
  readonly diagnostic: string | null;
}

export function jsonRecord(r: TxRecord): JsonRecord {
  const code = entryCode(r);
  return {
    time: r.time.toISOString(),
    code,
    action: r.action,
    modifiers: code.slice(1),
    source: r.sourceChannel,
    destination: r.destinationChannel,
    size: r.size,
    from: r.envFrom,
    orcpt: r.origRecipient,
    to: r.recipient,
    spoolId: r.spoolId ?? null,
    messageId: r.messageId ?? null,
    remoteHost: r.remoteHost ?? null,
    clientIp: r.clientIp ?? null,
    username: r.username ?? null,
    reason: r.reason ?? null,
    diagnostic: r.diagnostic ?? null,
  };
}

/** The mail.jsonl line of a record, with its "\n". */
export function formatJsonLine(r: TxRecord): string {
  return JSON.stringify(jsonRecord(r)) + '\n';
}
