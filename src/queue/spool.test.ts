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
