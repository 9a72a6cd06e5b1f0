import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOptions } from '@node-rs/argon2';
import { DUMMY_HASH, HASH_PARAMETERS, hashPassword, verifyPassword } from './password.js';

test('hashPassword gives an argon2id PHC string with the OWASP minimum parameters', async () => {
  const h = await hashPassword('correct horse');
  assert.match(h, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  const p = parseOptions(h);
  assert.equal(p.memoryCost, HASH_PARAMETERS.memoryCost);
  assert.equal(p.timeCost, HASH_PARAMETERS.timeCost);
  assert.equal(p.parallelism, HASH_PARAMETERS.parallelism);
});

test('each hash has its own salt; verify accepts the password and nothing else', async () => {
  const [a, b] = await Promise.all([hashPassword('pw'), hashPassword('pw')]);
  assert.notEqual(a, b);
  assert.equal(await verifyPassword(a, 'pw'), true);
  assert.equal(await verifyPassword(b, 'pw'), true);
  assert.equal(await verifyPassword(a, 'PW'), false);
  assert.equal(await verifyPassword(a, ''), false);
});

test('a malformed hash verifies as false instead of throwing', async () => {
  for (const bad of ['', 'plain-text-password', '$argon2id$v=19$m=19456,t=2,p=1$short', '$2b$10$abcdefghijklmnopqrstuv']) {
    assert.equal(await verifyPassword(bad, 'plain-text-password'), false, bad);
  }
});

test('the dummy hash costs what a real one costs and matches no password', async () => {
  const p = parseOptions(DUMMY_HASH);
  assert.equal(p.algorithm, HASH_PARAMETERS.algorithm);
  assert.equal(p.memoryCost, HASH_PARAMETERS.memoryCost);
  assert.equal(p.timeCost, HASH_PARAMETERS.timeCost);
  assert.equal(p.parallelism, HASH_PARAMETERS.parallelism);
  assert.equal(await verifyPassword(DUMMY_HASH, ''), false);
  assert.equal(await verifyPassword(DUMMY_HASH, 'password'), false);
});
