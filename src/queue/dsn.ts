// Delivery status notifications (RFC 3464) for failed (or delayed) recipients: a multipart/report with a human
// part, the machine-readable message/delivery-status and the returned message (RFC 3461 RET:
// HDRS returns the header only; FULL, or no RET, the whole message up to a size limit).
//
// Written by hand rather than with a MIME library: the structure is fixed, every part is ours
// and 7-bit except the returned message, which is passed through unchanged as RFC 6522 allows
// (message/rfc822 is declared 8bit when the original is not 7-bit).

import { randomBytes } from 'node:crypto';
import type { EnvelopeV1 } from './spool.js';
import type { Target } from './state.js';
import { rfc5322Date } from '../mail/date.js';

/** Returned messages larger than this are cut to their header (RFC 3461 §4.3 permits it). */
export const MAX_RETURNED_BYTES = 1 << 20;

export interface DsnInput {
  readonly env: EnvelopeV1;
  readonly targets: readonly Target[];
  /**
   * 'failed' (default): the targets are given up on, the message is returned. 'delayed': a
   * warning that delivery is still being retried until `retryUntil` (RFC 3464 §2.3.3, §2.3.9);
   * only the header of the message is returned.
   */
  readonly action?: 'failed' | 'delayed' | 'delivered';
  readonly retryUntil?: Date;
  /** The original message (header and body, CRLF). */
  readonly message: Buffer;
  /** This server's host name (Reporting-MTA, From). */
  readonly hostname: string;
  readonly now: Date;
}


function headerOf(message: Buffer): Buffer {
  const end = message.indexOf('\r\n\r\n');
  return end === -1 ? message : message.subarray(0, end + 2);
}

function is7bit(b: Buffer): boolean {
  for (const x of b) if (x > 127) return false;
  return true;
}

/** Splits an SMTP-style diagnostic "smtp;550 5.1.1 text" into its type and text. */
function diagnosticCode(d: string | null): string | null {
  if (d === null) return null;
  const semi = d.indexOf(';');
  const type = semi > 0 && /^[a-z-]+$/i.test(d.slice(0, semi)) ? d.slice(0, semi) : 'x-local';
  const text = (semi > 0 ? d.slice(semi + 1) : d).replace(/[\r\n]+/g, ' ').trim();
  return `${type}; ${text}`;
}

/** The DSN message (header and body, CRLF line ends). */
export function composeDsn(input: DsnInput): Buffer {
  const { env, targets, hostname, now } = input;
  const boundary = `=_portcullis_${randomBytes(9).toString('base64url')}`;
  const delayed = input.action === 'delayed';
  const delivered = input.action === 'delivered';
  // Warnings and success reports carry the header only; failures return what RET asks for.
  const hdrsOnly = delayed || delivered || env.senderParams.ret === 'HDRS' || input.message.length > MAX_RETURNED_BYTES;
  const returned = hdrsOnly ? headerOf(input.message) : input.message;
  const lines: string[] = [
    `From: Mail Delivery System <MAILER-DAEMON@${hostname}>`,
    `To: <${env.sender}>`,
    delayed ? 'Subject: Delayed Mail (still being retried)' : delivered ? 'Subject: Successful Mail Delivery Report' : 'Subject: Undelivered Mail Returned to Sender',
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${env.id}.dsn.${randomBytes(4).toString('hex')}@${hostname}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Description: Notification',
    '',
    `This is the mail system at ${hostname}.`,
    '',
    delivered
      ? `Your message was delivered to the mailbox of ${targets.length === 1 ? 'this recipient' : 'these recipients'}, as you asked:`
      : delayed
      ? `Your message could not be delivered yet to ${targets.length === 1 ? 'this recipient' : 'these recipients'}; delivery is still being attempted${input.retryUntil ? ` until ${rfc5322Date(input.retryUntil)}` : ''}. You do not need to resend it:`
      : `Your message could not be delivered to ${targets.length === 1 ? 'this recipient' : 'these recipients'}:`,
    '',
  ];
  for (const t of targets) {
    lines.push(`  <${env.recipients[t.rcpt]?.address ?? t.address}>: ${t.diagnostic ?? 'delivery failed'}`);
  }
  lines.push('', hdrsOnly ? 'The header of your message is attached.' : 'Your message is attached.', '');
  lines.push(`--${boundary}`, 'Content-Type: message/delivery-status', 'Content-Description: Delivery report', '');
  lines.push(`Reporting-MTA: dns; ${hostname}`, `X-Portcullis-Queue-ID: ${env.id}`);
  if (env.senderParams.envid !== null) lines.push(`Original-Envelope-Id: ${env.senderParams.envid}`);
  lines.push(`Arrival-Date: ${rfc5322Date(new Date(env.receivedAt))}`);
  for (const t of targets) {
    const r = env.recipients[t.rcpt];
    lines.push('', `Final-Recipient: rfc822; ${r?.address ?? t.address}`);
    if (r?.orcpt) {
      const semi = r.orcpt.indexOf(';');
      lines.push(`Original-Recipient: ${semi > 0 ? `${r.orcpt.slice(0, semi)}; ${r.orcpt.slice(semi + 1)}` : `rfc822; ${r.orcpt}`}`);
    }
    lines.push(`Action: ${delivered ? 'delivered' : delayed ? 'delayed' : 'failed'}`, `Status: ${t.dsnStatus ?? (delivered ? '2.0.0' : delayed ? '4.0.0' : '5.0.0')}`);
    // "mx.example[192.0.2.1]:2525" names mx.example; a UNIX socket path (LMTP) is not a dns name.
    const remoteHost = t.remote?.replace(/\[.*$/, '') ?? '';
    if (remoteHost !== '' && !remoteHost.startsWith('/')) lines.push(`Remote-MTA: dns; ${remoteHost}`);
    const code = diagnosticCode(t.diagnostic);
    if (code !== null) lines.push(`Diagnostic-Code: ${code}`);
    lines.push(`Last-Attempt-Date: ${rfc5322Date(now)}`);
    if (delayed && input.retryUntil !== undefined) lines.push(`Will-Retry-Until: ${rfc5322Date(input.retryUntil)}`);
  }
  lines.push('', `--${boundary}`);
  lines.push(hdrsOnly ? 'Content-Type: text/rfc822-headers' : 'Content-Type: message/rfc822');
  if (!is7bit(returned)) lines.push('Content-Transfer-Encoding: 8bit');
  lines.push(`Content-Description: ${delivered ? 'Delivered' : delayed ? 'Delayed' : 'Undelivered'} message`, '', '');
  const head = Buffer.from(lines.join('\r\n'));
  const tail = Buffer.from(`${returned.subarray(-2).toString() === '\r\n' ? '' : '\r\n'}\r\n--${boundary}--\r\n`);
  return Buffer.concat([head, returned, tail]);
}

/** The envelope of a DSN: null sender, one recipient (the original sender), from the server itself. */
export function dsnEnvelope(id: string, original: EnvelopeV1, size: number, now: Date): EnvelopeV1 {
  return {
    version: 1,
    id,
    receivedAt: now.toISOString(),
    sender: '',
    senderParams: { size: null, body: '8BITMIME', smtputf8: false, ret: null, envid: null, auth: null },
    recipients: [{ address: original.sender, orcpt: null, notify: ['NEVER'], channel: null, status: 'pending' }],
    sourceChannel: 'l',
    service: 'internal',
    auth: null,
    client: { ip: '127.0.0.1', port: 0, helo: null, via: null },
    tls: null,
    size,
    flags: [],
  };
}
