// LOG_ACTION (spec §8): the probe layout of §8.2 and the field numbering §8.3 relies on, checked
// through the real mapping engine; evaluation through check_metermaid.so over a real MemoryStore
// (the §8.3 recipe: rejected recipients of an authenticated sender counted by LOG_ACTION, the
// sender then refused by FROM_ACCESS; spec §15.7 rows 84-85); suppression by $N, $< / $> to the
// server log, order with asynchronous callouts, and the bounded queue.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accessResult, compileMappingsText, formatProblem, mapAsync, mapSync } from '../mapping/index.js';
import type { MappingSet } from '../mapping/index.js';
import { accessVerdict } from '../policy/access-reply.js';
import type { DecisionEvent } from '../policy/events.js';
import { MemoryLogger } from '../telemetry/log.js';
import { meterMaidLibrary } from '../throttle/library.js';
import { MemoryStore } from '../throttle/memory-store.js';
import type { TableSpec, ThrottleStore } from '../throttle/types.js';
import type { TransactionLogOptions } from '../config/types.js';
import { queueRecord, rejectRecord } from './build.js';
import { LogAction, logActionProbe } from './log-action.js';
import type { LogActionSettings, ProbeOptions } from './log-action.js';
import type { TxRecord } from './record.js';
import { TxLog } from './index.js';
import type { SessionSide } from './index.js';
import type { EnvelopeV1 } from '../queue/spool.js';

const PLAIN: ProbeOptions = { reason: false, diagnostic: false, blockSize: 1024, paranoia: '' };
const T = new Date(Date.UTC(2026, 10, 24, 14, 54, 13));
const AUTH_SESSION: SessionSide = { channel: 'tcp_auth', esmtp: true, tls: true, authUser: 'alice@example.test', clientIp: '203.0.113.5', helo: 'laptop' };
const UNKNOWN = { code: 550, enhanced: '5.1.1', lines: ['unknown or illegal alias: x@example.test'] };

/** The J record of an unknown local recipient, refused at RCPT TO. */
function badRcpt(n: number, session = AUTH_SESSION, from = 'alice@example.test'): TxRecord {
  const address = `nobody${n}@example.test`;
  return rejectRecord({
    session,
    from,
    to: { address, orcpt: null },
    destinationChannel: 'l',
    reply: { ...UNKNOWN, lines: [`unknown or illegal alias: ${address}`] },
    reason: 'builtin:unknown-recipient',
    time: T,
  });
}

// ---------------------------------------------------------------------------------------------
// §8.2: the probe

test('§8.2 probe: action-code|source|destination|size|env-from|orig-recipient|recipient, as the log entry shows them', () => {
  assert.equal(logActionProbe(badRcpt(1), PLAIN), 'J|tcp_auth|l|0|alice@example.test|rfc822;nobody1@example.test|nobody1@example.test');
  const r: TxRecord = {
    time: T,
    action: 'R',
    sourceChannel: 'tcp_auth',
    destinationChannel: 'tcp_local',
    size: 900,
    envFrom: 'alice@example.com',
    origRecipient: 'rfc822;x@bad.example',
    recipient: 'x@bad.example',
    reason: 'recipient rejected by the remote server',
    diagnostic: 'smtp;550 5.1.1 no such user',
  };
  // Spec §15.7 row 84's probe, byte for byte: size 900 bytes is 1 (kilobyte), as in the log.
  assert.equal(logActionProbe(r, PLAIN), 'R|tcp_auth|tcp_local|1|alice@example.com|rfc822;x@bad.example|x@bad.example');
  assert.equal(logActionProbe(r, { ...PLAIN, blockSize: 1 }), 'R|tcp_auth|tcp_local|900|alice@example.com|rfc822;x@bad.example|x@bad.example');
});

test('§8.1 log_reason / log_diagnostics bit 1 (value 2) append the reason and the diagnostic; empty when the record has none', () => {
  const r = badRcpt(2);
  assert.equal(
    logActionProbe(r, { ...PLAIN, reason: true, diagnostic: true }),
    'J|tcp_auth|l|0|alice@example.test|rfc822;nobody2@example.test|nobody2@example.test|builtin:unknown-recipient|smtp;550 5.1.1 unknown or illegal alias: nobody2@example.test',
  );
  assert.equal(logActionProbe(r, { ...PLAIN, diagnostic: true }), 'J|tcp_auth|l|0|alice@example.test|rfc822;nobody2@example.test|nobody2@example.test|smtp;550 5.1.1 unknown or illegal alias: nobody2@example.test');
  const e: TxRecord = { time: T, action: 'E', sourceChannel: 'tcp_local', destinationChannel: 'ims-ms', size: 10, envFrom: '', origRecipient: 'rfc822;b@example.test', recipient: 'b@example.test' };
  assert.equal(logActionProbe(e, { ...PLAIN, reason: true, diagnostic: true }), 'E|tcp_local|ims-ms|1||rfc822;b@example.test|b@example.test||', 'the null sender is empty; absent fields stay as empty fields');
});

test('§8.2 a refused MAIL FROM has empty destination and recipient fields; mapping_paranoia guards the address fields', () => {
  const from = rejectRecord({ session: AUTH_SESSION, from: 'a|b@example.test', to: null, destinationChannel: null, reply: UNKNOWN, reason: 'mapping:FROM_ACCESS', time: T });
  assert.equal(logActionProbe(from, PLAIN), 'J|tcp_auth||0|a|b@example.test||');
  assert.equal(logActionProbe(from, { ...PLAIN, paranoia: '!', reason: true }), 'J|tcp_auth||0|a!b@example.test|||mapping:FROM_ACCESS');
});

// ---------------------------------------------------------------------------------------------
// §8.3: field numbering, through the mapping engine

function compile(text: string, store?: ThrottleStore, tables?: ReadonlyMap<string, TableSpec>, now = (): number => T.getTime()): MappingSet {
  const lib = tables === undefined ? [] : [meterMaidLibrary({ tables, store: () => store ?? new MemoryStore(), now })];
  const r = compileMappingsText(text, { services: { libraries: lib } });
  assert.ok(r.ok, r.ok ? '' : r.problems.map(formatProblem).join('\n'));
  return r.set;
}

test('§8.3 numbering: a seven-field pattern gives $0 destination, $1 size, $2@$3 envelope From, $4 original and $5 current recipient', () => {
  const set = compile(['LOG_ACTION', '  R|tcp_auth|*|*|*@*|*|*  $0,$1,$2,$3,$4,$5$E', '  J|tcp_auth|*|*|*@*|*  $0,$1,$2,$3,$4$E'].join('\n'));
  const probe = 'R|tcp_auth|tcp_local|1|alice@example.com|rfc822;x@bad.example|x@bad.example';
  assert.equal(mapSync(set, 'LOG_ACTION', probe).output, 'tcp_local,1,alice,example.com,rfc822;x@bad.example,x@bad.example');
  // The six-field pattern still matches the seven-field probe, but its greedy first * swallows
  // "destination|size", so $2@$3 is the *original recipient* (the spec's warning).
  const six = mapSync(set, 'LOG_ACTION', logActionProbe({ ...badRcpt(3), modifiers: [] }, PLAIN));
  assert.equal(six.output, 'l|0,alice@example.test,rfc822;nobody3,example.test,nobody3@example.test');
  // A refused MAIL FROM (empty recipient) matches the seven-field pattern too; `%*` in the last
  // field counts refused recipients only (docs/compatibility.md, the §8.3 recipe).
  const seven = compile(['LOG_ACTION', '  J|tcp_auth|*|*|*@*|*|*  $2@$3$E'].join('\n'));
  const recipientsOnly = compile(['LOG_ACTION', '  J|tcp_auth|*|*|*@*|*|%*  $2@$3$E'].join('\n'));
  const refusedFrom = rejectRecord({ session: AUTH_SESSION, from: 'alice@example.test', to: null, destinationChannel: null, reply: UNKNOWN, reason: 'mapping:FROM_ACCESS', time: T });
  assert.equal(mapSync(seven, 'LOG_ACTION', logActionProbe(refusedFrom, PLAIN)).output, 'alice@example.test');
  assert.equal(mapSync(recipientsOnly, 'LOG_ACTION', logActionProbe(refusedFrom, PLAIN)).matched, false);
  assert.equal(mapSync(recipientsOnly, 'LOG_ACTION', logActionProbe(badRcpt(3), PLAIN)).output, 'alice@example.test');
});

// ---------------------------------------------------------------------------------------------
// Evaluation with check_metermaid.so over a real store

function spec(name: string, quota: number): TableSpec {
  return { name, type: 'throttle', dataType: 'string', valueType: 'string', quota, quotaTimeMs: 3_600_000, penalize: false, nocase: false, maxEntries: 1000, onError: 'allow', mode: 'decay' };
}

/** The §8.3 recipe for J (and R) records, with FROM_ACCESS refusing a sender over quota. */
const RECIPE = [
  'LOG_ACTION',
  '  J|tcp_auth|*|*|*@*|*|*  $C$[IMTA_LIB:check_metermaid.so,throttle,badrcpt,$2@$3]$E',
  '  R|tcp_auth|*|*|*@*|*|*  $C$[IMTA_LIB:check_metermaid.so,throttle,badrcpt,$2@$3]$<Suspected$ spammer$ $2@$3$E',
  '',
  'FROM_ACCESS',
  '  *|SMTP*|*|tcp_auth|*|*  $C$[IMTA_LIB:check_metermaid.so,query,badrcpt,$4]$NToo$ many$ rejected$ recipients$E',
].join('\n');

const FROM_PROBE = (who: string): string => `TCP|192.0.2.10|587|203.0.113.5|3333|SMTP/laptop|MAIL|tcp_auth|${who}|${who}`;

function settings(over: Partial<LogActionSettings> = {}): () => LogActionSettings {
  return () => ({ probe: PLAIN, suppress: true, queueLimit: 1000, ...over });
}

async function fromAccess(set: MappingSet, who: string): Promise<string> {
  const v = accessVerdict('FROM_ACCESS', accessResult(await mapAsync(set, 'FROM_ACCESS', FROM_PROBE(who))));
  return v.kind === 'reject' ? `${v.reply.code} ${v.reply.enhanced ?? ''} ${v.reply.lines.join(' ')}` : 'accept';
}

test('§8.3 recipe: J records of an authenticated sender are counted by LOG_ACTION; past the quota FROM_ACCESS refuses that sender', async () => {
  const store = new MemoryStore();
  const set = compile(RECIPE, store, new Map([['badrcpt', spec('badrcpt', 5)]]));
  const log = new MemoryLogger();
  const written: TxRecord[] = [];
  const la = new LogAction({ mappings: () => set, settings: settings(), log });
  for (let n = 0; n < 4; n++) la.offer(badRcpt(n), (r) => written.push(r));
  // An unauthenticated sender's refusals (tcp_local) are not counted; Bob's count is his own.
  for (let n = 0; n < 10; n++) la.offer(badRcpt(n, { ...AUTH_SESSION, channel: 'tcp_local', authUser: null }, 'mallory@example.test'), (r) => written.push(r));
  la.offer(badRcpt(9, AUTH_SESSION, 'bob@example.test'), (r) => written.push(r));
  await la.idle();
  assert.equal(await fromAccess(set, 'alice@example.test'), 'accept', '4 rejected recipients: under the quota of 5');
  la.offer(badRcpt(4), (r) => written.push(r));
  await la.idle();
  assert.equal(await fromAccess(set, 'alice@example.test'), '550 5.7.1 5Too many rejected recipients', 'query succeeds over quota; its result (the count) precedes the text (spec §15.7 row 85 UNSURE)');
  assert.equal(await fromAccess(set, 'bob@example.test'), 'accept');
  assert.equal(await fromAccess(set, 'mallory@example.test'), 'accept');
  assert.equal(written.length, 16, 'counting never suppresses a record');
  // R records (from delivery) have the same shape: bounces of Bob's mail count for Bob.
  const env = { sender: 'bob@example.test', sourceChannel: 'tcp_auth', size: 100, id: 'x', auth: 'bob@example.test', recipients: [{ address: 'y@bad.example', orcpt: null }] } as unknown as EnvelopeV1;
  for (let n = 0; n < 6; n++) la.offer(queueRecord(env, { rcpt: 0, address: 'y@bad.example', diagnostic: 'smtp;550 5.1.1 no' }, { action: 'R', destinationChannel: 'tcp_local', time: T }), (r) => written.push(r));
  await la.idle();
  assert.match(await fromAccess(set, 'bob@example.test'), /^550 5\.7\.1 \d+Too many rejected recipients$/);
  // Over quota (Bob's 6th and 7th hits), the R entry's $< goes to the server log (spec §15.7 row 84).
  assert.deepEqual(
    log.records.filter((r) => r.event === 'mapping-syslog').map((r) => r.fields.text),
    ['Suspected spammer bob@example.test', 'Suspected spammer bob@example.test'],
  );
  assert.equal(la.stats().evaluated, 22);
});

/** A MemoryStore whose every answer arrives later, as a network store's does. */
function asyncStore(): ThrottleStore {
  const mem = new MemoryStore();
  return new Proxy(mem, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || prop === 'close') return v;
      return (...args: unknown[]) => new Promise((resolve) => setTimeout(() => resolve((v as (...a: unknown[]) => unknown).apply(target, args)), 1));
    },
  });
}

test('$N suppresses the record (mta.log_action_suppress); order is kept while callouts answer asynchronously', async () => {
  const store = asyncStore();
  const set = compile(
    ['LOG_ACTION', '  J|tcp_auth|*|*|*@*|*|*  $C$[IMTA_LIB:check_metermaid.so,throttle,badrcpt,$2@$3]$N$E', '  E*|*  $Y'].join('\n'),
    store,
    new Map([['badrcpt', spec('badrcpt', 3)]]),
  );
  const written: string[] = [];
  const la = new LogAction({ mappings: () => set, settings: settings(), log: new MemoryLogger() });
  const e = (n: number): TxRecord => ({ time: T, action: 'E', sourceChannel: 'tcp_auth', destinationChannel: 'ims-ms', size: 1, envFrom: 'a@example.test', origRecipient: '', recipient: `e${n}` });
  for (let n = 0; n < 6; n++) {
    la.offer(badRcpt(n), (r) => written.push(r.recipient));
    la.offer(e(n), (r) => written.push(r.recipient));
  }
  assert.deepEqual(written, [], 'with suppression on, records wait for their evaluation');
  await la.idle();
  // J records 4-6 are over quota: the throttle succeeds, $N suppresses them.
  assert.deepEqual(written, ['nobody0@example.test', 'e0', 'nobody1@example.test', 'e1', 'nobody2@example.test', 'e2', 'e3', 'e4', 'e5']);
  assert.equal(la.stats().suppressed, 3);

  // Suppression off: every record is written at once, LOG_ACTION still counts.
  const set2 = compile(['LOG_ACTION', '  J|*  $C$[IMTA_LIB:check_metermaid.so,throttle,badrcpt,$0]$N$E'].join('\n'), asyncStore(), new Map([['badrcpt', spec('badrcpt', 1)]]));
  const all: string[] = [];
  const la2 = new LogAction({ mappings: () => set2, settings: settings({ suppress: false }), log: new MemoryLogger() });
  for (let n = 0; n < 3; n++) la2.offer(badRcpt(n), (r) => all.push(r.recipient));
  assert.equal(all.length, 3);
  await la2.idle();
  assert.equal(la2.stats().suppressed, 0);
  assert.equal(la2.stats().evaluated, 3);
});

test('a table without callouts decides at once; $< and $> go to the server log; each evaluation is reported as a decision', async () => {
  // The output is split on "|" into the arguments, in the order < > then N (spec §4.3).
  const set = compile(['LOG_ACTION', '  J|tcp_local|*|*|*@*|*|*  refused$ $2@$3|suppressed$ $2@$3$<$>$N', '  E*  $<enqueued'].join('\n'));
  const log = new MemoryLogger();
  const decisions: DecisionEvent[] = [];
  const written: TxRecord[] = [];
  const la = new LogAction({ mappings: () => set, settings: settings(), log, onDecision: (d) => decisions.push(d) });
  const j = badRcpt(1, { ...AUTH_SESSION, channel: 'tcp_local' });
  la.offer(j, (r) => written.push(r));
  assert.equal(written.length, 0, 'suppressed at once, synchronously');
  la.offer({ ...j, action: 'E', modifiers: [] }, (r) => written.push(r));
  assert.equal(written.length, 1);
  await la.idle();
  assert.deepEqual(
    log.records.filter((r) => r.event === 'mapping-syslog').map((r) => r.fields.text),
    ['refused alice@example.test', 'suppressed alice@example.test', 'enqueued'],
  );
  assert.deepEqual(
    decisions.map((d) => [d.phase, d.table, d.decision, d.entry?.line]),
    [
      ['log', 'LOG_ACTION', 'reject', 2],
      ['log', 'LOG_ACTION', 'none', 3],
    ],
  );
  // No LOG_ACTION table: written at once, nothing evaluated.
  const none = new LogAction({ mappings: () => compile('FROM_ACCESS\n  *  $Y'), settings: settings(), log });
  let n = 0;
  none.offer(j, () => n++);
  assert.equal(n, 1);
  assert.equal(none.stats().evaluated, 0);
});

test('a full queue: records are still written (unevaluated), the overflow is counted and logged', async () => {
  const set = compile(['LOG_ACTION', '  J|*  $C$[IMTA_LIB:check_metermaid.so,throttle,badrcpt,$0]$N$E'].join('\n'), asyncStore(), new Map([['badrcpt', spec('badrcpt', 100)]]));
  const log = new MemoryLogger();
  const written: string[] = [];
  const la = new LogAction({ mappings: () => set, settings: settings({ queueLimit: 2 }), log });
  for (let n = 0; n < 10; n++) la.offer(badRcpt(n), (r) => written.push(r.recipient));
  // The first is being evaluated, two wait; the other seven are written at once.
  assert.deepEqual(written, [3, 4, 5, 6, 7, 8, 9].map((n) => `nobody${n}@example.test`));
  await la.idle();
  assert.equal(written.length, 10);
  assert.deepEqual(written.slice(7), [0, 1, 2].map((n) => `nobody${n}@example.test`));
  assert.deepEqual(la.stats(), { evaluated: 3, suppressed: 0, overflowed: 7, pending: 0 });
  const over = log.records.filter((r) => r.event === 'log-action-overflow');
  assert.ok(over.length >= 1);
  assert.equal(over.reduce((s, r) => s + Number(r.fields.unevaluated), 0), 7);
});

test('close(): records still waiting when time is up are written without evaluation', async () => {
  // A callout that never answers (a hung store without a timeout).
  const hung = new Proxy(new MemoryStore(), {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      return prop === 'hit' ? () => new Promise(() => undefined) : v;
    },
  });
  const set = compile(['LOG_ACTION', '  J|*  $C$[IMTA_LIB:check_metermaid.so,throttle,badrcpt,$0]$N$E'].join('\n'), hung, new Map([['badrcpt', spec('badrcpt', 100)]]));
  const log = new MemoryLogger();
  const written: string[] = [];
  const la = new LogAction({ mappings: () => set, settings: settings(), log });
  for (let n = 0; n < 3; n++) la.offer(badRcpt(n), (r) => written.push(r.recipient));
  await la.close(20);
  // The one under evaluation is lost to the hung callout; the two waiting are written.
  assert.deepEqual(written, ['nobody1@example.test', 'nobody2@example.test']);
  assert.ok(log.records.some((r) => r.event === 'log-action-unevaluated'));
});

test('TxLog: records reach mail.log_current and mail.jsonl after LOG_ACTION; suppressed ones do not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-txlog-'));
  try {
    const set = compile(['LOG_ACTION', '  J|*|*|*|*|*|nobody1@*  $N'].join('\n'));
    const options: TransactionLogOptions = { format: 'both', rotateSize: 0, keep: 5, blockSize: 1024, utc: true, logReason: 1, logDiagnostics: 3, logActionSuppress: true, logActionQueue: 100 };
    const log = new TxLog({ dir, options: () => options, paranoia: () => '', mappings: () => set, log: new MemoryLogger() });
    for (let n = 0; n < 3; n++) log.record(badRcpt(n));
    await log.flush();
    const text = readFileSync(join(dir, 'mail.log_current'), 'utf8');
    assert.match(text, /^24-Nov-2026 14:54:13\.00 tcp_auth {5}l {12}J 0 alice@example\.test rfc822;nobody0@example\.test nobody0@example\.test dns;laptop \[203\.0\.113\.5\] auth;alice@example\.test \(builtin:unknown-recipient\) smtp;550 5\.1\.1 unknown or illegal alias: nobody0@example\.test$/m);
    assert.doesNotMatch(text, /nobody1/);
    assert.equal(text.split('\n').filter((l) => l !== '').length, 2);
    const json = readFileSync(join(dir, 'mail.jsonl'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { to: string; size: number });
    assert.deepEqual(json.map((j) => j.to), ['nobody0@example.test', 'nobody2@example.test']);
    assert.equal(log.stats().suppressed, 1);
    await log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
