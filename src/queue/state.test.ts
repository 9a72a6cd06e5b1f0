import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyOutcome, backoff, DEFAULT_RETRY, delayWarningsDue, dueTargets, finished, initialState, markWarned, needsDsn, nextDue } from './state.js';
import type { DeliveryState, RetryPolicy, Target, TargetOutcome } from './state.js';
import type { EnvelopeRecipient, EnvelopeV1 } from './spool.js';
import { rcpt, submission } from '../../tests/support/envelopes.js';

const T0 = Date.parse('2026-11-24T07:00:00.000Z');
const MIN = 60_000;
const HOUR = 3_600_000;
/** The largest double below 1: Math.random()'s upper bound. */
const ALMOST_1 = 1 - Number.EPSILON / 2;

function envelope(recipients: EnvelopeRecipient[], more: Partial<EnvelopeV1> = {}): EnvelopeV1 {
  return submission(recipients, { receivedAt: new Date(T0).toISOString(), size: 100, ...more });
}

const POLICY: RetryPolicy = { backoffMs: [5 * MIN, 10 * MIN, 60 * MIN], maxAgeMs: 5 * 86_400_000, jitter: 0.1 };
const NO_JITTER: RetryPolicy = { ...POLICY, jitter: 0 };

const delivered: TargetOutcome = { kind: 'delivered', diagnostic: 'smtp;250 2.0.0 ok', remote: 'mx.remote.example[192.0.2.1]', dsnStatus: '2.0.0' };
const temporary: TargetOutcome = { kind: 'temporary', diagnostic: 'smtp;451 4.3.0 try later', remote: 'mx.remote.example[192.0.2.1]', dsnStatus: '4.3.0' };
const permanent: TargetOutcome = { kind: 'permanent', diagnostic: 'smtp;550 5.1.1 no such user', remote: 'mx.remote.example[192.0.2.1]', dsnStatus: '5.1.1' };

function target(s: DeliveryState, k = 0): Target {
  const t = s.targets[k];
  assert.ok(t, `target ${k}`);
  return t;
}

test('initialState: one pending target per recipient, due now, on its channel', () => {
  const env = envelope([rcpt('a@remote.example'), rcpt('b@example.test', { channel: 'ims-ms' }), rcpt('c@x.example', { channel: null })]);
  const s = initialState(env, T0);
  assert.equal(s.version, 1);
  assert.equal(s.id, env.id);
  assert.deepEqual(
    s.targets.map((t) => [t.rcpt, t.address, t.channel, t.status, t.attempts, t.nextAttemptAt]),
    [
      [0, 'a@remote.example', 'tcp_local', 'pending', 0, T0],
      [1, 'b@example.test', 'ims-ms', 'pending', 0, T0],
      [2, 'c@x.example', 'tcp_local', 'pending', 0, T0], // no channel yet: the Internet
    ],
  );
  for (const t of s.targets) assert.deepEqual([t.diagnostic, t.remote, t.dsnStatus], [null, null, null]);
});

test('initialState: deliverTo (alias expansion) gives one target per destination, all tied to their recipient', () => {
  const env = envelope([
    rcpt('list@example.test', {
      channel: 'ims-ms',
      deliverTo: [
        { address: 'x@example.test', channel: 'ims-ms' },
        { address: 'y@elsewhere.example', channel: 'tcp_local' },
      ],
    }),
    rcpt('z@example.test', { channel: 'ims-ms', deliverTo: [] }), // empty list: the recipient itself
  ]);
  const s = initialState(env, T0);
  assert.deepEqual(
    s.targets.map((t) => [t.rcpt, t.address, t.channel]),
    [
      [0, 'x@example.test', 'ims-ms'],
      [0, 'y@elsewhere.example', 'tcp_local'],
      [1, 'z@example.test', 'ims-ms'],
    ],
  );
});

test('applyOutcome: delivered is final and records the answer', () => {
  const s = initialState(envelope([rcpt('a@remote.example')]), T0);
  const t = target(s);
  assert.equal(applyOutcome(t, delivered, T0, T0 + 10, POLICY, 0.5), 'delivered');
  assert.equal(t.status, 'delivered');
  assert.equal(t.attempts, 1);
  assert.equal(t.diagnostic, delivered.diagnostic);
  assert.equal(t.remote, delivered.remote);
  assert.equal(t.dsnStatus, '2.0.0');
  assert.deepEqual(dueTargets(s, T0 + 10 * HOUR), [], 'a delivered target is never due again');
  assert.equal(nextDue(s), null);
});

test('applyOutcome: permanent fails at once, whatever the age', () => {
  const s = initialState(envelope([rcpt('a@remote.example')]), T0);
  const t = target(s);
  assert.equal(applyOutcome(t, permanent, T0, T0 + 1, POLICY, 0.5), 'failed');
  assert.deepEqual([t.status, t.attempts, t.dsnStatus, t.diagnostic, t.remote], ['failed', 1, '5.1.1', permanent.diagnostic, permanent.remote]);
  assert.equal(nextDue(s), null);
});

test('applyOutcome: temporary defers by the schedule; the last wait repeats', () => {
  const s = initialState(envelope([rcpt('a@remote.example')]), T0);
  const t = target(s);
  let now = T0;
  const waits: number[] = [];
  for (let k = 0; k < 5; k++) {
    assert.equal(applyOutcome(t, temporary, T0, now, NO_JITTER, 0.5), 'deferred');
    assert.equal(t.status, 'pending');
    assert.equal(t.attempts, k + 1);
    assert.equal(t.dsnStatus, '4.3.0');
    waits.push(t.nextAttemptAt - now);
    assert.deepEqual(dueTargets(s, t.nextAttemptAt - 1), [], 'not due before its time');
    assert.deepEqual(dueTargets(s, t.nextAttemptAt), [t], 'due at its time');
    assert.equal(nextDue(s), t.nextAttemptAt);
    now = t.nextAttemptAt;
  }
  assert.deepEqual(waits, [5 * MIN, 10 * MIN, 60 * MIN, 60 * MIN, 60 * MIN]);
});

test('applyOutcome: temporary then delivered', () => {
  const s = initialState(envelope([rcpt('a@remote.example')]), T0);
  const t = target(s);
  assert.equal(applyOutcome(t, temporary, T0, T0, POLICY, 0.5), 'deferred');
  assert.equal(applyOutcome(t, delivered, T0, t.nextAttemptAt, POLICY, 0.5), 'delivered');
  assert.deepEqual([t.status, t.attempts, t.dsnStatus], ['delivered', 2, '2.0.0']);
});

test('backoff: jitter spreads each wait by at most ± the fraction (random 0 and just below 1)', () => {
  for (let n = 1; n <= 4; n++) {
    const base = POLICY.backoffMs[Math.min(n, POLICY.backoffMs.length) - 1] as number;
    const low = backoff(POLICY, n, 0);
    const high = backoff(POLICY, n, ALMOST_1);
    assert.equal(low, Math.round(base * 0.9), `n=${n}: random 0 is the lower bound`);
    assert.ok(high <= base * 1.1 && high >= base * 1.1 - 1, `n=${n}: random → 1 approaches the upper bound (${high})`);
    assert.equal(backoff(POLICY, n, 0.5), base, `n=${n}: random 0.5 is the base`);
    for (let k = 0; k < 50; k++) {
      const w = backoff(POLICY, n, Math.random());
      assert.ok(w >= low && w <= high, `n=${n}: ${w} within [${low}, ${high}]`);
    }
  }
});

test('backoff: never below one second, and a default when the schedule is empty', () => {
  assert.equal(backoff({ backoffMs: [10], maxAgeMs: HOUR, jitter: 0.5 }, 1, 0), 1000);
  assert.equal(backoff({ backoffMs: [], maxAgeMs: HOUR, jitter: 0 }, 1, 0.5), 60_000);
  assert.equal(backoff({ backoffMs: [], maxAgeMs: HOUR, jitter: 0 }, 7, 0.5), 60_000);
});

test('the default schedule is Postfix-like: 5, 10, 20, 40 minutes, then hourly, for five days', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 9].map((n) => backoff(DEFAULT_RETRY, n, 0.5)),
    [5 * MIN, 10 * MIN, 20 * MIN, 40 * MIN, 60 * MIN, 60 * MIN],
  );
  assert.equal(DEFAULT_RETRY.maxAgeMs, 120 * HOUR);
});

test('applyOutcome: the jitter applies to the scheduled attempt', () => {
  const s = initialState(envelope([rcpt('a@remote.example')]), T0);
  applyOutcome(target(s), temporary, T0, T0, POLICY, 0);
  assert.equal(target(s).nextAttemptAt, T0 + 4.5 * MIN);
  const s2 = initialState(envelope([rcpt('a@remote.example')]), T0);
  applyOutcome(target(s2), temporary, T0, T0, POLICY, ALMOST_1);
  assert.ok(target(s2).nextAttemptAt <= T0 + 5.5 * MIN && target(s2).nextAttemptAt > T0 + 5.5 * MIN - 2);
});

test('max age: a temporary failure past it fails with 4.x.y turned 5.x.y (RFC 3463)', () => {
  const s = initialState(envelope([rcpt('a@remote.example')]), T0);
  const t = target(s);
  const now = T0 + POLICY.maxAgeMs;
  assert.equal(applyOutcome(t, { ...temporary, dsnStatus: '4.4.1' }, T0, now, POLICY, 0.5), 'failed');
  assert.equal(t.status, 'failed');
  assert.equal(t.dsnStatus, '5.4.1');
  assert.match(t.diagnostic ?? '', /^smtp;451 4\.3\.0 try later \(gave up after 120 h\)$/);
  assert.equal(nextDue(s), null);
});

test('max age: without a usable temporary status the failure is 5.4.7 (delivery time expired)', () => {
  for (const dsnStatus of [null, '4.4', 'x.y.z', '5.0.0']) {
    const s = initialState(envelope([rcpt('a@remote.example')]), T0);
    assert.equal(applyOutcome(target(s), { ...temporary, dsnStatus }, T0, T0 + POLICY.maxAgeMs + 1, POLICY, 0.5), 'failed');
    assert.equal(target(s).dsnStatus, '5.4.7', String(dsnStatus));
  }
});

test('max age: a target is not given up before the maximum age; the retry crossing it moves to it', () => {
  const s = initialState(envelope([rcpt('a@remote.example')]), T0);
  const t = target(s);
  const deadline = T0 + POLICY.maxAgeMs;
  t.attempts = 5; // the hourly part of the schedule
  // 10 minutes before the deadline, the next wait (an hour) would cross it.
  assert.equal(applyOutcome(t, temporary, T0, deadline - 10 * MIN, NO_JITTER, 0.5), 'deferred');
  assert.equal(t.nextAttemptAt, deadline, 'the last attempt is made at the deadline');
  assert.equal(applyOutcome(t, temporary, T0, deadline, NO_JITTER, 0.5), 'failed');
  assert.equal(t.dsnStatus, '5.3.0', '4.3.0 turned 5.3.0');
});

test('max age: a message already older than the maximum age fails at its first temporary failure', () => {
  const old = T0 - 6 * 86_400_000;
  const s = initialState(envelope([rcpt('a@remote.example')], { receivedAt: new Date(old).toISOString() }), T0);
  assert.equal(applyOutcome(target(s), temporary, old, T0, POLICY, 0.5), 'failed');
  assert.equal(target(s).dsnStatus, '5.3.0');
  // A permanent or delivered outcome is taken as it is.
  const s2 = initialState(envelope([rcpt('a@remote.example')]), T0);
  assert.equal(applyOutcome(target(s2), delivered, old, T0, POLICY, 0.5), 'delivered');
});

test('dueTargets / nextDue: only pending targets count, the earliest wins', () => {
  const env = envelope([rcpt('a@remote.example'), rcpt('b@remote.example'), rcpt('c@remote.example'), rcpt('d@remote.example')]);
  const s = initialState(env, T0);
  applyOutcome(target(s, 0), delivered, T0, T0, NO_JITTER, 0.5);
  applyOutcome(target(s, 1), temporary, T0, T0, NO_JITTER, 0.5); // T0 + 5 min
  applyOutcome(target(s, 2), temporary, T0, T0 + MIN, NO_JITTER, 0.5); // T0 + 6 min
  applyOutcome(target(s, 3), permanent, T0, T0, NO_JITTER, 0.5);
  assert.deepEqual(dueTargets(s, T0), []);
  assert.equal(nextDue(s), T0 + 5 * MIN);
  assert.deepEqual(dueTargets(s, T0 + 5 * MIN), [target(s, 1)]);
  assert.deepEqual(dueTargets(s, T0 + 6 * MIN), [target(s, 1), target(s, 2)]);
  target(s, 1).status = 'delivered';
  target(s, 2).status = 'failed';
  assert.equal(nextDue(s), null);
});

function failedState(env: EnvelopeV1): DeliveryState {
  const s = initialState(env, T0);
  for (const t of s.targets) applyOutcome(t, permanent, T0, T0, POLICY, 0.5);
  return s;
}

test('needsDsn: a failed target is reported to the sender by default (no NOTIFY)', () => {
  const env = envelope([rcpt('a@remote.example'), rcpt('b@remote.example')]);
  const s = initialState(env, T0);
  applyOutcome(target(s, 0), permanent, T0, T0, POLICY, 0.5);
  assert.deepEqual(needsDsn(s, env, true), [target(s, 0)], 'only failed targets; the pending one is not reported');
  applyOutcome(target(s, 1), delivered, T0, T0, POLICY, 0.5);
  assert.deepEqual(needsDsn(s, env, true), [target(s, 0)], 'nor a delivered one');
});

test('needsDsn: RFC 5321 §4.5.5 — never for the null reverse-path', () => {
  const env = envelope([rcpt('a@remote.example')], { sender: '' });
  assert.deepEqual(needsDsn(failedState(env), env, true), []);
});

test('needsDsn: RFC 3461 §4.1 — NOTIFY=NEVER, SUCCESS or DELAY alone suppress it; FAILURE asks for it', () => {
  const cases: [readonly string[] | null, boolean][] = [
    [null, true],
    [['NEVER'], false],
    [['SUCCESS'], false],
    [['DELAY'], false],
    [['SUCCESS', 'DELAY'], false],
    [['FAILURE'], true],
    [['SUCCESS', 'FAILURE'], true],
    [['FAILURE', 'DELAY'], true],
  ];
  for (const [notify, wanted] of cases) {
    const env = envelope([rcpt('a@remote.example', { notify })]);
    assert.equal(needsDsn(failedState(env), env, true).length, wanted ? 1 : 0, `NOTIFY=${notify === null ? '(none)' : notify.join(',')}`);
  }
});

test('needsDsn: NOTIFY is per recipient, also for the targets of an expanded alias', () => {
  const env = envelope([
    rcpt('a@remote.example', { notify: ['NEVER'] }),
    rcpt('list@example.test', {
      notify: ['FAILURE'],
      deliverTo: [
        { address: 'x@remote.example', channel: 'tcp_local' },
        { address: 'y@remote.example', channel: 'tcp_local' },
      ],
    }),
  ]);
  assert.deepEqual(
    needsDsn(failedState(env), env, true).map((t) => t.address),
    ['x@remote.example', 'y@remote.example'],
  );
});

test('needsDsn: nothing when the source channel does not bounce (backscatter)', () => {
  const env = envelope([rcpt('a@remote.example')], { sourceChannel: 'tcp_local' });
  assert.deepEqual(needsDsn(failedState(env), env, false), []);
});

test('needsDsn: a notified target is not reported twice', () => {
  const env = envelope([rcpt('a@remote.example')]);
  const s = failedState(env);
  target(s).status = 'notified';
  assert.deepEqual(needsDsn(s, env, true), []);
});

test('finished: pending keeps the message; delivered, notified and unreportable failures end it', () => {
  const env = envelope([rcpt('a@remote.example'), rcpt('b@remote.example')]);
  const s = initialState(env, T0);
  assert.equal(finished(s, env, true), false, 'all pending');
  applyOutcome(target(s, 0), delivered, T0, T0, POLICY, 0.5);
  assert.equal(finished(s, env, true), false, 'one pending');
  applyOutcome(target(s, 1), temporary, T0, T0, POLICY, 0.5);
  assert.equal(finished(s, env, true), false, 'a deferred target is still pending');
  applyOutcome(target(s, 1), permanent, T0, T0 + HOUR, POLICY, 0.5);
  assert.equal(finished(s, env, true), false, 'failed, DSN not yet enqueued');
  assert.equal(finished(s, env, false), true, 'failed, but this source does not bounce');
  target(s, 1).status = 'notified';
  assert.equal(finished(s, env, true), true, 'failed and notified');
});

test('finished: a failure that needs no DSN (null sender, NOTIFY=NEVER) ends the message', () => {
  const nullSender = envelope([rcpt('a@remote.example')], { sender: '' });
  assert.equal(finished(failedState(nullSender), nullSender, true), true);
  const never = envelope([rcpt('a@remote.example', { notify: ['NEVER'] }), rcpt('b@remote.example')]);
  const s = failedState(never);
  assert.equal(finished(s, never, true), false, 'b still needs its DSN');
  target(s, 1).status = 'notified';
  assert.equal(finished(s, never, true), true);
});

test('the state survives a JSON round trip (it is kept in <id>.state)', () => {
  const env = envelope([rcpt('a@remote.example'), rcpt('b@remote.example')]);
  const s = initialState(env, T0);
  applyOutcome(target(s, 0), delivered, T0, T0, POLICY, 0.5);
  applyOutcome(target(s, 1), temporary, T0, T0, POLICY, 0.25);
  const back = JSON.parse(JSON.stringify(s)) as DeliveryState;
  assert.deepEqual(back, s);
  assert.deepEqual(dueTargets(back, target(s, 1).nextAttemptAt).map((t) => t.address), ['b@remote.example']);
});

test('delayWarningsDue / markWarned: warn at each age once, only after a failed attempt, as NOTIFY allows', () => {
  const day = 86_400_000;
  const received = Date.parse('2026-12-01T00:00:00Z');
  const e = envelope([rcpt('a@x.example'), rcpt('b@x.example', { notify: ['FAILURE'] }), rcpt('c@x.example', { notify: ['DELAY'] })], { receivedAt: new Date(received).toISOString() });
  const st = initialState(e, received);
  const policy: RetryPolicy = { backoffMs: [3_600_000], maxAgeMs: 7 * day, jitter: 0, warnAtMs: [1 * day, 2 * day, 4 * day] };
  const due = (now: number): string[] => delayWarningsDue(st, e, now, () => policy, true).map((t) => t.address);
  assert.deepEqual(due(received + 2 * day), [], 'never attempted yet');
  for (const t of st.targets) t.attempts = 1;
  assert.deepEqual(due(received + day - 1), []);
  assert.deepEqual(due(received + day), ['a@x.example', 'c@x.example'], 'no NOTIFY, or NOTIFY=DELAY; not NOTIFY=FAILURE');
  // Three days late: one warning covers the 1- and 2-day ages.
  for (const t of st.targets) markWarned(t, 3 * day, policy);
  assert.deepEqual(st.targets.map((t) => t.warned), [2, 2, 2]);
  assert.deepEqual(due(received + 3 * day), []);
  assert.deepEqual(due(received + 4 * day), ['a@x.example', 'c@x.example']);
  assert.deepEqual(delayWarningsDue(st, e, received + 4 * day, () => policy, false), [], 'source does not bounce');
  assert.deepEqual(delayWarningsDue(st, { ...e, sender: '' }, received + 4 * day, () => policy, true), [], 'null sender');
  (st.targets[0] as { status: string }).status = 'delivered';
  assert.deepEqual(due(received + 4 * day), ['c@x.example'], 'only pending targets');
});
