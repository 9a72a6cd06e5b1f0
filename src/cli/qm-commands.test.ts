// `portcullis qm` through the command table (main.ts), against control sockets served in this
// process by the daemon's own handler (qm-control.ts): one over a spool with no runner (exact
// listings), one over a real QueueRunner whose deliverer the test holds mid-attempt (delete and
// hold wait for the attempt in flight), and a configuration with no server at all (the CLI acts on
// the spool itself). tests/integration/qm.test.ts runs the same commands against the real server.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from './main.js';
import { EXIT } from './command.js';
import { serveControl } from '../daemon/control.js';
import type { ControlReply, ControlRequest } from '../daemon/control.js';
import { qmControl, runnerQueue, spoolQueue } from '../daemon/qm-control.js';
import type { QmQueue, QmRequest } from '../daemon/qm-control.js';
import type { QmCounts, QmDetail, QmSummary } from '../queue/qm.js';
import { QueueRunner } from '../queue/runner.js';
import type { Deliverer, DeliveryGroup } from '../queue/runner.js';
import { Spool } from '../queue/spool.js';
import type { EnvelopeRecipient, EnvelopeV1 } from '../queue/spool.js';
import type { DeliveryState, Target, TargetOutcome } from '../queue/state.js';
import { NO_TX } from '../queue/txsink.js';
import { MemoryLogger } from '../telemetry/log.js';
import { submission } from '../../tests/support/envelopes.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-cli-qm-'));
const servers: Server[] = [];

after(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  rmSync(root, { recursive: true, force: true });
});

/** A configuration directory whose msg.conf leaves store.datadir at its default (DIR/data). */
function configDir(name: string): { config: string; data: string } {
  const config = join(root, name);
  mkdirSync(join(config, 'data'), { recursive: true });
  writeFileSync(join(config, 'msg.conf'), '! qm CLI test\n');
  return { config, data: join(config, 'data') };
}

async function serve(data: string, queue: () => QmQueue): Promise<void> {
  const isQm = (r: ControlRequest): r is QmRequest => r.cmd.startsWith('qm-');
  servers.push(await serveControl(data, (req): Promise<ControlReply> => (isQm(req) ? qmControl(queue(), req) : Promise.resolve({ ok: false, error: 'not here' }))));
}

async function portcullis(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough() };
  let stdout = '';
  let stderr = '';
  io.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  io.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const code = await main(argv, io);
  await new Promise((r) => setImmediate(r));
  return { code, stdout, stderr };
}

function rcpt(address: string, channel: string): EnvelopeRecipient {
  return { address, orcpt: null, notify: null, channel, status: 'pending' };
}

/** Three days and a half hour ago: the age reads 3d00h for half an hour either side. */
const OLD = Date.now() - (3 * 86_400 + 1800) * 1000;
const HEADER = 'Received: from laptop by mx.example.test\r\nMessage-ID: <m@example.test>\r\nSubject: qm test\r\n';

let seq = 0;
/** Commits a message (held if asked) with an optional saved state; returns its envelope. */
async function put(spool: Spool, more: Partial<EnvelopeV1> & { readonly state?: (id: string) => DeliveryState; readonly held?: boolean } = {}): Promise<EnvelopeV1> {
  const body = Buffer.from(`${HEADER}\r\nhello\r\n`);
  const { state, held, ...fields } = more;
  const env = submission([rcpt('friend@remote.example', 'tcp_local')], { id: `mx${(seq++).toString().padStart(6, '0')}-0123456789`, receivedAt: new Date(OLD).toISOString(), size: body.length, ...fields });
  await spool.commitGenerated(env, body);
  if (state !== undefined) await spool.writeState(env.id, state(env.id));
  if (held === true) await spool.hold(env.id);
  return env;
}

function tried(id: string, address: string, channel: string, diagnostic: string): DeliveryState {
  const t: Target = { rcpt: 0, address, channel, status: 'pending', attempts: 2, nextAttemptAt: OLD + 60_000, diagnostic, remote: null, dsnStatus: '4.3.0' };
  return { version: 1, id, targets: [t] };
}

function files(data: string, id: string): string[] {
  return readdirSync(join(data, 'queue')).filter((n) => n.startsWith(id));
}

function ids(stdout: string): string[] {
  return (JSON.parse(stdout) as { messages: QmSummary[] }).messages.map((m) => m.id);
}

describe('against a server without a queue runner', async () => {
  const { config, data } = configDir('spool');
  const spool = Spool.open(data);
  await serve(data, () => spoolQueue(spool));
  const a1 = await put(spool, { state: (id) => tried(id, 'friend@remote.example', 'tcp_local', 'smtp;451 4.3.0 not now') });
  const a2 = await put(spool, { recipients: [rcpt('x@remote.example', 'tcp_local'), rcpt('bob@example.test', 'ims-ms')] });
  const b1 = await put(spool, { sender: 'Bob@Example.TEST', auth: 'bob@example.test', held: true });
  const n1 = await put(spool, { sender: '', auth: null, sourceChannel: 'tcp_local', service: 'smtp', recipients: [rcpt('alice@example.test', 'ims-ms')] });
  const all = [a1, a2, b1, n1].map((e) => e.id);

  test('qm list: a row per message, oldest first, and the total', async () => {
    const r = await portcullis('qm', 'list', '--config', config);
    assert.equal(r.stderr, '');
    assert.equal(r.code, EXIT.ok);
    const size = a1.size;
    assert.equal(size, 99);
    assert.equal(
      r.stdout,
      [
        'ID                   AGE    SIZE  SOURCE     SENDER              AUTH                CHANNELS          TARGETS  ATTEMPTS  NEXT  STATE   DIAGNOSTIC',
        `${a1.id}  3d00h  99    tcp_auth   alice@example.test  alice@example.test  tcp_local         1/1      2         now   queued  smtp;451 4.3.0 not now`,
        `${a2.id}  3d00h  99    tcp_auth   alice@example.test  alice@example.test  ims-ms,tcp_local  2/2      0         now   queued  -`,
        `${b1.id}  3d00h  99    tcp_auth   Bob@Example.TEST    bob@example.test    tcp_local         1/1      0         -     held    -`,
        `${n1.id}  3d00h  99    tcp_local  <>                  -                   ims-ms            1/1      0         now   queued  -`,
        `4 messages, ${4 * size} bytes`,
        '',
      ].join('\n'),
    );
  });

  test('qm list filters: auth user, sender (any case, *@domain, <>), channel, held; combined with AND', async () => {
    const list = async (...args: string[]): Promise<string[]> => {
      const r = await portcullis('qm', 'list', '--json', '--config', config, ...args);
      assert.equal(r.code, EXIT.ok, r.stderr);
      return ids(r.stdout);
    };
    assert.deepEqual(await list(), all);
    assert.deepEqual(await list('--auth-user', 'ALICE@example.test'), [a1.id, a2.id]);
    assert.deepEqual(await list('--sender', 'bob@example.test'), [b1.id]);
    assert.deepEqual(await list('--sender', '*@EXAMPLE.test'), [a1.id, a2.id, b1.id]);
    assert.deepEqual(await list('--sender', '<>'), [n1.id]);
    assert.deepEqual(await list('--channel', 'ims-ms'), [a2.id, n1.id]);
    assert.deepEqual(await list('--held'), [b1.id]);
    assert.deepEqual(await list('--channel', 'ims-ms', '--auth-user', '*@example.test'), [a2.id]);
    assert.deepEqual(await list('--auth-user', 'carol@example.test'), []);
    const none = await portcullis('qm', 'list', '--auth-user', 'carol@example.test', '--config', config);
    assert.equal(none.stdout, '(no messages)\n');
  });

  test('qm list --json: stable keys', async () => {
    const r = await portcullis('qm', 'list', '--json', '--held', '--config', config);
    const [m] = (JSON.parse(r.stdout) as { messages: QmSummary[] }).messages;
    assert.deepEqual(Object.keys(m ?? {}), ['id', 'receivedAt', 'ageSeconds', 'size', 'sourceChannel', 'sender', 'auth', 'channels', 'pending', 'targets', 'attempts', 'nextAttemptAt', 'state', 'diagnostic']);
    assert.deepEqual({ ...m, ageSeconds: 0 }, { id: b1.id, receivedAt: b1.receivedAt, ageSeconds: 0, size: b1.size, sourceChannel: 'tcp_auth', sender: 'Bob@Example.TEST', auth: 'bob@example.test', channels: ['tcp_local'], pending: 1, targets: 1, attempts: 0, nextAttemptAt: null, state: 'held', diagnostic: null });
  });

  test('a bad filter is exit 2 with what to give instead', async () => {
    const r = await portcullis('qm', 'list', '--sender', 'al*', '--config', config);
    assert.deepEqual(r, { code: EXIT.usage, stdout: '', stderr: 'portcullis: --sender "al*": give a whole address or *@domain or <>; other wildcards are not supported\n' });
  });

  test('qm counts: per destination channel, in flight, held, total; --json', async () => {
    const s = a1.size;
    const r = await portcullis('qm', 'counts', '--config', config);
    assert.equal(r.code, EXIT.ok, r.stderr);
    assert.equal(r.stdout, ['CHANNEL      MESSAGES  BYTES', `ims-ms       2         ${2 * s}`, `tcp_local    2         ${2 * s}`, '(in flight)  0         0', `(held)       1         ${s}`, `(total)      4         ${4 * s}`, ''].join('\n'));
    const j = await portcullis('qm', 'counts', '--json', '--config', config);
    assert.deepEqual(JSON.parse(j.stdout) as QmCounts, {
      channels: [
        { channel: 'ims-ms', messages: 2, bytes: 2 * s },
        { channel: 'tcp_local', messages: 2, bytes: 2 * s },
      ],
      held: { messages: 1, bytes: s },
      inFlight: { messages: 0, bytes: 0 },
      total: { messages: 4, bytes: 4 * s },
    });
  });

  test('qm show: envelope, targets with their state, the header section', async () => {
    const r = await portcullis('qm', 'show', a1.id, '--config', config);
    assert.equal(r.code, EXIT.ok, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], `Message:     ${a1.id}`);
    assert.match(lines[1] ?? '', /^State: {7}queued, next attempt now \(/);
    assert.ok(lines.includes('Auth user:   alice@example.test'));
    assert.ok(lines.includes('  friend@remote.example  tcp_local  pending  2         now   smtp;451 4.3.0 not now'), r.stdout);
    assert.deepEqual(lines.slice(lines.indexOf('Header:')), ['Header:', '  Received: from laptop by mx.example.test', '  Message-ID: <m@example.test>', '  Subject: qm test', '']);
    const j = await portcullis('qm', 'show', b1.id, '--json', '--config', config);
    const d = JSON.parse(j.stdout) as QmDetail;
    assert.deepEqual([d.envelope.sender, d.summary.state, d.stateSaved, d.targets.map((t) => [t.address, t.status]), d.header.split('\n').length, d.headerTruncated], ['Bob@Example.TEST', 'held', false, [['friend@remote.example', 'pending']], 3, false]);
  });

  test('qm show: no such message is exit 1; not an id is exit 2 before asking', async () => {
    const r = await portcullis('qm', 'show', 'mx999999-0123456789', '--config', config);
    assert.equal(r.code, EXIT.failure);
    assert.match(r.stderr, /^portcullis: no message mx999999-0123456789 in the queue/);
    const bad = await portcullis('qm', 'show', '../../etc/passwd', '--config', config);
    assert.equal(bad.code, EXIT.usage);
    assert.match(bad.stderr, /is not a message id/);
  });

  test('qm delete/hold/release refuse to run with no selection, or with ids and a filter', async () => {
    for (const verb of ['delete', 'hold', 'release']) {
      const r = await portcullis('qm', verb, '--config', config);
      assert.equal(r.code, EXIT.usage, verb);
      assert.match(r.stderr, new RegExp(`^portcullis: qm ${verb} needs message ids or a filter`));
      const both = await portcullis('qm', verb, a1.id, '--sender', 'alice@example.test', '--config', config);
      assert.equal(both.code, EXIT.usage);
    }
    assert.equal(readdirSync(join(data, 'queue')).filter((n) => n.endsWith('.msg') || n.endsWith('.held')).length, 4);
  });

  test('qm hold and release by id and by filter; what is already so is said, not an error', async () => {
    const h = await portcullis('qm', 'hold', a2.id, b1.id, '--config', config);
    assert.deepEqual(h, { code: EXIT.ok, stdout: `held 1 message (${a2.size} bytes)\n${b1.id} was already held\n`, stderr: '' });
    assert.deepEqual(files(data, a2.id).sort(), [`${a2.id}.held`]);
    const rel = await portcullis('qm', 'release', '--auth-user', '*@example.test', '--config', config);
    assert.deepEqual(rel, { code: EXIT.ok, stdout: `released 2 messages (${2 * a2.size} bytes)\n`, stderr: '' });
    const again = await portcullis('qm', 'release', a2.id, '--config', config);
    assert.deepEqual(again, { code: EXIT.ok, stdout: `released 0 messages (0 bytes)\n${a2.id} is not held\n`, stderr: '' });
    const none = await portcullis('qm', 'release', '--held', '--config', config);
    assert.equal(none.stdout, 'no message matches; nothing released\n');
    const back = await portcullis('qm', 'hold', '--sender', 'bob@example.test', '--json', '--config', config);
    assert.deepEqual(JSON.parse(back.stdout), { action: 'hold', done: [{ id: b1.id, size: b1.size }], bytes: b1.size, unchanged: [], notFound: [] });
  });

  test('qm delete --auth-user: exactly that user\'s messages and their state go; count and bytes printed', async () => {
    const r = await portcullis('qm', 'delete', '--auth-user', 'alice@example.test', '--config', config);
    assert.deepEqual(r, { code: EXIT.ok, stdout: `deleted 2 messages (${a1.size + a2.size} bytes)\n`, stderr: '' });
    assert.deepEqual([...files(data, a1.id), ...files(data, a2.id)], []);
    const left = await portcullis('qm', 'list', '--json', '--config', config);
    assert.deepEqual(ids(left.stdout), [b1.id, n1.id]);
  });

  test('qm delete IDs: an id not found is reported and makes exit 1; the others are deleted', async () => {
    const r = await portcullis('qm', 'delete', b1.id, 'mx999999-0123456789', '--config', config);
    assert.equal(r.code, EXIT.failure);
    assert.equal(r.stdout, `deleted 1 message (${b1.size} bytes)\n`);
    assert.match(r.stderr, /^portcullis: no message mx999999-0123456789 in the queue/);
    assert.deepEqual(files(data, b1.id), []);
  });
});

describe('with no server running', async () => {
  const { config, data } = configDir('offline');
  const spool = Spool.open(data);
  const m = await put(spool, { auth: 'mallory@example.test' });
  const keep = await put(spool, { auth: 'bob@example.test' });

  test('qm acts on the spool directly and says so on stderr', async () => {
    const l = await portcullis('qm', 'list', '--json', '--config', config);
    assert.equal(l.code, EXIT.ok);
    assert.deepEqual(ids(l.stdout), [m.id, keep.id]);
    assert.equal(l.stderr, `portcullis: no server is running; acting on the spool in ${join(data, 'queue')} directly\n`);
    const d = await portcullis('qm', 'delete', '--auth-user', 'mallory@example.test', '--config', config);
    assert.equal(d.code, EXIT.ok);
    assert.equal(d.stdout, `deleted 1 message (${m.size} bytes)\n`);
    assert.match(d.stderr, /acting on the spool/);
    assert.deepEqual(files(data, m.id), []);
    assert.equal(existsSync(join(data, 'queue', `${keep.id}.msg`)), true);
  });

  test('no queue directory: exit 1, saying where it looked', async () => {
    const { config: empty } = configDir('never-ran');
    const r = await portcullis('qm', 'counts', '--config', empty);
    assert.equal(r.code, EXIT.failure);
    assert.match(r.stderr, /^portcullis: no server is running and there is no queue at .*never-ran\/data\/queue/);
  });
});

/** Holds every attempt until opened; answers 451 to every target. */
class GatedDeliverer implements Deliverer {
  calls = 0;
  private gate: Promise<void>;
  private openGate: () => void = () => undefined;
  private entered: () => void = () => undefined;
  readonly inside: Promise<void>;

  constructor() {
    this.gate = new Promise((r) => (this.openGate = r));
    this.inside = new Promise((r) => (this.entered = r));
  }

  destinationOf(): string {
    return 'remote';
  }

  async deliver(group: DeliveryGroup): Promise<TargetOutcome[]> {
    this.calls++;
    this.entered();
    await this.gate;
    return group.targets.map(() => ({ kind: 'temporary', diagnostic: 'smtp;451 4.3.0 not now', remote: null, dsnStatus: '4.3.0' }));
  }

  open(): void {
    this.openGate();
  }
}

describe('against a server with a queue runner', () => {
  async function runnerSetup(name: string): Promise<{ config: string; data: string; env: EnvelopeV1; deliverer: GatedDeliverer; runner: QueueRunner }> {
    const { config, data } = configDir(name);
    const spool = Spool.open(data);
    const env = await put(spool);
    const deliverer = new GatedDeliverer();
    const runner = new QueueRunner({
      spool,
      deliverer,
      route: () => Promise.resolve(null),
      tx: NO_TX,
      log: new MemoryLogger(),
      retry: () => ({ backoffMs: [3_600_000], maxAgeMs: 30 * 86_400_000, jitter: 0 }),
      bounces: () => true,
      hostname: () => 'mx.example.test',
      concurrency: 4,
      perDestination: 4,
    });
    await serve(data, () => runnerQueue(spool, runner));
    await runner.start();
    await deliverer.inside;
    return { config, data, env, deliverer, runner };
  }

  test('an attempt in flight shows as in-flight; qm delete waits for it to end, then the message is gone and never attempted again', async () => {
    const { config, data, env, deliverer, runner } = await runnerSetup('runner-delete');
    try {
      const l = await portcullis('qm', 'list', '--json', '--config', config);
      assert.deepEqual((JSON.parse(l.stdout) as { messages: QmSummary[] }).messages.map((m) => [m.id, m.state]), [[env.id, 'in-flight']]);
      const c = await portcullis('qm', 'counts', '--json', '--config', config);
      assert.deepEqual((JSON.parse(c.stdout) as QmCounts).inFlight, { messages: 1, bytes: env.size });
      let finished = false;
      const del = portcullis('qm', 'delete', env.id, '--config', config).finally(() => (finished = true));
      // The delete has reached the runner, which waits for the attempt: the message is still there.
      for (let i = 0; i < 20 && !finished; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(finished, false);
      assert.deepEqual(files(data, env.id), [`${env.id}.msg`]);
      deliverer.open();
      const r = await del;
      assert.deepEqual(r, { code: EXIT.ok, stdout: `deleted 1 message (${env.size} bytes)\n`, stderr: '' });
      assert.deepEqual(files(data, env.id), [], 'no state written after the delete');
      assert.deepEqual(runner.inFlightIds(), []);
      assert.equal(deliverer.calls, 1);
    } finally {
      deliverer.open();
      await runner.stop();
    }
  });

  test('qm hold during an attempt: held once it ends, with what the attempt achieved recorded; release queues it again', async () => {
    const { config, data, env, deliverer, runner } = await runnerSetup('runner-hold');
    try {
      let finished = false;
      const hold = portcullis('qm', 'hold', '--sender', 'alice@example.test', '--config', config).finally(() => (finished = true));
      for (let i = 0; i < 20 && !finished; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(finished, false);
      assert.deepEqual(files(data, env.id), [`${env.id}.msg`]);
      deliverer.open();
      assert.deepEqual(await hold, { code: EXIT.ok, stdout: `held 1 message (${env.size} bytes)\n`, stderr: '' });
      assert.deepEqual(files(data, env.id).sort(), [`${env.id}.held`, `${env.id}.state`]);
      const s = await portcullis('qm', 'show', env.id, '--json', '--config', config);
      const d = JSON.parse(s.stdout) as QmDetail;
      assert.deepEqual([d.summary.state, d.summary.attempts, d.summary.diagnostic, d.stateSaved], ['held', 1, 'smtp;451 4.3.0 not now', true]);
      const rel = await portcullis('qm', 'release', env.id, '--config', config);
      assert.equal(rel.stdout, `released 1 message (${env.size} bytes)\n`);
      assert.deepEqual(files(data, env.id).sort(), [`${env.id}.msg`, `${env.id}.state`]);
    } finally {
      deliverer.open();
      await runner.stop();
    }
  });
});
