// An exclusive lock between processes that change the same file: `<file>.lock` created with O_EXCL,
// holding {"pid":…,"since":…}. Whoever creates it may read, change and replace the file; everyone
// else waits. A lock left behind by a crashed process is broken once it is older than STALE_MS and
// its PID is not alive: both, because a PID seen from another PID namespace (a container sharing the
// data directory) can look dead while its owner is still working, and a change takes milliseconds.
//
// Two processes may find the same stale lock at once; if both deleted "the" lock, the slower one
// could delete the lock the faster one has just taken. So a stale lock is only deleted under a
// second O_EXCL file, `<file>.lock.break`, after checking again that it is still stale. That file
// is held for a few milliseconds; one older than STALE_MS is itself left over and removed.

import { open, readFile, stat, unlink } from 'node:fs/promises';
import type { DirectoryError } from './errors.js';
import { ioError } from './errors.js';

export const STALE_MS = 30_000;

export interface LockOptions {
  /** Give up after waiting this long (default: a little more than STALE_MS, so a crashed holder's lock gets broken). */
  readonly timeoutMs?: number;
}

interface Holder {
  readonly pid: number | undefined;
  readonly ageMs: number;
}

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

/** True when a process with this PID exists (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

async function holder(path: string, now: number): Promise<Holder | undefined> {
  try {
    const st = await stat(path);
    const text = await readFile(path, 'utf8').catch(() => '');
    let pid: number | undefined;
    try {
      const v = (JSON.parse(text) as { pid?: unknown }).pid;
      if (typeof v === 'number' && Number.isInteger(v) && v > 0) pid = v;
    } catch {
      // Empty (its creator died before writing) or garbled: no PID, so only its age counts.
    }
    return { pid, ageMs: now - st.mtimeMs };
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

function stale(h: Holder): boolean {
  return h.ageMs > STALE_MS && (h.pid === undefined || !pidAlive(h.pid));
}

/** Deletes the lock if it is stale; true when the caller should try to take it again at once. */
async function breakIfStale(lockPath: string, now: number): Promise<boolean> {
  const h = await holder(lockPath, now);
  if (h === undefined) return true;
  if (!stale(h)) return false;
  const breaker = `${lockPath}.break`;
  let fh;
  try {
    fh = await open(breaker, 'wx', 0o600);
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
    const b = await holder(breaker, now);
    if (b !== undefined && b.ageMs > STALE_MS) await unlink(breaker).catch(() => undefined);
    return false;
  }
  try {
    await fh.close();
    const again = await holder(lockPath, now);
    if (again !== undefined && stale(again)) await unlink(lockPath).catch(() => undefined);
    return true;
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `work` while holding `<file>.lock`. Returns work's value, or an error value when the lock
 * cannot be taken (held too long, or the file system refuses). The lock is released even when
 * `work` throws.
 */
export async function withFileLock<T>(
  lockPath: string,
  work: () => Promise<T>,
  options: LockOptions = {},
): Promise<{ ok: true; value: T } | { ok: false; error: DirectoryError }> {
  const deadline = Date.now() + (options.timeoutMs ?? STALE_MS + 5_000);
  let pause = 2;
  for (;;) {
    let fh;
    try {
      fh = await open(lockPath, 'wx', 0o600);
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) return { ok: false, error: ioError(lockPath, err) };
    }
    if (fh !== undefined) {
      try {
        await fh.writeFile(JSON.stringify({ pid: process.pid, since: new Date().toISOString() }) + '\n');
        await fh.close();
        break;
      } catch (err) {
        await fh.close().catch(() => undefined);
        await unlink(lockPath).catch(() => undefined);
        return { ok: false, error: ioError(lockPath, err) };
      }
    }
    try {
      if (await breakIfStale(lockPath, Date.now())) continue;
    } catch (err) {
      return { ok: false, error: ioError(lockPath, err) };
    }
    if (Date.now() >= deadline) {
      const h = await holder(lockPath, Date.now()).catch(() => undefined);
      const who = h?.pid !== undefined ? `process ${h.pid}${pidAlive(h.pid) ? '' : ' (no longer running)'}` : 'another process';
      return {
        ok: false,
        error: {
          code: 'locked',
          message: `${lockPath} is held by ${who}; try again, or, if no portcullis command is running and the lock is older than ${STALE_MS / 1000} s, remove it`,
        },
      };
    }
    // Jittered backoff: two waiting processes should not retry in lock step.
    await sleep(pause + Math.random() * pause);
    pause = Math.min(pause * 2, 50);
  }
  try {
    return { ok: true, value: await work() };
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}
