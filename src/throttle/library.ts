// check_metermaid.so (spec §7.6) as a callout library for the mapping engine: any image whose
// name ends in check_metermaid.so (`IMTA_LIB:check_metermaid.so`,
// `/opt/sun/comms/messaging64/lib/check_metermaid.so`, ...) reaches these routines.
//
// Success and failure carry the meaning of the spec's table: `throttle` succeeds only when the key
// is over quota, so the `$N...` after it in an entry fires; under quota it fails and the mapping
// moves on. A store that cannot answer, or a key that does not fit its table (an ipv4 table fed a
// non-address), follows the table's on_error: `allow` makes the refusing routines (throttle,
// query, test, adjust_and_test) fail — Messaging Server's fail-open — and `deny` makes them
// succeed. The other routines just fail on error, as in Messaging Server.

import { FAIL, imageBaseName, quoteTemplateText, succeed } from '../mapping/callouts.js';
import type { CalloutAnswer, CalloutLibrary, CalloutRoutine } from '../mapping/callouts.js';
import { tableKey } from './keys.js';
import { compare, parseCondition, parseDelta } from './meter.js';
import type { HitResult, MaybePromise, TableSpec, ThrottleStore } from './types.js';

export const METERMAID_IMAGE = 'check_metermaid.so';

/** What the library reports for the log and for metrics. */
export type MeterEvent =
  | { readonly kind: 'over'; readonly routine: string; readonly table: string; readonly key: string; readonly count: number }
  | { readonly kind: 'error'; readonly routine: string; readonly table: string; readonly message: string; readonly answer: 'allow' | 'deny' | 'fail' };

export interface MeterMaidEnv {
  /** Tables from msg.conf, by lower-case name. */
  readonly tables: ReadonlyMap<string, TableSpec>;
  /** The store the daemon currently owns (it outlives configuration reloads). */
  readonly store: () => ThrottleStore;
  readonly now: () => number;
  readonly onEvent?: (e: MeterEvent) => void;
  /** Skip the load-time checks of table names (used when msg.conf could not be read). */
  readonly lenient?: boolean;
}

type Refusing = boolean;

interface RoutineDef {
  readonly name: string;
  /** Arguments after the table name; the key takes whatever the others leave. */
  readonly shape: 'key' | 'key,value' | 'key,delta' | 'key,cond' | 'key,delta,cond';
  readonly types: readonly ('throttle' | 'simple')[];
  readonly integer?: boolean;
  /** Its success refuses something: on_error decides what an error means. */
  readonly refusing: Refusing;
}

const ROUTINES: readonly RoutineDef[] = [
  { name: 'throttle', shape: 'key', types: ['throttle'], refusing: true },
  { name: 'query', shape: 'key', types: ['throttle', 'simple'], refusing: true },
  { name: 'store', shape: 'key,value', types: ['simple'], refusing: false },
  { name: 'fetch', shape: 'key', types: ['simple'], refusing: false },
  { name: 'remove', shape: 'key', types: ['simple'], refusing: false },
  { name: 'adjust', shape: 'key,delta', types: ['simple'], integer: true, refusing: false },
  { name: 'test', shape: 'key,cond', types: ['simple'], integer: true, refusing: true },
  { name: 'adjust_and_test', shape: 'key,delta,cond', types: ['simple'], integer: true, refusing: true },
];

export const METERMAID_ROUTINES: readonly string[] = ROUTINES.map((r) => r.name);

interface Args {
  readonly table: string;
  readonly key: string;
  readonly value: string;
  readonly delta: string;
  readonly cond: string;
}

/** Splits "table,key..." by the routine's shape; undefined when commas are missing. */
function splitArgs(def: RoutineDef, arg: string): Args | undefined {
  const c1 = arg.indexOf(',');
  if (c1 === -1) return undefined;
  const table = arg.slice(0, c1).trim().toLowerCase();
  const rest = arg.slice(c1 + 1);
  const none = { table, key: rest, value: '', delta: '', cond: '' };
  switch (def.shape) {
    case 'key':
      return none;
    case 'key,value': {
      // Values may contain commas; keys may not.
      const c = rest.indexOf(',');
      return c === -1 ? undefined : { ...none, key: rest.slice(0, c), value: rest.slice(c + 1) };
    }
    case 'key,delta':
    case 'key,cond': {
      // Keys may contain commas; the last argument may not.
      const c = rest.lastIndexOf(',');
      if (c === -1) return undefined;
      const last = rest.slice(c + 1);
      return def.shape === 'key,delta' ? { ...none, key: rest.slice(0, c), delta: last } : { ...none, key: rest.slice(0, c), cond: last };
    }
    case 'key,delta,cond': {
      const c2 = rest.lastIndexOf(',');
      if (c2 === -1) return undefined;
      const c = rest.lastIndexOf(',', c2 - 1);
      if (c === -1) return undefined;
      return { ...none, key: rest.slice(0, c), delta: rest.slice(c + 1, c2), cond: rest.slice(c2 + 1) };
    }
  }
}

const ARITY: Readonly<Record<RoutineDef['shape'], string>> = {
  key: 'TABLE,KEY',
  'key,value': 'TABLE,KEY,VALUE',
  'key,delta': 'TABLE,KEY,DELTA',
  'key,cond': 'TABLE,KEY,OP VALUE',
  'key,delta,cond': 'TABLE,KEY,DELTA,OP VALUE',
};

function then<T>(v: MaybePromise<T>, f: (t: T) => CalloutAnswer, onError: (e: unknown) => CalloutAnswer): MaybePromise<CalloutAnswer> {
  if (v instanceof Promise) return v.then(f, onError);
  return f(v);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A count for the `query` result: whole hits, or two decimals while a decay drains. */
function formatCount(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function routine(def: RoutineDef, env: MeterMaidEnv): CalloutRoutine {
  const problemOfTable = (spec: TableSpec | undefined, name: string): string | undefined => {
    if (spec === undefined) {
      const known = [...env.tables.keys()];
      return `no MeterMaid table "${name}" — define it in msg.conf (metermaid.table.${name}.quota = 15, metermaid.table.${name}.quota_time = 60)${known.length ? `; defined: ${known.join(', ')}` : ''}`;
    }
    if (!def.types.includes(spec.type)) return `table ${spec.name} is a ${spec.type} table; ${def.name} works on ${def.types.join(' or ')} tables`;
    if (def.integer === true && spec.valueType !== 'integer') return `${def.name} needs integer values: set metermaid.table.${spec.name}.value_type = integer`;
    return undefined;
  };

  const failed = (spec: TableSpec, message: string): CalloutAnswer => {
    const deny = def.refusing && spec.onError === 'deny';
    env.onEvent?.({ kind: 'error', routine: def.name, table: spec.name, message, answer: def.refusing ? spec.onError : 'fail' });
    return deny ? succeed('') : { ok: false, error: message };
  };

  const throttled = (spec: TableSpec, key: string, r: HitResult): CalloutAnswer => {
    if (!r.over) return FAIL;
    env.onEvent?.({ kind: 'over', routine: def.name, table: spec.name, key, count: r.count });
    return succeed('');
  };

  return {
    name: def.name,
    validate(argSource: string): string | undefined {
      if (env.lenient === true) return undefined;
      const c = argSource.indexOf(',');
      if (c === -1) return argSource.includes('$') ? undefined : `expects ${ARITY[def.shape]}`;
      const table = argSource.slice(0, c).trim();
      if (table.includes('$')) return undefined; // chosen at run time
      const bad = problemOfTable(env.tables.get(table.toLowerCase()), table);
      if (bad !== undefined) return bad;
      if (!argSource.includes('$') && splitArgs(def, argSource) === undefined) return `expects ${ARITY[def.shape]}`;
      return undefined;
    },
    call(arg: string): MaybePromise<CalloutAnswer> {
      const args = splitArgs(def, arg);
      if (args === undefined) return { ok: false, error: `${def.name} expects ${ARITY[def.shape]}, got "${arg}"` };
      const spec = env.tables.get(args.table);
      const bad = problemOfTable(spec, args.table);
      if (spec === undefined || bad !== undefined) return { ok: false, error: bad };
      const k = tableKey(spec, args.key);
      if (!k.ok) return failed(spec, k.message);
      const key = k.key;
      const store = env.store();
      const now = env.now();
      // throttle runs for every connection or message a seed entry sees: with the embedded store
      // its path creates no closures.
      if (def.name === 'throttle') {
        try {
          const r = store.hit(spec, key, now);
          return r instanceof Promise ? r.then((v) => throttled(spec, key, v), (e: unknown) => failed(spec, errorText(e))) : throttled(spec, key, r);
        } catch (e) {
          return failed(spec, errorText(e));
        }
      }
      const onError = (e: unknown): CalloutAnswer => failed(spec, errorText(e));
      try {
        switch (def.name) {
          case 'query':
            if (spec.type === 'simple') return then(store.fetch(spec, key, now), (v) => (v === undefined ? FAIL : succeed(quoteTemplateText(v))), onError);
            return then(store.peek(spec, key, now), (u) => (u !== undefined && u.over ? succeed(formatCount(u.count)) : FAIL), onError);
          case 'store': {
            // Integers are stored in one spelling ("+5", " 5" and "05" as "5"), which adjust can add to.
            const n = spec.valueType === 'integer' ? parseDelta(args.value) : 0;
            if (n === undefined) return { ok: false, error: `"${args.value}" is not an integer (table ${spec.name})` };
            const value = spec.valueType === 'integer' ? String(n) : args.value;
            return then(store.store(spec, key, value, now), () => succeed(''), onError);
          }
          case 'fetch':
            return then(store.fetch(spec, key, now), (v) => (v === undefined ? FAIL : succeed(quoteTemplateText(v))), onError);
          case 'remove':
            return then(store.remove(spec, key), () => succeed(''), onError);
          case 'adjust': {
            const delta = parseDelta(args.delta);
            if (delta === undefined) return { ok: false, error: `adjust: "${args.delta}" is not a delta (n, +n or -n)` };
            return then(store.adjust(spec, key, delta, now), () => succeed(''), onError);
          }
          case 'test': {
            const cond = parseCondition(args.cond);
            if (cond === undefined) return { ok: false, error: `test: "${args.cond}" is not a condition (=, >, >=, <, <= and a number)` };
            return then(
              store.fetch(spec, key, now),
              (v) => {
                const n = v === undefined ? 0 : Number(v);
                if (!Number.isSafeInteger(n)) return failed(spec, `the value of ${key} in ${spec.name} is not an integer`);
                return compare(n, cond.op, cond.value) ? succeed('') : FAIL;
              },
              onError,
            );
          }
          case 'adjust_and_test': {
            const delta = parseDelta(args.delta);
            const cond = parseCondition(args.cond);
            if (delta === undefined || cond === undefined) return { ok: false, error: `adjust_and_test: expects a delta and a condition, got "${args.delta}" and "${args.cond}"` };
            return then(store.adjust(spec, key, delta, now), (n) => (compare(n, cond.op, cond.value) ? succeed('') : FAIL), onError);
          }
        }
        return FAIL;
      } catch (e) {
        return onError(e);
      }
    },
  };
}

/** check_metermaid.so over the given tables and store. */
export function meterMaidLibrary(env: MeterMaidEnv): CalloutLibrary {
  const routines = new Map(ROUTINES.map((d) => [d.name, routine(d, env)]));
  return {
    name: METERMAID_IMAGE,
    claims: (image) => imageBaseName(image).toLowerCase() === METERMAID_IMAGE,
    routine: (name) => routines.get(name.toLowerCase()),
    routineNames: () => METERMAID_ROUTINES,
  };
}
