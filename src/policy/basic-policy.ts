// The built-in policy: secure defaults without an access table. Submission ports require AUTH;
// recipients in hosted domains must exist; anything else is relaying, allowed only after AUTH.
// The access-table policy replaces this with the decisions of the mappings file.

import type { Directory } from '../directory/types.js';
import { reply } from '../smtp/codes.js';
import { REPLY } from '../smtp/codes.js';
import type { MailParams, Path, RcptParams } from '../smtp/commands.js';
import type { Answer, ConnectionFacts, SessionFacts, SessionPolicy } from './session-policy.js';
import { ACCEPT, rejectWith } from './verdict.js';

export class BasicPolicy implements SessionPolicy {
  constructor(
    private readonly directory: () => Directory,
    private readonly options: () => { readonly greetingDelayMs: number },
  ) {}

  connect(_c: ConnectionFacts): Answer {
    return ACCEPT;
  }

  greetingDelay(_c: ConnectionFacts): number {
    return this.options().greetingDelayMs;
  }

  earlyTalker(_c: ConnectionFacts): Answer {
    return rejectWith('builtin:early-talker', REPLY.earlyTalker, true);
  }

  mail(s: SessionFacts, _from: Path, _params: MailParams): Answer {
    if (s.service !== 'smtp' && s.authUser === null) return rejectWith('builtin:auth-required', REPLY.authRequired);
    return ACCEPT;
  }

  rcpt(s: SessionFacts, _from: Path, to: Path, _params: RcptParams): Answer {
    const dir = this.directory();
    if (to.domain === '' || dir.domain(to.domain) !== undefined) {
      // RFC 5321 §4.5.1: postmaster must be accepted for every hosted domain.
      if (to.local.toLowerCase() === 'postmaster' || dir.userByAddress(to.mailbox) !== undefined) return ACCEPT;
      return rejectWith('builtin:unknown-recipient', reply(550, '5.1.1', `User unknown: ${to.mailbox}`));
    }
    if (s.authUser !== null) return ACCEPT;
    return rejectWith('builtin:relay-denied', reply(550, '5.7.1', `Relaying not allowed: ${to.mailbox}`));
  }

  message(): Answer {
    return ACCEPT;
  }
}
