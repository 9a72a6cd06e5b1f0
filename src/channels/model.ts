// Channels as imta.cnf defines them (spec §6.1–§6.2, §6.5): each block names a channel, its
// keywords and its host names; a `defaults` block sets keywords for the blocks after it. Keywords
// come in groups whose members exclude each other (switchchannel / allowswitchchannel /
// noswitchchannel, the SASL modes, the TLS modes); a channel's own keyword replaces the default
// from its group. This module turns the parsed file into that effective view.

import { CHANNEL_KEYWORDS, isoDurationMs } from '../config/imta-cnf.js';
import type { ChannelDef, ChannelKeyword, ImtaConfig } from '../config/imta-cnf.js';
import type { ConfigProblem } from '../config/types.js';
import type { SourcePos } from '../mapping/errors.js';

export type SwitchMode = 'switch' | 'allow' | 'no';
export type SaslMode = 'may' | 'must' | 'none';
export type TlsMode = 'may' | 'must' | 'none';

export interface Channel {
  readonly name: string;
  /** The official host name first (what rewrite templates route to), then the others. */
  readonly hosts: readonly string[];
  /** switchchannel (may switch away on connect), allowswitchchannel, noswitchchannel. */
  readonly switching: SwitchMode;
  /** SMTP AUTH on sessions on this channel; null when the channel does not say (see effective*). */
  readonly sasl: SaslMode | null;
  readonly tls: TlsMode | null;
  readonly saslSwitchTo: string | null;
  readonly tlsSwitchTo: string | null;
  /** The channel's delivery keywords; null where it (and its defaults) say nothing. */
  readonly delivery: ChannelDelivery;
  readonly pos: SourcePos;
}

/** Delivery keywords of a channel block (Messaging Server's job controller settings). */
export interface ChannelDelivery {
  /** `smtp` or `lmtp`: how the channel delivers; null where the block says neither. */
  readonly protocol: 'smtp' | 'lmtp' | null;
  /** `backoff`: waits before the 1st, 2nd, ... retry (ms); the last repeats. */
  readonly backoffMs: readonly number[] | null;
  /** `notices`: days; the last is when undelivered mail is returned, the others when the sender is warned. */
  readonly noticesDays: readonly number[] | null;
  /** `maxjobs`: deliveries in progress at once on this channel. */
  readonly maxJobs: number | null;
}

/** Keyword groups: a keyword from a group replaces any other keyword of the same group. */
const GROUPS: readonly (readonly string[])[] = [
  ['switchchannel', 'allowswitchchannel', 'noswitchchannel'],
  ['maysaslserver', 'mustsaslserver', 'nosasl', 'nosaslserver', 'maysasl', 'mustsasl'],
  ['maytlsserver', 'musttlsserver', 'maytls', 'musttls'],
  ['saslswitchchannel', 'nosaslswitchchannel'],
  ['tlsswitchchannel'],
];

/** Keywords with an effect today; any other recognised keyword draws a "not implemented yet" warning. */
export const IMPLEMENTED_KEYWORDS: ReadonlySet<string> = new Set([
  ...GROUPS.flat(),
  // Descriptive keywords whose meaning is the channel's role, with nothing to do at SMTP time.
  'smtp',
  'submit',
  'mx',
  'single_sys',
  // Delivery (queue runner): protocol, retry schedule, return time, concurrency.
  'lmtp',
  'backoff',
  'notices',
  'maxjobs',
]);

function groupOf(name: string): number {
  return GROUPS.findIndex((g) => g.includes(name));
}

function merge(defaults: readonly ChannelKeyword[], own: readonly ChannelKeyword[]): ChannelKeyword[] {
  const out = new Map<string, ChannelKeyword>();
  const keyOf = (k: ChannelKeyword): string => {
    const g = groupOf(k.name);
    return g >= 0 ? `group:${g}` : k.name;
  };
  for (const k of defaults) out.set(keyOf(k), k);
  for (const k of own) out.set(keyOf(k), k);
  return [...out.values()];
}

export class ChannelTable {
  private readonly byName = new Map<string, Channel>();
  private readonly byHost = new Map<string, Channel>();

  constructor(channels: readonly Channel[]) {
    for (const c of channels) {
      this.byName.set(c.name.toLowerCase(), c);
      for (const h of c.hosts) if (!this.byHost.has(h.toLowerCase())) this.byHost.set(h.toLowerCase(), c);
    }
  }

  get(name: string): Channel | undefined {
    return this.byName.get(name.toLowerCase());
  }

  /** The channel one of whose host names this is (routing: `...@tcp-daemon` → tcp_local). */
  forHost(host: string): Channel | undefined {
    return this.byHost.get(host.toLowerCase());
  }

  get all(): readonly Channel[] {
    return [...this.byName.values()];
  }
}

export interface BuiltChannels {
  readonly table: ChannelTable;
  readonly problems: ConfigProblem[];
}

/** Builds the effective channels; unknown references are errors, unimplemented keywords warnings. */
export function buildChannels(cnf: ImtaConfig): BuiltChannels {
  const problems: ConfigProblem[] = [];
  const warned = new Set<string>();
  const channels: Channel[] = [];
  let defaults: readonly ChannelKeyword[] = [];
  for (const block of cnf.blocks) {
    for (const k of block.keywords) {
      // Unknown keywords were already reported by the parser; here: known ones we do not act on yet.
      if (CHANNEL_KEYWORDS.has(k.name) && !IMPLEMENTED_KEYWORDS.has(k.name) && !warned.has(k.name)) {
        warned.add(k.name);
        problems.push({ ...k.pos, severity: 'warning', code: 'keyword-not-implemented', message: `channel keyword ${k.name} is recognised but has no effect in Portcullis yet` });
      }
    }
    if (block.kind === 'defaults') {
      defaults = merge(defaults, block.keywords);
      continue;
    }
    channels.push(channelFrom(block, merge(defaults, block.keywords)));
  }
  const table = new ChannelTable(channels);
  for (const c of channels) {
    for (const [target, kw] of [
      [c.saslSwitchTo, 'saslswitchchannel'],
      [c.tlsSwitchTo, 'tlsswitchchannel'],
    ] as const) {
      if (target !== null && table.get(target) === undefined) {
        problems.push({ ...c.pos, severity: 'error', code: 'unknown-channel', message: `${c.name}: ${kw} names channel ${target}, which is not defined` });
      }
    }
  }
  return { table, problems };
}

function channelFrom(def: ChannelDef, kws: readonly ChannelKeyword[]): Channel {
  const has = (n: string): ChannelKeyword | undefined => kws.find((k) => k.name === n);
  const switching: SwitchMode = has('switchchannel') ? 'switch' : has('allowswitchchannel') ? 'allow' : has('noswitchchannel') ? 'no' : 'allow';
  const sasl: SaslMode | null =
    has('mustsaslserver') || has('mustsasl') ? 'must' : has('maysaslserver') || has('maysasl') ? 'may' : has('nosasl') || has('nosaslserver') ? 'none' : null;
  const tls: TlsMode | null = has('musttlsserver') || has('musttls') ? 'must' : has('maytlsserver') || has('maytls') ? 'may' : null;
  const sw = has('saslswitchchannel');
  const tsw = has('tlsswitchchannel');
  return {
    name: def.name,
    hosts: def.hosts,
    switching,
    sasl,
    tls,
    saslSwitchTo: sw?.args[0] ?? null,
    tlsSwitchTo: tsw?.args[0] ?? null,
    delivery: deliveryOf(has),
    pos: def.pos,
  };
}

function deliveryOf(has: (n: string) => ChannelKeyword | undefined): ChannelDelivery {
  const backoff = has('backoff')?.args.map(isoDurationMs).filter((v): v is number => v !== null) ?? [];
  const notices = has('notices')?.args.map(Number).filter((v) => Number.isInteger(v) && v > 0) ?? [];
  const maxJobs = Number(has('maxjobs')?.args[0] ?? NaN);
  return {
    protocol: has('lmtp') ? 'lmtp' : has('smtp') ? 'smtp' : null,
    backoffMs: backoff.length > 0 ? backoff : null,
    noticesDays: notices.length > 0 ? notices : null,
    maxJobs: Number.isInteger(maxJobs) && maxJobs > 0 ? maxJobs : null,
  };
}
