// Message content: DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030). Content streams into a spool
// body behind our Received: header (RFC 5321 §4.4); a Message-ID is added when the message has
// none. A message is refused when it is too big, has bare CR/LF line breaks (SMTP smuggling) or
// over-long lines; otherwise policy has the last word and the message is committed — body,
// envelope and directory fsynced — before the 250.

import type { ContentIssues } from '../codec.js';
import { REPLY, reply } from '../codes.js';
import { newMessageId } from '../../queue/spool.js';
import type { EnvelopeV1 } from '../../queue/spool.js';
import type { SmtpReply } from '../../policy/verdict.js';
import { mergeActions } from '../../policy/verdict.js';
import type { Session, Transaction } from './session.js';
import { logEnqueued } from './txlog.js';
import { rfc5322Date } from '../../mail/date.js';

/** The "with" protocol keyword of RFC 3848 / RFC 6531 §3.7.3. */
export function withProtocol(esmtp: boolean, tls: boolean, auth: boolean, utf8: boolean): string {
  if (!esmtp) return 'SMTP';
  return `${utf8 ? 'UTF8SMTP' : 'ESMTP'}${tls ? 'S' : ''}${auth ? 'A' : ''}`;
}

/** Our trace header (RFC 5321 §4.4), folded, CRLF-terminated. */
export function receivedHeader(s: Session, id: string, tx: Transaction, when: Date): string {
  const st = s.state;
  const helo = st.helo ?? 'unknown';
  const ip = st.clientIp.includes(':') ? `IPv6:${st.clientIp}` : st.clientIp;
  const lines = [`Received: from ${helo} ([${ip}]${st.via !== null ? ` via ${st.via}` : ''})`];
  lines.push(`\tby ${s.options.hostname} (Portcullis) with ${withProtocol(st.esmtp, st.tls !== null, st.authUser !== null, tx.params.smtputf8)} id ${id}`);
  if (st.tls !== null) lines.push(`\t(using ${st.tls.protocol} with cipher ${st.tls.cipher})`);
  if (st.authUser !== null) lines.push(`\t(authenticated as ${st.authUser})`);
  const only = tx.recipients.length === 1 ? tx.recipients[0] : undefined;
  lines.push(`\t${only !== undefined ? `for <${only.path.mailbox}>; ` : ''}${rfc5322Date(when)}`);
  return lines.join('\r\n') + '\r\n';
}

function begin(s: Session, tx: Transaction, mode: 'data' | 'bdat'): void {
  const id = newMessageId(s.env.now().getTime());
  tx.mode = mode;
  // An access entry's $A adds a header line (spec §4.3).
  const extra = tx.actions.addHeader !== null ? `${tx.actions.addHeader.replace(/[\r\n]+/g, ' ')}\r\n` : '';
  tx.body = s.env.spool.begin(id, receivedHeader(s, id, tx, s.env.now()) + extra);
}

export async function handleData(s: Session, rest: string): Promise<void> {
  const tx = s.state.tx;
  if (rest.trim() !== '') {
    s.protocolError(reply(501, '5.5.4', 'Syntax: DATA (no parameters)'));
    return;
  }
  if (tx === null) {
    s.send(REPLY.needMail);
    return;
  }
  if (tx.mode === 'bdat') {
    s.send(REPLY.badSequence);
    return;
  }
  if (tx.recipients.length === 0) {
    s.send(REPLY.needRcpt);
    return;
  }
  if (s.state.replyDelayMs > 0) await s.delay(s.state.replyDelayMs);
  begin(s, tx, 'data');
  s.decoder.startData();
  s.armDataTimer();
  s.send(REPLY.startData);
}

export function handleBdat(s: Session, rest: string): void {
  const m = /^(\d{1,15})(?: +(LAST))?$/i.exec(rest.trim());
  if (m === null) {
    // Without a valid size the chunk cannot be skipped; the stream is lost, so end the session.
    s.send(reply(501, '5.5.4', 'Syntax: BDAT size [LAST]; closing connection'));
    s.close();
    return;
  }
  const size = Number(m[1]);
  const tx = s.state.tx;
  // The chunk's octets follow the command regardless of what we answer; read them.
  s.decoder.startBdat(size);
  s.armDataTimer();
  if (tx === null || tx.mode === 'data' || tx.recipients.length === 0 || tx.failed) {
    // The chunk is read and thrown away, then refused.
    s.state.bdatRefusal = tx === null ? REPLY.needMail : tx.recipients.length === 0 ? REPLY.needRcpt : REPLY.badSequence;
    return;
  }
  if (tx.mode === 'none') begin(s, tx, 'bdat');
  tx.last = m[2] !== undefined;
}

/** Content bytes (DATA after unstuffing, or a BDAT chunk). */
export function onData(s: Session, chunk: Buffer): void {
  s.armDataTimer();
  const tx = s.state.tx;
  if (tx === null || tx.body === null || s.state.bdatRefusal !== null) return;
  tx.received += chunk.length;
  if (tx.mode === 'bdat') checkBdatLines(tx, chunk);
  // Past the limit the rest is read and dropped; the reply comes at the end (RFC 1870 §6.2).
  if (tx.received > s.options.limits.maxMessageSize) tx.oversize = true;
  if (tx.oversize) return;
  tx.body.write(chunk);
  if (!tx.headerDone) watchHeaders(s, tx, chunk);
}

/** BDAT content is not dot-stuffed; line endings are still checked (no bare CR/LF, ≤ 1000 octets). */
function checkBdatLines(tx: Transaction, chunk: Buffer): void {
  for (let i = 0; i < chunk.length; i++) {
    const b = chunk[i] as number;
    if (tx.prevCr) {
      tx.prevCr = false;
      if (b === 10) {
        tx.lineLen = 0;
        continue;
      }
      tx.bareLineBreak = true;
    }
    if (b === 13) tx.prevCr = true;
    else if (b === 10) tx.bareLineBreak = true;
    else if (++tx.lineLen > 998) tx.longLine = true;
  }
}

/** Looks at the header block as it arrives and adds a Message-ID if it has none (RFC 5322 §3.6.4). */
function watchHeaders(s: Session, tx: Transaction, chunk: Buffer | null): void {
  if (chunk !== null) tx.headerSeen.push(chunk);
  const head = Buffer.concat(tx.headerSeen);
  const end = head.indexOf('\r\n\r\n');
  // At the end of the content (chunk null) whatever was seen is the whole header block: a message
  // may have no body and so no blank line.
  const complete = chunk === null || end !== -1 || head.length >= 65536 || head.indexOf('\r\n') === 0;
  if (!complete) return;
  tx.headerDone = true;
  const block = (end === -1 ? head : head.subarray(0, end + 2)).toString('latin1');
  tx.headerSeen = [];
  tx.messageId = messageIdOf(block);
  if (tx.messageId === null && tx.body !== null) {
    tx.messageId = `<${tx.body.id}@${s.options.hostname}>`;
    tx.body.addHeader(`Message-ID: ${tx.messageId}`);
  }
}

/** The Message-ID field's value (unfolded, its `<...>` part when it has one), or null when there is none. */
export function messageIdOf(block: string): string | null {
  const m = /(?:^|\r\n)message-id[ \t]*:((?:[^\r\n]|\r\n[ \t])*)/i.exec(block);
  if (m === null) return null;
  const value = (m[1] as string).replace(/\r\n/g, '').trim();
  const id = /<[^<>]*>/.exec(value);
  return id !== null ? id[0] : value;
}

export async function onDataEnd(s: Session, issues: ContentIssues): Promise<void> {
  const tx = s.state.tx;
  if (tx === null) return;
  tx.bareLineBreak ||= issues.bareLf || issues.bareCr;
  tx.longLine ||= issues.longLine;
  await finish(s, tx);
}

export async function onBdatEnd(s: Session): Promise<void> {
  const refusal = s.state.bdatRefusal;
  if (refusal !== null) {
    s.state.bdatRefusal = null;
    s.send(refusal);
    return;
  }
  const tx = s.state.tx;
  if (tx === null) return;
  if (tx.oversize) {
    // RFC 3030 §3: after an error the transaction is over; later chunks get 503.
    tx.failed = true;
    if (tx.body) void tx.body.abort();
    tx.body = null;
    s.send(REPLY.messageTooBig);
    return;
  }
  if (!tx.last) {
    s.send(reply(250, '2.0.0', `${tx.received} octets received`));
    return;
  }
  if (tx.prevCr) tx.bareLineBreak = true;
  await finish(s, tx);
}

function contentRefusal(tx: Transaction): SmtpReply | null {
  if (tx.oversize) return REPLY.messageTooBig;
  if (tx.bareLineBreak) return REPLY.bareLineBreak;
  if (tx.longLine) return REPLY.textLineTooLong;
  return null;
}

async function finish(s: Session, tx: Transaction): Promise<void> {
  const body = tx.body;
  const refused = contentRefusal(tx);
  if (refused === null && body !== null && !tx.headerDone) watchHeaders(s, tx, null);
  if (refused !== null || body === null) {
    s.env.log.log('info', 'smtp-message-refused', {
      client: s.state.clientIp,
      reason: tx.oversize ? 'size' : tx.bareLineBreak ? 'bare-line-break' : 'long-line',
      bytes: tx.received,
    });
    s.resetTransaction();
    s.send(refused ?? REPLY.localError);
    return;
  }
  const facts = s.facts();
  const verdict = await s.env.policy().message(facts, tx.from, tx.recipients.map((r) => r.path), body.bytes);
  if (await s.refuse(verdict)) {
    s.resetTransaction();
    return;
  }
  const st = s.state;
  const envelope: EnvelopeV1 = {
    version: 1,
    id: body.id,
    receivedAt: s.env.now().toISOString(),
    sender: tx.from.address,
    // RFC 4954 §5: an AUTH= claim from a client that has not authenticated is treated as AUTH=<>.
    senderParams: { ...tx.params, auth: st.authUser === null && tx.params.auth !== null ? '' : tx.params.auth },
    recipients: tx.recipients.map((r) => ({
      address: r.path.address,
      orcpt: r.params.orcpt,
      notify: r.params.notify,
      channel: r.route.channel,
      deliverTo: r.route.deliverTo,
      status: 'pending',
    })),
    sourceChannel: s.channel(),
    service: s.service,
    auth: st.authUser,
    client: { ip: st.clientIp, port: st.clientPort, helo: st.helo, via: st.via },
    tls: st.tls,
    size: body.bytes,
    flags: acceptFlags(mergeActions(tx.actions, verdict.actions)),
  };
  try {
    await s.env.spool.commit(body, envelope);
  } catch (err) {
    s.env.log.log('error', 'spool-commit-failed', { id: body.id, error: err instanceof Error ? err.message : String(err) });
    tx.body = null;
    s.resetTransaction();
    s.send(REPLY.localError);
    return;
  }
  tx.body = null;
  logEnqueued(s, envelope, tx);
  s.env.log.log('info', 'smtp-accepted', {
    id: envelope.id,
    client: st.clientIp,
    from: envelope.sender,
    to: envelope.recipients.map((r) => r.address),
    size: envelope.size,
    auth: st.authUser,
    channel: envelope.sourceChannel,
  });
  s.resetTransaction();
  s.send(reply(250, '2.0.0', `OK id=${envelope.id}`));
}

function acceptFlags(a: { hold: boolean; bitbucket: boolean; discard: boolean; jettison: boolean; novacation: boolean }): string[] {
  const out: string[] = [];
  if (a.hold) out.push('H');
  if (a.bitbucket) out.push('B');
  if (a.discard) out.push('V');
  if (a.jettison) out.push('Z');
  if (a.novacation) out.push('!');
  return out;
}
