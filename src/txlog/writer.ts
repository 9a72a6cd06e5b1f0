// Writes transaction records to `<dir>/mail.log_current` (text) and `<dir>/mail.jsonl` (JSON
// lines), whichever log.transactions.format asks for, without ever making a caller wait for the
// disk: append() formats the record and queues its lines; one background pump writes the queues
// in order, batching whatever arrived meanwhile into one write per file. Rotation (log-file.ts)
// happens between writes, so no record is lost or split across files. A write error is logged and
// retried with back-off; close() writes what is queued and closes the files.

import type { Logger } from '../telemetry/log.js';
import { formatJsonLine, formatTextLine, logDay } from './format.js';
import type { TextFormat } from './format.js';
import { RotatingFile } from './log-file.js';
import type { RotationPolicy } from './log-file.js';
import type { TxRecord } from './record.js';

export type TxLogFormat = 'text' | 'json' | 'both' | 'none';

/** File names inside the log directory. */
export const TEXT_LOG = { current: 'mail.log_current', base: 'mail.log' } as const;
export const JSON_LOG = { current: 'mail.jsonl', base: 'mail.jsonl' } as const;

export interface WriterOptions extends TextFormat, RotationPolicy {
  readonly format: TxLogFormat;
}

export interface WriterHooks {
  readonly log?: Logger;
  /** The clock of the midnight tick. */
  readonly now?: () => Date;
  /** Lines kept per file while the disk fails; past it records are dropped and counted. */
  readonly maxQueued?: number;
  /** Run the midnight rotation timer (the daemon does; tests call tick()). */
  readonly midnightTimer?: boolean;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;
const ERROR_LOG_EVERY_MS = 10_000;

export class TxWriter {
  private options: WriterOptions;
  private readonly text: RotatingFile;
  private readonly json: RotatingFile;
  private readonly log: Logger | undefined;
  private readonly now: () => Date;
  private pumping: Promise<void> | null = null;
  private tickDue: string | null = null;
  private closed = false;
  private closing = false;
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private midnight: NodeJS.Timeout | null = null;
  private lastErrorLog = 0;
  private errorsSuppressed = 0;
  private droppedReported = 0;
  /** Write errors seen (each retried). */
  errors = 0;

  constructor(
    readonly dir: string,
    options: WriterOptions,
    hooks: WriterHooks = {},
  ) {
    this.options = options;
    this.log = hooks.log;
    this.now = hooks.now ?? (() => new Date());
    const max = hooks.maxQueued ?? 200_000;
    const rotated = (archive: string): void => this.log?.log('info', 'txlog-rotated', { archive });
    this.text = new RotatingFile(dir, TEXT_LOG.current, TEXT_LOG.base, max, rotated);
    this.json = new RotatingFile(dir, JSON_LOG.current, JSON_LOG.base, max, rotated);
    if (hooks.midnightTimer === true) this.armMidnight();
  }

  private get files(): RotatingFile[] {
    return [this.text, this.json];
  }

  /** Queues a record; never waits. After close() the record is appended synchronously. */
  append(r: TxRecord): void {
    const o = this.options;
    const day = logDay(r.time, o.utc);
    const text = o.format === 'text' || o.format === 'both' ? formatTextLine(r, o) : null;
    const json = o.format === 'json' || o.format === 'both' ? formatJsonLine(r) : null;
    if (this.closed) {
      try {
        if (text !== null) this.text.appendNow(text);
        if (json !== null) this.json.appendNow(json);
      } catch (err) {
        this.log?.log('error', 'txlog-write-failed', { file: this.dir, error: errorText(err), pending: 1 });
      }
      return;
    }
    if (text !== null) this.text.enqueue({ line: text, day });
    if (json !== null) this.json.enqueue({ line: json, day });
    this.kick();
  }

  /** Takes new options (a reload); they apply to records appended from now on. */
  reconfigure(options: WriterOptions): void {
    this.options = options;
  }

  /** Resolves when every record appended before the call is written (or the writer is closed). */
  async flush(): Promise<void> {
    while (this.pumping !== null) await this.pumping;
  }

  /** Rotates files that hold an earlier day's records than `now`'s (the midnight tick). */
  async tick(now: Date = this.now()): Promise<void> {
    this.tickDue = logDay(now, this.options.utc);
    this.kick();
    await this.flush();
  }

  stats(): { written: number; dropped: number; errors: number; pending: number } {
    return {
      written: this.text.written + this.json.written,
      dropped: this.text.dropped + this.json.dropped,
      errors: this.errors,
      pending: this.text.pending + this.json.pending,
    };
  }

  /** Writes what is queued (one more try if the disk was failing), then closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    if (this.midnight !== null) clearTimeout(this.midnight);
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.retryMs = 0;
      this.kick();
    }
    await this.flush();
    let lost = 0;
    for (const f of this.files) {
      lost += f.discard();
      await f.close().catch(() => undefined);
    }
    if (lost > 0) this.log?.log('error', 'txlog-records-lost', { records: lost, reason: 'the log files could not be written before stopping' });
    this.closed = true;
  }

  private kick(): void {
    if (this.pumping !== null || this.retryTimer !== null) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      // Lines queued while the last write finished are picked up by a new pump.
      if (this.hasWork() && this.retryTimer === null) this.kick();
    });
  }

  private hasWork(): boolean {
    return this.text.pending > 0 || this.json.pending > 0 || this.tickDue !== null;
  }

  private async pump(): Promise<void> {
    const o = this.options;
    try {
      while (this.hasWork()) {
        for (const f of this.files) await f.drain(this.options);
        const today = this.tickDue;
        if (today !== null) {
          for (const f of this.files) await f.rotateIfBefore(today, o);
          this.tickDue = null;
        }
      }
      this.retryMs = 0;
      this.reportDrops();
    } catch (err) {
      this.errors++;
      this.reportError(err);
      if (this.closing) {
        this.tickDue = null;
        return;
      }
      // Lines stay queued; try again after a pause that grows while the disk keeps failing.
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs === 0 ? RETRY_MIN_MS : this.retryMs * 2);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.kick();
      }, this.retryMs);
      this.retryTimer.unref();
    }
  }

  private reportError(err: unknown): void {
    const now = Date.now();
    if (now - this.lastErrorLog < ERROR_LOG_EVERY_MS && !this.closing) {
      this.errorsSuppressed++;
      return;
    }
    this.lastErrorLog = now;
    this.log?.log('error', 'txlog-write-failed', {
      file: this.dir,
      error: errorText(err),
      pending: this.text.pending + this.json.pending,
      suppressed: this.errorsSuppressed,
    });
    this.errorsSuppressed = 0;
  }

  private reportDrops(): void {
    const dropped = this.text.dropped + this.json.dropped;
    if (dropped === this.droppedReported) return;
    this.log?.log('error', 'txlog-records-dropped', { lines: dropped - this.droppedReported, total: dropped });
    this.droppedReported = dropped;
  }

  /** Arms a timer for the next midnight of the log's zone (re-armed after each). */
  private armMidnight(): void {
    const n = this.now();
    const next = this.options.utc
      ? Date.UTC(n.getUTCFullYear(), n.getUTCMonth(), n.getUTCDate() + 1)
      : new Date(n.getFullYear(), n.getMonth(), n.getDate() + 1).getTime();
    // A second past midnight, so the new day has certainly begun on this clock.
    const ms = Math.max(1000, next - n.getTime() + 1000);
    this.midnight = setTimeout(() => {
      void this.tick().finally(() => {
        if (!this.closing) this.armMidnight();
      });
    }, ms);
    this.midnight.unref();
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
