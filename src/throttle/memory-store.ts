// The embedded store: MeterMaid tables in this process's memory, for a single node (the default,
// no external service). Each table keeps at most max_entries keys in a Map whose insertion order
// is the recency order: a touched key moves to the end, and a new key arriving at a full table
// evicts the first — the least recently used, which has had the longest time to decay and so
// carries the least state. State whose count has drained or whose entry expired counts as absent.

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

/** Table state is kept apart per counting shape, so a reload that changes a table's mode or type starts it afresh. */
function slot(spec: TableSpec): string {
  return spec.type === 'simple' ? `${spec.name}/s` : `${spec.name}/${spec.mode === 'window' ? 'w' : 'd'}`;
}

export class MemoryStore implements ThrottleStore {
  readonly kind = 'embedded' as const;
  private readonly tables = new Map<string, Map<string, State>>();

  private table(spec: TableSpec): Map<string, State> {
    const name = slot(spec);
    let t = this.tables.get(name);
    if (t === undefined) {
      t = new Map();
      this.tables.set(name, t);
    }
    return t;
  }

  /** Takes `key`'s state out of the map (it is put back at the end, the most recent place). */
  private take<S extends State>(t: Map<string, State>, key: string): S | undefined {
    const s = t.get(key) as S | undefined;
    if (s !== undefined) t.delete(key);
    return s;
  }

  private put(spec: TableSpec, t: Map<string, State>, key: string, s: State): void {
    while (t.size >= spec.maxEntries) {
      const oldest = t.keys().next();
      if (oldest.done === true) break;
      t.delete(oldest.value);
    }
    t.set(key, s);
  }

  hit(spec: TableSpec, key: string, now: number): HitResult {
    const t = this.table(spec);
    if (spec.mode === 'window') {
      const s = this.take<WindowState>(t, key) ?? { ts: [] };
      const r = windowHit(spec, s, now);
      if (s.ts.length > 0) this.put(spec, t, key, s);
      return r;
    }
    const s = this.take<DecayState>(t, key) ?? { c: 0, t: now };
    const r = decayHit(spec, s, now);
    if (s.c > 0) this.put(spec, t, key, s);
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
    const s = this.table(spec).get(key);
    if (s === undefined || !this.alive(spec, s, now)) return undefined;
    return this.usage(spec, key, s, now);
  }

  list(spec: TableSpec, now: number, limit: number): Usage[] {
    const out: Usage[] = [];
    const keys = [...this.table(spec).entries()].reverse();
    for (const [key, s] of keys) {
      if (out.length >= limit) break;
      if (this.alive(spec, s, now)) out.push(this.usage(spec, key, s, now));
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
    const s = t.get(key) as SimpleState | undefined;
    if (s === undefined) return undefined;
    if (s.exp <= now) {
      t.delete(key);
      return undefined;
    }
    return s.v;
  }

  store(spec: TableSpec, key: string, value: string, now: number): void {
    const t = this.table(spec);
    this.take(t, key);
    this.put(spec, t, key, { v: value, exp: now + spec.quotaTimeMs });
  }

  remove(spec: TableSpec, key: string): boolean {
    return this.table(spec).delete(key);
  }

  adjust(spec: TableSpec, key: string, delta: number, now: number): number {
    const t = this.table(spec);
    const s = this.take<SimpleState>(t, key);
    const before = s === undefined || s.exp <= now ? 0 : Number(s.v);
    if (!Number.isSafeInteger(before)) {
      if (s !== undefined) this.put(spec, t, key, s);
      throw new StoreError(`the value of ${key} in ${spec.name} is not an integer`, 'bad-value');
    }
    const v = before + delta;
    this.put(spec, t, key, { v: String(v), exp: now + spec.quotaTimeMs });
    return v;
  }

  entries(spec: TableSpec, now: number, limit: number): SimpleEntry[] {
    const out: SimpleEntry[] = [];
    for (const [key, s] of [...this.table(spec).entries()].reverse()) {
      if (out.length >= limit) break;
      const e = s as SimpleState;
      if (e.exp > now) out.push({ key, value: e.v, ttlMs: e.exp - now });
    }
    return out;
  }

  /** Keys held for a table (live or not yet dropped); for tests of the max_entries bound. */
  size(spec: TableSpec): number {
    return this.table(spec).size;
  }

  close(): Promise<void> {
    this.tables.clear();
    return Promise.resolve();
  }
}

