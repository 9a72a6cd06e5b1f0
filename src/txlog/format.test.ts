// The mail.log_current line and the mail.jsonl object (spec §13.1), as golden lines. Times are
// formatted in UTC here so the lines do not depend on the machine's zone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatJsonLine, formatTextLine, logDay, logTime, sizeInBlocks } from './format.js';
import type { TextFormat } from './format.js';
import { enqueueRecords, queueRecord, rejectRecord } from './build.js';
import { entryCode, origRecipient, smtpDiagnostic } from './record.js';
import type { TxRecord } from './record.js';
import type { EnvelopeV1 } from '../queue/spool.js';

const UTC: TextFormat = { blockSize: 1024, utc: true, reason: true, diagnostic: true };
const T = new Date(Date.UTC(2026, 10, 24, 14, 54, 13, 729));

const ENVELOPE: EnvelopeV1 = {
  version: 1,
  id: 'mif3k2ab-0a1b2c3d4e',
  receivedAt: T.toISOString(),
  sender: 'alice@example.test',
  senderParams: { size: null, body: null, smtputf8: false, ret: null, envid: null, auth: null },
  recipients: [
    { address: 'bob@example.test', orcpt: null, notify: null, channel: 'l', deliverTo: [{ address: 'bob@example.test', channel: 'ims-ms' }], status: 'pending' },
    { address: 'carol@remote.example', orcpt: 'rfc822;Carol@Remote.example', notify: null, channel: 'tcp_local', deliverTo: [{ address: 'carol@remote.example', channel: 'tcp_local' }], status: 'pending' },
  ],
  sourceChannel: 'tcp_auth',
  service: 'submit',
  auth: 'alice@example.test',
  client: { ip: '203.0.113.5', port: 40000, helo: 'laptop', via: null },
  tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
  size: 2100,
  flags: [],
};

test('§13.1 time: dd-Mon-yyyy hh:mm:ss.cc, hundredths truncated', () => {
  assert.equal(logTime(T, true), '24-Nov-2026 14:54:13.72');
  assert.equal(logTime(new Date(Date.UTC(2026, 0, 5, 3, 4, 5, 9)), true), '05-Jan-2026 03:04:05.00');
  assert.equal(logDay(new Date(Date.UTC(2026, 0, 5, 23, 59, 59, 999)), true), '2026-01-05');
  // Local time follows the process's zone (TZ); the UTC day of the same instant is stable.
  const local = new Date(2026, 6, 1, 0, 0, 0, 0);
  assert.equal(logTime(local, false), '01-Jul-2026 00:00:00.00');
});

test('§13.1 size in blocks of BLOCK_SIZE, rounded up (kilobytes by default)', () => {
  assert.equal(sizeInBlocks(0, 1024), 0);
  assert.equal(sizeInBlocks(1, 1024), 1);
  assert.equal(sizeInBlocks(1024, 1024), 1);
  assert.equal(sizeInBlocks(1025, 1024), 2);
  assert.equal(sizeInBlocks(1025, 1), 1025);
});

test('§13.2 entry codes: modifiers in one order (ESMTP, LMTP, CHUNKING, TLS, SASL), each once', () => {
  assert.equal(entryCode({ action: 'E', modifiers: ['A', 'E', 'S', 'C', 'E'] }), 'EECSA');
  assert.equal(entryCode({ action: 'D', modifiers: ['A', 'S'] }), 'DSA');
  assert.equal(entryCode({ action: 'J' }), 'J');
  // Only E and D carry modifiers (PMDF's table lists EA, ES, ESA, DA, DS, DSA and nothing else).
  assert.equal(entryCode({ action: 'R', modifiers: ['E', 'S'] }), 'R');
  assert.equal(entryCode({ action: 'J', modifiers: ['A'] }), 'J');
  assert.equal(origRecipient('bob@example.test', null), 'rfc822;bob@example.test');
  assert.equal(origRecipient('bob@example.test', 'rfc822;Bob@Example.test'), 'rfc822;Bob@Example.test');
  assert.equal(smtpDiagnostic({ code: 550, enhanced: '5.1.1', lines: ['unknown or illegal alias: x@example.test'] }), 'smtp;550 5.1.1 unknown or illegal alias: x@example.test');
  assert.equal(smtpDiagnostic({ code: 421, enhanced: null, lines: [] }), 'smtp;421');
});

test('golden: E records of a message submitted over ESMTP with TLS and SASL, one per mailbox', () => {
  const recs = enqueueRecords(ENVELOPE, { esmtp: true, chunking: false, messageId: '<m1@laptop>' }, T);
  assert.deepEqual(
    recs.map((r) => formatTextLine(r, UTC)),
    [
      '24-Nov-2026 14:54:13.72 tcp_auth     ims-ms       EESA 3 alice@example.test rfc822;bob@example.test bob@example.test spool;mif3k2ab-0a1b2c3d4e <m1@laptop> dns;laptop [203.0.113.5] auth;alice@example.test\n',
      '24-Nov-2026 14:54:13.72 tcp_auth     tcp_local    EESA 3 alice@example.test rfc822;Carol@Remote.example carol@remote.example spool;mif3k2ab-0a1b2c3d4e <m1@laptop> dns;laptop [203.0.113.5] auth;alice@example.test\n',
    ],
  );
  const chunked = enqueueRecords({ ...ENVELOPE, tls: null, auth: null }, { esmtp: true, chunking: true, messageId: null }, T)[0] as TxRecord;
  assert.equal(entryCode(chunked), 'EEC', 'spec §13.2 example: ESMTP with CHUNKING');
});

test('golden: J records — a refused recipient with the reply as diagnostic, a refused MAIL FROM, the null sender', () => {
  const session = { channel: 'tcp_auth', esmtp: true, tls: true, authUser: 'alice@example.test', clientIp: '203.0.113.5', helo: 'laptop' };
  const reply = { code: 550, enhanced: '5.1.1', lines: ['unknown or illegal alias: nobody@example.test'] };
  const rcpt = rejectRecord({ session, from: 'alice@example.test', to: { address: 'nobody@example.test', orcpt: null }, destinationChannel: 'l', reply, reason: 'builtin:unknown-recipient', time: T });
  assert.equal(
    formatTextLine(rcpt, UTC),
    '24-Nov-2026 14:54:13.72 tcp_auth     l            J 0 alice@example.test rfc822;nobody@example.test nobody@example.test dns;laptop [203.0.113.5] auth;alice@example.test (builtin:unknown-recipient) smtp;550 5.1.1 unknown or illegal alias: nobody@example.test\n',
  );
  const from = rejectRecord({
    session,
    from: 'alice@example.test',
    to: null,
    destinationChannel: null,
    reply: { code: 550, enhanced: '5.7.1', lines: ['Too many rejected recipients'] },
    reason: 'mapping:FROM_ACCESS',
    time: T,
  });
  assert.equal(
    formatTextLine(from, UTC),
    '24-Nov-2026 14:54:13.72 tcp_auth                  J 0 alice@example.test   dns;laptop [203.0.113.5] auth;alice@example.test (mapping:FROM_ACCESS) smtp;550 5.7.1 Too many rejected recipients\n',
  );
  const nullSender = rejectRecord({
    session: { ...session, channel: 'tcp_local', tls: false, authUser: null, esmtp: false },
    from: '',
    to: { address: 'x@relay.example', orcpt: null },
    destinationChannel: 'tcp_local',
    reply: { code: 550, enhanced: '5.7.1', lines: ['Relaying not allowed: x@relay.example'] },
    reason: 'mapping:ORIG_SEND_ACCESS',
    time: T,
  });
  // §13.1: the envelope From field is blank for <>.
  assert.match(formatTextLine(nullSender, UTC), / J 0 {2}rfc822;x@relay\.example x@relay\.example /);
});

test('mta.log_reason / mta.log_diagnostics bit 0 off: the text line leaves them out', () => {
  const r = rejectRecord({
    session: { channel: 'tcp_local', esmtp: false, tls: false, authUser: null, clientIp: '192.0.2.1', helo: null },
    from: 'a@b.example',
    to: { address: 'c@d.example', orcpt: null },
    destinationChannel: 'tcp_local',
    reply: { code: 550, enhanced: '5.7.1', lines: ['no'] },
    reason: 'mapping:ORIG_SEND_ACCESS',
    time: T,
  });
  assert.equal(formatTextLine(r, { ...UTC, reason: false, diagnostic: false }), '24-Nov-2026 14:54:13.72 tcp_local    tcp_local    J 0 a@b.example rfc822;c@d.example c@d.example [192.0.2.1]\n');
});

test('a record is always one line: spaces and control characters in fields cannot split or shift it', () => {
  const r: TxRecord = {
    time: T,
    action: 'J',
    sourceChannel: 'tcp_local',
    destinationChannel: 'tcp_local',
    size: 0,
    envFrom: '"a b"@x.example',
    origRecipient: 'rfc822;c\r\nd@y.example',
    recipient: 'c\r\nd@y.example',
    remoteHost: 'evil\nhost',
    reason: 'x',
    diagnostic: 'smtp;550 line1\r\nline2',
  };
  const line = formatTextLine(r, UTC);
  assert.equal(line.split('\n').length, 2);
  assert.equal(line, '24-Nov-2026 14:54:13.72 tcp_local    tcp_local    J 0 "a?b"@x.example rfc822;c??d@y.example c??d@y.example dns;evil?host (x) smtp;550 line1  line2\n');
  // Fields 1-9 (date and time are two) are where a whitespace split expects them.
  assert.deepEqual(line.split(/ +/).slice(0, 10), ['24-Nov-2026', '14:54:13.72', 'tcp_local', 'tcp_local', 'J', '0', '"a?b"@x.example', 'rfc822;c??d@y.example', 'c??d@y.example', 'dns;evil?host']);
});

test('golden: the JSON line names every field, with the size in bytes and the time in UTC', () => {
  const rec = enqueueRecords(ENVELOPE, { esmtp: true, chunking: false, messageId: '<m1@laptop>' }, T)[0] as TxRecord;
  assert.equal(
    formatJsonLine(rec),
    '{"time":"2026-11-24T14:54:13.729Z","code":"EESA","action":"E","modifiers":"ESA","source":"tcp_auth","destination":"ims-ms","size":2100,' +
      '"from":"alice@example.test","orcpt":"rfc822;bob@example.test","to":"bob@example.test","spoolId":"mif3k2ab-0a1b2c3d4e","messageId":"<m1@laptop>",' +
      '"remoteHost":"laptop","clientIp":"203.0.113.5","username":"alice@example.test","reason":null,"diagnostic":null}\n',
  );
});

test('queueRecord: the runner\'s D/R/Q records take sender, ORCPT and size from the envelope, host and reply from the target', () => {
  const d = queueRecord(ENVELOPE, { rcpt: 1, address: 'carol@remote.example', diagnostic: 'smtp;250 2.0.0 queued as 123', remote: 'mx.remote.example[198.51.100.7]' }, { action: 'D', destinationChannel: 'tcp_local', modifiers: ['E', 'S'], time: T });
  assert.equal(
    formatTextLine(d, UTC),
    '24-Nov-2026 14:54:13.72 tcp_auth     tcp_local    DES 3 alice@example.test rfc822;Carol@Remote.example carol@remote.example spool;mif3k2ab-0a1b2c3d4e dns;mx.remote.example [198.51.100.7] auth;alice@example.test smtp;250 2.0.0 queued as 123\n',
  );
  const r = queueRecord(ENVELOPE, { rcpt: 1, address: 'carol@remote.example', diagnostic: 'smtp;550 5.1.1 no such user', remote: null }, { action: 'R', destinationChannel: 'tcp_local', time: T });
  assert.equal(r.remoteHost, null);
  assert.equal(r.clientIp, null);
  assert.equal(entryCode(r), 'R');
  // A transport names a host off port 25 with its port (a smarthost on 587): still host and address.
  const q = queueRecord(ENVELOPE, { rcpt: 1, address: 'carol@remote.example', diagnostic: 'smtp;451 4.7.1 later', remote: 'relay.example[192.0.2.25]:587' }, { action: 'Q', destinationChannel: 'tcp_local', time: T });
  assert.deepEqual([q.remoteHost, q.clientIp], ['relay.example', '192.0.2.25']);
});
