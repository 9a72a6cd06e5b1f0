// Envelopes for the queue's unit tests (src/queue/*.test.ts, src/cli/qm-commands.test.ts): the
// shape the submission port writes for alice@example.test sending from her laptop with SMTP AUTH.
// Each test file sets what it cares about (id, receivedAt, size, sender parameters) through `more`.
// Kept out of src/ so that the build (tsconfig.build.json) does not ship it.

import type { EnvelopeRecipient, EnvelopeV1 } from '../../src/queue/spool.js';

/** A recipient not tried yet, on channel tcp_local unless `more` says otherwise. */
export function rcpt(address: string, more: Partial<EnvelopeRecipient> = {}): EnvelopeRecipient {
  return { address, orcpt: null, notify: null, channel: 'tcp_local', status: 'pending', ...more };
}

/** MAIL FROM parameters: none, unless `more` gives some. */
export function senderParams(more: Partial<EnvelopeV1['senderParams']> = {}): EnvelopeV1['senderParams'] {
  return { size: null, body: null, smtputf8: false, ret: null, envid: null, auth: null, ...more };
}

/** alice@example.test's message to `recipients`, MAIL FROM without parameters; `more` overrides any field. */
export function submission(recipients: EnvelopeRecipient[], more: Partial<EnvelopeV1> = {}): EnvelopeV1 {
  return {
    version: 1,
    id: 'mwucy2bc-6f58dee3d6',
    receivedAt: '2026-11-24T07:12:54.120Z',
    sender: 'alice@example.test',
    senderParams: senderParams(),
    recipients,
    sourceChannel: 'tcp_auth',
    service: 'submit',
    auth: 'alice@example.test',
    client: { ip: '203.0.113.5', port: 51234, helo: 'laptop', via: null },
    tls: null,
    size: 0,
    flags: [],
    ...more,
  };
}
