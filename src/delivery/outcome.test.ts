// From a transaction's replies to one outcome per recipient (RFC 5321 §4.2.1, §6.1; RFC 2033 §4.2).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allOutcomes, fromRaw, local, transactionOutcomes } from './outcome.js';
import type { Result, TransactionRecord } from './outcome.js';
import type { OutboundRecipient } from './types.js';

const R: OutboundRecipient[] = ['a@x.test', 'b@x.test', 'c@x.test'].map((address) => ({ address, orcpt: null, notify: [] }));
const reply = (raw: string): Result => fromRaw(raw) ?? assert.fail(raw);
const OK = reply('250 2.1.5 OK');
const lost = local('temporary', 421, '4.4.2', 'connection lost');

function kinds(rec: Partial<TransactionRecord>, lmtp = false): string[] {
  const t: TransactionRecord = { mail: OK, rcpt: [OK, OK, OK], data: null, lmtpData: lmtp ? [null, null, null] : null, failure: null, ...rec };
  return transactionOutcomes(R, t, 'mx[192.0.2.1]').map((o) => `${o.stage}:${o.kind}:${o.code}`);
}

describe('transaction outcomes', () => {
  test('per-recipient RCPT replies; the reply after DATA applies to every accepted recipient', () => {
    assert.deepEqual(kinds({ rcpt: [OK, reply('550 5.1.1 no such user'), reply('450 4.2.1 try later')], data: reply('250 2.0.0 queued') }), ['data:delivered:250', 'rcpt:permanent:550', 'rcpt:temporary:450']);
    assert.deepEqual(kinds({ rcpt: [OK, reply('550 no'), OK], data: reply('554 5.7.1 spam') }), ['data:permanent:554', 'rcpt:permanent:550', 'data:permanent:554']);
  });

  test('RFC 5321 §4.5.3.1.10: 552 to RCPT (an old server\'s "too many recipients") is retried, not bounced; 552 after DATA is final', () => {
    assert.deepEqual(kinds({ rcpt: [OK, reply('552 5.5.3 too many recipients'), reply('552 too many')], data: reply('250 ok') }), ['data:delivered:250', 'rcpt:temporary:552', 'rcpt:temporary:552']);
    assert.deepEqual(kinds({ data: reply('552 5.3.4 message too big') }), ['data:permanent:552', 'data:permanent:552', 'data:permanent:552']);
  });

  test('a refused MAIL FROM decides for everyone', () => {
    assert.deepEqual(kinds({ mail: reply('451 4.3.0 later'), rcpt: [null, null, null] }), ['mail:temporary:451', 'mail:temporary:451', 'mail:temporary:451']);
    assert.deepEqual(kinds({ mail: reply('553 5.1.8 bad sender'), rcpt: [null, null, null] }), ['mail:permanent:553', 'mail:permanent:553', 'mail:permanent:553']);
  });

  test('connection lost: answered recipients keep their answer, the rest are temporary at the stage reached', () => {
    assert.deepEqual(kinds({ mail: null, rcpt: [null, null, null], failure: lost }), ['mail:temporary:421', 'mail:temporary:421', 'mail:temporary:421']);
    assert.deepEqual(kinds({ rcpt: [reply('550 no'), OK, null], failure: lost }), ['rcpt:permanent:550', 'data:temporary:421', 'rcpt:temporary:421']);
    // RFC 5321 §6.1: no reply after "." — the message may have arrived; retrying risks a duplicate, never a loss.
    const o = transactionOutcomes(R, { mail: OK, rcpt: [OK, OK, OK], data: null, lmtpData: null, failure: lost }, null);
    assert.ok(o.every((x) => x.kind === 'temporary' && x.stage === 'data' && x.origin === 'local'));
  });

  test('LMTP: each accepted recipient has its own reply after the message', () => {
    assert.deepEqual(kinds({ rcpt: [OK, reply('550 5.1.1 unknown'), OK], lmtpData: [reply('250 2.0.0 saved'), null, reply('452 4.2.2 quota')] }, true), ['data:delivered:250', 'rcpt:permanent:550', 'data:temporary:452']);
    // A refused DATA command applies to all accepted recipients.
    assert.deepEqual(kinds({ data: reply('554 no data'), lmtpData: [null, null, null] }, true), ['data:permanent:554', 'data:permanent:554', 'data:permanent:554']);
    // Lost after the first reply.
    assert.deepEqual(kinds({ lmtpData: [reply('250 ok'), null, null], failure: lost }, true), ['data:delivered:250', 'data:temporary:421', 'data:temporary:421']);
  });

  test('outcomes carry address, remote, origin and the parsed reply', () => {
    const [o] = transactionOutcomes(R, { mail: OK, rcpt: [reply('550-5.1.1 no such\n550 5.1.1 user'), OK, OK], data: reply('250 ok'), lmtpData: null, failure: null }, 'mx[192.0.2.1]');
    assert.deepEqual(o, { address: 'a@x.test', kind: 'permanent', code: 550, enhanced: '5.1.1', text: 'no such user', remote: 'mx[192.0.2.1]', stage: 'rcpt', origin: 'remote' });
    assert.deepEqual(allOutcomes(R.slice(0, 1), lost, 'connect', null), [{ address: 'a@x.test', kind: 'temporary', code: 421, enhanced: '4.4.2', text: 'connection lost', remote: null, stage: 'connect', origin: 'local' }]);
  });
});
