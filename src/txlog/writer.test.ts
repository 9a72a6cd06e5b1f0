// The transaction-log writer (spec §13): order under concurrent producers, rotation by size and by
// day (days come from the records' times and from an injected clock — nothing sleeps), archives
// kept, nothing lost across rotations or a failing disk, and the shutdown path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLogger } from '../telemetry/log.js';
import { formatTextLine } from './format.js';
import type { TxRecord } from './record.js';
import { JSON_LOG, TEXT_LOG, TxWriter } from './writer.js';
import type { WriterOptions } from './writer.js';

const BASE: WriterOptions = { format: 'both', rotateSize: 0, keep: 100, utc: true, blockSize: 1024, reason: true, diagnostic: true };
const DAY1 = Date.UTC(2026, 10, 24, 10, 0, 0);
const DAY2 = Date.UTC(2026, 10, 25, 0, 0, 1);
const DAY3 = Date.UTC(2026, 10, 26, 9, 0, 0);

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'portcullis-txlog-'));
}

/** A record whose recipient carries its sequence number. */
function rec(n: number, time = DAY1): TxRecord {
  return {
    time: new Date(time),
    action: 'E',
    modifiers: ['E'],
    sourceChannel: 'tcp_local',
    destinationChannel: 'ims-ms',
    size: 1000,
    envFrom: 'a@example.test',
    origRecipient: `rfc822;r${n}@example.test`,
    recipient: `r${n}@example.test`,
  };
}

function seqOf(line: string): number {
  const m = /rfc822;r(\d+)@/.exec(line);
  assert.ok(m, line);
  return Number(m[1]);
}

function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

/** Archives of a log, oldest first (day, then number), then the current file. */
function allLines(dir: string, log: { current: string; base: string }): { files: string[]; lines: string[] } {
  const archives = readdirSync(dir)
    .filter((n) => n.startsWith(`${log.base}.`) && /\.\d{4}-\d{2}-\d{2}\.\d+$/.test(n))
    .sort((a, b) => {
      const [, da, sa] = /\.(\d{4}-\d{2}-\d{2})\.(\d+)$/.exec(a) as RegExpExecArray;
      const [, db, sb] = /\.(\d{4}-\d{2}-\d{2})\.(\d+)$/.exec(b) as RegExpExecArray;
      return da === db ? Number(sa) - Number(sb) : (da as string) < (db as string) ? -1 : 1;
    });
  const files = [...archives, log.current];
  return { files: archives, lines: files.flatMap((f) => lines(join(dir, f))) };
}

test('order: records from many concurrent producers are written in the order they were appended, in both forms', async () => {
  const dir = scratch();
  try {
    const w = new TxWriter(dir, BASE);
    let next = 0;
    const producer = async (k: number): Promise<void> => {
      for (let i = 0; i < 200; i++) {
        w.append(rec(next++));
        // Interleave producers at different points of the writer's I/O.
        if ((i + k) % 3 === 0) await new Promise((r) => setImmediate(r));
        else await Promise.resolve();
      }
    };
    await Promise.all(Array.from({ length: 20 }, (_, k) => producer(k)));
    await w.flush();
    const text = lines(join(dir, TEXT_LOG.current)).map(seqOf);
    const json = lines(join(dir, JSON_LOG.current)).map((l) => seqOf((JSON.parse(l) as { orcpt: string }).orcpt));
    const want = Array.from({ length: 4000 }, (_, i) => i);
    assert.deepEqual(text, want);
    assert.deepEqual(json, want);
    assert.deepEqual(w.stats(), { written: 8000, dropped: 0, errors: 0, pending: 0 });
    await w.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rotation by size: a file never passes rotate_size, archives are numbered within the day, nothing is lost', async () => {
  const dir = scratch();
  try {
    const lineBytes = Buffer.byteLength(formatTextLine(rec(10), BASE));
    const w = new TxWriter(dir, { ...BASE, format: 'text', rotateSize: lineBytes * 3 + 5 });
    for (let n = 10; n < 30; n++) {
      w.append(rec(n));
      // Some appends land while a rotation is in progress.
      if (n % 7 === 0) await Promise.resolve();
    }
    await w.flush();
    const { files, lines: all } = allLines(dir, TEXT_LOG);
    assert.deepEqual(all.map(seqOf), Array.from({ length: 20 }, (_, i) => i + 10));
    assert.deepEqual(files, ['mail.log.2026-11-24.1', 'mail.log.2026-11-24.2', 'mail.log.2026-11-24.3', 'mail.log.2026-11-24.4', 'mail.log.2026-11-24.5', 'mail.log.2026-11-24.6']);
    for (const f of [...files, TEXT_LOG.current]) assert.ok(statSync(join(dir, f)).size <= lineBytes * 3 + 5, f);
    assert.equal(lines(join(dir, TEXT_LOG.current)).length, 2);
    assert.ok(!existsSync(join(dir, JSON_LOG.current)), 'format text writes no JSON file');
    await w.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rotation by day: a record of a later day starts a new file; the midnight tick rotates a quiet log (injected clock)', async () => {
  const dir = scratch();
  try {
    let now = new Date(DAY1);
    const w = new TxWriter(dir, BASE, { now: () => now });
    for (const n of [1, 2, 3]) w.append(rec(n, DAY1 + n));
    for (const n of [4, 5]) w.append(rec(n, DAY2 + n));
    await w.flush();
    assert.deepEqual(lines(join(dir, 'mail.log.2026-11-24.1')).map(seqOf), [1, 2, 3]);
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [4, 5]);
    assert.deepEqual(lines(join(dir, 'mail.jsonl.2026-11-24.1')).length, 3);
    // A tick on the same day changes nothing.
    await w.tick(new Date(DAY2 + 3_600_000));
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [4, 5]);
    // The clock passes midnight with no record: the tick (the daemon's timer) rotates.
    now = new Date(DAY3);
    await w.tick();
    assert.deepEqual(lines(join(dir, 'mail.log.2026-11-25.1')).map(seqOf), [4, 5]);
    assert.deepEqual(lines(join(dir, 'mail.jsonl.2026-11-25.1')).length, 2);
    assert.equal(lines(join(dir, TEXT_LOG.current)).length, 0);
    // An empty log is not rotated.
    await w.tick(new Date(DAY3 + 86_400_000));
    assert.ok(!readdirSync(dir).some((n) => n.includes('2026-11-26')));
    // A record that arrives late, stamped with an earlier day, stays in the current file.
    w.append(rec(6, DAY3));
    w.append(rec(7, DAY2));
    await w.flush();
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [6, 7]);
    await w.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a log left by an earlier run belongs to the day it was last written: the first record of a later day rotates it', async () => {
  const dir = scratch();
  try {
    writeFileSync(join(dir, TEXT_LOG.current), 'old line\n');
    const mtime = new Date(DAY1);
    utimesSync(join(dir, TEXT_LOG.current), mtime, mtime);
    const w = new TxWriter(dir, { ...BASE, format: 'text' });
    w.append(rec(1, DAY2));
    await w.flush();
    assert.deepEqual(lines(join(dir, 'mail.log.2026-11-24.1')), ['old line']);
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [1]);
    // Same day: appended to the existing file.
    await w.close();
    const w2 = new TxWriter(dir, { ...BASE, format: 'text' });
    w2.append(rec(2, Date.now()));
    await w2.flush();
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [1, 2]);
    await w2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keep: only the newest N archives stay; a reload changes rotation and format for later records', async () => {
  const dir = scratch();
  try {
    const w = new TxWriter(dir, { ...BASE, keep: 2 });
    for (let d = 0; d < 5; d++) w.append(rec(d, DAY1 + d * 86_400_000));
    await w.flush();
    const names = readdirSync(dir).sort();
    assert.deepEqual(names, ['mail.jsonl', 'mail.jsonl.2026-11-26.1', 'mail.jsonl.2026-11-27.1', 'mail.log.2026-11-26.1', 'mail.log.2026-11-27.1', 'mail.log_current']);
    w.reconfigure({ ...BASE, keep: 1, format: 'json' });
    w.append(rec(9, DAY1 + 9 * 86_400_000));
    await w.flush();
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [4], 'format json: the text log gets nothing more');
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('mail.jsonl.')), ['mail.jsonl.2026-11-28.1']);
    await w.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing disk: the write is retried, nothing is lost or repeated, the error is logged; close() tries once more at once', async () => {
  const root = scratch();
  try {
    // The log directory cannot be created while a file stands in its place.
    const dir = join(root, 'log');
    writeFileSync(dir, 'not a directory');
    const log = new MemoryLogger();
    const w = new TxWriter(dir, { ...BASE, format: 'text' }, { log });
    for (let n = 0; n < 5; n++) w.append(rec(n));
    await w.flush();
    assert.equal(w.stats().pending, 5);
    assert.ok(w.stats().errors >= 1);
    assert.ok(log.records.some((r) => r.event === 'txlog-write-failed' && r.level === 'error'));
    // Appends keep working while the disk fails.
    for (let n = 5; n < 8; n++) w.append(rec(n));
    rmSync(dir);
    mkdirSync(dir);
    await w.close();
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [0, 1, 2, 3, 4, 5, 6, 7]);
    // After close a record is appended synchronously (records written during shutdown).
    w.append(rec(8));
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a queue past its bound drops records and says so (a disk that has failed for a long time)', async () => {
  const root = scratch();
  try {
    const dir = join(root, 'log');
    writeFileSync(dir, 'x');
    const log = new MemoryLogger();
    const w = new TxWriter(dir, { ...BASE, format: 'text' }, { log, maxQueued: 3 });
    for (let n = 0; n < 5; n++) w.append(rec(n));
    assert.equal(w.stats().dropped, 2);
    rmSync(dir);
    mkdirSync(dir);
    await w.close();
    assert.deepEqual(lines(join(dir, TEXT_LOG.current)).map(seqOf), [0, 1, 2]);
    assert.ok(log.records.some((r) => r.event === 'txlog-records-dropped'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
