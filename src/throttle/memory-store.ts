// The embedded store: MeterMaid tables in this process's memory, for a single node (the default,
// no external service). Each table keeps at most max_entries keys in recency order: a touched key
// becomes the most recent, and a new key arriving at a full table evicts the least recently used —
// which has had the longest time to decay and so carries the least state. State whose count has
// drained or whose entry expired counts as absent.
//
// Recency is a doubly linked list threaded through the entries beside a Map for lookup, so a hit
// costs one Map lookup and a few pointer writes. (A Map kept in insertion order needs a delete and
// a set per hit, and its iterator skips the holes that deletions leave at its front, so with a
// full table every eviction cost more the longer the table had been churning: 100,000 keys
// round-robin over max_entries 50,000 ran at 20,000-50,000 decisions/s, p50 20 µs, against about
// 500,000/s, p50 0.7 µs, now; `npm run bench:throttle`.)

import { decayHit, decayUsage, windowHit, windowLifetime, windowUsage } from './meter.js';
import type { DecayState, WindowState } from './meter.js';
import type { HitResult, SimpleEntry, TableSpec, ThrottleStore, Usage } from './types.js';
import { StoreError } from './types.js';

interface SimpleState {
  v: string;
  /** Expiry time (ms). */
  exp: number;
}

type State = DecayState | WindowState | SimpleState;

/** An integer as Redis's INCRBY reads one (no "+", no leading zeros, no blanks), so both stores refuse the same values. */
const INTEGER = /^(0|-?[1-9]\d*)$/;

/** Table state is kept apart per counting shape, so a reload that changes a table's mode or type starts it afresh. */
function slot(spec: TableSpec): string {
  return spec.type === 'simple' ? `${spec.name}/s` : `${spec.name}/${spec.mode === 'window' ? 'w' : 'd'}`;
}

/** One key of a table and its place in the recency list. */
interface Entry {
  readonly key: string;
  s: State;
  /** Towards the least recently used end. */
  older: Entry | null;
  newer: Entry | null;
}

/** A table's keys: lookup by key, and recency order from the least recently used (`oldest`). */
class Table {
  private readonly map = new Map<string, Entry>();
  private oldest: Entry | null = null;
  private newest: Entry | null = null;

  get size(): number {
    return this.map.size;
  }

  get(key: string): Entry | undefined {
    return this.map.get(key);
  }

  private unlink(e: Entry): void {
    if (e.older === null) this.oldest = e.newer;
    else e.older.newer = e.newer;
    if (e.newer === null) this.newest = e.older;
    else e.newer.older = e.older;
    e.older = null;
    e.newer = null;
  }

  private append(e: Entry): void {
    e.older = this.newest;
    e.newer = null;
    if (this.newest === null) this.oldest = e;
    else this.newest.newer = e;
    this.newest = e;
  }

  /** Makes `e` the most recently used key; past `max` keys (a reload lowered max_entries) the least recently used others go. */
  touch(e: Entry, max: number): void {
    if (e !== this.newest) {
      this.unlink(e);
      this.append(e);
    }
    // e is the newest, so it is the oldest only when alone, and max >= 1.
    while (this.map.size > max && this.oldest !== null && this.oldest !== e) this.drop(this.oldest);
  }

  /** Adds a key as the most recently used, evicting the least recently used to stay within `max`. */
  insert(key: string, s: State, max: number): void {
    while (this.map.size >= max && this.oldest !== null) this.drop(this.oldest);
    const e: Entry = { key, s, older: null, newer: null };
    this.map.set(key, e);
    this.append(e);
  }

  drop(e: Entry): void {
    this.unlink(e);
    this.map.delete(e.key);
  }

  delete(key: string): boolean {
    const e = this.map.get(key);
    if (e === undefined) return false;
    this.drop(e);
    return true;
  }

  clear(): void {
    this.map.clear();
    this.oldest = null;
    this.newest = null;
  }

  /** Entries, most recently used first. */
  *recent(): Generator<Entry> {
    for (let e = this.newest; e !== null; e = e.older) yield e;
  }
}

export class MemoryStore implements ThrottleStore {
  readonly kind = 'embedded' as const;
  private readonly tables = new Map<string, Table>();
  /** Table specs are immutable snapshots: remembering each one's table spares a name lookup per decision. */
  private bySpec = new WeakMap<TableSpec, Table>();

  private table(spec: TableSpec): Table {
    let t = this.bySpec.get(spec);
    if (t !== undefined) return t;
    const name = slot(spec);
    t = this.tables.get(name);
    if (t === undefined) {
      t = new Table();
      this.tables.set(name, t);
    }
    this.bySpec.set(spec, t);
    return t;
  }

  /** After a hit: keeps `s` as the key's state (the most recent), or forgets the key when `s` is empty. */
  private keep(spec: TableSpec, t: Table, e: Entry | undefined, key: string, s: State, live: boolean): void {
    if (!live) {
      if (e !== undefined) t.drop(e);
    } else if (e !== undefined) {
      t.touch(e, spec.maxEntries);
    } else {
      t.insert(key, s, spec.maxEntries);
    }
  }

  hit(spec: TableSpec, key: string, now: number): HitResult {
    const t = this.table(spec);
    const e = t.get(key);
    if (spec.mode === 'window') {
      const s = e === undefined ? { ts: [] } : (e.s as WindowState);
      const r = windowHit(spec, s, now);
      this.keep(spec, t, e, key, s, s.ts.length > 0);
      return r;
    }
    const s = e === undefined ? { c: 0, t: now } : (e.s as DecayState);
    const r = decayHit(spec, s, now);
    this.keep(spec, t, e, key, s, s.c > 0);
    return r;
  }

  private usage(spec: TableSpec, key: string, s: State, now: number): Usage {
    return spec.mode === 'window' ? windowUsage(spec, key, s as WindowState, now) : decayUsage(spec, key, s as DecayState, now);
  }

  private alive(spec: TableSpec, s: State, now: number): boolean {
    if (spec.type === 'simple') return (s as SimpleState).exp > now;
    return spec.mode === 'window'
      ? windowLifetime(spec, s as WindowState, now) > 0 && windowUsage(spec, '', s as WindowState, now).count > 0
      : decayUsage(spec, '', s as DecayState, now).count > 0;
  }

  peek(spec: TableSpec, key: string, now: number): Usage | undefined {
    const s = this.table(spec).get(key)?.s;
    if (s === undefined || !this.alive(spec, s, now)) return undefined;
    return this.usage(spec, key, s, now);
  }

  list(spec: TableSpec, now: number, limit: number): Usage[] {
    const out: Usage[] = [];
    for (const e of this.table(spec).recent()) {
      if (out.length >= limit) break;
      if (this.alive(spec, e.s, now)) out.push(this.usage(spec, e.key, e.s, now));
    }
    return out;
  }

  reset(spec: TableSpec, key: string | undefined): number {
    const t = this.table(spec);
    if (key !== undefined) return t.delete(key) ? 1 : 0;
    const n = t.size;
    t.clear();
    return n;
  }

  fetch(spec: TableSpec, key: string, now: number): string | undefined {
    const t = this.table(spec);
    const e = t.get(key);
    if (e === undefined) return undefined;
    const s = e.s as SimpleState;
    if (s.exp <= now) {
      t.drop(e);
      return undefined;
    }
    return s.v;
  }

  /** Sets a key's state and makes it the most recently used. */
  private set(spec: TableSpec, t: Table, e: Entry | undefined, key: string, s: State): void {
    if (e === undefined) {
      t.insert(key, s, spec.maxEntries);
    } else {
      e.s = s;
      t.touch(e, spec.maxEntries);
    }
  }

  store(spec: TableSpec, key: string, value: string, now: number): void {
    const t = this.table(spec);
    this.set(spec, t, t.get(key), key, { v: value, exp: now + spec.quotaTimeMs });
  }

  remove(spec: TableSpec, key: string): boolean {
    return this.table(spec).delete(key);
  }

  adjust(spec: TableSpec, key: string, delta: number, now: number): number {
    const t = this.table(spec);
    const e = t.get(key);
    const s = e?.s as SimpleState | undefined;
    const before = s === undefined || s.exp <= now ? 0 : INTEGER.test(s.v) ? Number(s.v) : NaN;
    if (!Number.isSafeInteger(before)) {
      if (e !== undefined) t.touch(e, spec.maxEntries);
      throw new StoreError(`the value of ${key} in ${spec.name} is not an integer`, 'bad-value');
    }
    const v = before + delta;
    this.set(spec, t, e, key, { v: String(v), exp: now + spec.quotaTimeMs });
    return v;
  }

  entries(spec: TableSpec, now: number, limit: number): SimpleEntry[] {
    const out: SimpleEntry[] = [];
    for (const e of this.table(spec).recent()) {
      if (out.length >= limit) break;
      const s = e.s as SimpleState;
      if (s.exp > now) out.push({ key: e.key, value: s.v, ttlMs: s.exp - now });
    }
    return out;
  }

  /** Keys held for a table (live or not yet dropped); for tests of the max_entries bound. */
  size(spec: TableSpec): number {
    return this.table(spec).size;
  }

  close(): Promise<void> {
    this.tables.clear();
    this.bySpec = new WeakMap();
    return Promise.resolve();
  }
}
