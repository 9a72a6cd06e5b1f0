// Replies, EHLO keywords and the ESMTP parameters we send (RFC 5321 §4.2, RFC 1870, RFC 3461,
// RFC 6152, RFC 6531, RFC 6533), and the decisions taken before MAIL FROM.

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { commandLine, mailParams, NO_CAPABILITIES, orcptParam, parseCapabilities, rcptParams, utf8AddrXtext, xtext } from './params.js';
import { headerHasNonAscii, isLocalFailure, preflight } from './preflight.js';
import { formatReply, parseReply, replyKind } from './reply.js';
import type { OutboundMessage } from './types.js';

function message(extra: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    id: 'm1',
    sender: 'a@example.test',
    recipients: [{ address: 'b@remote.test', orcpt: 'rfc822;b@remote.test', notify: ['FAILURE', 'DELAY'] }],
    size: 1234,
    envid: 'env 1+2',
    ret: 'HDRS',
    body8bit: true,
    smtputf8: false,
    open: () => Buffer.from('Subject: x\r\n\r\nhi\r\n'),
    ...extra,
  };
}

const ALL = parseCapabilities(['PIPELINING', 'SIZE 10000', '8BITMIME', 'SMTPUTF8', 'DSN', 'STARTTLS', 'ENHANCEDSTATUSCODES']);

describe('replies (RFC 5321 §4.2, RFC 2034)', () => {
  test('code, enhanced code and text of a multi-line reply', () => {
    assert.deepEqual(parseReply('550-5.1.1 <bob@x>: no such user\n550 5.1.1 see the help page'), { code: 550, enhanced: '5.1.1', text: '<bob@x>: no such user see the help page' });
    assert.deepEqual(parseReply('250 OK'), { code: 250, enhanced: null, text: 'OK' });
    assert.deepEqual(parseReply('421'), { code: 421, enhanced: null, text: '' });
    // An enhanced code whose class does not match the reply is text (RFC 2034 §4).
    assert.deepEqual(parseReply('250 5.1.1 odd'), { code: 250, enhanced: null, text: '5.1.1 odd' });
    assert.equal(parseReply('hello'), null);
  });

  test('classes', () => {
    assert.deepEqual([250, 354, 421, 452, 550, 554].map(replyKind), ['delivered', 'delivered', 'temporary', 'temporary', 'permanent', 'permanent']);
    assert.equal(formatReply({ code: 550, enhanced: '5.1.1', text: 'no' }), '550 5.1.1 no');
  });
});

describe('EHLO keywords', () => {
  test('SIZE with and without a limit; absent keywords', () => {
    assert.deepEqual(ALL, { size: 10000, dsn: true, eightBitMime: true, smtputf8: true, pipelining: true, startTls: true });
    assert.equal(parseCapabilities(['SIZE']).size, 0);
    // smtp-sink ends its EHLO reply with an empty "250 " line.
    assert.deepEqual(parseCapabilities(['PIPELINING', '8BITMIME', 'DSN', '']), { ...NO_CAPABILITIES, pipelining: true, eightBitMime: true, dsn: true });
  });
});

describe('xtext (RFC 3461 §4, RFC 6533 §3)', () => {
  test('xtext encodes +, = and octets outside 33..126', () => {
    assert.equal(xtext('env 1+2=3'), 'env+201+2B2+3D3');
    assert.equal(xtext('é'), '+C3+A9');
    assert.equal(utf8AddrXtext('jös+x@example.test'), 'j\\x{F6}s\\x{2B}x@example.test');
  });

  test('ORCPT: only the address part is encoded; non-ASCII rfc822 becomes utf-8', () => {
    assert.equal(orcptParam('rfc822;b+tag@remote.test'), 'rfc822;b+2Btag@remote.test');
    assert.equal(orcptParam('b@remote.test'), 'rfc822;b@remote.test');
    assert.equal(orcptParam('rfc822;jörg@remote.test'), 'utf-8;j\\x{F6}rg@remote.test');
  });
});

describe('MAIL and RCPT parameters only when offered', () => {
  test('everything offered', () => {
    const m = message();
    assert.deepEqual(mailParams(m, ALL, true), ['SIZE=1234', 'BODY=8BITMIME', 'SMTPUTF8', 'RET=HDRS', 'ENVID=env+201+2B2']);
    assert.deepEqual(rcptParams(m.recipients[0]!, ALL), ['NOTIFY=FAILURE,DELAY', 'ORCPT=rfc822;b@remote.test']);
    assert.equal(commandLine('MAIL FROM', '', []), 'MAIL FROM:<>');
  });

  test('nothing offered: bare commands', () => {
    const m = message();
    assert.deepEqual(mailParams(m, NO_CAPABILITIES, true), []);
    assert.deepEqual(rcptParams(m.recipients[0]!, NO_CAPABILITIES), []);
  });

  test('no NOTIFY or ORCPT given: none sent', () => {
    assert.deepEqual(rcptParams({ address: 'x@y', orcpt: null, notify: [] }, ALL), []);
  });
});

describe('preflight', () => {
  const never = (): Promise<boolean> => assert.fail('the header must not be read');

  test('RFC 1870 §4: larger than the announced maximum is a permanent 552 5.3.4', async () => {
    const p = await preflight(message({ size: 20000 }), ALL, 'send', never);
    assert.ok(isLocalFailure(p));
    assert.equal(p.kind, 'permanent');
    assert.equal(p.code, 552);
    assert.equal(p.enhanced, '5.3.4');
    assert.ok(!isLocalFailure(await preflight(message({ size: 20000 }), parseCapabilities(['SIZE 0']), 'send', never)));
  });

  test('SMTPUTF8: used when offered; refused (5.6.7) for UTF-8 addresses without it; dropped for an all-ASCII message', async () => {
    assert.deepEqual(await preflight(message({ smtputf8: true }), ALL, 'send', never), { smtputf8: true });
    const utf8Rcpt = message({ smtputf8: true, recipients: [{ address: 'jörg@remote.test', orcpt: null, notify: [] }] });
    const p = await preflight(utf8Rcpt, NO_CAPABILITIES, 'send', never);
    assert.ok(isLocalFailure(p) && p.enhanced === '5.6.7' && p.kind === 'permanent');
    const header = await preflight(message({ smtputf8: true }), NO_CAPABILITIES, 'send', () => Promise.resolve(true));
    assert.ok(isLocalFailure(header));
    assert.deepEqual(await preflight(message({ smtputf8: true }), NO_CAPABILITIES, 'send', () => Promise.resolve(false)), { smtputf8: false });
  });

  test('8-bit content to a server without 8BITMIME: sent by default, refused (5.6.3) when configured', async () => {
    assert.deepEqual(await preflight(message(), NO_CAPABILITIES, 'send', never), { smtputf8: false });
    const p = await preflight(message(), NO_CAPABILITIES, 'refuse', never);
    assert.ok(isLocalFailure(p) && p.enhanced === '5.6.3');
  });

  test('header scan: stops at the empty line, across chunks, and closes the stream', async () => {
    assert.equal(await headerHasNonAscii(Buffer.from('Subject: x\r\n\r\nbody é\r\n')), false);
    assert.equal(await headerHasNonAscii(Buffer.from('Subject: é\r\n\r\nbody\r\n')), true);
    assert.equal(await headerHasNonAscii(Buffer.from('\r\nbody é\r\n')), false);
    const chunks = ['Subject: a\r', '\n\r', '\nbody \xe9\r\n'].map((s) => Buffer.from(s, 'latin1'));
    const s = Readable.from(chunks);
    assert.equal(await headerHasNonAscii(s), false);
    assert.ok(s.destroyed);
    assert.equal(await headerHasNonAscii(Readable.from([Buffer.from('To: a\r\nSubject: '), Buffer.from('caf\xe9\r\n\r\n', 'latin1')])), true);
  });
});
