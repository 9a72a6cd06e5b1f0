// How each destination channel delivers (the runner's Deliverer): Internet channels (tcp_*) by
// SMTP to the recipient domain's MX hosts or to the smarthost; the message store (ims-ms, and the
// local channel l) by LMTP to delivery.lmtp.server, or into the embedded Maildir store when none is
// set; bitbucket discards. A channel with no delivery method fails its recipients permanently
// rather than keeping them queued for ever.

import type { DeliveryOptions } from '../config/types.js';
import { deliverToMaildir, maildirOf } from '../delivery/maildir.js';
import type { DeliveryAttempt, Destination, OutboundMessage, RecipientOutcome, Transport } from '../delivery/index.js';
import type { Deliverer, DeliveryGroup } from './runner.js';
import type { EnvelopeV1, MessageSource } from './spool.js';
import type { Target, TargetOutcome } from './state.js';
import { splitAddress } from '../channels/rewrite.js';

export interface ChannelDelivererDeps {
  readonly options: () => DeliveryOptions;
  readonly smtp: Transport;
  /** Built when delivery.lmtp.server is set. */
  readonly lmtp: () => Transport | null;
  /** Root of the embedded Maildir store (<dataDir>/mailboxes). */
  readonly mailboxRoot: string;
  /** Whether a mailbox exists (the directory's users). */
  readonly mailboxExists: (address: string) => boolean;
  /** The `smtp`/`lmtp` keyword of a channel in imta.cnf (null: neither, or no such channel). */
  readonly protocolOf?: (channel: string) => 'smtp' | 'lmtp' | null;
}

const STORE_CHANNELS = new Set(['ims-ms', 'l']);

/** The domain of an address; a source route "@a,@b:u@c" goes to its first hop "a". */
function domainOf(address: string): string {
  return splitAddress(address).domain.toLowerCase();
}

/**
 * How a channel delivers: the message store (ims-ms, l, or any channel with the `lmtp` keyword,
 * as Messaging Server's tcp_lmtpcs), SMTP (a channel with the `smtp` keyword, or named tcp_*),
 * bitbucket, or nothing.
 */
function kindOf(channel: string, protocol: 'smtp' | 'lmtp' | null): 'store' | 'smtp' | 'discard' | 'none' {
  if (STORE_CHANNELS.has(channel) || protocol === 'lmtp') return 'store';
  if (channel === 'bitbucket') return 'discard';
  if (protocol === 'smtp' || channel.startsWith('tcp_')) return 'smtp';
  return 'none';
}

/** A transport's outcome as the state records it: diagnostic in DSN Diagnostic-Code form; `a` says whether the session was LMTP and TLS. */
export function targetOutcome(o: RecipientOutcome, a: Pick<DeliveryAttempt, 'lmtp' | 'tls'>): TargetOutcome {
  const status = o.enhanced ?? (o.kind === 'delivered' ? '2.0.0' : o.kind === 'permanent' ? '5.0.0' : '4.0.0');
  const text = `${o.code} ${o.enhanced !== null ? `${o.enhanced} ` : ''}${o.text}`.trim();
  return { kind: o.kind, diagnostic: `${o.origin === 'remote' ? 'smtp' : 'x-local'};${text}`, remote: o.remote, dsnStatus: status, via: { lmtp: a.lmtp, tls: a.tls } };
}

function outbound(env: EnvelopeV1, targets: readonly Target[], open: () => NodeJS.ReadableStream | Buffer): OutboundMessage {
  const body = env.senderParams.body?.toUpperCase();
  return {
    id: env.id,
    sender: env.sender,
    recipients: targets.map((t) => {
      const r = env.recipients[t.rcpt];
      return { address: t.address, orcpt: r?.orcpt ?? null, notify: r?.notify ?? [] };
    }),
    size: env.size,
    envid: env.senderParams.envid,
    ret: env.senderParams.ret === 'FULL' || env.senderParams.ret === 'HDRS' ? env.senderParams.ret : null,
    body8bit: body === '8BITMIME' || body === 'BINARYMIME',
    smtputf8: env.senderParams.smtputf8,
    open,
  };
}

/** What a transport reads the message from: the buffer of a small message, new streams of a large one. */
async function opener(message: MessageSource): Promise<() => NodeJS.ReadableStream | Buffer> {
  if (message.streamed) return message.streams();
  const b = await message.buffer();
  return () => b;
}

export class ChannelDeliverer implements Deliverer {
  constructor(private readonly deps: ChannelDelivererDeps) {}

  private kind(channel: string): ReturnType<typeof kindOf> {
    return kindOf(channel, this.deps.protocolOf?.(channel) ?? null);
  }

  destinationOf(t: Target): string {
    switch (this.kind(t.channel)) {
      case 'store':
        return 'store';
      case 'discard':
        return 'bitbucket';
      case 'smtp': {
        const smart = this.deps.options().smarthost;
        return smart !== null ? `smarthost:${smart.host}:${smart.port}` : `mx:${domainOf(t.address)}`;
      }
      case 'none':
        return `channel:${t.channel}`;
    }
  }

  async deliver(group: DeliveryGroup, env: EnvelopeV1, message: MessageSource, signal?: AbortSignal): Promise<TargetOutcome[]> {
    const opts = signal !== undefined ? { signal } : {};
    const kind = this.kind(group.channel);
    if (kind === 'discard') return group.targets.map(() => ({ kind: 'delivered', diagnostic: 'x-local;discarded', remote: null, dsnStatus: '2.0.0' }));
    if (kind === 'none') {
      return group.targets.map(() => ({ kind: 'permanent', diagnostic: `x-local;550 5.3.5 channel ${group.channel} has no delivery method`, remote: null, dsnStatus: '5.3.5' }));
    }
    if (kind === 'store') {
      const lmtp = this.deps.lmtp();
      const server = this.deps.options().lmtp;
      if (lmtp !== null && server !== null) {
        const r = await lmtp.deliver({ kind: 'host', host: server.host, port: server.port }, outbound(env, group.targets, await opener(message)), opts);
        // An LMTP server is the message store: a 250 after DATA is final delivery.
        return r.outcomes.map((o) => ({ ...targetOutcome(o, r), final: true }));
      }
      return Promise.all(group.targets.map((t) => this.toMaildir(t, env, message)));
    }
    const smart = this.deps.options().smarthost;
    const dest: Destination = smart !== null ? { kind: 'host', host: smart.host, port: smart.port } : { kind: 'mx', domain: domainOf(group.targets[0]?.address ?? '') };
    const r = await this.deps.smtp.deliver(dest, outbound(env, group.targets, await opener(message)), opts);
    return r.outcomes.map((o) => targetOutcome(o, r));
  }

  private async toMaildir(t: Target, env: EnvelopeV1, message: MessageSource): Promise<TargetOutcome> {
    const dir = maildirOf(this.deps.mailboxRoot, t.address);
    if (dir === null || !this.deps.mailboxExists(t.address)) {
      return { kind: 'permanent', diagnostic: `x-local;550 5.1.1 no mailbox for ${t.address}`, remote: null, dsnStatus: '5.1.1' };
    }
    const content = await message.buffer(); // a spool read error is the runner's (retried), not the mailbox's
    try {
      await deliverToMaildir(dir, env.sender, t.address, content);
      return { kind: 'delivered', diagnostic: 'x-local;250 2.0.0 delivered to the embedded store', remote: null, dsnStatus: '2.0.0', final: true };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return { kind: 'temporary', diagnostic: `x-local;451 4.3.0 cannot write the mailbox (${code})`, remote: null, dsnStatus: '4.3.0' };
    }
  }
}
