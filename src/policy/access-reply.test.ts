import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAccess, parseFlagLetters } from '../mapping/index.js';
import { accessVerdict, formatReply } from './access-reply.js';

const res = (output: string, flags: string) => decodeAccess(true, output, parseFlagLetters(flags) ?? 0);

test('§4.7 recipient-table rejection: 550 5.7.1 <text>: <recipient>, with the $D delay', () => {
  const v = accessVerdict('ORIG_SEND_ACCESS', res('30|Excessive email sent - Please try again later', 'ND'), { recipient: 'user@domain' });
  assert.equal(v.kind, 'reject');
  if (v.kind !== 'reject') return;
  assert.equal(formatReply(v.reply, v.raw), '550 5.7.1 Excessive email sent - Please try again later: user@domain\r\n');
  assert.deepEqual(v.delay, { ms: 300, scope: 'transaction' });
  assert.equal(v.close, false);
});

test('§4.7 FROM_ACCESS rejection has no address appended', () => {
  const v = accessVerdict('FROM_ACCESS', res('example.com - Authentication required when sending with this envelope sender domain', 'N'));
  assert.ok(v.kind === 'reject');
  assert.equal(formatReply(v.reply, v.raw), '550 5.7.1 example.com - Authentication required when sending with this envelope sender domain\r\n');
});

test('§4.7 $X replaces the enhanced code; a class-4 code makes it temporary (450 at RCPT, 451 at MAIL)', () => {
  const rcpt = accessVerdict('SEND_ACCESS', res('4.7.1|Try later', 'XN'), { recipient: 'a@b' });
  assert.ok(rcpt.kind === 'reject');
  assert.equal(formatReply(rcpt.reply, false), '450 4.7.1 Try later: a@b\r\n');
  assert.equal(rcpt.temporary, true);
  const mail = accessVerdict('FROM_ACCESS', res('4.4.3|Please try again later', 'XN'));
  assert.ok(mail.kind === 'reject');
  assert.equal(formatReply(mail.reply, false), '451 4.4.3 Please try again later\r\n');
  const perm = accessVerdict('MAIL_ACCESS', res('5.1.8|Bad sender domain', 'XN'), { recipient: 'a@b' });
  assert.ok(perm.kind === 'reject');
  assert.equal(formatReply(perm.reply, false), '550 5.1.8 Bad sender domain: a@b\r\n');
});

test('§4.7 a bare $N says "Access denied"; a negative $D delays only this reply', () => {
  const v = accessVerdict('ORIG_MAIL_ACCESS', res('-200|', 'DN'), { recipient: 'x@y' });
  assert.ok(v.kind === 'reject');
  assert.equal(formatReply(v.reply, false), '550 5.7.1 Access denied: x@y\r\n');
  assert.deepEqual(v.delay, { ms: 2000, scope: 'this-reply' });
});

test('§4.5 PORT_ACCESS rejection text goes out verbatim ("~" separates lines), then the connection closes', () => {
  const v = accessVerdict('PORT_ACCESS', res('421 Connection declined at this time', 'N'));
  assert.ok(v.kind === 'reject');
  assert.equal(formatReply(v.reply, v.raw), '421 Connection declined at this time\r\n');
  assert.equal(v.close, true);
  assert.equal(v.temporary, true);
  const multi = accessVerdict('PORT_ACCESS', res('554-Go away~554 Really', 'N'));
  assert.ok(multi.kind === 'reject');
  assert.equal(formatReply(multi.reply, multi.raw), '554-Go away\r\n554 Really\r\n');
  const silent = accessVerdict('PORT_ACCESS', res('', 'N'));
  assert.ok(silent.kind === 'reject');
  assert.equal(formatReply(silent.reply, silent.raw), '');
});

test('§4.5 anything but N/F accepts; the output string is only a label; side-effect flags are reported', () => {
  const v = accessVerdict('PORT_ACCESS', res('EXTERNAL', 'Y'));
  assert.equal(v.kind, 'accept');
  const held = accessVerdict('SEND_ACCESS', res('X-Spam: yes', 'HA'));
  assert.equal(held.kind, 'accept');
  assert.equal(held.actions.hold, true);
  assert.equal(held.actions.addHeader, 'X-Spam: yes');
});

test('reply text cannot smuggle CR/LF from a probe into the reply', () => {
  const v = accessVerdict('SEND_ACCESS', res('bad\r\n250 ok', 'N'), { recipient: 'a@b' });
  assert.ok(v.kind === 'reject');
  assert.equal(formatReply(v.reply, false), '550 5.7.1 bad  250 ok: a@b\r\n');
});
