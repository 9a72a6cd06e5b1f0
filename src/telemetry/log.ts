// Structured log records: one JSON object per line, with a time, a level and an event name. The
// daemon writes them to standard error and to <dataDir>/log/portcullis.log; tests collect them.

export type Level = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined | readonly string[]>>;

export interface Logger {
  log(level: Level, event: string, fields?: LogFields): void;
}

export function logLine(level: Level, event: string, fields: LogFields = {}, now = new Date()): string {
  return JSON.stringify({ time: now.toISOString(), level, event, ...fields }) + '\n';
}

/** A logger writing JSON lines to each sink. */
export function jsonLogger(sinks: readonly { write(s: string): unknown }[], minLevel: Level = 'info'): Logger {
  const order: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
  return {
    log(level, event, fields) {
      if (order[level] < order[minLevel]) return;
      const line = logLine(level, event, fields);
      for (const s of sinks) s.write(line);
    },
  };
}

/** Collects records in memory (tests, `portcullis test session`). */
export class MemoryLogger implements Logger {
  readonly records: { level: Level; event: string; fields: LogFields }[] = [];
  log(level: Level, event: string, fields: LogFields = {}): void {
    this.records.push({ level, event, fields });
  }
}

export const NULL_LOGGER: Logger = { log() {} };
