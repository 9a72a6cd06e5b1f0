import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliverToMaildir, maildirOf } from './maildir.js';

const MESSAGE = Buffer.from('Received: from laptop\r\nSubject: hi\r\n\r\nhello\r\n');

test('maildirOf: <root>/<domain>/<local>/Maildir, lower-cased', () => {
  assert.equal(maildirOf('/data/mailboxes', 'Bob.Smith@Example.TEST'), join('/data/mailboxes', 'example.test', 'bob.smith', 'Maildir'));
  assert.equal(maildirOf('/r', 'a@b@example.test'), join('/r', 'example.test', 'a@b', 'Maildir'), 'the last @ separates the domain');
});

test('maildirOf: path traversal and malformed addresses are refused', () => {
  for (const address of [
    '../etc@example.test',
    'a/b@example.test',
    'a\\b@example.test',
    '..@example.test',
    '.@example.test',
    'bob@..',
    'bob@.',
    'bob@a/b',
    'bob@../../etc',
    'bo\0b@example.test',
    'bob@',
    '@example.test',
    'no-at-sign',
    '',
  ]) {
    assert.equal(maildirOf('/r', address), null, JSON.stringify(address));
  }
  // Dots inside a name are fine: they cannot leave the directory.
  assert.equal(maildirOf('/r', '..bob@example.test'), join('/r', 'example.test', '..bob', 'Maildir'));
});

test('deliverToMaildir: the message lands in new/ with Return-Path and Delivered-To, nothing left in tmp/', async () => {
  const root = mkdtempSync(join(tmpdir(), 'maildir-'));
  const dir = maildirOf(root, 'bob@example.test');
  assert.ok(dir !== null);
  const name = await deliverToMaildir(dir, 'alice@remote.example', 'bob@example.test', MESSAGE);
  assert.deepEqual(readdirSync(dir).sort(), ['cur', 'new', 'tmp']);
  assert.deepEqual(readdirSync(join(dir, 'new')), [name]);
  assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  assert.deepEqual(readdirSync(join(dir, 'cur')), []);
  assert.equal(readFileSync(join(dir, 'new', name), 'latin1'), 'Return-Path: <alice@remote.example>\r\nDelivered-To: bob@example.test\r\n' + MESSAGE.toString('latin1'));
  assert.equal(statSync(join(dir, 'new', name)).mode & 0o777, 0o600, 'readable by the store only');
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  // Maildir names: <seconds>.<unique>.<host>, with no "/" or ":" (the info separator).
  assert.match(name, /^\d+\.M\d+P\d+Q\d+\.[^/:]+$/);
});

test('deliverToMaildir: the null sender is Return-Path: <>; 8-bit content is kept byte for byte', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'maildir-')), 'Maildir');
  const eight = Buffer.concat([Buffer.from('Subject: x\r\n\r\n'), Buffer.from([0xc3, 0xbc, 0xff, 0x0d, 0x0a])]);
  const name = await deliverToMaildir(dir, '', 'bob@example.test', eight);
  const got = readFileSync(join(dir, 'new', name));
  assert.deepEqual(got, Buffer.concat([Buffer.from('Return-Path: <>\r\nDelivered-To: bob@example.test\r\n'), eight]));
});

test('deliverToMaildir: concurrent deliveries to one mailbox get distinct names', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'maildir-')), 'Maildir');
  const names = await Promise.all(Array.from({ length: 20 }, (_, k) => deliverToMaildir(dir, 'a@remote.example', 'bob@example.test', Buffer.from(`Subject: ${k}\r\n\r\n`))));
  assert.equal(new Set(names).size, 20);
  assert.equal(readdirSync(join(dir, 'new')).length, 20);
  assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  const subjects = readdirSync(join(dir, 'new')).map((n) => /Subject: (\d+)/.exec(readFileSync(join(dir, 'new', n), 'latin1'))?.[1]);
  assert.deepEqual(subjects.map(Number).sort((a, b) => a - b), Array.from({ length: 20 }, (_, k) => k));
});
