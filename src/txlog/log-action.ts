// LOG_ACTION (spec §8): every transaction record about to be written is offered, as a probe, to
// the LOG_ACTION mapping table. Its effects are the side effects of its callouts (MeterMaid
// counters, spec §8.3), `$<` / `$>` text for the server log, and — when mta.log_action_suppress
// is on — `$N`, which keeps the record out of the log (the spec's UNSURE reading).
//
// Evaluation never holds the writer up without bound: records are evaluated one at a time, in
// order, from a queue of at most mta.log_action_queue records. A record that finds the queue full
// is written at once without evaluation (ahead of the records still waiting), and the overflow is
// counted and logged. When suppression is off a record is written before it is evaluated.

import type { MappingResult, MappingSet } from '../mapping/index.js';
import { accessResult, mapAsync, mapSync } from '../mapping/index.js';
import { accessActions } from '../policy/access-reply.js';
import type { DecisionSink } from '../policy/events.js';
import type { Logger } from '../telemetry/log.js';
import { sizeInBlocks } from './format.js';
import { entryCode } from './record.js';
import type { TxRecord } from './record.js';

export const LOG_ACTION = 'LOG_ACTION';

export interface ProbeOptions {
  /** mta.log_reason bit 1 (value 2): append the reason field. */
  readonly reason: boolean;
  /** mta.log_diagnostics bit 1 (value 2): append the diagnostic field. */
  readonly diagnostic: boolean;
  /** The size unit of the log (log.transactions.block_size): the probe mirrors the log entry. */
  readonly blockSize: number;
  /** mta.mapping_paranoia: replaces "|" inside address and reason fields; '' = off. */
  readonly paranoia: string;
}

/**
 * The LOG_ACTION probe of a message record (spec §8.2, RECONSTRUCTED: no authoritative sample is
 * known, so this single function is the one place to correct if one appears):
 *
 *   action-code|source-channel|destination-channel|size|env-from|orig-recipient|recipient[|reason][|diagnostic]
 *
 *  - action-code is the full entry code with modifiers (`J`, `EESA`, `DS`), as in the log;
 *  - size is in the log's unit (kilobytes by default), as the log entry shows it;
 *  - env-from is empty for <>; orig-recipient is `rfc822;addr`; a refused MAIL FROM has empty
 *    destination channel and recipient fields;
 *  - reason and diagnostic are appended when mta.log_reason / mta.log_diagnostics have bit 1
 *    (value 2) set — always, empty when the record has none, so patterns can count fields;
 *  - with mta.mapping_paranoia set, "|" inside the address and reason fields is replaced, so a
 *    crafted address cannot move the fields after it (the diagnostic is last and needs no care).
 *
 * The seven fixed fields give a pattern such as `J|tcp_auth|*|*|*@*|*|*` the numbering of spec
 * §8.3: $0 destination channel, $1 size, $2@$3 envelope From, $4 original and $5 current recipient.
 */
export function logActionProbe(r: TxRecord, o: ProbeOptions): string {
  const guard = (s: string): string => (o.paranoia === '' ? s : s.replaceAll('|', o.paranoia));
  const fields = [
    entryCode(r),
    r.sourceChannel,
    r.destinationChannel,
    String(sizeInBlocks(r.size, o.blockSize)),
    guard(r.envFrom),
    guard(r.origRecipient),
    guard(r.recipient),
  ];
  if (o.reason) fields.push(guard(r.reason ?? ''));
  if (o.diagnostic) fields.push(r.diagnostic ?? '');
  return fields.join('|');
}

export interface LogActionSettings {
  readonly probe: ProbeOptions;
  /** `$N` keeps the record out of the log (mta.log_action_suppress). */
  readonly suppress: boolean;
  /** Records waiting for evaluation at most (mta.log_action_queue). */
  readonly queueLimit: number;
}

export interface LogActionEnv {
  /** The mappings of the current configuration (read once per record). */
  readonly mappings: () => MappingSet;
  readonly settings: () => LogActionSettings;
  readonly log: Logger;
  /** Every evaluation, as the access tables report theirs (phase "log"). */
  readonly onDecision?: DecisionSink;
}

export interface LogActionStats {
  readonly evaluated: number;
  readonly suppressed: number;
  /** Records written without evaluation because the queue was full. */
  readonly overflowed: number;
  readonly pending: number;
}

type Write = (r: TxRecord) => void;

interface Pending {
  readonly record: TxRecord;
  readonly probe: string;
  readonly set: MappingSet;
  readonly suppress: boolean;
  /** Called after evaluation unless suppressed; null when the record was written already. */
  readonly write: Write | null;
}

const OVERFLOW_LOG_EVERY_MS = 10_000;

export class LogAction {
  private readonly queue: Pending[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  private evaluated = 0;
  private suppressed = 0;
  private overflowed = 0;
  private overflowReported = 0;
  private lastOverflowLog = 0;

  constructor(private readonly env: LogActionEnv) {}

  /**
   * Offers a record; `write` is called (at once or later, in record order) unless LOG_ACTION
   * suppresses it. Never waits.
   */
  offer(r: TxRecord, write: Write): void {
    const set = this.env.mappings();
    const table = set.table(LOG_ACTION);
    if (table === undefined) {
      write(r);
      return;
    }
    const s = this.env.settings();
    const probe = logActionProbe(r, s.probe);
    const idle = this.queue.length === 0 && !this.running;
    if (table.pure && idle) {
      // No callouts: decide now (microseconds), nothing to wait for.
      if (this.apply(r, probe, mapSync(set, LOG_ACTION, probe), s.suppress)) write(r);
      return;
    }
    if (!s.suppress) write(r);
    if (this.queue.length >= s.queueLimit) {
      this.overflowed++;
      this.reportOverflow(s.queueLimit, false);
      if (s.suppress) write(r);
      return;
    }
    this.queue.push({ record: r, probe, set, suppress: s.suppress, write: s.suppress ? write : null });
    if (!this.running) void this.run();
  }

  /** Resolves when no record waits for evaluation. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && !this.running) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Waits up to `timeoutMs` for the queue to drain; records still waiting then are written
   * without evaluation, in order.
   */
  async close(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs)));
    const late = await Promise.race([this.idle().then(() => false), timedOut]);
    clearTimeout(timer);
    if (!late) return;
    const left = this.queue.splice(0);
    for (const p of left) p.write?.(p.record);
    this.env.log.log('warn', 'log-action-unevaluated', { records: left.length, reason: 'stopping: LOG_ACTION did not finish in time' });
  }

  stats(): LogActionStats {
    return { evaluated: this.evaluated, suppressed: this.suppressed, overflowed: this.overflowed, pending: this.queue.length };
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        const p = this.queue.shift();
        if (p === undefined) break;
        let keep = true;
        try {
          keep = this.apply(p.record, p.probe, await mapAsync(p.set, LOG_ACTION, p.probe), p.suppress);
        } catch (err) {
          // A fault in our code: the record is still written.
          this.env.log.log('error', 'log-action-fault', { probe: p.probe, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
        }
        if (keep) p.write?.(p.record);
      }
    } finally {
      this.running = false;
      if (this.overflowed !== this.overflowReported) this.reportOverflow(this.env.settings().queueLimit, true);
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Acts on a LOG_ACTION result; returns false when the record is to be left out of the log. */
  private apply(r: TxRecord, probe: string, res: MappingResult, suppress: boolean): boolean {
    this.evaluated++;
    const a = accessResult(res);
    const actions = accessActions(a);
    const rejects = a.decision === 'reject';
    const syslog = (text: string): void =>
      this.env.log.log('warn', 'mapping-syslog', { table: LOG_ACTION, text, code: entryCode(r), client: r.clientIp ?? null });
    if (actions.syslogOnMatch !== null) syslog(actions.syslogOnMatch);
    if (rejects && actions.syslogOnReject !== null) syslog(actions.syslogOnReject);
    this.env.onDecision?.({
      phase: 'log',
      table: LOG_ACTION,
      probe,
      inputFlags: '',
      matched: res.matched,
      output: res.output,
      flags: a.flags,
      entry: res.entry,
      decision: a.decision,
      reason: null,
    });
    if (rejects && suppress) {
      this.suppressed++;
      return false;
    }
    return true;
  }

  private reportOverflow(limit: number, force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastOverflowLog < OVERFLOW_LOG_EVERY_MS) return;
    this.lastOverflowLog = now;
    this.env.log.log('warn', 'log-action-overflow', {
      unevaluated: this.overflowed - this.overflowReported,
      total: this.overflowed,
      limit,
      detail: 'LOG_ACTION fell behind: these records were written without being offered to it (mta.log_action_queue)',
    });
    this.overflowReported = this.overflowed;
  }
}
