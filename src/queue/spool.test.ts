import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newMessageId, Spool } from './spool.js';
import type { EnvelopeV1 } from './spool.js';

function envelope(id: string, size: number, recipients = 1): EnvelopeV1 {
  return {
    version: 1,
    id,
    receivedAt: '2026-11-24T05:41:48.000Z',
    sender: 'a@remote.example',
    senderParams: { size: null, body: null, smtputf8: false, ret: null, envid: null, auth: null },
    recipients: Array.from({ length: recipients }, (_, k) => ({ address: `user${k}@example.test`, orcpt: null, notify: null, channel: null, status: 'pending' as const })),
    sourceChannel: 'tcp_local',
    service: 'smtp',
    auth: null,
    client: { ip: '192.0.2.7', port: 1234, helo: 'h', via: null },
    tls: null,
    size,
    flags: [],
  };
}

test('docs/spool.md: one file, envelope line then the message; the envelope reads back', async () => {
  const spool = Spool.open(mkdtempSync(join(tmpdir(), 'spool-')));
  const id = newMessageId();
  const w = spool.begin(id, 'Received: x\r\n');
  w.write(Buffer.from('Subject: s\r\n\r\nbody\r\n'));
  await spool.commit(w, envelope(id, w.bytes, 300));
  assert.deepEqual(spool.list(), [id]);
  assert.equal(spool.readEnvelope(id).recipients.length, 300, 'an envelope line longer than one read');
  assert.equal(spool.readBody(id).toString(), 'Received: x\r\nSubject: s\r\n\r\nbody\r\n');
  const raw = readFileSync(spool.path(`${id}.msg`), 'utf8');
  assert.equal(raw.indexOf('\n'), raw.indexOf('}\n') + 1, 'line 1 is exactly the JSON envelope');
});

test('a message over 1 MiB spills to disk while it arrives and commits the same bytes', async () => {
  const spool = Spool.open(mkdtempSync(join(tmpdir(), 'spool-')));
  const id = newMessageId();
  const w = spool.begin(id, 'Received: x\r\n');
  const chunk = Buffer.alloc(256 * 1024, 'a');
  for (let k = 0; k < 10; k++) w.write(chunk);
  assert.equal(w.spilled, true);
  assert.equal(w.addHeader('Message-ID: <late@x>'), false, 'headers can no longer be inserted');
  await spool.commit(w, envelope(id, w.bytes));
  assert.equal(spool.readBody(id).length, 13 + 10 * 256 * 1024);
  assert.deepEqual(readdirSync(spool.dir), [`${id}.msg`], 'the spill file is gone');
});

test('an aborted message leaves nothing behind; start-up removes debris of interrupted commits', async () => {
  const data = mkdtempSync(join(tmpdir(), 'spool-'));
  const spool = Spool.open(data);
  const w = spool.begin(newMessageId(), 'Received: x\r\n');
  for (let k = 0; k < 5; k++) w.write(Buffer.alloc(300 * 1024, 'b'));
  await w.abort();
  assert.deepEqual(readdirSync(spool.dir), []);
  writeFileSync(spool.path('x.msg.tmp'), 'partial');
  writeFileSync(spool.path('y.part'), 'partial');
  writeFileSync(spool.path('z.msg'), '{}\nkept');
  assert.deepEqual(readdirSync(Spool.open(data).dir), ['z.msg']);
});

test('concurrent commits share directory syncs and all land', async () => {
  const spool = Spool.open(mkdtempSync(join(tmpdir(), 'spool-')));
  const ids = Array.from({ length: 40 }, () => newMessageId());
  await Promise.all(
    ids.map(async (id) => {
      const w = spool.begin(id, 'R: x\r\n');
      w.write(Buffer.from('hello\r\n'));
      await spool.commit(w, envelope(id, w.bytes));
    }),
  );
  assert.deepEqual(spool.list(), [...ids].sort());
  assert.equal(new Set(ids).size, 40, 'ids are unique');
});

test('commitGenerated: a message the server made (a DSN) is committed like an accepted one and announced', async () => {
  const spool = Spool.open(mkdtempSync(join(tmpdir(), 'spool-')));
  const seen: string[] = [];
  spool.onCommit = (id) => seen.push(id);
  const id = newMessageId();
  await spool.commitGenerated(envelope(id, 9), Buffer.from('Subject: d\r\n\r\nx\r\n'));
  assert.deepEqual(spool.list(), [id]);
  assert.deepEqual(readdirSync(spool.dir), [`${id}.msg`], 'no temporary file left');
  assert.equal(spool.readEnvelope(id).id, id);
  assert.equal(spool.readBody(id).toString(), 'Subject: d\r\n\r\nx\r\n');
  const other = newMessageId();
  const w = spool.begin(other, 'R: x\r\n');
  await spool.commit(w, envelope(other, w.bytes));
  assert.deepEqual(seen, [id, other], 'onCommit after each commit, accepted or generated');
});

test('writeState/readState: the delivery state beside the message; null before the first write', async () => {
  const spool = Spool.open(mkdtempSync(join(tmpdir(), 'spool-')));
  const id = newMessageId();
  await spool.commitGenerated(envelope(id, 1), Buffer.from('x'));
  assert.equal(await spool.readState(id), null);
  await spool.writeState(id, { version: 1, n: 1 });
  await spool.writeState(id, { version: 1, n: 2 });
  assert.deepEqual(await spool.readState(id), { version: 1, n: 2 });
  assert.deepEqual(readdirSync(spool.dir).sort(), [`${id}.msg`, `${id}.state`]);
  writeFileSync(spool.path(`${id}.state`), '{"trunc');
  await assert.rejects(spool.readState(id), SyntaxError);
});

test('hold/release: <id>.held is out of the active list and back; envelope and body still readable', async () => {
  const spool = Spool.open(mkdtempSync(join(tmpdir(), 'spool-')));
  const a = newMessageId();
  const b = newMessageId();
  await spool.commitGenerated(envelope(a, 1), Buffer.from('A'));
  await spool.commitGenerated(envelope(b, 1), Buffer.from('B'));
  const released: string[] = [];
  spool.onCommit = (id) => released.push(id);
  assert.equal(await spool.hold(a), true);
  assert.equal(await spool.hold(a), false, 'already held');
  assert.equal(spool.isHeld(a), true);
  assert.equal(spool.isHeld(b), false);
  assert.deepEqual(spool.list(), [b]);
  assert.deepEqual(spool.listHeld(), [a]);
  assert.equal(spool.readEnvelope(a).id, a);
  assert.equal(spool.readBody(a).toString(), 'A');
  assert.equal(await spool.release(b), false, 'not held');
  assert.equal(await spool.release(a), true);
  assert.deepEqual(released, [a], 'a release is announced like a commit');
  assert.deepEqual(spool.list(), [a, b].sort());
  assert.deepEqual(spool.listHeld(), []);
});

test('remove: the message (active or held) and its state; false when there is none', async () => {
  const spool = Spool.open(mkdtempSync(join(tmpdir(), 'spool-')));
  const a = newMessageId();
  const b = newMessageId();
  await spool.commitGenerated(envelope(a, 1), Buffer.from('A'));
  await spool.commitGenerated(envelope(b, 1), Buffer.from('B'));
  await spool.writeState(a, { version: 1 });
  await spool.writeState(b, { version: 1 });
  await spool.hold(b);
  assert.equal(await spool.remove(a), true);
  assert.equal(await spool.remove(b), true);
  assert.deepEqual(readdirSync(spool.dir), []);
  assert.equal(await spool.remove(a), false);
});

test('start-up removes delivery state whose message is gone, and keeps that of active and held messages', async () => {
  const data = mkdtempSync(join(tmpdir(), 'spool-'));
  const spool = Spool.open(data);
  const active = newMessageId();
  const held = newMessageId();
  await spool.commitGenerated(envelope(active, 1), Buffer.from('A'));
  await spool.commitGenerated(envelope(held, 1), Buffer.from('H'));
  await spool.writeState(active, {});
  await spool.writeState(held, {});
  await spool.hold(held);
  writeFileSync(spool.path('orphan.state'), '{}');
  writeFileSync(spool.path(`${active}.state.tmp`), '{');
  assert.deepEqual(readdirSync(Spool.open(data).dir).sort(), [`${active}.msg`, `${active}.state`, `${held}.held`, `${held}.state`].sort());
});

test('bodySource: the message after the envelope line, streamed or whole, for an active or held message; a long envelope line too', async () => {
  const spool = Spool.open(mkdtempSync(join(tmpdir(), 'spool-')));
  const read = async (s: NodeJS.ReadableStream): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  };
  const body = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(3 << 20, 0x61), Buffer.from('\r\n')]);
  // 300 recipients: an envelope line longer than one 16 KiB read.
  const id = newMessageId();
  await spool.commitGenerated(envelope(id, body.length, 300), body);
  const src = spool.bodySource(id);
  assert.equal(src.streamed, true, 'over 1 MiB: streamed');
  const open = await src.streams();
  assert.ok((await read(open())).equals(body));
  assert.ok((await read(open())).equals(body), 'a new stream for each transmission');
  assert.ok((await src.buffer()).equals(body));
  const small = newMessageId();
  await spool.commitGenerated(envelope(small, 9, 300), Buffer.from('Subject: d\r\n\r\nx\r\n'));
  assert.equal(spool.bodySource(small).streamed, false);
  assert.equal((await spool.bodySource(small).buffer()).toString(), 'Subject: d\r\n\r\nx\r\n');
  await spool.hold(id);
  assert.ok((await spool.bodySource(id).buffer()).equals(body), 'held');
});
