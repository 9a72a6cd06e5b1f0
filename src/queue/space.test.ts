import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpaceGuard } from './space.js';

test('SpaceGuard: room is free space minus the message over the minimum; asked at most once a second; off at 0', async () => {
  let free = 1000;
  let asked = 0;
  let now = 0;
  const g = new SpaceGuard('/spool', () => {
    asked++;
    return Promise.resolve(free);
  }, () => now);
  assert.equal(await g.hasRoom(0, 10 ** 12), true, 'minfree 0: no check');
  assert.equal(asked, 0);
  assert.equal(await g.hasRoom(500, 400), true);
  assert.equal(await g.hasRoom(500, 501), false, 'the declared SIZE counts');
  assert.equal(asked, 1, 'cached within the second');
  free = 100;
  now = 999;
  assert.equal(await g.hasRoom(500, 0), true, 'still the cached answer');
  now = 1000;
  assert.equal(await g.hasRoom(500, 0), false);
  assert.equal(asked, 2);
  assert.equal(g.lastFree, 100);
});

test('SpaceGuard: concurrent checks share one statfs; a failing statfs accepts (the commit reports real failures)', async () => {
  let asked = 0;
  const g = new SpaceGuard('/spool', async () => {
    asked++;
    await new Promise((r) => setTimeout(r, 10));
    return 10;
  });
  assert.deepEqual(await Promise.all([g.hasRoom(100, 0), g.hasRoom(100, 0), g.hasRoom(100, 0)]), [false, false, false]);
  assert.equal(asked, 1);
  const broken = new SpaceGuard('/nonexistent', () => Promise.reject(new Error('ENOENT')));
  assert.equal(await broken.hasRoom(100, 0), true);
  assert.equal(broken.lastFree, null);
});

test('SpaceGuard: the real statfs of a directory that exists', async () => {
  const g = new SpaceGuard('/tmp');
  assert.equal(await g.hasRoom(1, 0), true);
  assert.ok((g.lastFree ?? 0) > 0);
  assert.equal(await g.hasRoom(Number.MAX_SAFE_INTEGER, 0), false);
});
