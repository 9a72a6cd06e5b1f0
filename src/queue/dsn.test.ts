// The DSN checked as a reader sees it: parsed back with mailparser (a real MIME parser) for the
// top level and the returned message, and split by hand at its boundary to check the order and
// headers of the three parts and the RFC 3464 fields of message/delivery-status.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import type { ParsedMail } from 'mailparser';
import { composeDsn, dsnEnvelope, MAX_RETURNED_BYTES } from './dsn.js';
import { initialState, needsDsn } from './state.js';
import type { Target } from './state.js';
import type { EnvelopeV1 } from './spool.js';
import { rcpt, senderParams, submission } from '../../tests/support/envelopes.js';

const NOW = new Date('2026-11-24T09:30:00.000Z');

function envelope(more: Partial<EnvelopeV1> = {}, params: Partial<EnvelopeV1['senderParams']> = {}): EnvelopeV1 {
  const recipients = [rcpt('friend@remote.example', { orcpt: 'rfc822;Friend@Remote.example', notify: ['FAILURE'] }), rcpt('other@remote.example')];
  return submission(recipients, { senderParams: senderParams(params), ...more });
}

function failed(rcpt: number, address: string, more: Partial<Target> = {}): Target {
  return { rcpt, address, channel: 'tcp_local', status: 'failed', attempts: 1, nextAttemptAt: 0, diagnostic: 'smtp;550 5.1.1 <friend@remote.example>: no such user', remote: 'mx.remote.example[192.0.2.1]', dsnStatus: '5.1.1', ...more };
}

const HEADER = 'Received: from laptop by mta.example.test\r\nMessage-ID: <m1@example.test>\r\nFrom: Alice <alice@example.test>\r\nTo: friend@remote.example\r\nSubject: lunch\r\n';
const ORIGINAL = Buffer.from(`${HEADER}\r\nSee you at noon.\r\n`);

interface Part {
  readonly headers: Map<string, string>;
  readonly body: Buffer;
}

function parseHeaders(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    assert.ok(colon > 0, `a header field: ${JSON.stringify(line)}`);
    out.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return out;
}

/** Splits a multipart body at its boundary (RFC 2046 §5.1.1: the CRLF before a delimiter belongs to it). */
function splitParts(raw: Buffer, boundary: string): Part[] {
  const headerEnd = raw.indexOf('\r\n\r\n');
  const body = raw.subarray(headerEnd + 4);
  const delim = Buffer.from(`\r\n--${boundary}`);
  const parts: Part[] = [];
  let at = body.indexOf(`--${boundary}\r\n`);
  assert.ok(at !== -1, 'a first delimiter');
  at = body.indexOf('\r\n', at) + 2;
  for (;;) {
    const next = body.indexOf(delim, at);
    assert.ok(next !== -1, 'a closing delimiter');
    const part = body.subarray(at, next);
    const sep = part.indexOf('\r\n\r\n');
    parts.push({ headers: parseHeaders(part.subarray(0, sep).toString('latin1')), body: part.subarray(sep + 4) });
    const after = body.subarray(next + delim.length, next + delim.length + 2).toString();
    if (after === '--') {
      assert.equal(body.subarray(next + delim.length).toString(), '--\r\n', 'nothing after the close delimiter');
      return parts;
    }
    at = next + delim.length + 2;
  }
}

/** message/delivery-status: groups of header-like fields separated by blank lines (RFC 3464 §2.1). */
function statusGroups(body: Buffer): Map<string, string>[] {
  return body
    .toString('ascii')
    .split(/\r\n\r\n/)
    .filter((g) => g.trim() !== '')
    .map((g) => parseHeaders(g));
}

interface Dsn {
  readonly raw: Buffer;
  readonly parsed: ParsedMail;
  readonly parts: Part[];
  readonly perMessage: Map<string, string>;
  readonly perRecipient: Map<string, string>[];
}

async function dsnOf(env: EnvelopeV1, targets: Target[], message = ORIGINAL): Promise<Dsn> {
  const raw = composeDsn({ env, targets, message, hostname: 'mta.example.test', now: NOW });
  const parsed = await simpleParser(raw);
  const ct = parsed.headers.get('content-type') as { value: string; params: Record<string, string> };
  assert.equal(ct.value, 'multipart/report');
  assert.equal(ct.params['report-type'], 'delivery-status');
  const boundary = ct.params.boundary;
  assert.ok(boundary !== undefined && boundary.length > 0);
  const parts = splitParts(raw, boundary);
  const status = parts[1];
  assert.ok(status);
  const [perMessage, ...perRecipient] = statusGroups(status.body);
  assert.ok(perMessage);
  return { raw, parsed, parts, perMessage, perRecipient };
}

test('RFC 3464 §2: a multipart/report of three parts — notification, delivery-status, the message', async () => {
  const d = await dsnOf(envelope(), [failed(0, 'friend@remote.example')]);
  assert.deepEqual(
    d.parts.map((p) => p.headers.get('content-type')),
    ['text/plain; charset=us-ascii', 'message/delivery-status', 'message/rfc822'],
  );
  assert.match(d.parsed.text ?? '', /could not be delivered/);
  assert.match(d.parsed.text ?? '', /<friend@remote\.example>: smtp;550 5\.1\.1/);
  // The returned message, as the MIME parser sees it: the original, byte for byte.
  assert.equal(d.parsed.attachments.length, 1);
  const att = d.parsed.attachments[0];
  assert.equal(att?.contentType, 'message/rfc822');
  assert.deepEqual(att?.content, ORIGINAL);
  assert.deepEqual(d.parts[2]?.body, ORIGINAL);
});

test('the DSN header: from the mail system, to the sender, auto-replied (RFC 3834 §5), MIME 1.0', async () => {
  const d = await dsnOf(envelope(), [failed(0, 'friend@remote.example')]);
  const h = d.parsed.headers;
  assert.equal(d.parsed.from?.value[0]?.address, 'MAILER-DAEMON@mta.example.test');
  const to = Array.isArray(d.parsed.to) ? d.parsed.to[0] : d.parsed.to;
  assert.equal(to?.value[0]?.address, 'alice@example.test');
  assert.equal(h.get('auto-submitted'), 'auto-replied');
  assert.equal(h.get('mime-version'), '1.0');
  assert.ok(d.parsed.subject !== undefined && d.parsed.subject.length > 0);
  assert.deepEqual(d.parsed.date, new Date(Math.floor(NOW.getTime() / 1000) * 1000));
  assert.match(d.parsed.messageId ?? '', /^<mwucy2bc-6f58dee3d6\.dsn\.[0-9a-f]+@mta\.example\.test>$/);
});

test('the DSN is CRLF throughout and its own parts are 7-bit', async () => {
  const d = await dsnOf(envelope(), [failed(0, 'friend@remote.example'), failed(1, 'other@remote.example')]);
  const text = d.raw.toString('latin1');
  assert.equal(/(^|[^\r])\n/.test(text), false, 'no bare LF');
  assert.equal(/\r(?!\n)/.test(text), false, 'no bare CR');
  assert.ok(text.endsWith('--\r\n'));
  for (const line of text.split('\r\n')) assert.ok(line.length <= 998, 'RFC 5322 §2.1.1 line length');
  assert.equal(/[\x80-\xff]/.test(text), false);
  assert.equal(d.parsed.headers.get('content-transfer-encoding'), undefined);
});

test('RFC 3464 §2.2: per-message fields — Reporting-MTA, Arrival-Date, Original-Envelope-Id from ENVID', async () => {
  const d = await dsnOf(envelope({}, { envid: 'QQ314159' }), [failed(0, 'friend@remote.example')]);
  assert.equal(d.perMessage.get('reporting-mta'), 'dns; mta.example.test');
  assert.equal(d.perMessage.get('original-envelope-id'), 'QQ314159');
  assert.equal(Date.parse(d.perMessage.get('arrival-date') ?? ''), Date.parse('2026-11-24T07:12:54.000Z'));
  const without = await dsnOf(envelope(), [failed(0, 'friend@remote.example')]);
  assert.equal(without.perMessage.has('original-envelope-id'), false, 'no ENVID, no field');
});

test('RFC 3464 §2.3: per-recipient fields — Final-Recipient, Action: failed, Status, Diagnostic-Code, Remote-MTA, Original-Recipient', async () => {
  const d = await dsnOf(envelope(), [
    failed(0, 'friend@remote.example'),
    failed(1, 'other@remote.example', { diagnostic: 'smtp;552 5.2.2 mailbox full', remote: 'mx2.remote.example[2001:db8::2]:2525', dsnStatus: '5.2.2' }),
  ]);
  assert.equal(d.perRecipient.length, 2, 'one group per failed recipient');
  const [a, b] = d.perRecipient;
  assert.equal(a?.get('final-recipient'), 'rfc822; friend@remote.example');
  assert.equal(a?.get('original-recipient'), 'rfc822; Friend@Remote.example', 'from ORCPT, with its addr-type');
  assert.equal(a?.get('action'), 'failed');
  assert.equal(a?.get('status'), '5.1.1');
  assert.equal(a?.get('remote-mta'), 'dns; mx.remote.example');
  assert.equal(a?.get('diagnostic-code'), 'smtp; 550 5.1.1 <friend@remote.example>: no such user');
  assert.equal(Date.parse(a?.get('last-attempt-date') ?? ''), Math.floor(NOW.getTime() / 1000) * 1000);
  assert.equal(b?.get('final-recipient'), 'rfc822; other@remote.example');
  assert.equal(b?.has('original-recipient'), false, 'no ORCPT, no Original-Recipient');
  assert.equal(b?.get('status'), '5.2.2');
  assert.equal(b?.get('remote-mta'), 'dns; mx2.remote.example');
  assert.equal(b?.get('diagnostic-code'), 'smtp; 552 5.2.2 mailbox full');
  assert.match(d.parsed.text ?? '', /these recipients/);
});

test('per-recipient fields without a remote MTA, a typed diagnostic or a status', async () => {
  const d = await dsnOf(envelope(), [
    failed(0, 'friend@remote.example', { remote: null, diagnostic: 'no MX or address for remote.example', dsnStatus: null }),
    failed(1, 'other@remote.example', { remote: '/run/dovecot/lmtp', diagnostic: 'smtp;451 4.3.0 line one\r\nline two' }),
  ]);
  const [a, b] = d.perRecipient;
  assert.equal(a?.has('remote-mta'), false, 'unknown when no host answered');
  assert.equal(a?.get('diagnostic-code'), 'x-local; no MX or address for remote.example');
  assert.equal(a?.get('status'), '5.0.0', 'a failure with no known status is 5.0.0');
  assert.equal(b?.has('remote-mta'), false, 'a UNIX socket is not a dns name');
  assert.equal(b?.get('diagnostic-code'), 'smtp; 451 4.3.0 line one line two', 'a line break cannot split the field');
});

test('an expanded alias target is reported under its envelope recipient', async () => {
  const env = envelope();
  const d = await dsnOf(env, [failed(0, 'mailbox-behind-alias@remote.example')]);
  assert.equal(d.perRecipient[0]?.get('final-recipient'), 'rfc822; friend@remote.example');
});

test('RFC 3461 §4.3: RET=HDRS returns the header only, as text/rfc822-headers', async () => {
  const d = await dsnOf(envelope({}, { ret: 'HDRS' }), [failed(0, 'friend@remote.example')]);
  const returned = d.parts[2];
  assert.equal(returned?.headers.get('content-type'), 'text/rfc822-headers');
  assert.equal(returned?.body.toString(), HEADER);
  assert.equal(d.raw.includes('See you at noon.'), false, 'the body is not returned');
  assert.match(d.parsed.text ?? '', /header of your message/);
});

test('RET=FULL (or none) returns the whole message; past 1 MiB only its header', async () => {
  const full = await dsnOf(envelope({}, { ret: 'FULL' }), [failed(0, 'friend@remote.example')]);
  assert.deepEqual(full.parts[2]?.body, ORIGINAL);
  const big = Buffer.concat([Buffer.from(`${HEADER}\r\n`), Buffer.alloc(MAX_RETURNED_BYTES, 'x'), Buffer.from('\r\n')]);
  const d = await dsnOf(envelope({}, { ret: 'FULL' }), [failed(0, 'friend@remote.example')], big);
  assert.equal(d.parts[2]?.headers.get('content-type'), 'text/rfc822-headers');
  assert.equal(d.parts[2]?.body.toString(), HEADER);
  assert.ok(d.raw.length < 10_000);
});

test('a returned message without a final CRLF still ends before the close delimiter', async () => {
  const d = await dsnOf(envelope(), [failed(0, 'friend@remote.example')], Buffer.from(`${HEADER}\r\nno newline`));
  assert.equal(d.parts[2]?.body.toString(), `${HEADER}\r\nno newline\r\n`);
});

test('RFC 6152: an 8-bit original is returned unchanged with Content-Transfer-Encoding: 8bit', async () => {
  const eight = Buffer.from(`${HEADER}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n`);
  const d = await dsnOf(envelope({}, { body: '8BITMIME' }), [failed(0, 'friend@remote.example')], eight);
  assert.equal(d.parts[2]?.headers.get('content-transfer-encoding'), '8bit');
  assert.deepEqual(d.parts[2]?.body, eight);
  assert.deepEqual(d.parsed.attachments[0]?.content, eight);
  const seven = await dsnOf(envelope(), [failed(0, 'friend@remote.example')]);
  assert.equal(seven.parts[2]?.headers.has('content-transfer-encoding'), false, '7-bit needs no label');
  // Only the header is returned and it is 7-bit: no label even though the body was 8-bit.
  const hdrs = await dsnOf(envelope({}, { ret: 'HDRS' }), [failed(0, 'friend@remote.example')], eight);
  assert.equal(hdrs.parts[2]?.headers.has('content-transfer-encoding'), false);
});

test('dsnEnvelope: from the null sender (RFC 5321 §4.5.5) to the original sender, so it never bounces', () => {
  const original = envelope();
  const env = dsnEnvelope('mwucz000-0123456789', original, 1234, NOW);
  assert.equal(env.version, 1);
  assert.equal(env.id, 'mwucz000-0123456789');
  assert.equal(env.sender, '');
  assert.equal(env.receivedAt, NOW.toISOString());
  assert.equal(env.size, 1234);
  assert.deepEqual(env.flags, []);
  assert.equal(env.recipients.length, 1);
  assert.equal(env.recipients[0]?.address, 'alice@example.test');
  assert.deepEqual(env.recipients[0]?.notify, ['NEVER']);
  assert.equal(env.auth, null);
  // Whatever happens to it, the DSN itself asks for no DSN.
  const s = initialState(env, NOW.getTime());
  for (const t of s.targets) t.status = 'failed';
  assert.deepEqual(needsDsn(s, env, true), []);
  assert.doesNotThrow(() => JSON.stringify(env));
});
