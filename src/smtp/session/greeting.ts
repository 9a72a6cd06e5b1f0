// Connection start (RFC 5321 §3.1, §4.3.1): policy at connect (PORT_ACCESS in the access-table
// policy), an optional greeting delay during which a client that talks first is an early talker
// (a spam-bot trait; the check belongs to policy), then the 220 greeting.

import type { Session } from './session.js';

export async function greet(s: Session): Promise<void> {
  const facts = s.connectionFacts();
  const policy = s.env.policy();
  const verdict = await policy.connect(facts);
  if (await s.refuse(verdict)) {
    // A connect-time rejection always ends the connection (spec §4.5).
    s.close();
    return;
  }
  s.state.channel = await policy.sourceChannel(facts);
  if (s.state.closing) return;
  const delay = policy.greetingDelay(facts);
  if (delay > 0) {
    await s.delay(delay);
    if (s.state.closing) return;
    if (s.clientTalkedEarly) {
      s.env.log.log('info', 'smtp-early-talker', { client: s.state.clientIp });
      if (await s.refuse(await policy.earlyTalker(facts))) return;
    }
  }
  s.send({ code: 220, enhanced: null, lines: [`${s.options.hostname} ESMTP Portcullis`] });
}
