// MeterMaid as the daemon owns it: one store for the life of the process (configuration reloads
// keep the counts), the check_metermaid.so library built for each configuration's tables, and the
// administrator's view of the tables (`portcullis throttle show|reset`). A reload that changes
// the store settings (metermaid.config.*) opens the new store and closes the old one.

import type { MeterMaidOptions } from '../config/types.js';
import type { CalloutLibrary } from '../mapping/callouts.js';
import { tableKey } from './keys.js';
import { meterMaidLibrary } from './library.js';
import type { MeterEvent } from './library.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import type { SimpleEntry, TableSpec, ThrottleStore, Usage } from './types.js';

export interface MeterMaidHooks {
  readonly onEvent?: (e: MeterEvent) => void;
  readonly onStoreState?: (state: 'ready' | 'down', detail: string) => void;
  readonly now?: () => number;
}

/** A table's state for `throttle show`. */
export interface TableView {
  readonly table: string;
  readonly type: TableSpec['type'];
  readonly mode: TableSpec['mode'];
  readonly quota: number;
  readonly quotaTimeSeconds: number;
  readonly store: ThrottleStore['kind'];
  /** Throttle tables. */
  readonly keys?: readonly Usage[];
  /** Simple tables. */
  readonly entries?: readonly SimpleEntry[];
}

function storeIdentity(o: MeterMaidOptions): string {
  return o.server === null ? 'embedded' : JSON.stringify([o.server, o.client]);
}

export function openStore(o: MeterMaidOptions, hooks: MeterMaidHooks = {}): ThrottleStore {
  if (o.server === null) return new MemoryStore();
  return new RedisStore({ ...o.server, ...o.client, onState: hooks.onStoreState });
}

/** A `throttle show|reset` request the administrator can fix: an unknown table, a key that does not fit it. */
export class TableRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TableRequestError';
  }
}

export interface MeterMaidSetup {
  /** Always use a private embedded store (offline tools must not count against production). */
  readonly embeddedOnly?: boolean;
}

export class MeterMaid {
  private current: ThrottleStore | null = null;
  private identity = '';
  private tables: ReadonlyMap<string, TableSpec> = new Map();
  private readonly now: () => number;

  constructor(
    private readonly hooks: MeterMaidHooks = {},
    private readonly setup: MeterMaidSetup = {},
  ) {
    this.now = hooks.now ?? Date.now;
  }

  /** The store in use; an embedded one until a configuration says otherwise. */
  get store(): ThrottleStore {
    if (this.current === null) {
      this.current = new MemoryStore();
      this.identity = 'embedded';
    }
    return this.current;
  }

  /** Waits (up to connectwait) for a network store to connect; resolves false when it did not. */
  async ready(): Promise<boolean> {
    const s = this.store;
    if (!(s instanceof RedisStore)) return true;
    try {
      await s.waitReady();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * check_metermaid.so for a configuration's tables; null options (msg.conf has errors) give a
   * library that accepts any table at load time.
   */
  library(options: MeterMaidOptions | null): CalloutLibrary {
    return meterMaidLibrary({
      tables: options?.tables ?? new Map(),
      store: () => this.store,
      now: this.now,
      onEvent: this.hooks.onEvent,
      lenient: options === null,
    });
  }

  /**
   * Adopts an accepted configuration: its tables for `throttle show`, and its store when the
   * store settings changed (the old store is closed in the background). Returns a note then.
   */
  reconfigure(options: MeterMaidOptions): string | undefined {
    this.tables = options.tables;
    const id = this.setup.embeddedOnly === true ? 'embedded' : storeIdentity(options);
    if (this.current !== null && id === this.identity) return undefined;
    const old = this.current;
    this.current = id === 'embedded' ? new MemoryStore() : openStore(options, this.hooks);
    this.identity = id;
    if (old === null) return undefined;
    void old.close().catch(() => undefined);
    return `MeterMaid store is now ${options.server === null || id === 'embedded' ? 'embedded (counts start from zero)' : `Redis at ${options.server.host}:${options.server.port}`}`;
  }

  private spec(table: string): TableSpec {
    const spec = this.tables.get(table.toLowerCase());
    if (spec === undefined) {
      const known = [...this.tables.keys()];
      throw new TableRequestError(`no MeterMaid table "${table}"${known.length ? ` (tables: ${known.join(', ')})` : ' (msg.conf defines none)'}`);
    }
    return spec;
  }

  private key(spec: TableSpec, raw: string): string {
    const k = tableKey(spec, raw);
    if (!k.ok) throw new TableRequestError(k.message);
    return k.key;
  }

  /** The state of a table, or of one key of it. */
  async show(table: string, rawKey: string | undefined, limit = 100): Promise<TableView> {
    const spec = this.spec(table);
    const key = rawKey === undefined ? undefined : this.key(spec, rawKey);
    const now = this.now();
    const store = this.store;
    const base = { table: spec.name, type: spec.type, mode: spec.mode, quota: spec.quota, quotaTimeSeconds: spec.quotaTimeMs / 1000, store: store.kind };
    if (spec.type === 'simple') {
      if (key !== undefined) {
        const all = await store.entries(spec, now, spec.maxEntries);
        return { ...base, entries: all.filter((e) => e.key === key) };
      }
      return { ...base, entries: await store.entries(spec, now, limit) };
    }
    if (key !== undefined) {
      const u = await store.peek(spec, key, now);
      return { ...base, keys: u === undefined ? [] : [u] };
    }
    return { ...base, keys: await store.list(spec, now, limit) };
  }

  /** Forgets one key or the whole table; returns how many keys were removed. */
  async reset(table: string, rawKey: string | undefined): Promise<number> {
    const spec = this.spec(table);
    return this.store.reset(spec, rawKey === undefined ? undefined : this.key(spec, rawKey));
  }

  async close(): Promise<void> {
    const s = this.current;
    this.current = null;
    this.identity = '';
    if (s !== null) await s.close();
  }
}
