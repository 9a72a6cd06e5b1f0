// Which channel a session is on, and which channel an address goes to (spec §6.3). A session
// starts on its service's channel (25: tcp_local; 587 and 465: tcp_submit). If that channel has
// `switchchannel`, the client's address is rewritten as a reverse envelope address "[ip]"; the
// default `[]` rule asks INTERNAL_IP and sends internal clients to tcp_intranet. STARTTLS and AUTH
// may switch again (tlsswitchchannel, saslswitchchannel). Recipients are rewritten as forward
// envelope addresses to find their destination channel.

import type { ServiceName } from '../policy/session-policy.js';
import type { Channel, ChannelTable, SaslMode, TlsMode } from './model.js';
import type { MapTable, Rewriter, RewriteResult } from './rewrite.js';

/** The channel each service starts on (Messaging Server's dispatcher PARAMETER=CHANNEL). */
export const SERVICE_CHANNELS: Readonly<Record<ServiceName, string>> = {
  smtp: 'tcp_local',
  submit: 'tcp_submit',
  smtps: 'tcp_submit',
};

export class Router {
  constructor(
    readonly channels: ChannelTable,
    private readonly rewriter: Rewriter,
  ) {}

  /** The session's channel at connect: the service's, or where switchchannel sends this client. */
  async sourceChannel(service: ServiceName, clientIp: string, map: MapTable): Promise<{ channel: string; switched: RewriteResult | null }> {
    const initial = this.channels.get(SERVICE_CHANNELS[service]);
    if (initial === undefined || initial.switching !== 'switch') return { channel: SERVICE_CHANNELS[service], switched: null };
    const literal = clientIp.includes(':') ? `[IPv6:${clientIp}]` : `[${clientIp}]`;
    const r = await this.rewriter.rewriteParts('', literal, { envelope: true, reverse: true }, map);
    if (r === null || r.channel.name === initial.name || r.channel.switching === 'no') return { channel: initial.name, switched: null };
    return { channel: r.channel.name, switched: r };
  }

  afterTls(channel: string): string {
    return this.channels.get(channel)?.tlsSwitchTo ?? channel;
  }

  afterAuth(channel: string): string {
    return this.channels.get(channel)?.saslSwitchTo ?? channel;
  }

  /** A channel that does not set a SASL or TLS mode inherits its service channel's. */
  sasl(channel: string, service: ServiceName): SaslMode {
    return this.channels.get(channel)?.sasl ?? this.channels.get(SERVICE_CHANNELS[service])?.sasl ?? 'none';
  }

  tls(channel: string, service: ServiceName): TlsMode {
    return this.channels.get(channel)?.tls ?? this.channels.get(SERVICE_CHANNELS[service])?.tls ?? 'none';
  }

  /** The destination channel of a recipient (a forward envelope address). */
  destination(address: string, map: MapTable): Promise<RewriteResult | null> {
    return this.rewriter.rewrite(address, { envelope: true, reverse: false }, map);
  }

  channel(name: string): Channel | undefined {
    return this.channels.get(name);
  }
}
