// The pure side of `portcullis qm` (qm.ts): summaries from envelope and state, address patterns,
// filters, selections and counts, and the human forms. The clock is a parameter throughout.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { columns, compileFilter, countQueue, filterGiven, formatCounts, formatDuration, formatList, formatShow, matches, matchesAddress, parseAddressPattern, selection, summarize, validId } from './qm.js';
import type { CompiledFilter, QmFilter, QmSummary } from './qm.js';
import type { EnvelopeRecipient, EnvelopeV1 } from './spool.js';
import type { DeliveryState, Target } from './state.js';
import { submission } from '../../tests/support/envelopes.js';

const T0 = Date.parse('2026-12-06T12:00:00.000Z');

function rcpt(address: string, channel: string, deliverTo?: EnvelopeRecipient['deliverTo']): EnvelopeRecipient {
  return { address, orcpt: null, notify: null, channel, status: 'pending', ...(deliverTo !== undefined ? { deliverTo } : {}) };
}

function envelope(more: Partial<EnvelopeV1> = {}): EnvelopeV1 {
  const recipients = [rcpt('friend@remote.example', 'tcp_local'), rcpt('bob@example.test', 'l', [{ address: 'bob@example.test', channel: 'ims-ms' }])];
  return submission(recipients, { id: 'mwzz0001-0123456789', receivedAt: new Date(T0).toISOString(), sender: 'Alice@Example.test', size: 1000, ...more });
}

function target(address: string, channel: string, more: Partial<Target> = {}): Target {
  return { rcpt: 0, address, channel, status: 'pending', attempts: 0, nextAttemptAt: T0, diagnostic: null, remote: null, dsnStatus: null, ...more };
}

const where = { held: false, inFlight: false };

function compiled(f: QmFilter): CompiledFilter {
  const c = compileFilter(f);
  if ('error' in c) throw new Error(c.error);
  return c;
}

describe('summarize', () => {
  test('without a saved state: every recipient after alias expansion is a pending target, due at receipt', () => {
    const s = summarize(envelope(), null, where, T0 + 75_000);
    assert.deepEqual(s, {
      id: 'mwzz0001-0123456789',
      receivedAt: '2026-12-06T12:00:00.000Z',
      ageSeconds: 75,
      size: 1000,
      sourceChannel: 'tcp_auth',
      sender: 'Alice@Example.test',
      auth: 'alice@example.test',
      channels: ['ims-ms', 'tcp_local'],
      pending: 2,
      targets: 2,
      attempts: 0,
      nextAttemptAt: '2026-12-06T12:00:00.000Z',
      state: 'queued',
      diagnostic: null,
    });
  });

  test('with a state: channels and counts of pending targets only, the most attempts, the earliest next attempt, a pending diagnostic first', () => {
    const state: DeliveryState = {
      version: 1,
      id: 'x',
      targets: [
        target('bob@example.test', 'ims-ms', { status: 'delivered', attempts: 1, diagnostic: 'x-local;delivered' }),
        target('friend@remote.example', 'tcp_local', { attempts: 3, nextAttemptAt: T0 + 90_000, diagnostic: 'smtp;451 4.3.0 later' }),
        target('other@remote.example', 'tcp_local', { attempts: 2, nextAttemptAt: T0 + 60_000 }),
      ],
    };
    const s = summarize(envelope(), state, { held: false, inFlight: true }, T0 + 30_000);
    assert.deepEqual([s.channels, s.pending, s.targets, s.attempts, s.nextAttemptAt, s.state, s.diagnostic], [['tcp_local'], 2, 3, 3, new Date(T0 + 60_000).toISOString(), 'in-flight', 'smtp;451 4.3.0 later']);
  });

  test('held: no next attempt, state held (held wins over in flight)', () => {
    const s = summarize(envelope(), null, { held: true, inFlight: true }, T0);
    assert.deepEqual([s.state, s.nextAttemptAt], ['held', null]);
  });

  test('nothing pending (awaiting its DSN): no channels, no next attempt, the failure as diagnostic', () => {
    const state: DeliveryState = { version: 1, id: 'x', targets: [target('friend@remote.example', 'tcp_local', { status: 'failed', attempts: 1, diagnostic: 'smtp;550 5.1.1 no such user' })] };
    const s = summarize(envelope(), state, where, T0);
    assert.deepEqual([s.channels, s.pending, s.nextAttemptAt, s.diagnostic], [[], 0, null, 'smtp;550 5.1.1 no such user']);
  });
});

describe('address patterns', () => {
  test('a whole address matches case-insensitively, and only the whole address', () => {
    const p = parseAddressPattern('ALICE@example.TEST', '--sender');
    assert.deepEqual(p, { kind: 'address', address: 'alice@example.test' });
    if ('error' in p) return;
    assert.equal(matchesAddress(p, 'Alice@Example.Test'), true);
    assert.equal(matchesAddress(p, 'malice@example.test'), false);
    assert.equal(matchesAddress(p, 'alice@example.test.evil'), false);
    assert.equal(matchesAddress(p, null), false);
  });

  test('*@domain matches every address of that domain, not its subdomains nor a bare domain', () => {
    const p = parseAddressPattern('*@Example.Test', '--auth-user');
    assert.deepEqual(p, { kind: 'domain', domain: 'example.test' });
    if ('error' in p) return;
    assert.equal(matchesAddress(p, 'bob@EXAMPLE.test'), true);
    assert.equal(matchesAddress(p, 'bob@sub.example.test'), false);
    assert.equal(matchesAddress(p, 'bob@notexample.test'), false);
    assert.equal(matchesAddress(p, '@example.test'), false);
  });

  test('<> is the null sender (senders only)', () => {
    const p = parseAddressPattern('<>', '--sender');
    assert.deepEqual(p, { kind: 'null' });
    if ('error' in p) return;
    assert.equal(matchesAddress(p, ''), true);
    assert.equal(matchesAddress(p, 'a@b'), false);
    assert.ok('error' in parseAddressPattern('<>', '--auth-user'));
  });

  test('other wildcards, an empty pattern and a domain-less *@ are refused with what to give instead', () => {
    for (const bad of ['*', 'ali*@example.test', '*@', '*@*.example.test', '', 'a b@example.test']) {
      const p = parseAddressPattern(bad, '--sender');
      assert.ok('error' in p, bad);
      assert.match(p.error, /--sender/);
    }
  });
});

describe('filters', () => {
  const a = summarize(envelope(), null, where, T0);
  const b = summarize(envelope({ id: 'b', sender: 'bob@other.test', auth: null, recipients: [rcpt('x@remote.example', 'tcp_local')] }), null, { held: true, inFlight: false }, T0);
  const nul = summarize(envelope({ id: 'n', sender: '', auth: null }), null, where, T0);

  test('each field selects; fields combine with AND', () => {
    assert.equal(matches(a, compiled({})), true);
    assert.equal(matches(a, compiled({ channel: 'TCP_LOCAL' })), true);
    assert.equal(matches(a, compiled({ channel: 'tcp_intranet' })), false);
    assert.equal(matches(a, compiled({ sender: 'alice@example.test' })), true);
    assert.equal(matches(a, compiled({ authUser: '*@example.test' })), true);
    assert.equal(matches(b, compiled({ authUser: '*@other.test' })), false, 'no AUTH user matches no pattern');
    assert.equal(matches(a, compiled({ sender: 'alice@example.test', authUser: 'bob@example.test' })), false);
    assert.equal(matches(a, compiled({ held: true })), false);
    assert.equal(matches(b, compiled({ held: true, sender: '*@other.test', channel: 'tcp_local' })), true);
    assert.equal(matches(nul, compiled({ sender: '<>' })), true);
    assert.equal(matches(a, compiled({ sender: '<>' })), false);
  });

  test('a bad pattern or an empty channel is an error value naming the option', () => {
    const e = compileFilter({ authUser: 'x*' });
    assert.ok('error' in e);
    assert.match(e.error, /^--auth-user "x\*"/);
    const c = compileFilter({ channel: ' ' });
    assert.ok('error' in c);
    assert.match(c.error, /--channel/);
  });

  test('filterGiven: an empty filter (or held: false) names nothing', () => {
    assert.equal(filterGiven({}), false);
    assert.equal(filterGiven({ held: false }), false);
    assert.equal(filterGiven({ held: true }), true);
    assert.equal(filterGiven({ sender: '<>' }), true);
  });
});

describe('selection', () => {
  test('ids or a filter; never both, never neither; ids deduplicated', () => {
    assert.deepEqual(selection(['a-1', 'a-1', 'b-2'], {}, 'delete'), { kind: 'ids', ids: ['a-1', 'b-2'] });
    assert.deepEqual(selection([], { authUser: 'alice@example.test' }, 'delete'), { kind: 'filter', filter: { authUser: 'alice@example.test' } });
    const neither = selection([], {}, 'delete');
    assert.ok('error' in neither);
    assert.match(neither.error, /^qm delete needs message ids or a filter/);
    const both = selection(['a-1'], { held: true }, 'hold');
    assert.ok('error' in both);
    assert.match(both.error, /not both/);
  });

  test('an id that could name a file outside the queue is refused', () => {
    for (const bad of ['../x', 'a/b', '.hidden', 'x.msg', '']) {
      assert.equal(validId(bad), false, bad);
      if (bad !== '') assert.ok('error' in selection([bad], {}, 'delete'), bad);
    }
    assert.equal(validId('mwug8kib-cfcce5e8ac'), true);
  });
});

describe('counts', () => {
  test('per channel of pending targets (a message once per channel), in flight among them, held apart, and the total', () => {
    const msgs: QmSummary[] = [
      summarize(envelope({ id: 'm1', size: 100 }), null, where, T0), // tcp_local + ims-ms
      summarize(envelope({ id: 'm2', size: 20, recipients: [rcpt('a@r.example', 'tcp_local'), rcpt('b@r.example', 'tcp_local')] }), null, { held: false, inFlight: true }, T0),
      summarize(envelope({ id: 'm3', size: 3, recipients: [rcpt('a@r.example', 'tcp_local')] }), null, { held: true, inFlight: false }, T0),
    ];
    const c = countQueue(msgs);
    assert.deepEqual(c, {
      channels: [
        { channel: 'ims-ms', messages: 1, bytes: 100 },
        { channel: 'tcp_local', messages: 2, bytes: 120 },
      ],
      held: { messages: 1, bytes: 3 },
      inFlight: { messages: 1, bytes: 20 },
      total: { messages: 3, bytes: 123 },
    });
    assert.deepEqual(formatCounts(c), ['CHANNEL      MESSAGES  BYTES', 'ims-ms       1         100', 'tcp_local    2         120', '(in flight)  1         20', '(held)       1         3', '(total)      3         123']);
  });

  test('an empty queue counts zeros', () => {
    assert.deepEqual(countQueue([]), { channels: [], held: { messages: 0, bytes: 0 }, inFlight: { messages: 0, bytes: 0 }, total: { messages: 0, bytes: 0 } });
  });
});

describe('human forms', () => {
  test('durations: the two largest units', () => {
    assert.deepEqual([0, 45, 60, 192, 3599, 3600, 7500, 86_399, 86_400, 277_200].map(formatDuration), ['0s', '45s', '1m00s', '3m12s', '59m59s', '1h00m', '2h05m', '23h59m', '1d00h', '3d05h']);
  });

  test('list: a header, one row per message, a total line; "-" for what is absent, <> for the null sender', () => {
    const state: DeliveryState = { version: 1, id: 'x', targets: [target('friend@remote.example', 'tcp_local', { attempts: 2, nextAttemptAt: T0 + 120_000, diagnostic: 'smtp;451 4.3.0 later' })] };
    const rows = formatList([summarize(envelope(), state, where, T0 + 60_000), summarize(envelope({ id: 'mwzz0002-0123456789', sender: '', auth: null, size: 5 }), null, { held: true, inFlight: false }, T0 + 60_000)], T0 + 60_000);
    assert.deepEqual(rows, [
      'ID                   AGE    SIZE  SOURCE    SENDER              AUTH                CHANNELS          TARGETS  ATTEMPTS  NEXT      STATE   DIAGNOSTIC',
      'mwzz0001-0123456789  1m00s  1000  tcp_auth  Alice@Example.test  alice@example.test  tcp_local         1/1      2         in 1m00s  queued  smtp;451 4.3.0 later',
      'mwzz0002-0123456789  1m00s  5     tcp_auth  <>                  -                   ims-ms,tcp_local  2/2      0         -         held    -',
      '2 messages, 1005 bytes',
    ]);
  });

  test('list of nothing', () => {
    assert.deepEqual(formatList([], T0), ['(no messages)']);
  });

  test('columns pad all but the last cell', () => {
    assert.deepEqual(columns([['A', 'BB', 'C'], ['AAA', 'B', 'CCCC']]), ['A    BB  C', 'AAA  B   CCCC']);
  });

  test('show: envelope lines, a target table, the header section indented', () => {
    const env = envelope({ tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, flags: ['H'] });
    const lines = formatShow({ summary: summarize(env, null, { held: true, inFlight: false }, T0 + 5000), envelope: env, targets: [target('friend@remote.example', 'tcp_local')], stateSaved: false, header: 'Received: from laptop\nSubject: hi', headerTruncated: false }, T0 + 5000);
    assert.deepEqual(lines, [
      'Message:     mwzz0001-0123456789',
      'State:       held',
      'Received:    2026-12-06T12:00:00.000Z (5s ago) on tcp_auth (submit) from 203.0.113.5:51234 (laptop)',
      'TLS:         TLSv1.3 TLS_AES_256_GCM_SHA384',
      'Sender:      Alice@Example.test',
      'Auth user:   alice@example.test',
      'Size:        1000 bytes',
      'Flags:       H',
      'Recipients:',
      '  friend@remote.example',
      '  bob@example.test',
      'Targets: (no attempt yet)',
      '  ADDRESS                CHANNEL    STATUS   ATTEMPTS  NEXT  DIAGNOSTIC',
      '  friend@remote.example  tcp_local  pending  0         -     -',
      'Header:',
      '  Received: from laptop',
      '  Subject: hi',
    ]);
  });
});
