// MeterMaid tables (spec §7): what a table is, what a decision returns, and the store interface
// that both the embedded in-process store and the shared Redis store implement. The counting rules
// themselves are pure functions in meter.ts; a store only keeps the per-key state and applies them
// atomically, so the two stores agree on every decision (the shared conformance suite checks it).

/** `metermaid.table.NAME.type`: throttle (hit counting) or simple (a key/value store, MS 7.0u2+). */
export type TableType = 'throttle' | 'simple';

/**
 * How a throttle table counts.
 * - `decay`: Messaging Server's decaying count (spec §7.5): a quota used up in a burst frees up
 *   linearly over quota_time.
 * - `window`: a sliding log of the last `quota` hits; never more than `quota` admitted hits in any
 *   interval of length quota_time.
 */
export type CountMode = 'decay' | 'window';

export interface TableSpec {
  /** Lower-case table name (msg.conf keys are case-insensitive). */
  readonly name: string;
  readonly type: TableType;
  /** Key type: `ipv4` keys must be IP addresses (IPv6 accepted too, see docs/compatibility.md). */
  readonly dataType: 'string' | 'ipv4';
  /** Simple tables: `integer` values allow adjust/test. */
  readonly valueType: 'string' | 'integer';
  /** Hits allowed per quota_time (throttle tables). */
  readonly quota: number;
  /** Window length in ms; for simple tables, how long an entry lives after its last write. */
  readonly quotaTimeMs: number;
  /** Over-quota hits keep counting (option `penalize`). */
  readonly penalize: boolean;
  /** String keys compare case-insensitively (option `nocase`). */
  readonly nocase: boolean;
  /** Keys kept per table; past it the least recently used key is forgotten. */
  readonly maxEntries: number;
  /** What an unreachable store or a badly typed key means for refusing routines. */
  readonly onError: 'allow' | 'deny';
  readonly mode: CountMode;
}

/** The outcome of one counted hit. */
export interface HitResult {
  /** The key was over quota: throttle() succeeds and the mapping entry refuses. */
  readonly over: boolean;
  /** The count after this hit (decay: fractional; window: hits in the window). */
  readonly count: number;
  /** How long until a hit would be admitted again (0 when it would be now). */
  readonly retryAfterMs: number;
}

/** A key's state as `throttle show` and the `query` routine see it. */
export interface Usage {
  readonly key: string;
  /** Current count (throttle) — 0 when the key has fully decayed or left the window. */
  readonly count: number;
  /** The next hit would be refused. */
  readonly over: boolean;
  /** Hits that would still be admitted now. */
  readonly remaining: number;
  /** ms until the count is back to zero (the key's state expires then). */
  readonly resetMs: number;
  /** ms until a hit would be admitted again (0 when it would be now). */
  readonly retryAfterMs: number;
}

/** A simple table's entry. */
export interface SimpleEntry {
  readonly key: string;
  readonly value: string;
  /** ms until the entry expires. */
  readonly ttlMs: number;
}

/** A value that may come at once (embedded store) or later (network store). */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Where table state lives. Every method is atomic per key. `now` is the caller's clock in ms:
 * the embedded store and the tests control time through it; nodes sharing Redis must keep their
 * clocks in step (NTP), see docs/compatibility.md. Network stores reject with StoreError.
 */
export interface ThrottleStore {
  readonly kind: 'embedded' | 'redis';
  /** Counts one hit of `key` (throttle tables). */
  hit(spec: TableSpec, key: string, now: number): MaybePromise<HitResult>;
  /** The key's state without counting; undefined when the store holds nothing for it. */
  peek(spec: TableSpec, key: string, now: number): MaybePromise<Usage | undefined>;
  /** Keys with state, most recently used first, at most `limit`. */
  list(spec: TableSpec, now: number, limit: number): MaybePromise<Usage[]>;
  /** Forgets one key, or every key of the table; returns how many keys were removed. */
  reset(spec: TableSpec, key: string | undefined): MaybePromise<number>;
  /** Simple tables. */
  fetch(spec: TableSpec, key: string, now: number): MaybePromise<string | undefined>;
  store(spec: TableSpec, key: string, value: string, now: number): MaybePromise<void>;
  remove(spec: TableSpec, key: string): MaybePromise<boolean>;
  /** Adds `delta` to an integer value (a missing key starts at 0); returns the new value. */
  adjust(spec: TableSpec, key: string, delta: number, now: number): MaybePromise<number>;
  /** Simple-table entries, for `throttle show`. */
  entries(spec: TableSpec, now: number, limit: number): MaybePromise<SimpleEntry[]>;
  close(): Promise<void>;
}

/** The store could not answer (unreachable, timed out, refused). */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly code: 'unavailable' | 'timeout' | 'bad-value' | 'failed',
  ) {
    super(message);
    this.name = 'StoreError';
  }
}
