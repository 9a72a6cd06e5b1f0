// `portcullis qm` (issue 6) against the real server with its queue runner on: two authenticated
// users submit with swaks; the smarthost is a scripted responder (tests/support/smtp-responder.ts)
// that answers 451 to every MAIL FROM until told to accept, so the messages stay queued and are
// retried every second (delivery.backoff = 1s). The tests then list, count, show, delete, hold and
// release while the runner keeps retrying, and watch the responder to see what the runner did.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { portcullis, Server, swaks, waitFor } from './harness.js';
import { SmtpResponder } from '../support/smtp-responder.js';
import type { QmCounts, QmDetail, QmSummary } from '../../src/queue/qm.js';

const ALICE = { address: 'alice@example.test', password: 'alice-secret-1' };
const BOB = { address: 'bob@example.test', password: 'bob-secret-2' };

let responder: SmtpResponder;
let server: Server;
let accepting = false;
const sent = new Map<string, { id: string; user: string; subject: string }>();

async function submit(user: { address: string; password: string }, subject: string): Promise<string> {
  const r = await swaks([
    '--server', `127.0.0.1:${server.ports.submit}`, '--tls', '--tls-ca-path', server.certFile,
    '--auth', 'PLAIN', '--auth-user', user.address, '--auth-password', user.password,
    '--from', user.address, '--to', 'friend@elsewhere.example', '--header', `Subject: ${subject}`,
  ]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const id = Server.idOf(r.stdout);
  sent.set(subject, { id, user: user.address, subject });
  return id;
}

async function qm(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return portcullis(['qm', ...args, '--config', server.configDir]);
}

async function list(...args: string[]): Promise<QmSummary[]> {
  const r = await qm('list', '--json', ...args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'a running server answers: nothing on stderr');
  return (JSON.parse(r.stdout) as { messages: QmSummary[] }).messages;
}

async function show(id: string): Promise<QmDetail> {
  const r = await qm('show', id, '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as QmDetail;
}

/** MAIL FROM commands the smarthost received from a sender. */
function mails(sender: string): number {
  return responder.commands.filter((c) => c.includes(`MAIL FROM:<${sender}>`)).length;
}

/** Files of a message in the queue directory (message, held message, state). */
function files(id: string): string[] {
  return readdirSync(server.queueDir).filter((n) => n.startsWith(`${id}.`));
}

function id(subject: string): string {
  const m = sent.get(subject);
  if (m === undefined) throw new Error(`no message ${subject}`);
  return m.id;
}

before(async () => {
  responder = await SmtpResponder.start({ mail: () => (accepting ? '250 2.1.0 OK' : '451 4.3.0 not now') });
  server = await Server.start({
    users: [ALICE, BOB],
    conf: { 'delivery.runner': 'yes', 'delivery.smarthost': `127.0.0.1:${responder.port}`, 'delivery.backoff': '1s' },
  });
  for (const s of ['alice 1', 'alice 2', 'alice 3']) await submit(ALICE, `qm ${s}`);
  for (const s of ['bob 1', 'bob 2']) await submit(BOB, `qm ${s}`);
  // Every message has been tried (and refused) at least once.
  await waitFor('every message to be attempted', async () => {
    const all = await list();
    return all.length === 5 && all.every((m) => m.attempts >= 1) ? true : undefined;
  }, 15_000, 200);
});

after(async () => {
  await server.stop();
  await responder.close();
});

describe('qm against a running server whose smarthost answers 451', () => {
  const aliceIds = (): string[] => ['qm alice 1', 'qm alice 2', 'qm alice 3'].map(id).sort();
  const bobIds = (): string[] => ['qm bob 1', 'qm bob 2'].map(id).sort();

  test('qm list: every message, with the 451 as diagnostic; filters by AUTH user, sender (any case, *@domain), channel and held', async () => {
    const all = await list();
    assert.deepEqual(all.map((m) => m.id), [...aliceIds(), ...bobIds()].sort());
    const channel = all[0]?.channels[0] ?? '';
    assert.match(channel, /^tcp_/);
    for (const m of all) {
      assert.equal(m.sourceChannel, 'tcp_auth');
      assert.deepEqual([m.channels, m.pending, m.targets], [[channel], 1, 1]);
      assert.equal(m.diagnostic, 'smtp;451 4.3.0 not now');
      assert.ok(m.state === 'queued' || m.state === 'in-flight', m.state);
    }
    assert.deepEqual((await list('--auth-user', ALICE.address)).map((m) => m.id), aliceIds());
    assert.deepEqual((await list('--sender', 'BOB@Example.Test')).map((m) => m.id), bobIds());
    assert.deepEqual((await list('--sender', '*@example.test')).length, 5);
    assert.deepEqual((await list('--sender', '*@elsewhere.example')).length, 0);
    assert.deepEqual((await list('--channel', channel, '--auth-user', BOB.address)).map((m) => m.id), bobIds());
    assert.deepEqual((await list('--channel', 'ims-ms')).length, 0);
    assert.deepEqual((await list('--held')).length, 0);
    const human = await qm('list', '--auth-user', BOB.address);
    assert.equal(human.code, 0);
    const lines = human.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^ID +AGE +SIZE +SOURCE +SENDER +AUTH +CHANNELS +TARGETS +ATTEMPTS +NEXT +STATE +DIAGNOSTIC$/);
    assert.equal(lines.length, 4);
    assert.match(lines[3] ?? '', /^2 messages, \d+ bytes$/);
  });

  test('qm counts: messages and bytes on the destination channel, held and total', async () => {
    const sizes = (await list()).map((m) => m.size);
    const bytes = sizes.reduce((a, b) => a + b, 0);
    const r = await qm('counts', '--json');
    assert.equal(r.code, 0, r.stderr);
    const c = JSON.parse(r.stdout) as QmCounts;
    assert.deepEqual(c.channels.map((x) => [x.messages, x.bytes]), [[5, bytes]]);
    assert.deepEqual([c.held, c.total], [{ messages: 0, bytes: 0 }, { messages: 5, bytes }]);
    assert.ok(c.inFlight.messages >= 0 && c.inFlight.messages <= 5);
    const human = await qm('counts');
    assert.match(human.stdout, new RegExp(`^CHANNEL +MESSAGES +BYTES\\ntcp_\\w+ +5 +${bytes}\\n\\(in flight\\) +\\d +\\d+\\n\\(held\\) +0 +0\\n\\(total\\) +5 +${bytes}\\n$`));
  });

  test('qm show: the envelope, the target with its attempts and 451, the header section', async () => {
    const d = await show(id('qm alice 2'));
    assert.deepEqual([d.envelope.sender, d.envelope.auth, d.envelope.sourceChannel], [ALICE.address, ALICE.address, 'tcp_auth']);
    assert.deepEqual(d.targets.map((t) => [t.address, t.status, t.diagnostic]), [['friend@elsewhere.example', 'pending', 'smtp;451 4.3.0 not now']]);
    assert.ok((d.targets[0]?.attempts ?? 0) >= 1);
    assert.equal(d.stateSaved, true);
    assert.match(d.header, /^Received: /);
    assert.match(d.header, /^Subject: qm alice 2$/m);
    const human = await qm('show', id('qm alice 2'));
    assert.match(human.stdout, /^Message: +\S+\nState: +(queued|in-flight)/);
    assert.match(human.stdout, /\nHeader:\n {2}Received: [^]*\n {2}Subject: qm alice 2\n/);
  });

  test('qm delete --auth-user: exactly alice\'s messages go (count and bytes printed, spool files gone); the runner keeps retrying bob\'s', async () => {
    const aliceBytes = (await list('--auth-user', ALICE.address)).reduce((n, m) => n + m.size, 0);
    const r = await qm('delete', '--auth-user', ALICE.address);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, `deleted 3 messages (${aliceBytes} bytes)\n`, '']);
    for (const a of aliceIds()) assert.deepEqual(files(a), [], a);
    assert.deepEqual((await list()).map((m) => m.id), bobIds());
    // Once the delete has answered, no attempt on alice's mail is in flight or to come.
    const aliceMails = mails(ALICE.address);
    const bobMails = mails(BOB.address);
    await waitFor('two more attempts on each of bob\'s messages', () => (mails(BOB.address) >= bobMails + 4 ? true : undefined), 15_000);
    assert.equal(mails(ALICE.address), aliceMails, 'no attempt on a deleted message');
    await server.waitForLog('qm-delete', (l) => l.messages === 3 && l.via === 'runner');
  });

  test('qm delete of an id not in the queue: reported, exit 1', async () => {
    const r = await qm('delete', id('qm alice 1'));
    assert.equal(r.code, 1);
    assert.equal(r.stdout, 'deleted 0 messages (0 bytes)\n');
    assert.match(r.stderr, new RegExp(`^portcullis: no message ${id('qm alice 1')} in the queue`));
    const none = await qm('delete');
    assert.equal(none.code, 2);
  });

  test('qm hold keeps a message out of delivery; released, it is delivered once the smarthost accepts', async () => {
    const held = id('qm bob 1');
    const other = id('qm bob 2');
    const h = await qm('hold', held);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /^held 1 message \(\d+ bytes\)\n$/);
    assert.deepEqual(files(held).sort(), [`${held}.held`, `${held}.state`]);
    assert.deepEqual((await list('--held')).map((m) => [m.id, m.state, m.nextAttemptAt]), [[held, 'held', null]]);
    const c = JSON.parse((await qm('counts', '--json')).stdout) as QmCounts;
    assert.equal(c.held.messages, 1);
    assert.equal(c.channels[0]?.messages, 1);
    // While held it is not attempted; the other one is.
    const heldAttempts = (await show(held)).summary.attempts;
    const otherAttempts = (await show(other)).summary.attempts;
    await waitFor('two more attempts on the message not held', async () => ((await show(other)).summary.attempts >= otherAttempts + 2 ? true : undefined), 15_000, 200);
    assert.equal((await show(held)).summary.attempts, heldAttempts);

    accepting = true;
    await waitFor('the message not held to be delivered', () => (files(other).length === 0 ? true : undefined), 15_000);
    assert.ok(responder.messages.some((m) => m.data.toString('latin1').includes('Subject: qm bob 2')));
    assert.deepEqual(files(held).sort(), [`${held}.held`, `${held}.state`], 'the held one stays held');
    assert.ok(!responder.messages.some((m) => m.data.toString('latin1').includes('Subject: qm bob 1')));

    const rel = await qm('release', '--held');
    assert.match(rel.stdout, /^released 1 message \(\d+ bytes\)\n$/);
    await waitFor('the released message to be delivered', () => (files(held).length === 0 ? true : undefined), 15_000);
    assert.ok(responder.messages.some((m) => m.data.toString('latin1').includes('Subject: qm bob 1')));
    assert.deepEqual(await list(), []);
  });

  test('with the server stopped, qm acts on the spool directly and says so', async () => {
    await server.stop(3000, true);
    const r = await qm('counts', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, `portcullis: no server is running; acting on the spool in ${server.queueDir} directly\n`);
    assert.deepEqual((JSON.parse(r.stdout) as QmCounts).total, { messages: 0, bytes: 0 });
  });
});
