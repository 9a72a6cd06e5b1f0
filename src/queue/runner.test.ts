// The queue runner against a real spool in a temporary directory, a scripted Deliverer and a
// recording TxSink. Retry waits are short (the backoff floor of one second is the longest wait
// in this file); tests wait for conditions, never for fixed times, except to show that nothing
// happens.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueRunner } from './runner.js';
import type { Deliverer, DeliveryGroup, RouteAddress, RunnerDeps } from './runner.js';
import { newMessageId, Spool } from './spool.js';
import type { EnvelopeRecipient, EnvelopeV1, MessageSource } from './spool.js';
import type { DeliveryState, RetryPolicy, Target, TargetOutcome } from './state.js';
import type { TxSink } from './txsink.js';
import { MemoryLogger } from '../telemetry/log.js';
import { rcpt, submission } from '../../tests/support/envelopes.js';

const RETRY: RetryPolicy = { backoffMs: [30, 60], maxAgeMs: 3_600_000, jitter: 0.1 };
const BODY = Buffer.from('Received: from laptop\r\nMessage-ID: <m@example.test>\r\nFrom: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n');

const OK: TargetOutcome = { kind: 'delivered', diagnostic: 'smtp;250 2.0.0 queued', remote: 'mx.remote.example[192.0.2.1]', dsnStatus: '2.0.0' };
const LATER: TargetOutcome = { kind: 'temporary', diagnostic: 'smtp;451 4.4.1 no answer', remote: 'mx.remote.example[192.0.2.1]', dsnStatus: '4.4.1' };
const NEVER: TargetOutcome = { kind: 'permanent', diagnostic: 'smtp;550 5.1.1 no such user', remote: 'mx.remote.example[192.0.2.1]', dsnStatus: '5.1.1' };

/** Polls until `cond` holds (or fails the test after `ms`). */
async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A message received now, with a fresh id. */
function envelope(recipients: EnvelopeRecipient[], more: Partial<EnvelopeV1> = {}): EnvelopeV1 {
  return submission(recipients, { id: newMessageId(), receivedAt: new Date().toISOString(), size: BODY.length, ...more });
}

interface Call {
  readonly id: string;
  readonly sender: string;
  readonly channel: string;
  readonly destination: string;
  readonly addresses: string[];
  readonly message: Buffer;
}

/**
 * Answers by recipient address from a script (a list per address, used in turn, the last one
 * repeating; OK when absent), records every call and the highest concurrency it saw, and can be
 * gated: while a gate is shut, calls wait in deliver() until it opens.
 */
class ScriptedDeliverer implements Deliverer {
  readonly calls: Call[] = [];
  readonly script = new Map<string, (TargetOutcome | Error)[]>();
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;
  waiting = 0;
  delayMs = 0;
  private active = 0;
  maxActive = 0;
  private readonly activeIds = new Map<string, number>();
  maxMessages = 0;
  private readonly activeDest = new Map<string, number>();
  maxPerDestination = 0;

  destinationOf(t: Target): string {
    return t.channel === 'ims-ms' ? 'store' : t.address.slice(t.address.lastIndexOf('@') + 1);
  }

  shut(): void {
    this.gate = new Promise((r) => (this.openGate = r));
  }

  open(): void {
    this.openGate?.();
    this.gate = null;
    this.openGate = null;
  }

  async deliver(group: DeliveryGroup, env: EnvelopeV1, message: MessageSource): Promise<TargetOutcome[]> {
    // A small message's buffer is read at once (no I/O wait), so calls keep their order; streaming
    // is spool.test.ts's.
    const content = await message.buffer();
    this.calls.push({ id: env.id, sender: env.sender, channel: group.channel, destination: group.destination, addresses: group.targets.map((t) => t.address), message: content });
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.activeIds.set(env.id, (this.activeIds.get(env.id) ?? 0) + 1);
    this.maxMessages = Math.max(this.maxMessages, this.activeIds.size);
    const d = (this.activeDest.get(group.destination) ?? 0) + 1;
    this.activeDest.set(group.destination, d);
    this.maxPerDestination = Math.max(this.maxPerDestination, d);
    try {
      if (this.gate !== null) {
        this.waiting++;
        await this.gate;
        this.waiting--;
      }
      if (this.delayMs > 0) await sleep(this.delayMs);
      return group.targets.map((t) => {
        const list = this.script.get(t.address);
        const next = list === undefined ? OK : list.length > 1 ? list.shift() : list[0];
        if (next instanceof Error) throw next;
        return next ?? OK;
      });
    } finally {
      this.active--;
      const n = (this.activeIds.get(env.id) ?? 1) - 1;
      if (n === 0) this.activeIds.delete(env.id);
      else this.activeIds.set(env.id, n);
      this.activeDest.set(group.destination, (this.activeDest.get(group.destination) ?? 1) - 1);
    }
  }

  callsFor(id: string): Call[] {
    return this.calls.filter((c) => c.id === id);
  }
}

type TxKind = 'enqueued' | 'dequeued' | 'deferred' | 'failed';
interface TxRecord {
  readonly kind: TxKind;
  readonly env: EnvelopeV1;
  readonly address: string | null;
  readonly channel: string;
  readonly status: string | null;
}

class RecordingTx implements TxSink {
  readonly records: TxRecord[] = [];
  enqueued(env: EnvelopeV1, channel: string): void {
    this.records.push({ kind: 'enqueued', env, address: null, channel, status: null });
  }
  dequeued(env: EnvelopeV1, t: Target, channel: string): void {
    this.records.push({ kind: 'dequeued', env, address: t.address, channel, status: t.dsnStatus });
  }
  deferred(env: EnvelopeV1, t: Target, channel: string): void {
    this.records.push({ kind: 'deferred', env, address: t.address, channel, status: t.dsnStatus });
  }
  failed(env: EnvelopeV1, t: Target, channel: string): void {
    this.records.push({ kind: 'failed', env, address: t.address, channel, status: t.dsnStatus });
  }
  of(id: string): [TxKind, string | null, string][] {
    return this.records.filter((r) => r.env.id === id).map((r) => [r.kind, r.address, r.channel]);
  }
}

interface Harness {
  readonly dataDir: string;
  readonly spool: Spool;
  readonly deliverer: ScriptedDeliverer;
  readonly tx: RecordingTx;
  readonly log: MemoryLogger;
  readonly runner: QueueRunner;
  readonly bouncesAsked: string[];
  /** Commits a message (as the SMTP service would) and returns its id. */
  add(env: EnvelopeV1, body?: Buffer): Promise<string>;
  /** The files of a message in the queue directory (.msg, .held, .state). */
  files(id: string): string[];
  gone(id: string): boolean;
  /** The message is gone and no attempt is in flight any more. */
  done(id: string): boolean;
}

/** The sender's mailbox is local: DSNs go to the store. */
const routeLocal: RouteAddress = (address) => Promise.resolve({ channel: 'ims-ms', address });

async function harness(t: { after(fn: () => Promise<void>): void }, more: Partial<RunnerDeps> = {}, dataDir = mkdtempSync(join(tmpdir(), 'runner-'))): Promise<Harness> {
  const spool = Spool.open(dataDir);
  const deliverer = (more.deliverer as ScriptedDeliverer | undefined) ?? new ScriptedDeliverer();
  const tx = new RecordingTx();
  const log = new MemoryLogger();
  const bouncesAsked: string[] = [];
  const runner = new QueueRunner({
    spool,
    deliverer,
    route: routeLocal,
    tx,
    log,
    retry: () => RETRY,
    bounces: (source) => {
      bouncesAsked.push(source);
      return true;
    },
    hostname: () => 'mta.example.test',
    concurrency: 10,
    perDestination: 10,
    ...more,
  });
  t.after(async () => {
    deliverer.open();
    await runner.stop();
  });
  await runner.start();
  return {
    dataDir,
    spool,
    deliverer,
    tx,
    log,
    runner,
    bouncesAsked,
    async add(env, body = BODY) {
      await spool.commitGenerated(env, body);
      return env.id;
    },
    files: (id) => readdirSync(spool.dir).filter((n) => n.startsWith(`${id}.`)).sort(),
    gone: (id) => readdirSync(spool.dir).every((n) => !n.startsWith(`${id}.`)),
    done: (id) => runner.counts().inFlight === 0 && readdirSync(spool.dir).every((n) => !n.startsWith(`${id}.`)),
  };
}

/** The DSN messages the runner made (E records), in order. */
function dsns(h: Harness): EnvelopeV1[] {
  return h.tx.records.filter((r) => r.kind === 'enqueued').map((r) => r.env);
}

test('delivered: the message leaves the spool (message and state) with a D record', async (t) => {
  const h = await harness(t);
  const id = await h.add(envelope([rcpt('bob@remote.example')]));
  await until('removed', () => h.done(id));
  assert.equal(h.deliverer.calls.length, 1);
  const call = h.deliverer.calls[0];
  assert.deepEqual([call?.channel, call?.destination, call?.addresses, call?.sender], ['tcp_local', 'remote.example', ['bob@remote.example'], 'alice@example.test']);
  assert.deepEqual(call?.message, BODY, 'the message as spooled, without the envelope line');
  assert.deepEqual(h.tx.of(id), [['dequeued', 'bob@remote.example', 'tcp_local']]);
  assert.deepEqual(readdirSync(h.spool.dir), []);
  assert.deepEqual(h.runner.counts(), { messages: 0, held: 0, inFlight: 0 });
  assert.ok(h.log.records.some((r) => r.event === 'queue-finished' && r.fields.id === id));
});

test('targets are grouped by (channel, destination); each group is one deliver call', async (t) => {
  const h = await harness(t);
  const id = await h.add(
    envelope([
      rcpt('a@one.example'),
      rcpt('b@one.example'),
      rcpt('c@two.example'),
      rcpt('list@example.test', {
        channel: 'ims-ms',
        deliverTo: [
          { address: 'x@example.test', channel: 'ims-ms' },
          { address: 'y@example.test', channel: 'ims-ms' },
          { address: 'd@one.example', channel: 'tcp_local' },
        ],
      }),
    ]),
  );
  await until('removed', () => h.done(id));
  const groups = h.deliverer.calls.map((c) => `${c.channel} ${c.destination}: ${c.addresses.join(' ')}`).sort();
  assert.deepEqual(groups, ['ims-ms store: x@example.test y@example.test', 'tcp_local one.example: a@one.example b@one.example d@one.example', 'tcp_local two.example: c@two.example']);
  assert.equal(h.tx.of(id).length, 6, 'one D record per target');
});

test('permanent: an R record; a DSN from <> to the sender is committed to the spool and delivered', async (t) => {
  const h = await harness(t);
  h.deliverer.script.set('nobody@remote.example', [NEVER]);
  const id = await h.add(envelope([rcpt('nobody@remote.example'), rcpt('bob@remote.example')], { senderParams: { size: null, body: null, smtputf8: false, ret: 'HDRS', envid: 'E-42', auth: null } }));
  await until('original removed and DSN delivered', () => h.gone(id) && h.deliverer.calls.length === 2);
  assert.deepEqual(h.tx.of(id), [
    ['failed', 'nobody@remote.example', 'tcp_local'],
    ['dequeued', 'bob@remote.example', 'tcp_local'],
  ]);
  const [dsn] = dsns(h);
  assert.ok(dsn, 'an E record for the DSN');
  assert.equal(dsn.sender, '', 'null reverse-path: a DSN is never bounced');
  assert.deepEqual(
    dsn.recipients.map((r) => [r.address, r.notify, r.channel, r.deliverTo]),
    [['alice@example.test', ['NEVER'], 'ims-ms', [{ address: 'alice@example.test', channel: 'ims-ms' }]]],
    'to the original sender, routed',
  );
  const call = h.deliverer.calls[1];
  assert.deepEqual([call?.id, call?.sender, call?.channel, call?.destination, call?.addresses], [dsn.id, '', 'ims-ms', 'store', ['alice@example.test']]);
  const text = call?.message.toString() ?? '';
  assert.match(text, /^From: Mail Delivery System <MAILER-DAEMON@mta\.example\.test>\r\n/);
  assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
  assert.match(text, /Final-Recipient: rfc822; nobody@remote\.example\r\n/);
  assert.match(text, /Original-Envelope-Id: E-42\r\n/);
  assert.match(text, /Status: 5\.1\.1\r\n/);
  assert.equal(/Final-Recipient: rfc822; bob@/.test(text), false, 'only the failed recipient is reported');
  assert.equal(dsn.size, call?.message.length);
  assert.deepEqual(h.tx.of(dsn.id), [
    ['enqueued', null, 'l'],
    ['dequeued', 'alice@example.test', 'ims-ms'],
  ]);
  await until('DSN removed', () => h.gone(dsn.id));
  assert.deepEqual(readdirSync(h.spool.dir), []);
});

test('RFC 3461 NOTIFY=SUCCESS: delivery into the mailbox gets a "delivered" DSN; a relayed recipient does not (its next hop is told)', async (t) => {
  const h = await harness(t);
  const FINAL: TargetOutcome = { kind: 'delivered', diagnostic: 'x-local;250 2.0.0 delivered to the embedded store', remote: null, dsnStatus: '2.0.0', final: true };
  h.deliverer.script.set('bob@example.test', [FINAL]);
  const id = await h.add(envelope([rcpt('bob@example.test', { channel: 'ims-ms', notify: ['SUCCESS', 'FAILURE'] }), rcpt('carol@remote.example', { notify: ['SUCCESS'] })]));
  await until('message and its report delivered', () => h.gone(id) && dsns(h).length === 1 && h.deliverer.callsFor(dsns(h)[0]?.id ?? '').length === 1);
  const [report] = dsns(h);
  const text = h.deliverer.callsFor(report?.id ?? '')[0]?.message.toString() ?? '';
  assert.match(text, /Subject: Successful Mail Delivery Report\r\n/);
  assert.match(text, /Final-Recipient: rfc822; bob@example\.test\r\nAction: delivered\r\nStatus: 2\.0\.0\r\n/);
  assert.equal(/carol@/.test(text.slice(text.indexOf('message/delivery-status'))), false, 'the relayed recipient is not reported');
  assert.equal(report?.sender, '');
});

test('a DSN that cannot be delivered is not bounced: it fails and leaves the spool', async (t) => {
  const h = await harness(t);
  h.deliverer.script.set('nobody@remote.example', [NEVER]);
  h.deliverer.script.set('alice@example.test', [NEVER]);
  const id = await h.add(envelope([rcpt('nobody@remote.example')]));
  await until('both gone', () => h.deliverer.calls.length === 2 && readdirSync(h.spool.dir).length === 0);
  await sleep(50);
  assert.equal(dsns(h).length, 1, 'one DSN, for the original only');
  assert.ok(h.gone(id));
});

test('RFC 5321 §4.5.5: a failed message from the null sender gets no DSN', async (t) => {
  const h = await harness(t);
  h.deliverer.script.set('nobody@remote.example', [NEVER]);
  const id = await h.add(envelope([rcpt('nobody@remote.example')], { sender: '' }));
  await until('removed', () => h.done(id));
  assert.deepEqual(h.tx.of(id), [['failed', 'nobody@remote.example', 'tcp_local']]);
  assert.equal(dsns(h).length, 0);
  assert.equal(h.deliverer.calls.length, 1);
  assert.deepEqual(readdirSync(h.spool.dir), []);
});

test('RFC 3461: NOTIFY=NEVER gets no DSN; NOTIFY=FAILURE does', async (t) => {
  const h = await harness(t);
  h.deliverer.script.set('never@remote.example', [NEVER]);
  h.deliverer.script.set('failure@remote.example', [NEVER]);
  const quiet = await h.add(envelope([rcpt('never@remote.example', { notify: ['NEVER'] })]));
  await until('removed', () => h.done(quiet));
  assert.equal(dsns(h).length, 0);
  const loud = await h.add(envelope([rcpt('failure@remote.example', { notify: ['FAILURE'] })]));
  await until('removed', () => h.done(loud));
  assert.equal(dsns(h).length, 1);
});

test('no DSN when the source channel does not bounce (backscatter control)', async (t) => {
  const h = await harness(t, { bounces: (source) => source !== 'tcp_local' });
  h.deliverer.script.set('nobody@remote.example', [NEVER]);
  const id = await h.add(envelope([rcpt('nobody@remote.example')], { sourceChannel: 'tcp_local' }));
  await until('removed', () => h.done(id));
  assert.deepEqual(h.tx.of(id), [['failed', 'nobody@remote.example', 'tcp_local']]);
  assert.equal(dsns(h).length, 0);
  assert.deepEqual(readdirSync(h.spool.dir), []);
});

test('max age: a temporary failure of an old message fails it (4.4.1 → 5.4.1) and returns it', async (t) => {
  const h = await harness(t);
  h.deliverer.script.set('slow@remote.example', [LATER]);
  const id = await h.add(envelope([rcpt('slow@remote.example')], { receivedAt: new Date(Date.now() - 2 * RETRY.maxAgeMs).toISOString() }));
  await until('DSN delivered', () => h.gone(id) && h.deliverer.calls.length === 2);
  assert.deepEqual(h.tx.records.filter((r) => r.env.id === id).map((r) => [r.kind, r.status]), [['failed', '5.4.1']]);
  const text = h.deliverer.calls[1]?.message.toString() ?? '';
  assert.match(text, /Status: 5\.4\.1\r\n/);
  assert.match(text, /Diagnostic-Code: smtp; 451 4\.4\.1 no answer \(gave up after 2 h\)\r\n/);
});

test('$H: held at the first attempt (<id>.held), untouched until release(), then delivered', async (t) => {
  const h = await harness(t);
  const id = await h.add(envelope([rcpt('bob@remote.example')], { flags: ['H'] }));
  await until('held', () => h.spool.isHeld(id) && h.runner.counts().inFlight === 0);
  assert.deepEqual(h.files(id), [`${id}.held`], 'held before anything is written: no crash can skip the hold');
  assert.deepEqual(h.spool.list(), []);
  assert.deepEqual(h.spool.listHeld(), [id]);
  assert.deepEqual(h.runner.counts(), { messages: 0, held: 1, inFlight: 0 });
  await sleep(100);
  assert.equal(h.deliverer.calls.length, 0, 'no attempt while held');
  assert.deepEqual(h.tx.of(id), []);
  assert.equal(await h.runner.release(id), true);
  await until('removed', () => h.done(id));
  assert.deepEqual(h.tx.of(id), [['dequeued', 'bob@remote.example', 'tcp_local']]);
  assert.equal(h.deliverer.calls.length, 1, 'released once, delivered once: $H does not hold it again');
  assert.equal(await h.runner.release(id), false, 'nothing left to release');
});

test('release() of a message held after a deferral tries it at once, not at its next retry time', async (t) => {
  const h = await harness(t, { retry: () => ({ ...RETRY, backoffMs: [3_600_000] }) });
  h.deliverer.script.set('bob@remote.example', [LATER, OK]);
  const id = await h.add(envelope([rcpt('bob@remote.example')]));
  await until('deferred', () => h.tx.of(id).length === 1 && h.runner.counts().inFlight === 0);
  assert.equal(await h.runner.hold(id), true);
  assert.equal(await h.runner.release(id), true);
  await until('delivered after the release, within the hour the schedule said', () => h.done(id));
  assert.deepEqual(h.tx.of(id).map((r) => r[0]), ['deferred', 'dequeued']);
});

test('stop(grace): an attempt still running after the grace is aborted; its recipients stay queued, deferred', async (t) => {
  const seen: (AbortSignal | undefined)[] = [];
  // A remote server that never answers: the attempt ends only when it is aborted.
  class Stuck extends ScriptedDeliverer {
    override deliver(group: DeliveryGroup, _env: EnvelopeV1, _message: MessageSource, signal?: AbortSignal): Promise<TargetOutcome[]> {
      seen.push(signal);
      return new Promise((resolve) => {
        signal?.addEventListener('abort', () => resolve(group.targets.map((): TargetOutcome => ({ kind: 'temporary', diagnostic: 'x-local;451 4.3.2 shutting down', remote: null, dsnStatus: '4.3.2' }))), { once: true });
      });
    }
  }
  const stuck = new Stuck();
  const h = await harness(t, { deliverer: stuck });
  const id = await h.add(envelope([rcpt('bob@slow.example')]));
  await until('attempt started', () => seen.length === 1);
  const t0 = Date.now();
  await h.runner.stop(100);
  assert.ok(Date.now() - t0 < 2000, 'stop() does not wait for the remote server');
  assert.equal(seen[0]?.aborted, true);
  assert.deepEqual(h.tx.of(id), [['deferred', 'bob@slow.example', 'tcp_local']]);
  assert.deepEqual(h.files(id), [`${id}.msg`, `${id}.state`]);
});

test('a damaged message file is set aside as <id>.corrupt with an error, never attempted, never retried', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'runner-'));
  const spool = Spool.open(dataDir);
  const id = newMessageId();
  writeFileSync(spool.path(`${id}.msg`), '{"version":1, broken\nSubject: x\r\n\r\nhi\r\n');
  writeFileSync(spool.path(`${id}.state`), '{}');
  const good = envelope([rcpt('bob@remote.example')]);
  await spool.commitGenerated(good, BODY);
  const h = await harness(t, {}, dataDir);
  await until('the good one delivered, the bad one set aside', () => h.gone(good.id) && h.files(id).join() === `${id}.corrupt`);
  assert.deepEqual(h.deliverer.calls.map((c) => c.id), [good.id]);
  const rec = h.log.records.find((r) => r.event === 'queue-corrupt');
  assert.equal(rec?.level, 'error');
  assert.match(String(rec?.fields.error), /not JSON/);
  assert.equal(h.log.records.some((r) => r.event === 'queue-attempt-failed'), false, 'not a fault retried on the schedule');
});

test('a message qm holds between its commit and the commit hook is not attempted (the runner never reads .held)', async (t) => {
  const h = await harness(t);
  const env = envelope([rcpt('bob@remote.example')]);
  h.spool.onCommit = null; // the hook runs late, as after a slow directory sync
  await h.spool.commitGenerated(env, BODY);
  assert.equal(await h.spool.hold(env.id), true);
  h.runner.schedule(env.id, Date.now()); // the late hook
  await sleep(100);
  assert.equal(h.deliverer.calls.length, 0);
  assert.deepEqual(h.files(env.id), [`${env.id}.held`]);
});

test('unschedule(): messages taken out of the schedule are not attempted (qm acting on many); schedule() puts one back', async (t) => {
  // One attempt at a time: the later messages wait in the schedule while the first is in flight.
  const h = await harness(t, { concurrency: 1 });
  h.deliverer.shut();
  const first = await h.add(envelope([rcpt('a@one.example')]));
  await until('the first is in flight', () => h.deliverer.waiting === 1);
  const later = [await h.add(envelope([rcpt('b@two.example')])), await h.add(envelope([rcpt('c@three.example')]))];
  h.runner.unschedule(later);
  h.deliverer.open();
  await until('the first delivered', () => h.done(first));
  await sleep(100);
  assert.deepEqual(h.deliverer.calls.map((c) => c.id), [first]);
  h.runner.schedule(later[1] as string, Date.now());
  await until('put back and delivered', () => h.done(later[1] as string));
  assert.deepEqual(h.spool.list(), [later[0]]);
});

test('$H survives a restart: a held message is not attempted by a new runner', async (t) => {
  const h = await harness(t);
  const id = await h.add(envelope([rcpt('bob@remote.example')], { flags: ['H'] }));
  await until('held', () => h.spool.isHeld(id) && h.runner.counts().inFlight === 0);
  await h.runner.stop();
  const h2 = await harness(t, {}, h.dataDir);
  await sleep(100);
  assert.equal(h2.deliverer.calls.length, 0);
  assert.deepEqual(h2.spool.listHeld(), [id]);
  assert.deepEqual(h2.files(id), [`${id}.held`]);
  // Released, the state says so: a new runner (a restart) does not hold it again.
  assert.equal(await h2.runner.release(id), true);
  await until('delivered', () => h2.done(id));
  assert.equal(h2.deliverer.calls.length, 1);
});

test('$B, $V, $Z: discarded without a delivery attempt, D records to bitbucket', async (t) => {
  const h = await harness(t);
  for (const flag of ['B', 'V', 'Z']) {
    const id = await h.add(envelope([rcpt('bob@remote.example'), rcpt('carol@remote.example')], { flags: [flag] }));
    await until(`$${flag} removed`, () => h.gone(id));
    assert.deepEqual(h.tx.of(id), [
      ['dequeued', 'bob@remote.example', 'bitbucket'],
      ['dequeued', 'carol@remote.example', 'bitbucket'],
    ]);
  }
  assert.equal(h.deliverer.calls.length, 0);
  assert.equal(dsns(h).length, 0);
  assert.deepEqual(readdirSync(h.spool.dir), []);
});

test('delete() during an attempt waits for it, then removes the message and its state; no further attempt', async (t) => {
  const h = await harness(t);
  h.deliverer.script.set('bob@remote.example', [LATER]);
  h.deliverer.shut();
  const id = await h.add(envelope([rcpt('bob@remote.example')]));
  await until('attempt in flight', () => h.deliverer.waiting === 1);
  let deleted: boolean | null = null;
  const pending = h.runner.delete(id).then((r) => (deleted = r));
  h.runner.schedule(id, Date.now()); // a release or a commit notice arriving meanwhile
  await sleep(20);
  assert.equal(deleted, null, 'delete waits for the attempt');
  assert.ok(existsSync(h.spool.path(`${id}.msg`)), 'nothing is deleted mid-attempt');
  h.deliverer.open();
  await pending;
  assert.equal(deleted, true);
  assert.ok(h.gone(id), 'message and state removed');
  await sleep(50);
  assert.equal(h.deliverer.calls.length, 1, 'the deleted message is not attempted again');
  assert.deepEqual(h.runner.counts(), { messages: 0, held: 0, inFlight: 0 });
  assert.equal(await h.runner.delete(id), false, 'a second delete finds nothing');
});

test('delete() of a waiting message and of a held one', async (t) => {
  const h = await harness(t);
  h.deliverer.script.set('bob@remote.example', [LATER]);
  const waiting = await h.add(envelope([rcpt('bob@remote.example')]));
  await until('deferred', () => h.tx.of(waiting).length === 1);
  await until('state', () => existsSync(h.spool.path(`${waiting}.state`)));
  const held = await h.add(envelope([rcpt('carol@remote.example')], { flags: ['H'] }));
  await until('held', () => h.spool.isHeld(held));
  assert.equal(await h.runner.delete(waiting), true);
  assert.equal(await h.runner.delete(held), true);
  assert.deepEqual(readdirSync(h.spool.dir), []);
  assert.equal(h.runner.counts().messages, 0);
});

test('restart after a crash between the state write and the DSN: the DSN is made then', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'runner-'));
  const spool = Spool.open(dataDir);
  const env = envelope([rcpt('nobody@remote.example')]);
  await spool.commitGenerated(env, BODY);
  const crashed: DeliveryState = {
    version: 1,
    id: env.id,
    targets: [{ rcpt: 0, address: 'nobody@remote.example', channel: 'tcp_local', status: 'failed', attempts: 1, nextAttemptAt: 0, diagnostic: 'smtp;550 5.1.1 no such user', remote: null, dsnStatus: '5.1.1' }],
  };
  await spool.writeState(env.id, crashed);
  const h = await harness(t, {}, dataDir);
  await until('DSN delivered, original gone', () => h.gone(env.id) && h.deliverer.calls.length === 1);
  assert.equal(h.deliverer.calls[0]?.sender, '');
  assert.equal(dsns(h).length, 1);
});

test('an unreadable state is rebuilt from the envelope (warning), not a message stuck for ever', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'runner-'));
  const spool = Spool.open(dataDir);
  const env = envelope([rcpt('bob@remote.example')]);
  await spool.commitGenerated(env, BODY);
  writeFileSync(spool.path(`${env.id}.state`), '{"version":1,"targ');
  const h = await harness(t, {}, dataDir);
  await until('removed', () => h.done(env.id));
  assert.ok(h.log.records.some((r) => r.event === 'queue-state-unreadable' && r.level === 'warn'));
  assert.equal(h.deliverer.calls.length, 1);
});

test('concurrency: attempts in flight never exceed the global limit', async (t) => {
  const h = await harness(t, { concurrency: 3, perDestination: 100 });
  h.deliverer.delayMs = 15;
  const ids: string[] = [];
  for (let k = 0; k < 12; k++) ids.push(await h.add(envelope([rcpt(`u${k}@d${k}.example`)])));
  await until('all removed', () => ids.every((id) => h.done(id)));
  assert.equal(h.deliverer.calls.length, 12);
  assert.equal(h.deliverer.maxMessages, 3, 'three messages at once, never more');
  assert.ok(h.runner.counts().inFlight === 0);
});

test('concurrency: attempts to one destination never exceed the per-destination limit, others go on', async (t) => {
  // Queued before the runner starts, so that all are due at once.
  const dataDir = mkdtempSync(join(tmpdir(), 'runner-'));
  const spool = Spool.open(dataDir);
  const busy: string[] = [];
  for (let k = 0; k < 8; k++) {
    const env = envelope([rcpt(`u${k}@busy.example`)]);
    await spool.commitGenerated(env, BODY);
    busy.push(env.id);
  }
  const other: string[] = [];
  for (const address of ['x@quiet.example', 'y@calm.example']) {
    const env = envelope([rcpt(address)]);
    await spool.commitGenerated(env, BODY);
    other.push(env.id);
  }
  const deliverer = new ScriptedDeliverer();
  deliverer.delayMs = 25;
  const h = await harness(t, { concurrency: 20, perDestination: 2, deliverer }, dataDir);
  await until('the other destinations are served', () => other.every((id) => h.gone(id)));
  assert.ok(busy.some((id) => !h.gone(id)), 'while busy.example still has mail waiting');
  await until('all removed', () => busy.every((id) => h.gone(id)));
  assert.equal(h.deliverer.maxPerDestination, 2);
});

test('recipient limit: 120 recipients at one destination go in transactions of at most 50 (default), all delivered', async (t) => {
  const h = await harness(t);
  const id = await h.add(envelope(Array.from({ length: 120 }, (_, k) => rcpt(`u${k}@big.example`))));
  await until('delivered', () => h.done(id));
  assert.deepEqual(h.deliverer.calls.map((c) => c.addresses.length).sort((a, b) => b - a), [50, 50, 20]);
  assert.equal(new Set(h.deliverer.calls.flatMap((c) => c.addresses)).size, 120, 'each recipient once');
});

test('maxjobs: deliveries on one channel never exceed its limit; the retry policy is asked per channel', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'runner-'));
  const spool = Spool.open(dataDir);
  const ids: string[] = [];
  for (let k = 0; k < 6; k++) {
    const env = envelope([rcpt(`u${k}@d${k}.example`)]);
    await spool.commitGenerated(env, BODY);
    ids.push(env.id);
  }
  const deliverer = new ScriptedDeliverer();
  deliverer.delayMs = 25;
  const asked = new Set<string | null>();
  const h = await harness(
    t,
    {
      concurrency: 20,
      perDestination: 20,
      deliverer,
      maxJobs: (channel) => (channel === 'tcp_local' ? 2 : null),
      retry: (channel) => {
        asked.add(channel);
        return RETRY;
      },
    },
    dataDir,
  );
  await until('all delivered', () => ids.every((id) => h.gone(id)));
  assert.equal(h.deliverer.maxActive, 2);
  assert.deepEqual([...asked], ['tcp_local']);
});

test('no head-of-line blocking: a backlog for one full destination does not hold the attempt slots others need', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'runner-'));
  const spool = Spool.open(dataDir);
  const slow: string[] = [];
  for (let k = 0; k < 6; k++) {
    const env = envelope([rcpt(`u${k}@slow.example`)]);
    await spool.commitGenerated(env, BODY);
    slow.push(env.id);
  }
  const fast = envelope([rcpt('x@fast.example')]);
  await spool.commitGenerated(fast, BODY); // last in the queue
  const deliverer = new ScriptedDeliverer();
  deliverer.delayMs = 150;
  const h = await harness(t, { concurrency: 2, perDestination: 1, deliverer }, dataDir);
  await until('the fast destination is served', () => h.gone(fast.id));
  assert.ok(slow.filter((id) => !h.gone(id)).length >= 4, 'while slow.example still has its backlog');
  await until('the backlog drains, one at a time, woken by each freed slot (not the one-minute backstop)', () => slow.every((id) => h.gone(id)), 5000);
  assert.equal(h.deliverer.maxPerDestination, 1);
});

// Each of these waits out at least one retry, and the backoff is never below one second
// (state.ts): they run side by side, each on its own spool.
describe('retries', { concurrency: true }, () => {
  test('notices: one "delayed" DSN (RFC 3464 Action: delayed) once the warning age has passed, none after delivery', async (t) => {
    // A warning age of 0: due at the first deferral (only targets that failed once are warned about).
    const h = await harness(t, { retry: () => ({ ...RETRY, warnAtMs: [0, 0] }) });
    h.deliverer.script.set('bob@remote.example', [LATER, LATER, OK]);
    const id = await h.add(envelope([rcpt('bob@remote.example', { notify: ['DELAY', 'FAILURE'] })]));
    await until('delivered in the end', () => h.gone(id), 10_000);
    assert.deepEqual(h.tx.of(id), [
      ['deferred', 'bob@remote.example', 'tcp_local'],
      ['deferred', 'bob@remote.example', 'tcp_local'],
      ['dequeued', 'bob@remote.example', 'tcp_local'],
    ]);
    // Both warning ages had passed by the first deferral: one warning, not two in a row.
    const warnings = dsns(h);
    assert.equal(warnings.length, 1);
    const [w] = warnings;
    await until('warning delivered', () => h.deliverer.callsFor(w?.id ?? '').length === 1);
    const text = h.deliverer.callsFor(w?.id ?? '')[0]?.message.toString() ?? '';
    assert.match(text, /Subject: Delayed Mail \(still being retried\)\r\n/);
    assert.match(text, /Action: delayed\r\nStatus: 4\.4\.1\r\n/);
    assert.match(text, /Will-Retry-Until: /);
    assert.match(text, /Content-Type: text\/rfc822-headers/, 'a warning returns the header only');
  });

  test('notices: NOTIFY=FAILURE alone, or the null sender, gets no delay warning', async (t) => {
    const h = await harness(t, { retry: () => ({ ...RETRY, warnAtMs: [0] }) });
    h.deliverer.script.set('bob@remote.example', [LATER, OK]);
    h.deliverer.script.set('carol@remote.example', [LATER, OK]);
    const a = await h.add(envelope([rcpt('bob@remote.example', { notify: ['FAILURE'] })]));
    const b = await h.add(envelope([rcpt('carol@remote.example')], { sender: '' }));
    await until('both delivered', () => h.gone(a) && h.gone(b), 10_000);
    assert.deepEqual(dsns(h), []);
  });

  test('temporary, then delivered: a Q record, the state kept between attempts, then a D record', async (t) => {
    const h = await harness(t);
    const env = envelope([rcpt('bob@remote.example')]);
    h.deliverer.script.set('bob@remote.example', [LATER, OK]);
    const id = await h.add(env);
    await until('deferred', () => h.tx.of(id).length === 1);
    assert.deepEqual(h.tx.of(id), [['deferred', 'bob@remote.example', 'tcp_local']]);
    await until('state written', () => existsSync(h.spool.path(`${id}.state`)));
    const st = (await h.spool.readState(id)) as DeliveryState;
    assert.equal(st.targets[0]?.status, 'pending');
    assert.equal(st.targets[0]?.attempts, 1);
    assert.equal(st.targets[0]?.diagnostic, LATER.diagnostic);
    assert.equal(h.runner.counts().messages, 1, 'scheduled again');
    await until('removed', () => h.done(id));
    assert.deepEqual(h.tx.of(id), [
      ['deferred', 'bob@remote.example', 'tcp_local'],
      ['dequeued', 'bob@remote.example', 'tcp_local'],
    ]);
    assert.equal(h.deliverer.calls.length, 2);
    assert.equal(dsns(h).length, 0);
  });

  test('hold() during an attempt records what it delivered; after release only the rest is attempted', async (t) => {
    const h = await harness(t);
    h.deliverer.script.set('b@two.example', [LATER, OK]);
    h.deliverer.shut();
    const id = await h.add(envelope([rcpt('a@one.example'), rcpt('b@two.example')]));
    await until('both groups in flight', () => h.deliverer.waiting === 2);
    let held: boolean | null = null;
    const pending = h.runner.hold(id).then((r) => (held = r));
    h.runner.schedule(id, Date.now());
    await sleep(20);
    assert.equal(held, null, 'hold waits for the attempt');
    h.deliverer.open();
    await pending;
    assert.equal(held, true);
    assert.deepEqual(h.files(id), [`${id}.held`, `${id}.state`]);
    const st = (await h.spool.readState(id)) as DeliveryState;
    assert.deepEqual(
      st.targets.map((x) => [x.address, x.status]),
      [
        ['a@one.example', 'delivered'],
        ['b@two.example', 'pending'],
      ],
    );
    await sleep(50);
    assert.equal(h.deliverer.calls.length, 2, 'no attempt while held');
    assert.equal(await h.runner.release(id), true);
    await until('removed', () => h.done(id), 8000);
    assert.deepEqual(
      h.deliverer.calls.map((c) => c.addresses.join()),
      ['a@one.example', 'b@two.example', 'b@two.example'],
      'a@one.example is not delivered twice',
    );
    assert.equal(dsns(h).length, 0);
  });

  test('restart: a new runner attempts only the target still pending (no duplicate)', async (t) => {
    const h = await harness(t);
    h.deliverer.script.set('b@two.example', [LATER]);
    const id = await h.add(envelope([rcpt('a@one.example'), rcpt('b@two.example')]));
    await until('one delivered, one deferred', () => h.tx.of(id).length === 2);
    await until('state', () => existsSync(h.spool.path(`${id}.state`)));
    await h.runner.stop();
    const before = h.deliverer.calls.length;
    // A new process: the spool is opened again, the runner rebuilt.
    const h2 = await harness(t, {}, h.dataDir);
    assert.equal(h2.runner.counts().messages, 1);
    await until('removed', () => h2.done(id), 8000);
    assert.equal(h.deliverer.calls.length, before, 'the stopped runner does nothing more');
    assert.deepEqual(
      h2.deliverer.calls.map((c) => c.addresses),
      [['b@two.example']],
    );
    assert.deepEqual(h2.tx.of(id), [['dequeued', 'b@two.example', 'tcp_local']]);
  });

  test('a Deliverer that throws loses nothing: a temporary failure, retried; other groups are recorded', async (t) => {
    const h = await harness(t);
    h.deliverer.script.set('b@two.example', [new Error('boom'), OK]);
    const id = await h.add(envelope([rcpt('a@one.example'), rcpt('b@two.example')]));
    await until('removed', () => h.done(id), 8000);
    assert.deepEqual(h.tx.of(id), [
      ['dequeued', 'a@one.example', 'tcp_local'],
      ['deferred', 'b@two.example', 'tcp_local'],
      ['dequeued', 'b@two.example', 'tcp_local'],
    ]);
    assert.deepEqual(
      h.deliverer.calls.map((c) => c.addresses.join()),
      ['a@one.example', 'b@two.example', 'b@two.example'],
      'a@one.example delivered once',
    );
    const err = h.log.records.find((r) => r.event === 'queue-deliverer-failed');
    assert.equal(err?.level, 'error');
    assert.equal(err?.fields.error, 'boom');
  });

  test('an internal error (a message file that cannot be read: EISDIR) is logged and retried on the schedule', async (t) => {
    const h = await harness(t);
    const env = envelope([rcpt('bob@remote.example')]);
    // An I/O error, unlike a damaged file (set aside as .corrupt), may go away: retried.
    mkdirSync(h.spool.path(`${env.id}.msg`));
    h.runner.schedule(env.id, Date.now());
    await until('error logged', () => h.log.records.some((r) => r.event === 'queue-attempt-failed'));
    assert.equal(h.runner.counts().messages, 1, 'still scheduled');
    assert.ok(existsSync(h.spool.path(`${env.id}.msg`)), 'not removed');
    // Repaired: the next attempt, one first backoff later (not a minute), delivers it.
    rmdirSync(h.spool.path(`${env.id}.msg`));
    writeFileSync(h.spool.path(`${env.id}.msg`), JSON.stringify(env) + '\n' + BODY.toString());
    await until('removed', () => h.done(env.id), 4000);
    assert.equal(h.deliverer.calls.length, 1);
  });
});
