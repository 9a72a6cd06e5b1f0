// The shared store: MeterMaid tables in a Redis server, so that every Portcullis node counting
// against it sees one quota (spec §7.1: one MeterMaid for all MTA hosts). Each decision is one
// round trip: a Lua script applies the arithmetic of meter.ts atomically on the server, so
// concurrent hits from many processes cannot lose updates. Every key carries a PEXPIRE equal to
// the time its state needs to drain, so no counter outlives its meaning even if no node ever
// touches it again.
//
// Layout (standalone Redis or Sentinel; scripts build eviction key names, so not Redis Cluster):
//   <prefix><table>:d:<key>   hash {c, t}           decay state
//   <prefix><table>:w:<key>   sorted set of times   window state (at most `quota` members)
//   <prefix><table>:s:<key>   string                simple-table value
//   <prefix><table>:<m>#idx   sorted set key→last use, for max_entries (LRU) and `throttle show`
//                             ("#idx", not ":idx": every name after "<m>:" is some key's state)
//
// Failure handling follows check_metermaid's client (spec §7.3): no offline queue (a command while
// disconnected fails at once), reconnect attempts every connectfrequency, a bounded wait per
// command. After three timeouts in a row the store stops asking for connectfrequency and fails
// fast, so a hung server costs each decision nothing rather than the full timeout.

import { Redis } from 'ioredis';
import { decayRetryAfter, decayUsage, windowUsage } from './meter.js';
import type { HitResult, SimpleEntry, TableSpec, ThrottleStore, Usage } from './types.js';
import { StoreError } from './types.js';

export interface RedisStoreOptions {
  readonly host: string;
  readonly port: number;
  /** AUTH password (metermaid.config.secret); empty for none. */
  readonly secret: string;
  /** Wait before a reconnect attempt, and fail-fast period after repeated timeouts (ms). */
  readonly connectFrequencyMs: number;
  /** Longest wait for a connection to be established (ms). */
  readonly connectWaitMs: number;
  /** Longest wait for one command's reply (ms). */
  readonly timeoutMs: number;
  /** Prefix of every key (default "portcullis:mm:"). */
  readonly keyPrefix?: string;
  /** Told when the connection comes up or goes down (for the log). */
  readonly onState?: (state: 'ready' | 'down', detail: string) => void;
}

// Shared tail of the write scripts: record the key's use in the table index, evict the least
// recently used keys past max_entries (drained ones included, as the embedded store does), and
// keep the index alive as long as the longest-lived state it indexes (`ttl` is the lifetime of
// the state just written; a penalized count can outlive quota_time).
const TOUCH = `
local function touch(idx, prefix, now, ttl, maxe, member)
  redis.call('ZADD', idx, now, member)
  local n = redis.call('ZCARD', idx)
  if n > maxe then
    local ev = redis.call('ZPOPMIN', idx, n - maxe)
    for i = 1, #ev, 2 do redis.call('DEL', prefix .. ev[i]) end
  end
  if redis.call('PTTL', idx) < tonumber(ttl) then redis.call('PEXPIRE', idx, ttl) end
end
`;

// KEYS: state, idx, key prefix. ARGV: now, quota, quota_time ms, penalize, max_entries, member.
const HIT_DECAY = `${TOUCH}
local now = tonumber(ARGV[1]); local quota = tonumber(ARGV[2]); local qt = tonumber(ARGV[3])
local rate = quota / qt
local s = redis.call('HMGET', KEYS[1], 'c', 't')
local c = tonumber(s[1]) or 0
local t = tonumber(s[2]) or now
local el = now - t
if el < 0 then el = 0 end
c = c - el * rate
if c < 0 then c = 0 end
local over = (c + 1) > (quota + 1e-9)
if (not over) or ARGV[4] == '1' then c = c + 1 end
if now > t then t = now end
if c > 0 then
  redis.call('HSET', KEYS[1], 'c', string.format('%.17g', c), 't', string.format('%d', t))
  local ttl = math.ceil(c / rate)
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', KEYS[1], ttl)
  touch(KEYS[2], KEYS[3], now, ttl, tonumber(ARGV[5]), ARGV[6])
end
return {over and 1 or 0, string.format('%.17g', c)}
`;

// KEYS: state, idx, key prefix. ARGV: now, quota, quota_time ms, penalize, max_entries, member, nonce.
const HIT_WINDOW = `${TOUCH}
local now = tonumber(ARGV[1]); local quota = tonumber(ARGV[2]); local qt = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - qt)
local n = redis.call('ZCARD', KEYS[1])
local over = n >= quota
if (not over) or ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[7])
  n = n + 1
  if n > quota then
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - quota - 1)
    n = quota
  end
  redis.call('PEXPIRE', KEYS[1], qt)
end
-- A refused hit is a use too (LRU order), as in the embedded store.
if n > 0 then touch(KEYS[2], KEYS[3], now, qt, tonumber(ARGV[5]), ARGV[6]) end
local retry = 0
if n >= quota then
  local r = redis.call('ZRANGE', KEYS[1], n - quota, n - quota, 'WITHSCORES')
  retry = tonumber(r[2]) + qt - now
  if retry < 0 then retry = 0 end
end
return {over and 1 or 0, n, retry}
`;

// KEYS: value key, idx, key prefix. ARGV: value, quota_time ms, now, max_entries, member.
const STORE = `${TOUCH}
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
touch(KEYS[2], KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[2]), tonumber(ARGV[4]), ARGV[5])
return 1
`;

// KEYS: value key, idx, key prefix. ARGV: delta, quota_time ms, now, max_entries, member.
const ADJUST = `${TOUCH}
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
touch(KEYS[2], KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[2]), tonumber(ARGV[4]), ARGV[5])
return v
`;

// KEYS: state key, idx. ARGV: member.
const REMOVE = `
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
`;

interface Scripted {
  mmHitDecay(state: string, idx: string, prefix: string, ...argv: (string | number)[]): Promise<[number, string]>;
  mmHitWindow(state: string, idx: string, prefix: string, ...argv: (string | number)[]): Promise<[number, number, number]>;
  mmStore(key: string, idx: string, prefix: string, ...argv: (string | number)[]): Promise<number>;
  mmAdjust(key: string, idx: string, prefix: string, ...argv: (string | number)[]): Promise<number>;
  mmRemove(key: string, idx: string, member: string): Promise<number>;
}

function modeChar(spec: TableSpec): 'd' | 'w' | 's' {
  return spec.type === 'simple' ? 's' : spec.mode === 'window' ? 'w' : 'd';
}

/** Timeouts in a row after which the store fails fast for connectFrequencyMs. */
const TIMEOUTS_BEFORE_BACKOFF = 3;

export class RedisStore implements ThrottleStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly nonceBase = `${process.pid}.${Math.random().toString(36).slice(2, 8)}`;
  private seq = 0;
  private timeouts = 0;
  private backoffUntil = 0;
  private ready = false;
  private closed = false;

  constructor(private readonly opts: RedisStoreOptions) {
    this.prefix = opts.keyPrefix ?? 'portcullis:mm:';
    this.redis = new Redis({
      host: opts.host,
      port: opts.port,
      password: opts.secret === '' ? undefined : opts.secret,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: opts.connectWaitMs,
      commandTimeout: opts.timeoutMs,
      retryStrategy: () => opts.connectFrequencyMs,
      lazyConnect: false,
    });
    const r = this.redis as unknown as { defineCommand(name: string, def: { numberOfKeys: number; lua: string }): void };
    r.defineCommand('mmHitDecay', { numberOfKeys: 3, lua: HIT_DECAY });
    r.defineCommand('mmHitWindow', { numberOfKeys: 3, lua: HIT_WINDOW });
    r.defineCommand('mmStore', { numberOfKeys: 3, lua: STORE });
    r.defineCommand('mmAdjust', { numberOfKeys: 3, lua: ADJUST });
    r.defineCommand('mmRemove', { numberOfKeys: 2, lua: REMOVE });
    let lastDown = '';
    this.redis.on('ready', () => {
      this.ready = true;
      this.timeouts = 0;
      this.backoffUntil = 0;
      lastDown = '';
      opts.onState?.('ready', `${opts.host}:${opts.port}`);
    });
    // ioredis reports each failed attempt as an 'error' event; say "down" once per outage.
    const down = (detail: string): void => {
      const wasReady = this.ready;
      this.ready = false;
      if (this.closed || (!wasReady && lastDown !== '')) return;
      lastDown = detail;
      opts.onState?.('down', detail);
    };
    this.redis.on('error', (err: Error) => down(err.message));
    this.redis.on('close', () => down('connection closed'));
  }

  /** Resolves once connected (or rejects after connectWaitMs); for start-up checks and tests. */
  async waitReady(): Promise<void> {
    if (this.ready) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.redis.off('ready', onReady);
        reject(new StoreError(`no connection to Redis at ${this.opts.host}:${this.opts.port} within ${this.opts.connectWaitMs} ms`, 'unavailable'));
      }, this.opts.connectWaitMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.redis.once('ready', onReady);
    });
  }

  private get cmd(): Scripted {
    return this.redis as unknown as Scripted;
  }

  private base(spec: TableSpec): string {
    return `${this.prefix}${spec.name}:${modeChar(spec)}:`;
  }

  private idx(spec: TableSpec): string {
    return `${this.prefix}${spec.name}:${modeChar(spec)}#idx`;
  }

  /** Runs one request with the failure rules of the class comment. */
  private async run<T>(what: string, f: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError('the MeterMaid store is closed', 'unavailable');
    if (!this.ready) throw new StoreError(`Redis at ${this.opts.host}:${this.opts.port} is not connected`, 'unavailable');
    if (this.backoffUntil > Date.now()) throw new StoreError(`Redis at ${this.opts.host}:${this.opts.port} timed out repeatedly; not asking again yet`, 'unavailable');
    try {
      const v = await f();
      this.timeouts = 0;
      return v;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (/timed out/i.test(message)) {
        if (++this.timeouts >= TIMEOUTS_BEFORE_BACKOFF) this.backoffUntil = Date.now() + this.opts.connectFrequencyMs;
        throw new StoreError(`Redis ${what} timed out after ${this.opts.timeoutMs} ms`, 'timeout');
      }
      if (/not an integer|out of range/i.test(message)) throw new StoreError(`Redis ${what}: the stored value is not an integer`, 'bad-value');
      if (/writeable|connection|ECONN|closed/i.test(message)) throw new StoreError(`Redis ${what}: ${message}`, 'unavailable');
      throw new StoreError(`Redis ${what}: ${message}`, 'failed');
    }
  }

  async hit(spec: TableSpec, key: string, now: number): Promise<HitResult> {
    const base = this.base(spec);
    const t = Math.floor(now);
    const common = [t, spec.quota, spec.quotaTimeMs, spec.penalize ? '1' : '0', spec.maxEntries, key];
    if (spec.mode === 'window') {
      const nonce = `${t}:${this.nonceBase}:${++this.seq}`;
      const [over, count, retry] = await this.run('throttle', () => this.cmd.mmHitWindow(base + key, this.idx(spec), base, ...common, nonce));
      return { over: over === 1, count, retryAfterMs: Math.ceil(retry) };
    }
    const [over, c] = await this.run('throttle', () => this.cmd.mmHitDecay(base + key, this.idx(spec), base, ...common));
    const count = Number(c);
    return { over: over === 1, count, retryAfterMs: decayRetryAfter(spec, count) };
  }

  async peek(spec: TableSpec, key: string, now: number): Promise<Usage | undefined> {
    const state = this.base(spec) + key;
    if (spec.mode === 'window') {
      const flat = await this.run('query', () => this.redis.zrange(state, '0', '-1', 'WITHSCORES'));
      const ts: number[] = [];
      for (let i = 1; i < flat.length; i += 2) ts.push(Number(flat[i]));
      const u = windowUsage(spec, key, { ts }, now);
      return u.count > 0 ? u : undefined;
    }
    const [c, t] = await this.run('query', () => this.redis.hmget(state, 'c', 't'));
    if (c === null || t === null) return undefined;
    const u = decayUsage(spec, key, { c: Number(c), t: Number(t) }, now);
    return u.count > 0 ? u : undefined;
  }

  /**
   * Up to `limit` answers of `read` for the table's keys, most recently used first. The index also
   * holds drained keys (until max_entries evicts them), so it is read a page at a time until
   * `limit` live keys are found or it runs out.
   */
  private async recent<T>(spec: TableSpec, limit: number, read: (keys: string[]) => Promise<(T | undefined)[]>): Promise<T[]> {
    const out: T[] = [];
    const page = Math.max(limit, 100);
    for (let start = 0; out.length < limit; start += page) {
      const keys = await this.run('list', () => this.redis.zrevrange(this.idx(spec), start, start + page - 1));
      for (const v of await read(keys)) if (v !== undefined && out.length < limit) out.push(v);
      if (keys.length < page) break;
    }
    return out;
  }

  async list(spec: TableSpec, now: number, limit: number): Promise<Usage[]> {
    return this.recent(spec, limit, (keys) => Promise.all(keys.map((k) => this.peek(spec, k, now))));
  }

  async reset(spec: TableSpec, key: string | undefined): Promise<number> {
    const base = this.base(spec);
    if (key !== undefined) return this.run('reset', () => this.cmd.mmRemove(base + key, this.idx(spec), key));
    let removed = 0;
    let cursor = '0';
    do {
      const [next, found] = await this.run('reset', () => this.redis.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 1000));
      cursor = next;
      if (found.length > 0) await this.run('reset', () => this.redis.unlink(...found));
      removed += found.length;
    } while (cursor !== '0');
    await this.run('reset', () => this.redis.unlink(this.idx(spec)));
    return removed;
  }

  async fetch(spec: TableSpec, key: string): Promise<string | undefined> {
    const v = await this.run('fetch', () => this.redis.get(this.base(spec) + key));
    return v ?? undefined;
  }

  async store(spec: TableSpec, key: string, value: string, now: number): Promise<void> {
    const base = this.base(spec);
    await this.run('store', () => this.cmd.mmStore(base + key, this.idx(spec), base, value, spec.quotaTimeMs, Math.floor(now), spec.maxEntries, key));
  }

  async remove(spec: TableSpec, key: string): Promise<boolean> {
    const base = this.base(spec);
    return (await this.run('remove', () => this.cmd.mmRemove(base + key, this.idx(spec), key))) > 0;
  }

  async adjust(spec: TableSpec, key: string, delta: number, now: number): Promise<number> {
    const base = this.base(spec);
    return Number(await this.run('adjust', () => this.cmd.mmAdjust(base + key, this.idx(spec), base, delta, spec.quotaTimeMs, Math.floor(now), spec.maxEntries, key)));
  }

  async entries(spec: TableSpec, _now: number, limit: number): Promise<SimpleEntry[]> {
    const base = this.base(spec);
    return this.recent(spec, limit, async (keys) => {
      if (keys.length === 0) return [];
      const rows = await this.run('list', async () => {
        const p = this.redis.pipeline();
        for (const k of keys) p.get(base + k).pttl(base + k);
        return (await p.exec()) ?? [];
      });
      return keys.map((key, i): SimpleEntry | undefined => {
        const value = rows[2 * i]?.[1];
        const ttl = rows[2 * i + 1]?.[1];
        return typeof value === 'string' && typeof ttl === 'number' && ttl > 0 ? { key, value, ttlMs: ttl } : undefined;
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
