// The control socket's queue-management requests (`portcullis qm`), answered from the spool. While
// the queue runner runs, every change goes through it (QueueRunner.delete/hold/release wait for an
// attempt in flight on the message to end), so qm never races a delivery; with delivery.runner = no,
// and from the CLI when no server runs, nothing else touches the spool and qm acts on it directly.
// Selections are resolved here, in one place, from the same summaries `qm list` shows.
//
//   qm-list    → {"ok":true,"messages":[QmSummary…],"problems":["id: …"]}
//   qm-show    → {"ok":true,"message":QmDetail}
//   qm-delete|qm-hold|qm-release → {"ok":true,"result":QmActionResult}
//   qm-counts  → {"ok":true,"counts":QmCounts,"problems":[…]}
//   errors     → {"ok":false,"error":"…","code":"bad-request"|"not-found"|"failed"}

import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import type { Logger } from '../telemetry/log.js';
import { compileFilter, countQueue, matches, selection, summarize, targetsOf, validId } from '../queue/qm.js';
import type { CompiledFilter, QmDetail, QmSummary } from '../queue/qm.js';
import type { QueueRunner } from '../queue/runner.js';
import type { EnvelopeV1, Spool } from '../queue/spool.js';
import type { DeliveryState } from '../queue/state.js';
import type { ControlReply, ControlRequest } from './control.js';

export type QmRequest = Extract<ControlRequest, { readonly cmd: `qm-${string}` }>;
export type QmErrorCode = 'bad-request' | 'not-found' | 'failed';
export type QmAction = 'delete' | 'hold' | 'release';

/** The queue as qm sees it: the spool, and who may change it. */
export interface QmQueue {
  readonly spool: Spool;
  /** Messages an attempt is in flight for. */
  inFlight(): ReadonlySet<string>;
  delete(id: string): Promise<boolean>;
  hold(id: string): Promise<boolean>;
  release(id: string): Promise<boolean>;
  /** Takes messages out of the delivery schedule before a delete or hold of many; `schedule` puts one back. */
  unschedule(ids: readonly string[]): void;
  schedule(id: string): void;
  /** Said in replies: "runner" or "spool" (no runner: acted on directly). */
  readonly via: 'runner' | 'spool';
}

/** Changes go through the runner, which waits for an attempt in flight on the message. */
export function runnerQueue(spool: Spool, runner: QueueRunner): QmQueue {
  return {
    spool,
    via: 'runner',
    inFlight: () => new Set(runner.inFlightIds()),
    delete: (id) => runner.delete(id),
    hold: (id) => runner.hold(id),
    release: (id) => runner.release(id),
    unschedule: (ids) => runner.unschedule(ids),
    schedule: (id) => runner.schedule(id, Date.now()),
  };
}

/** No runner (delivery.runner = no, or no server at all): nothing else changes the spool. */
export function spoolQueue(spool: Spool): QmQueue {
  return {
    spool,
    via: 'spool',
    inFlight: () => new Set<string>(),
    delete: (id) => spool.remove(id),
    hold: (id) => spool.hold(id),
    release: (id) => spool.release(id),
    unschedule: () => undefined,
    schedule: () => undefined,
  };
}

export interface QmActionResult {
  readonly action: QmAction;
  /** Messages acted on, with their sizes. */
  readonly done: readonly { readonly id: string; readonly size: number }[];
  readonly bytes: number;
  /** Ids that were already as asked: held for hold, not held for release. */
  readonly unchanged: readonly string[];
  /** Ids not in the queue (never were, or delivered meanwhile). */
  readonly notFound: readonly string[];
}

/** The most of a header section `qm show` reads. */
const HEADER_LIMIT = 256 * 1024;
/** Changes made at once: the spool's directory fsyncs of concurrent changes are shared. */
const PARALLEL = 16;

function fail(code: QmErrorCode, error: string): ControlReply {
  return { ok: false, error, code };
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

interface Loaded {
  readonly env: EnvelopeV1;
  readonly state: DeliveryState | null;
  readonly summary: QmSummary;
}

/** One message's envelope, state and summary; null when it left the queue meanwhile. */
async function load(q: QmQueue, id: string, held: boolean, inFlight: ReadonlySet<string>, now: number, problems: string[]): Promise<Loaded | null> {
  let env: EnvelopeV1;
  try {
    try {
      env = q.spool.readEnvelope(id);
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
      env = q.spool.readEnvelope(id); // held or released between the check and the open: once more
    }
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    problems.push(`${id}: unreadable envelope (${err instanceof Error ? err.message : String(err)}); see docs/spool.md`);
    return null;
  }
  let state: DeliveryState | null = null;
  try {
    const raw = (await q.spool.readState(id)) as DeliveryState | null;
    if (raw !== null && Array.isArray(raw.targets)) state = raw;
    else if (raw !== null) problems.push(`${id}: delivery state without targets; the runner rebuilds it`);
  } catch (err) {
    problems.push(`${id}: unreadable delivery state (${err instanceof Error ? err.message : String(err)}); the runner rebuilds it`);
  }
  // The file may have moved between the directory listing and the read.
  const isHeld = held && q.spool.isHeld(id);
  return { env, state, summary: summarize(env, state, { held: isHeld, inFlight: inFlight.has(id) }, now) };
}

/** Every message in the queue, active and held, from one directory listing, oldest first. */
async function loadAll(q: QmQueue, now: number, problems: string[]): Promise<Loaded[]> {
  const names = readdirSync(q.spool.dir);
  const where = new Map<string, boolean>();
  for (const n of names) {
    if (n.endsWith('.msg')) where.set(n.slice(0, -4), where.get(n.slice(0, -4)) ?? false);
    else if (n.endsWith('.held')) where.set(n.slice(0, -5), true);
  }
  const inFlight = q.inFlight();
  const out: Loaded[] = [];
  for (const id of [...where.keys()].sort()) {
    const m = await load(q, id, where.get(id) === true, inFlight, now, problems);
    if (m !== null) out.push(m);
  }
  return out;
}

/** The header section of a message file (after the envelope line), read up to HEADER_LIMIT. */
function readHeader(spool: Spool, id: string): { header: string; truncated: boolean } {
  let fd: number;
  try {
    fd = openSync(spool.path(`${id}.msg`), 'r');
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw err;
    fd = openSync(spool.path(`${id}.held`), 'r');
  }
  try {
    const buf = Buffer.alloc(HEADER_LIMIT + 64 * 1024);
    let n = 0;
    for (let r = -1; r !== 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, n);
    const data = buf.subarray(0, n);
    const start = data.indexOf(10) + 1;
    const end = data.indexOf('\r\n\r\n', start);
    const stop = end !== -1 ? end : data.indexOf('\n\n', start);
    const truncated = stop === -1 && n === buf.length;
    const raw = data.subarray(start, stop !== -1 ? stop : Math.min(n, start + HEADER_LIMIT)).toString('utf8');
    return { header: raw.replace(/\r\n/g, '\n').replace(/\n$/, ''), truncated };
  } finally {
    closeSync(fd);
  }
}

function apply(q: QmQueue, action: QmAction, id: string): Promise<boolean> {
  switch (action) {
    case 'delete':
      return q.delete(id);
    case 'hold':
      return q.hold(id);
    case 'release':
      return q.release(id);
  }
}

const ACTION_OF = { 'qm-delete': 'delete', 'qm-hold': 'hold', 'qm-release': 'release' } as const satisfies Record<string, QmAction>;

/** The messages a filter selects for an action, without those already as asked. */
function pick(all: readonly Loaded[], f: CompiledFilter, action: QmAction): string[] {
  return all
    .map((m) => m.summary)
    .filter((s) => matches(s, f) && !(action === 'hold' && s.state === 'held') && !(action === 'release' && s.state !== 'held'))
    .map((s) => s.id);
}

/** Acts on `targets` (ids), given the queue as just loaded. */
async function act(q: QmQueue, action: QmAction, targets: readonly string[], all: readonly Loaded[]): Promise<QmActionResult> {
  const byId = new Map(all.map((m) => [m.summary.id, m]));
  const done: { id: string; size: number }[] = [];
  const unchanged: string[] = [];
  const notFound: string[] = [];
  const one = async (id: string): Promise<void> => {
    const m = byId.get(id);
    if (m === undefined) {
      notFound.push(id);
      return;
    }
    const held = m.summary.state === 'held';
    if ((action === 'hold' && held) || (action === 'release' && !held)) {
      unchanged.push(id);
      return;
    }
    const ok = await apply(q, action, id);
    if (ok) done.push({ id, size: m.summary.size });
    else if (action === 'delete') notFound.push(id); // delivered or deleted meanwhile
    else if (q.spool.isHeld(id) === (action === 'hold')) unchanged.push(id);
    else notFound.push(id);
  };
  // Every selected message leaves the schedule first: while a batch waits for an attempt in flight,
  // the runner must not start sending the ones after it (the spam being deleted).
  const stopping = action === 'delete' || action === 'hold' ? targets.filter((id) => byId.has(id)) : [];
  q.unschedule(stopping);
  try {
    for (let i = 0; i < targets.length; i += PARALLEL) await Promise.all(targets.slice(i, i + PARALLEL).map(one));
  } finally {
    // Any that was not deleted or held after all (an error) goes back to the schedule.
    const acted = new Set(done.map((d) => d.id));
    const left = stopping.filter((id) => !acted.has(id));
    if (left.length > 0) {
      const active = new Set(q.spool.list());
      for (const id of left) if (active.has(id)) q.schedule(id);
    }
  }
  const order = new Map(targets.map((id, i) => [id, i]));
  const byOrder = (a: string, b: string): number => (order.get(a) ?? 0) - (order.get(b) ?? 0);
  done.sort((a, b) => byOrder(a.id, b.id));
  unchanged.sort(byOrder);
  notFound.sort(byOrder);
  return { action, done, bytes: done.reduce((n, d) => n + d.size, 0), unchanged, notFound };
}

export async function qmControl(q: QmQueue, req: QmRequest, now: number = Date.now(), log?: Logger): Promise<ControlReply> {
  const problems: string[] = [];
  try {
    switch (req.cmd) {
      case 'qm-list': {
        const f = compileFilter(req.filter);
        if ('error' in f) return fail('bad-request', f.error);
        const all = await loadAll(q, now, problems);
        return { ok: true, messages: all.map((m) => m.summary).filter((s) => matches(s, f)), problems };
      }
      case 'qm-counts':
        return { ok: true, counts: countQueue((await loadAll(q, now, problems)).map((m) => m.summary)), problems };
      case 'qm-show': {
        if (!validId(req.id)) return fail('bad-request', `"${req.id}" is not a message id (ids look like mwug8kib-cfcce5e8ac; portcullis qm list shows them)`);
        const m = await load(q, req.id, q.spool.isHeld(req.id), q.inFlight(), now, problems);
        if (m === null) return fail(problems.length > 0 ? 'failed' : 'not-found', problems[0] ?? `no message ${req.id} in the queue (delivered, deleted, or never there; portcullis qm list shows the queue)`);
        let header: { header: string; truncated: boolean };
        try {
          header = readHeader(q.spool, req.id);
        } catch (err) {
          if (errno(err) !== 'ENOENT') throw err;
          return fail('not-found', `message ${req.id} left the queue while it was being read`);
        }
        const detail: QmDetail = { summary: m.summary, envelope: m.env, targets: targetsOf(m.env, m.state), stateSaved: m.state !== null, header: header.header, headerTruncated: header.truncated };
        return { ok: true, message: detail, problems };
      }
      case 'qm-delete':
      case 'qm-hold':
      case 'qm-release': {
        const action = ACTION_OF[req.cmd];
        const sel = selection(req.ids, req.filter, action);
        if ('error' in sel) return fail('bad-request', sel.error);
        let f: CompiledFilter | null = null;
        if (sel.kind === 'filter') {
          const c = compileFilter(sel.filter);
          if ('error' in c) return fail('bad-request', c.error);
          f = c;
        }
        const all = await loadAll(q, now, problems);
        // Ids as given; a filter: the matching messages, without those already as asked.
        const chosen = sel.kind === 'ids' ? sel.ids : f === null ? [] : pick(all, f, action);
        const result = await act(q, action, chosen, all);
        log?.log('info', `qm-${action}`, { via: q.via, selection: sel.kind === 'ids' ? 'ids' : JSON.stringify(sel.filter), messages: result.done.length, bytes: result.bytes, ids: result.done.map((d) => d.id), notFound: result.notFound });
        return { ok: true, result, problems };
      }
    }
  } catch (err) {
    return fail('failed', err instanceof Error ? err.message : String(err));
  }
}
