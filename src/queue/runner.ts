// The queue runner: takes committed messages from the spool and delivers them, target by target,
// retrying temporary failures on the backoff schedule and returning permanent failures to the
// sender as DSNs. It owns the spool while the server runs: queue management (qm) goes through it,
// so a message is never deleted or held while an attempt on it is in flight.
//
// Order of durable steps for one attempt (a crash between any two repeats at most one attempt, so
// a duplicate is possible but a loss is not):
//   1. deliver the due targets (the remote side has the message),
//   2. write the new state (`<id>.state`),
//   3. enqueue the DSN for newly failed targets, then mark them notified in the state,
//   4. when nothing is left to do, remove the message and its state (an attempt that finishes
//      the message, the usual case, goes from 1 straight to 4 and writes no state).

import { setMaxListeners } from 'node:events';
import type { TxSink } from './txsink.js';
import { composeDsn, dsnEnvelope } from './dsn.js';
import { newMessageId, SpoolFormatError } from './spool.js';
import type { EnvelopeV1, MessageSource, Spool } from './spool.js';
import { applyOutcome, backoff, delayWarningsDue, dueTargets, finished, initialState, markWarned, needsDsn, nextDue } from './state.js';
import type { DeliveryState, RetryPolicy, Target, TargetOutcome } from './state.js';
import type { Logger } from '../telemetry/log.js';

/** Targets of one message that go the same way in one attempt. */
export interface DeliveryGroup {
  readonly channel: string;
  /** Where they go: a recipient domain (MX), a host, the local store, or nowhere. */
  readonly destination: string;
  readonly targets: readonly Target[];
}

/** Delivers a group; one outcome per target, in order. Never rejects (failures are outcomes). */
export interface Deliverer {
  /** The destination key of a target: targets with the same key share a connection and a limit. */
  destinationOf(target: Target): string;
  /** `signal` aborts at shutdown: recipients not yet answered get temporary outcomes. */
  deliver(group: DeliveryGroup, env: EnvelopeV1, message: MessageSource, signal?: AbortSignal): Promise<TargetOutcome[]>;
}

/** Routes an address (the original sender, for a DSN) to a channel and its delivery address. */
export type RouteAddress = (address: string) => Promise<{ channel: string; address: string } | null>;

export interface RunnerDeps {
  readonly spool: Spool;
  readonly deliverer: Deliverer;
  readonly route: RouteAddress;
  readonly tx: TxSink;
  readonly log: Logger;
  /** The retry schedule and maximum age on this destination channel (imta.cnf backoff/notices, else msg.conf); null: msg.conf's. */
  readonly retry: (channel: string | null) => RetryPolicy;
  /** Deliveries in progress at once on this channel (imta.cnf maxjobs); null: only the global limit. */
  readonly maxJobs?: (channel: string) => number | null;
  /** Whether failures of mail from this source channel are returned to the sender (backscatter control). */
  readonly bounces: (sourceChannel: string) => boolean;
  readonly hostname: () => string;
  /** Attempts in flight at once, all messages together. */
  readonly concurrency: number;
  /** Attempts in flight at once to one destination. */
  readonly perDestination: number;
  /** Targets per deliver() call (one outbound transaction); more go in further calls. Default 50, as Postfix's smtp_destination_recipient_limit. */
  readonly recipientLimit?: () => number;
  readonly now?: () => number;
  readonly random?: () => number;
}

/** How long a message that found its destination full waits at most for the wake-up of a slot. */
const BUSY_BACKSTOP_MS = 60_000;

/** Waiting-list key of a channel at its maxjobs (destination keys never contain NUL). */
function channelKey(channel: string): string {
  return `\u0000channel:${channel}`;
}

interface Slot {
  id: string;
  due: number;
}

/** A binary min-heap of (due, id); stale entries are skipped when popped. */
class DueHeap {
  private readonly a: Slot[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): Slot | undefined {
    return this.a[0];
  }
  push(s: Slot): void {
    const a = this.a;
    a.push(s);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if ((a[p] as Slot).due <= (a[i] as Slot).due) break;
      [a[p], a[i]] = [a[i] as Slot, a[p] as Slot];
      i = p;
    }
  }
  pop(): Slot | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && (a[l] as Slot).due < (a[m] as Slot).due) m = l;
        if (r < a.length && (a[r] as Slot).due < (a[m] as Slot).due) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i] as Slot, a[m] as Slot];
        i = m;
      }
    }
    return top;
  }
}

export interface QueueCounts {
  readonly messages: number;
  readonly held: number;
  readonly inFlight: number;
}

export class QueueRunner {
  private readonly heap = new DueHeap();
  /** The due time each queued message is scheduled for (the heap may hold stale copies). */
  private readonly due = new Map<string, number>();
  private readonly inFlight = new Map<string, { cancel: 'delete' | 'hold' | null; done: Promise<void> }>();
  private readonly perDest = new Map<string, number>();
  private readonly perChannel = new Map<string, number>();
  /**
   * Messages that found a destination full, by destination: a slot given back there schedules the
   * first of them. They do not hold an attempt slot meanwhile, so a backlog for one slow domain
   * cannot starve the others (head-of-line blocking).
   */
  private readonly waitingFor = new Map<string, Set<string>>();
  /** Aborted when stop() runs out of patience. */
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly deps: RunnerDeps) {
    // Every attempt in flight listens on the one shutdown signal (connect, limiter, transaction).
    setMaxListeners(0, this.abort.signal);
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  /** Schedules every message in the spool (after a restart: all of them, at their saved times) and starts. */
  async start(): Promise<void> {
    this.deps.spool.onCommit = (id) => this.schedule(id, this.now());
    for (const id of this.deps.spool.list()) {
      let at = this.now();
      try {
        const st = (await this.deps.spool.readState(id)) as DeliveryState | null;
        const next = st === null ? null : nextDue(st);
        if (next !== null) at = next;
      } catch {
        // An unreadable state is rebuilt from the envelope at the attempt.
      }
      this.schedule(id, at);
    }
    this.pump();
  }

  /** Stops taking work and waits for attempts in flight. */
  /**
   * Stops taking work and lets attempts in flight finish for up to `graceMs`; then aborts them
   * (their recipients are retried after a restart: a remote server that had the whole message
   * but not yet answered may get it twice) and waits for their state to be written.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    this.deps.spool.onCommit = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const all = Promise.all([...this.inFlight.values()].map((f) => f.done));
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([all.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(timer);
    if (late) {
      this.deps.log.log('warn', 'queue-stop-aborting', { inFlight: this.inFlight.size, graceMs });
      this.abort.abort();
    }
    await all;
  }

  counts(): QueueCounts {
    return { messages: this.due.size + this.inFlight.size, held: this.deps.spool.listHeld().length, inFlight: this.inFlight.size };
  }

  /** Ids of the messages an attempt is in flight for (qm list and counts show them). */
  inFlightIds(): string[] {
    return [...this.inFlight.keys()];
  }

  /** Asks for an attempt now (qm release, a test). */
  schedule(id: string, at: number): void {
    if (this.stopped || this.inFlight.has(id)) {
      if (this.inFlight.has(id)) this.due.set(id, at); // attempt again after the current one
      return;
    }
    const cur = this.due.get(id);
    if (cur !== undefined && cur <= at) return;
    this.due.set(id, at);
    this.heap.push({ id, due: at });
    this.arm();
  }

  /**
   * Takes messages out of the schedule at once (qm acting on many: none of them starts an attempt
   * while the others are handled); attempts already in flight are not touched.
   */
  unschedule(ids: readonly string[]): void {
    for (const id of ids) this.due.delete(id);
  }

  /** Deletes a message, waiting for an attempt in flight to end first. */
  async delete(id: string): Promise<boolean> {
    await this.settle(id, 'delete');
    return this.deps.spool.remove(id);
  }

  /** Holds a message (it stays in the spool, untouched, until released). */
  async hold(id: string): Promise<boolean> {
    await this.settle(id, 'hold');
    return this.deps.spool.hold(id);
  }

  /** Ends the message's part in delivery: an attempt in flight finishes (told why), and it leaves the schedule. */
  private async settle(id: string, why: 'delete' | 'hold'): Promise<void> {
    const f = this.inFlight.get(id);
    if (f !== undefined) {
      f.cancel = why;
      await f.done;
    }
    this.due.delete(id);
  }

  /** Puts a held message back; its pending targets are tried at once (an administrator's release means now). */
  async release(id: string): Promise<boolean> {
    if (!this.deps.spool.isHeld(id)) return false;
    const now = this.now();
    let st: DeliveryState | null = null;
    try {
      st = (await this.deps.spool.readState(id)) as DeliveryState | null;
    } catch {
      // Unreadable: rebuilt from the envelope below (all targets due).
    }
    // Released: an access table's $H does not hold it again.
    st ??= initialState(this.deps.spool.readEnvelope(id), now);
    st.released = true;
    for (const t of st.targets) if (t.status === 'pending') t.nextAttemptAt = Math.min(t.nextAttemptAt, now);
    await this.deps.spool.writeState(id, st);
    return this.deps.spool.release(id); // the spool's onCommit schedules it
  }

  private arm(): void {
    // While every slot is busy the end of an attempt pumps again; a timer now would only spin.
    if (this.stopped || this.inFlight.size >= this.deps.concurrency) return;
    const top = this.heap.peek();
    if (top === undefined) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(top.due - this.now(), 2 ** 31 - 1));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump();
    }, wait);
    this.timer.unref();
  }

  private pump(): void {
    const now = this.now();
    while (!this.stopped && this.inFlight.size < this.deps.concurrency) {
      const top = this.heap.peek();
      if (top === undefined || top.due > now) break;
      this.heap.pop();
      if (this.due.get(top.id) !== top.due) continue; // stale copy
      this.due.delete(top.id);
      const entry = { cancel: null as 'delete' | 'hold' | null, done: Promise.resolve() };
      this.inFlight.set(top.id, entry);
      entry.done = this.attempt(top.id, entry)
        .catch((err: unknown) => {
          this.deps.log.log('error', 'queue-attempt-failed', { id: top.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
          // Try again later rather than lose track of the message: after the first wait of the
          // retry schedule, as for a first temporary failure.
          this.due.set(top.id, this.now() + backoff(this.deps.retry(null), 1, this.random()));
        })
        .finally(() => {
          this.inFlight.delete(top.id);
          // A message that qm deletes or holds is not attempted again, even if a commit or a
          // release asked for it meanwhile: delete()/hold() act on it as soon as this ends.
          if (entry.cancel !== null) this.due.delete(top.id);
          const again = this.due.get(top.id);
          if (again !== undefined) this.heap.push({ id: top.id, due: again });
          this.pump();
        });
    }
    this.arm();
  }

  /**
   * Takes a slot to the destination and on the channel (maxjobs) if both are free: null, or the
   * key of the one that is full (what to wait for).
   */
  private tryAcquire(dest: string, channel: string): string | null {
    const jobs = this.deps.maxJobs?.(channel) ?? null;
    if ((this.perDest.get(dest) ?? 0) >= this.deps.perDestination) return dest;
    if (jobs !== null && (this.perChannel.get(channel) ?? 0) >= jobs) return channelKey(channel);
    this.perDest.set(dest, (this.perDest.get(dest) ?? 0) + 1);
    this.perChannel.set(channel, (this.perChannel.get(channel) ?? 0) + 1);
    return null;
  }

  private releaseSlot(dest: string, channel: string): void {
    for (const [map, key] of [
      [this.perDest, dest],
      [this.perChannel, channel],
    ] as const) {
      const n = (map.get(key) ?? 1) - 1;
      if (n <= 0) map.delete(key);
      else map.set(key, n);
    }
    // The first message waiting for this destination, and the first waiting for this channel,
    // get the slot's turn.
    this.wakeWaiting(dest);
    this.wakeWaiting(channelKey(channel));
  }

  private wakeWaiting(dest: string): void {
    const set = this.waitingFor.get(dest);
    const next = set?.values().next();
    if (set === undefined || next === undefined || next.done === true) return;
    set.delete(next.value);
    if (set.size === 0) this.waitingFor.delete(dest);
    this.schedule(next.value, this.now());
  }

  /** One attempt on one message: every due target, grouped by destination. */
  private async attempt(id: string, flight: { cancel: 'delete' | 'hold' | null }): Promise<void> {
    const { spool, deliverer, tx } = this.deps;
    // Held meanwhile (qm hold between a commit's rename and its onCommit): not ours to deliver.
    if (spool.isHeld(id)) return;
    let env: EnvelopeV1;
    try {
      env = spool.readEnvelope(id);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // deleted or held meanwhile
      if (!(err instanceof SpoolFormatError)) throw err; // I/O: retried on the schedule
      // A damaged message file (edited by hand, a disk fault) can never be delivered: set it
      // aside as <id>.corrupt, as Postfix's corrupt queue does, instead of failing every retry.
      await spool.quarantine(id);
      this.deps.log.log('error', 'queue-corrupt', { id, error: err.message, file: spool.path(`${id}.corrupt`), help: 'the message cannot be read; inspect the file, fix or remove it (docs/spool.md)' });
      return;
    }
    let saved: DeliveryState | null;
    try {
      saved = (await spool.readState(id)) as DeliveryState | null;
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      // Rebuilt from the envelope: targets delivered before may be delivered again (a duplicate,
      // not a message stuck for ever).
      this.deps.log.log('warn', 'queue-state-unreadable', { id, error: err.message });
      saved = null;
    }
    const state = saved ?? initialState(env, this.now());
    if (env.flags.includes('H') && saved?.released !== true) {
      // $H: set aside at once, as Messaging Server's .HELD (spec §4.2), until qm release marks the
      // state released. Held before anything is written, so no crash can skip the hold.
      await spool.hold(id);
      this.deps.log.log('info', 'queue-held', { id, reason: 'access table $H' });
      return;
    }
    const discard = env.flags.some((f) => f === 'B' || f === 'V' || f === 'Z');
    /** Delivered to the mailbox with NOTIFY=SUCCESS: the sender asked to be told (RFC 3461 §4.1). */
    const succeeded: Target[] = [];
    /** Destinations (or channels) that were full: their targets wait for a slot, untouched. */
    const busy: string[] = [];
    let attempted = 0;
    const due = dueTargets(state, this.now());
    // Opened on first use: a discarded message is never read.
    let source: MessageSource | null = null;
    const message = (): MessageSource => (source ??= spool.bodySource(id));
    const body = (): Promise<Buffer> => message().buffer();

    if (discard) {
      for (const t of due) {
        applyOutcome(t, { kind: 'delivered', diagnostic: 'x-local;discarded ($B)', remote: null, dsnStatus: '2.0.0' }, Date.parse(env.receivedAt), this.now(), this.deps.retry(t.channel), 0);
        tx.dequeued(env, t, 'bitbucket');
      }
    } else {
      const groups = new Map<string, Target[]>();
      for (const t of due) {
        const key = `${t.channel}\u0000${deliverer.destinationOf(t)}`;
        const g = groups.get(key);
        if (g === undefined) groups.set(key, [t]);
        else g.push(t);
      }
      // One transaction carries at most recipientLimit recipients (RFC 5321 §4.5.3.1.8 lets a
      // server stop at 100; old ones stop earlier).
      const limit = Math.max(1, this.deps.recipientLimit?.() ?? 50);
      const chunks = [...groups.values()].flatMap((g) => Array.from({ length: Math.ceil(g.length / limit) }, (_, k) => g.slice(k * limit, (k + 1) * limit)));
      await Promise.all(
        chunks.map(async (targets) => {
          const first = targets[0] as Target;
          const dest = deliverer.destinationOf(first);
          const full = this.tryAcquire(dest, first.channel);
          if (full !== null) {
            busy.push(full);
            return;
          }
          attempted++;
          try {
            let outcomes: readonly TargetOutcome[];
            try {
              outcomes = await deliverer.deliver({ channel: first.channel, destination: dest, targets }, env, message(), this.abort.signal);
            } catch (err) {
              // The contract says never, but a fault must not end the flight while other groups
              // are still delivering, nor lose what they delivered: a temporary failure of this
              // group, retried on the schedule.
              const error = err instanceof Error ? err.message : String(err);
              this.deps.log.log('error', 'queue-deliverer-failed', { id, channel: first.channel, destination: dest, error });
              outcomes = targets.map((): TargetOutcome => ({ kind: 'temporary', diagnostic: `x-local;internal error: ${error}`, remote: null, dsnStatus: '4.3.0' }));
            }
            targets.forEach((t, i) => {
              const o = outcomes[i] ?? { kind: 'temporary', diagnostic: 'x-local;no outcome reported', remote: null, dsnStatus: '4.0.0' };
              const transition = applyOutcome(t, o, Date.parse(env.receivedAt), this.now(), this.deps.retry(t.channel), this.random());
              if (transition === 'delivered' && o.final === true && (env.recipients[t.rcpt]?.notify ?? []).includes('SUCCESS')) succeeded.push(t);
              if (transition === 'delivered') tx.dequeued(env, t, t.channel, o.via);
              else if (transition === 'deferred') tx.deferred(env, t, t.channel);
              else tx.failed(env, t, t.channel);
            });
          } finally {
            this.releaseSlot(dest, first.channel);
          }
        }),
      );
    }

    for (const dest of busy) {
      let set = this.waitingFor.get(dest);
      if (set === undefined) this.waitingFor.set(dest, (set = new Set()));
      set.add(id);
    }
    if (busy.length > 0 && attempted === 0) {
      // Nothing was tried, nothing changed: no state to write. A slot given back there wakes it;
      // a minute is the backstop should that wake-up go to a message that no longer needs it.
      if (flight.cancel === null) this.due.set(id, this.now() + BUSY_BACKSTOP_MS);
      return;
    }
    if (flight.cancel === 'delete') return; // qm deletes once this attempt has ended
    const bounces = this.deps.bounces(env.sourceChannel);
    if (succeeded.length > 0 && bounces && env.sender !== '') {
      // Before the message can be removed; a crash before the state is saved may send it twice.
      // Informational: if it cannot be queued (routing, disk) the attempt still counts, else the
      // mailbox would get the message again at every retry.
      try {
        await this.enqueueDsn(env, succeeded, await body(), 'delivered');
      } catch (err) {
        this.deps.log.log('warn', 'queue-dsn-failed', { id, action: 'delivered', error: err instanceof Error ? err.message : String(err) });
      }
    }
    if (flight.cancel === null && finished(state, env, bounces)) {
      // Done with nothing to send back (the usual case): the state would be removed at once, so
      // it is not written. A crash before the removal repeats the delivery, as after step 1.
      await spool.remove(id);
      this.deps.log.log('info', 'queue-finished', { id, delivered: state.targets.filter((t) => t.status === 'delivered').length, failed: state.targets.filter((t) => t.status !== 'delivered').length });
      return;
    }
    await spool.writeState(id, state);
    if (flight.cancel === 'hold') return; // held with what this attempt achieved recorded

    const toNotify = needsDsn(state, env, bounces);
    if (toNotify.length > 0) {
      await this.enqueueDsn(env, toNotify, await body());
      for (const t of toNotify) t.status = 'notified';
      await spool.writeState(id, state);
    }
    // Delay warnings (imta.cnf notices before the last): at most one message per attempt.
    const warn = delayWarningsDue(state, env, this.now(), (t) => this.deps.retry(t.channel), bounces);
    if (warn.length > 0) {
      const received = Date.parse(env.receivedAt);
      const until = new Date(received + Math.min(...warn.map((t) => this.deps.retry(t.channel).maxAgeMs)));
      await this.enqueueDsn(env, warn, await body(), 'delayed', until);
      for (const t of warn) markWarned(t, this.now() - received, this.deps.retry(t.channel));
      await spool.writeState(id, state);
    }
    if (finished(state, env, bounces)) {
      await spool.remove(id);
      this.deps.log.log('info', 'queue-finished', { id, delivered: state.targets.filter((t) => t.status === 'delivered').length, failed: state.targets.filter((t) => t.status !== 'delivered').length });
      return;
    }
    const next = nextDue(state);
    if (next !== null) this.due.set(id, next);
  }

  private async enqueueDsn(env: EnvelopeV1, targets: Target[], message: Buffer, action: 'failed' | 'delayed' | 'delivered' = 'failed', retryUntil?: Date): Promise<void> {
    const now = new Date(this.now());
    const dsn = composeDsn({ env, targets, message, hostname: this.deps.hostname(), now, action, retryUntil });
    const id = newMessageId(now.getTime());
    const route = await this.deps.route(env.sender);
    const envelope = dsnEnvelope(id, env, dsn.length, now);
    const r = envelope.recipients[0];
    const routed: EnvelopeV1 =
      route === null || r === undefined
        ? envelope
        : { ...envelope, recipients: [{ ...r, channel: route.channel, deliverTo: [{ address: route.address, channel: route.channel }] }] };
    await this.deps.spool.commitGenerated(routed, dsn);
    this.deps.tx.enqueued(routed, 'l');
    this.deps.log.log('info', 'queue-dsn', { id, for: env.id, action, to: env.sender, recipients: targets.map((t) => t.address) });
  }
}
