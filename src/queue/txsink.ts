// What the queue runner tells the transaction log (spec §13): E when it enqueues a message of its
// own (a DSN), D when a target is delivered, Q when it is deferred, R when it fails. The daemon
// connects this to the transaction log; tests collect the calls.

import type { EnvelopeV1 } from './spool.js';
import type { Target, TargetOutcome } from './state.js';

export interface TxSink {
  enqueued(env: EnvelopeV1, channel: string): void;
  /** `via`: the delivery's protocol and TLS, when a transport delivered it (the D record's modifiers). */
  dequeued(env: EnvelopeV1, target: Target, channel: string, via?: TargetOutcome['via']): void;
  deferred(env: EnvelopeV1, target: Target, channel: string): void;
  failed(env: EnvelopeV1, target: Target, channel: string): void;
}

/** A sink that records nothing. */
export const NO_TX: TxSink = {
  enqueued: () => undefined,
  dequeued: () => undefined,
  deferred: () => undefined,
  failed: () => undefined,
};
