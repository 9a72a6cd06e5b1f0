// A policy decision as a value: which table was asked what, and which entry answered. The
// transaction log and metrics consume these; `portcullis test session` prints them.

import type { SourcePos } from '../mapping/errors.js';
import type { VerdictReason } from './verdict.js';

/** `log`: LOG_ACTION, offered each transaction record (spec §8). */
export type DecisionPhase = 'connect' | 'mail' | 'rcpt' | 'routing' | 'log';

export interface DecisionEvent {
  readonly phase: DecisionPhase;
  /** The mapping table (PORT_ACCESS, FROM_ACCESS, ...), or a built-in check. */
  readonly table: string;
  readonly probe: string;
  /** Input flags set on the probe (letters). */
  readonly inputFlags: string;
  readonly matched: boolean;
  readonly output: string;
  /** Output flags (letters). */
  readonly flags: string;
  /** The entry that decided, or null (no entry matched, or a built-in check). */
  readonly entry: SourcePos | null;
  readonly decision: 'allow' | 'reject' | 'none';
  readonly reason: VerdictReason | null;
}

export type DecisionSink = (e: DecisionEvent) => void;
