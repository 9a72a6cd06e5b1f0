// Connection reuse and concurrency limits for a transport. A session left after a transaction
// waits idle for the next message to the same host (key: address and port) for a short time; it is
// reused after an RSET that proves it alive. Sessions are retired after a number of transactions
// or an age (Postfix: smtp_connection_cache_time_limit, smtp_connection_reuse_count_limit and
// smtp_connection_reuse_time_limit play the same roles). The limiter bounds the deliveries in
// flight per destination, queueing the rest in arrival order.

import type { SmtpSession } from './client.js';

export interface PoolOptions {
  /** How long an idle session waits for another message (ms); 0 disables reuse. */
  readonly idleMs: number;
  /** Transactions per connection before it is closed. */
  readonly maxUses: number;
  /** Age after which a connection is no longer reused (ms). */
  readonly maxAgeMs: number;
}

interface Idle {
  readonly session: SmtpSession;
  readonly timer: NodeJS.Timeout;
}

export class SessionPool {
  private readonly idle = new Map<string, Idle[]>();
  private closed = false;

  constructor(
    private readonly opts: PoolOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** The most recently used idle session for `key`, if any (the caller RSETs it before use). */
  take(key: string): SmtpSession | null {
    const list = this.idle.get(key);
    while (list !== undefined && list.length > 0) {
      const it = list.pop() as Idle;
      clearTimeout(it.timer);
      if (list.length === 0) this.idle.delete(key);
      if (it.session.usable) return it.session;
    }
    return null;
  }

  /** Returns a session after a transaction: kept idle if it may serve another, else closed. */
  put(key: string, session: SmtpSession): void {
    const o = this.opts;
    if (this.closed || !session.usable || o.idleMs <= 0 || session.uses >= o.maxUses || this.now() - session.openedAt >= o.maxAgeMs) {
      void session.quit();
      return;
    }
    const timer = setTimeout(() => {
      const list = this.idle.get(key);
      const i = list?.findIndex((x) => x.session === session) ?? -1;
      if (list !== undefined && i >= 0) {
        list.splice(i, 1);
        if (list.length === 0) this.idle.delete(key);
      }
      void session.quit();
    }, o.idleMs);
    // An idle connection alone must not keep the process alive.
    timer.unref();
    const list = this.idle.get(key) ?? [];
    list.push({ session, timer });
    this.idle.set(key, list);
  }

  /** Idle sessions, all keys together. */
  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  /** QUITs every idle session; sessions put back later are closed at once. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    for (const it of all) clearTimeout(it.timer);
    await Promise.all(all.map((it) => it.session.quit()));
  }
}

/** At most `limit` holders per key; the others wait in arrival order. */
export class Limiter {
  private readonly active = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(private readonly limit: number) {}

  /** Resolves with a release function, or null if `signal` aborts while waiting. */
  acquire(key: string, signal?: AbortSignal): Promise<(() => void) | null> {
    if (signal?.aborted === true) return Promise.resolve(null);
    if ((this.active.get(key) ?? 0) < Math.max(1, this.limit)) {
      this.active.set(key, (this.active.get(key) ?? 0) + 1);
      return Promise.resolve(this.releaser(key));
    }
    return new Promise((resolve) => {
      const queue = this.waiting.get(key) ?? [];
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(this.releaser(key));
      };
      const onAbort = (): void => {
        const q = this.waiting.get(key);
        const i = q?.indexOf(grant) ?? -1;
        if (q !== undefined && i >= 0) q.splice(i, 1);
        resolve(null);
      };
      if (signal?.aborted === true) {
        resolve(null);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(grant);
      this.waiting.set(key, queue);
    });
  }

  /** Holders of `key` now. */
  inFlight(key: string): number {
    return this.active.get(key) ?? 0;
  }

  private releaser(key: string): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.get(key)?.shift();
      if (next !== undefined) {
        // The slot passes straight to the next waiter.
        next();
        return;
      }
      this.waiting.delete(key);
      const n = (this.active.get(key) ?? 1) - 1;
      if (n <= 0) this.active.delete(key);
      else this.active.set(key, n);
    };
  }
}
