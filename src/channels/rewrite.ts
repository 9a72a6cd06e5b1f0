// Rewrite rules (imta.cnf part I; spec §6.4–§6.5): how an address's domain leads to a channel.
//
// A domain is looked up most specific first — "a.b.c", ".b.c", ".c", "." — and a domain literal
// "[1.2.3.4]" as "[1.2.3.4]", "[1.2.3.]", "[1.2.]", "[1.]", "[]". The rules for a pattern are
// tried in file order; a rule whose control sequences do not fit the address ($E envelope only,
// $B header only, $F forward only, $R reverse only) or whose `${TABLE,arg}` mapping does not
// answer $Y fails, and the next rule is tried. The template's output "local%domain@host" says:
// the address is local@domain, and it goes to the channel whose host name is `host`. Channel host
// names are themselves implicit rules, so a template naming a host that no channel has is
// rewritten again, up to a few times.
//
// Supported template pieces: $U (user), $D (the matched part of the domain), $H (the part of the
// domain left of the match, with its dot), $L (the unmatched part of a domain literal), $$, and the
// control sequences above. Anything else is a configuration error (docs/compatibility.md).

import type { RewriteRule } from '../config/imta-cnf.js';
import type { ConfigProblem } from '../config/types.js';
import type { SourcePos } from '../mapping/errors.js';
import type { Channel, ChannelTable } from './model.js';

type Piece =
  | { readonly k: 'text'; readonly s: string }
  | { readonly k: 'var'; readonly v: 'U' | 'D' | 'H' | 'L' }
  | { readonly k: 'map'; readonly table: string; readonly arg: readonly Piece[] };

export interface CompiledRule {
  readonly pattern: string;
  readonly source: string;
  readonly pieces: readonly Piece[];
  /** Control sequences: the rule applies only to these kinds of address. */
  readonly envelopeOnly: boolean;
  readonly headerOnly: boolean;
  readonly forwardOnly: boolean;
  readonly reverseOnly: boolean;
  readonly pos: SourcePos;
}

/** What a rewrite is applied to. */
export interface RewriteContext {
  /** Envelope address (MAIL FROM/RCPT TO) rather than a header address. */
  readonly envelope: boolean;
  /** A reverse (sender/source) address rather than a forward (recipient) one. */
  readonly reverse: boolean;
}

/** Applies a mapping table for `${TABLE,arg}`; only a result carrying $Y counts (spec §6.4). */
export type MapTable = (table: string, arg: string) => Promise<{ readonly yes: boolean; readonly output: string }>;

export interface RewriteResult {
  /** The address after rewriting (local@domain). */
  readonly address: string;
  /** The host the template routed to. */
  readonly host: string;
  readonly channel: Channel;
  /** The rule that decided, or null for an implicit rule (a channel host name, a hosted domain). */
  readonly rule: CompiledRule | null;
}

function compileTemplate(src: string, pos: SourcePos, problems: ConfigProblem[]): Omit<CompiledRule, 'pattern' | 'source' | 'pos'> | null {
  let envelopeOnly = false;
  let headerOnly = false;
  let forwardOnly = false;
  let reverseOnly = false;
  const err = (offset: number, message: string): null => {
    problems.push({ file: pos.file, line: pos.line, col: pos.col + offset, severity: 'error', code: 'rewrite-template', message });
    return null;
  };
  const parse = (from: number, stop: string): { pieces: Piece[]; next: number } | null => {
    const pieces: Piece[] = [];
    let text = '';
    let i = from;
    const flush = (): void => {
      if (text !== '') pieces.push({ k: 'text', s: text });
      text = '';
    };
    while (i < src.length) {
      const ch = src[i] as string;
      if (stop !== '' && ch === stop) {
        flush();
        return { pieces, next: i };
      }
      if (ch !== '$') {
        text += ch;
        i++;
        continue;
      }
      const n = src[i + 1];
      if (n === '$') text += '$';
      else if (n === 'U' || n === 'D' || n === 'H' || n === 'L') {
        flush();
        pieces.push({ k: 'var', v: n });
      } else if (n === 'E') envelopeOnly = true;
      else if (n === 'B') headerOnly = true;
      else if (n === 'F') forwardOnly = true;
      else if (n === 'R') reverseOnly = true;
      else if (n === '{') {
        const comma = src.indexOf(',', i + 2);
        if (comma === -1) return err(i, '${...} needs a table and an argument: ${TABLE,argument}');
        const table = src.slice(i + 2, comma);
        if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(table)) return err(i + 2, `"${table}" is not a mapping table name`);
        const arg = parse(comma + 1, '}');
        if (arg === null) return null;
        if (src[arg.next] !== '}') return err(i, 'unterminated ${TABLE,argument} — add "}"');
        flush();
        pieces.push({ k: 'map', table: table.toUpperCase(), arg: arg.pieces });
        i = arg.next + 1;
        continue;
      } else {
        return err(i, `rewrite template construct "$${n ?? ''}" is not supported by Portcullis (supported: $U $D $H $L $$ $E $B $F $R \${TABLE,arg})`);
      }
      i += 2;
    }
    flush();
    if (stop !== '') return err(from, `missing "${stop}"`);
    return { pieces, next: i };
  };
  const r = parse(0, '');
  if (r === null) return null;
  if (!r.pieces.some((p) => p.k === 'text' && p.s.includes('@'))) {
    return err(0, 'a rewrite template must route to a host: end it with @host (e.g. $U%$D@tcp-daemon)');
  }
  return { pieces: r.pieces, envelopeOnly, headerOnly, forwardOnly, reverseOnly };
}

export interface RewriteSetup {
  readonly rules: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly problems: ConfigProblem[];
}

/** Compiles the rules; templates that cannot be read are errors with file:line:col. */
export function compileRules(rules: readonly RewriteRule[], knownTables: (name: string) => boolean): RewriteSetup {
  const problems: ConfigProblem[] = [];
  const out = new Map<string, CompiledRule[]>();
  for (const r of rules) {
    const t = compileTemplate(r.template, r.templatePos, problems);
    if (t === null) continue;
    for (const p of t.pieces) {
      if (p.k === 'map' && !knownTables(p.table)) {
        problems.push({ ...r.templatePos, severity: 'warning', code: 'missing-table', message: `\${${p.table},...} names a mapping table that is not defined — this rule will always fail` });
      }
    }
    const key = r.pattern.toLowerCase();
    let list = out.get(key);
    if (list === undefined) out.set(key, (list = []));
    list.push({ ...t, pattern: r.pattern, source: r.template, pos: r.pos });
  }
  return { rules: out, problems };
}

/** The patterns to try for a domain or domain literal, most specific first, with $H/$D/$L. */
export function candidates(domain: string): { pattern: string; h: string; d: string; l: string }[] {
  const lower = domain.toLowerCase();
  if (lower.startsWith('[') && lower.endsWith(']')) {
    const inner = lower.slice(1, -1);
    const out = [{ pattern: lower, h: '', d: lower, l: '' }];
    if (/^[0-9.]+$/.test(inner)) {
      const parts = inner.split('.');
      for (let k = parts.length - 1; k >= 1; k--) {
        const prefix = parts.slice(0, k).join('.') + '.';
        out.push({ pattern: `[${prefix}]`, h: '', d: `[${prefix}]`, l: parts.slice(k).join('.') });
      }
    }
    out.push({ pattern: '[]', h: '', d: '', l: inner.replace(/^ipv6:/, '') });
    out.push({ pattern: '.', h: lower, d: '', l: '' });
    return out;
  }
  const labels = lower.split('.');
  const out = [{ pattern: lower, h: '', d: lower, l: '' }];
  for (let k = 1; k < labels.length; k++) {
    out.push({ pattern: '.' + labels.slice(k).join('.'), h: labels.slice(0, k).join('.') + '.', d: labels.slice(k).join('.'), l: '' });
  }
  out.push({ pattern: '.', h: lower, d: '', l: '' });
  return out;
}

/**
 * Splits "local@domain" at the last "@". A source route "@a,@b:user@c" goes to its first hop:
 * the domain is "a" and the rest ("@b:user@c" or "user@c") is the local part.
 */
export function splitAddress(address: string): { local: string; domain: string } {
  if (address.startsWith('@')) {
    const end = address.search(/[,:]/);
    if (end === -1) return { local: '', domain: address.slice(1) };
    return { local: address.slice(end + 1), domain: address.slice(1, end) };
  }
  const at = address.lastIndexOf('@');
  return at === -1 ? { local: address, domain: '' } : { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** Maximum re-rewrites when a template routes to a host no channel has. */
const MAX_HOPS = 5;

export class Rewriter {
  constructor(
    private readonly rules: ReadonlyMap<string, readonly CompiledRule[]>,
    private readonly channels: ChannelTable,
    /** The channel (official host) of a hosted domain, or undefined when the domain is not hosted. */
    private readonly hosted: (domain: string) => { channel: Channel; canonical: string } | undefined,
  ) {}

  /** Rewrites an address; null when nothing routes it (no "." rule and nothing else matched). */
  async rewrite(address: string, ctx: RewriteContext, map: MapTable): Promise<RewriteResult | null> {
    const { local, domain } = splitAddress(address);
    const r = await this.rewriteParts(local, domain, ctx, map);
    // A source route only chooses the channel (its first hop); the address itself stays as given.
    return r !== null && address.startsWith('@') ? { ...r, address } : r;
  }

  /** Rewrites a local part and a domain (or domain literal) given separately. */
  async rewriteParts(local: string, domain: string, ctx: RewriteContext, map: MapTable): Promise<RewriteResult | null> {
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const r = await this.once(local, domain, ctx, map);
      if (r === null) return null;
      if (r.channel !== null) return { address: r.address, host: r.host, channel: r.channel, rule: r.rule };
      // Routed to a host no channel has: rewrite that host in turn.
      ({ local, domain } = { local: r.address, domain: r.host });
    }
    return null;
  }

  private async once(
    local: string,
    domain: string,
    ctx: RewriteContext,
    map: MapTable,
  ): Promise<{ address: string; host: string; channel: Channel | null; rule: CompiledRule | null } | null> {
    const direct = this.channels.forHost(domain);
    if (direct !== undefined) return { address: local === '' ? domain : `${local}@${domain}`, host: domain, channel: direct, rule: null };
    for (const c of candidates(domain)) {
      for (const rule of this.rules.get(c.pattern) ?? []) {
        if ((rule.envelopeOnly && !ctx.envelope) || (rule.headerOnly && ctx.envelope)) continue;
        if ((rule.forwardOnly && ctx.reverse) || (rule.reverseOnly && !ctx.reverse)) continue;
        const out = await this.expand(rule.pieces, { U: local, D: c.d, H: c.h, L: c.l }, map);
        if (out === null) continue;
        const at = out.lastIndexOf('@');
        const left = out.slice(0, at);
        const host = out.slice(at + 1);
        const pct = left.lastIndexOf('%');
        const addr = pct === -1 ? `${left}@${host}` : `${left.slice(0, pct)}@${left.slice(pct + 1)}`;
        return { address: addr, host, channel: this.channels.forHost(host) ?? null, rule };
      }
      // Hosted domains (from the directory) act as rules of their own at the exact-domain step.
      if (c.pattern === domain.toLowerCase()) {
        const h = this.hosted(domain);
        if (h !== undefined) return { address: `${local}@${h.canonical}`, host: h.channel.hosts[0] ?? h.channel.name, channel: h.channel, rule: null };
      }
    }
    return null;
  }

  private async expand(pieces: readonly Piece[], vars: Record<'U' | 'D' | 'H' | 'L', string>, map: MapTable): Promise<string | null> {
    let out = '';
    for (const p of pieces) {
      if (p.k === 'text') out += p.s;
      else if (p.k === 'var') out += vars[p.v];
      else {
        const arg = await this.expand(p.arg, vars, map);
        if (arg === null) return null;
        const r = await map(p.table, arg);
        if (!r.yes) return null;
        out += r.output;
      }
    }
    return out;
  }
}
