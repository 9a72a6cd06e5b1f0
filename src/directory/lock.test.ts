import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DirectoryStore } from './store.js';
import { STALE_MS, withFileLock } from './lock.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs a Node process to its end; resolves with its exit code, pid and output. */
function runNode(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; pid: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, pid: child.pid ?? 0, stderr }));
  });
}

/** The PID of a process that has exited. */
async function deadPid(): Promise<number> {
  return (await runNode(['-e', ''])).pid;
}

async function writeLock(path: string, content: string, ageMs: number): Promise<void> {
  await writeFile(path, content);
  const then = new Date(Date.now() - ageMs);
  await utimes(path, then, then);
}

// Each child opens the store and adds 20 users, one change at a time, as 20 CLI runs would.
const CHILD = `
const { DirectoryStore } = await import(process.env.STORE_URL);
const r = await DirectoryStore.open(process.env.DATA_DIR);
if (!r.ok) { console.error(r.error.message); process.exit(1); }
for (let i = 0; i < 20; i++) {
  const u = await r.value.addUser({ address: process.env.PREFIX + i + '@example.com', password: 'pw' + i });
  if (!u.ok) { console.error(u.error.message); process.exit(1); }
}
`;

test('two processes adding 20 users each at the same time: all 40 are in the file', async (t) => {
  const dir = await tempDir(t);
  const s = await DirectoryStore.open(dir);
  assert.ok(s.ok);
  assert.ok((await s.value.addDomain('example.com')).ok);
  const env = { STORE_URL: pathToFileURL(join(import.meta.dirname, 'store.ts')).href, DATA_DIR: dir };
  const args = ['--import', 'tsx', '--input-type=module', '-e', CHILD];
  const [a, b] = await Promise.all([runNode(args, { ...env, PREFIX: 'a' }), runNode(args, { ...env, PREFIX: 'b' })]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.ok((await s.value.reload()).ok);
  const addresses = new Set(s.value.listUsers().map((u) => u.address));
  assert.equal(addresses.size, 40);
  for (let i = 0; i < 20; i++) {
    assert.ok(addresses.has(`a${i}@example.com`) && addresses.has(`b${i}@example.com`), String(i));
  }
  assert.equal((await s.value.authenticate('b19@example.com', 'pw19')).ok, true);
  await assert.rejects(stat(join(dir, 'directory.lock')), { code: 'ENOENT' });
});

test('a lock older than 30 s whose process is gone is broken', async (t) => {
  const dir = await tempDir(t);
  const s = await DirectoryStore.open(dir, { lockTimeoutMs: 2_000 });
  assert.ok(s.ok);
  await writeLock(join(dir, 'directory.lock'), JSON.stringify({ pid: await deadPid(), since: 'long ago' }), STALE_MS + 5_000);
  const started = Date.now();
  assert.ok((await s.value.addDomain('example.com')).ok);
  assert.ok(Date.now() - started < 1_000, 'a stale lock is broken at once, not waited out');
  await assert.rejects(stat(join(dir, 'directory.lock')), { code: 'ENOENT' });
  await assert.rejects(stat(join(dir, 'directory.lock.break')), { code: 'ENOENT' });
});

test('an old lock without a readable PID (its creator died before writing it) is broken', async (t) => {
  const dir = await tempDir(t);
  const s = await DirectoryStore.open(dir, { lockTimeoutMs: 2_000 });
  assert.ok(s.ok);
  await writeLock(join(dir, 'directory.lock'), '', STALE_MS + 5_000);
  assert.ok((await s.value.addDomain('example.com')).ok);
});

test('a recent lock of a dead process, or an old lock of a live one, is waited for, then reported', async (t) => {
  const dir = await tempDir(t);
  const s = await DirectoryStore.open(dir, { lockTimeoutMs: 300 });
  assert.ok(s.ok);
  const lock = join(dir, 'directory.lock');
  const dead = await deadPid();
  const cases: [number, number, RegExp][] = [
    [dead, 1_000, new RegExp(`held by process ${dead} \\(no longer running\\)`)],
    [process.pid, STALE_MS + 60_000, new RegExp(`held by process ${process.pid};`)],
  ];
  for (const [pid, age, message] of cases) {
    await writeLock(lock, JSON.stringify({ pid }), age);
    const r = await s.value.addDomain('example.com');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.code, 'locked');
    assert.match(!r.ok ? r.error.message : '', message);
    assert.match(!r.ok ? r.error.message : '', /remove it$/);
    assert.equal((JSON.parse(await readFile(lock, 'utf8')) as { pid: number }).pid, pid, 'the lock is left alone');
  }
  assert.equal(s.value.domain('example.com'), undefined);
});

test('the lock is released when the work throws', async (t) => {
  const dir = await tempDir(t);
  const lock = join(dir, 'x.lock');
  await assert.rejects(
    withFileLock(lock, () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  await assert.rejects(stat(lock), { code: 'ENOENT' });
  const r = await withFileLock(lock, async () => JSON.parse(await readFile(lock, 'utf8')) as { pid: number });
  assert.ok(r.ok);
  assert.equal(r.value.pid, process.pid);
});

test('a data directory that cannot be written is an io error, not an exception', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'file'), '');
  const r = await DirectoryStore.open(join(dir, 'file', 'data'));
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.error.code, 'io');
  assert.match(!r.ok ? r.error.message : '', /ENOTDIR/);
});
