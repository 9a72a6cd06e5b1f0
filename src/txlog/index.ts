// The transaction log (spec §13) with LOG_ACTION (spec §8): the public surface.
//
// Writers of records — the SMTP session (E, J) and the queue runner (D, R, Q, ...) — see only
// `TransactionLog.record(r)`, which never waits: each record is offered to LOG_ACTION (in order,
// asynchronously when its callouts need to), then queued for the files unless `$N` suppressed it.
// The daemon owns the one `TxLog`: opened at start, reconfigured on reload, closed (flushed) on stop.

import type { TransactionLogOptions } from '../config/types.js';
import type { MappingSet } from '../mapping/index.js';
import type { DecisionSink } from '../policy/events.js';
import type { Logger } from '../telemetry/log.js';
import { LogAction } from './log-action.js';
import type { LogActionSettings, LogActionStats } from './log-action.js';
import type { TxRecord } from './record.js';
import { TxWriter } from './writer.js';
import type { WriterOptions } from './writer.js';

export type { ActionCode, Modifier, TxRecord } from './record.js';
export { entryCode, origRecipient, smtpDiagnostic, inboundModifiers } from './record.js';
export { enqueueRecords, queueRecord, rejectRecord } from './build.js';
export type { QueueEvent, QueueTarget, Refusal, SessionSide } from './build.js';
export { formatJsonLine, formatTextLine, jsonRecord, logDay, logTime, sizeInBlocks } from './format.js';
export type { JsonRecord, TextFormat } from './format.js';
export { LogAction, logActionProbe } from './log-action.js';
export type { LogActionSettings, ProbeOptions } from './log-action.js';
export { JSON_LOG, TEXT_LOG, TxWriter } from './writer.js';
export type { TxLogFormat, WriterOptions } from './writer.js';

/** What writers of records call. Never blocks; never throws for I/O. */
export interface TransactionLog {
  record(r: TxRecord): void;
}

/** Records nothing (tools and tests that do not look at the log). */
export const NO_TXLOG: TransactionLog = { record: () => undefined };

/** Collects records in memory (tests). */
export class MemoryTxLog implements TransactionLog {
  readonly records: TxRecord[] = [];
  record(r: TxRecord): void {
    this.records.push(r);
  }
}

/** The writer's settings from the options. */
export function writerOptions(o: TransactionLogOptions): WriterOptions {
  return {
    format: o.format,
    rotateSize: o.rotateSize,
    keep: o.keep,
    utc: o.utc,
    blockSize: o.blockSize,
    reason: (o.logReason & 1) !== 0,
    diagnostic: (o.logDiagnostics & 1) !== 0,
  };
}

/** LOG_ACTION's settings from the options. */
export function logActionSettings(o: TransactionLogOptions, paranoia: string): LogActionSettings {
  return {
    probe: { reason: (o.logReason & 2) !== 0, diagnostic: (o.logDiagnostics & 2) !== 0, blockSize: o.blockSize, paranoia },
    suppress: o.logActionSuppress,
    queueLimit: o.logActionQueue,
  };
}

export interface TxLogEnv {
  /** The log directory (`<datadir>/log`). */
  readonly dir: string;
  /** The current options (read per record by LOG_ACTION, at reconfigure() by the writer). */
  readonly options: () => TransactionLogOptions;
  /** mta.mapping_paranoia of the current configuration. */
  readonly paranoia: () => string;
  /** The current configuration's mappings. */
  readonly mappings: () => MappingSet;
  readonly log: Logger;
  readonly onDecision?: DecisionSink;
  /** Clock of the midnight rotation. */
  readonly now?: () => Date;
  /** Rotate at midnight even when no record arrives (the daemon; tests call writer.tick()). */
  readonly midnightTimer?: boolean;
  /** Lines kept per file while the disk fails. */
  readonly maxQueued?: number;
}

export class TxLog implements TransactionLog {
  readonly writer: TxWriter;
  readonly logAction: LogAction;
  private readonly write = (r: TxRecord): void => this.writer.append(r);

  constructor(private readonly env: TxLogEnv) {
    this.writer = new TxWriter(env.dir, writerOptions(env.options()), {
      log: env.log,
      now: env.now,
      midnightTimer: env.midnightTimer,
      maxQueued: env.maxQueued,
    });
    this.logAction = new LogAction({
      mappings: env.mappings,
      settings: () => logActionSettings(env.options(), env.paranoia()),
      log: env.log,
      onDecision: env.onDecision,
    });
  }

  record(r: TxRecord): void {
    try {
      this.logAction.offer(r, this.write);
    } catch (err) {
      // Never let logging break the caller (an SMTP session, the runner).
      this.env.log.log('error', 'txlog-fault', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  }

  /** A reload: the writer takes the new options (LOG_ACTION reads them per record anyway). */
  reconfigure(): void {
    this.writer.reconfigure(writerOptions(this.env.options()));
  }

  /** Resolves when every record given so far is evaluated and written. */
  async flush(): Promise<void> {
    await this.logAction.idle();
    await this.writer.flush();
  }

  stats(): LogActionStats & { written: number; dropped: number; writeErrors: number } {
    const w = this.writer.stats();
    return { ...this.logAction.stats(), written: w.written, dropped: w.dropped, writeErrors: w.errors };
  }

  /** Lets LOG_ACTION finish (up to `timeoutMs`), writes everything, closes the files. */
  async close(timeoutMs = 5000): Promise<void> {
    await this.logAction.close(timeoutMs);
    await this.writer.close();
  }
}
