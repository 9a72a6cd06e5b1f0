// Next hops for a destination (RFC 5321 §5.1): the MX records of the recipient domain, best
// preference first and in random order among equal preferences, each host resolved to its A and
// AAAA addresses; without MX records the domain itself is the implicit MX. A null MX (RFC 7505)
// or a domain that does not exist fails permanently, a DNS server that cannot answer temporarily.
// Domain literals ([192.0.2.1], [IPv6:2001:db8::1]) need no DNS. Smarthosts and message stores
// (resolveHost) are looked up by address only, never by MX.
//
// The resolver is a parameter: node's dns.promises.Resolver in the daemon, one pointed at an
// in-process DNS server (dns2) in tests.

import net from 'node:net';

/** The part of dns.promises.Resolver this module uses. */
export interface MxResolver {
  resolveMx(hostname: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(hostname: string): Promise<string[]>;
  resolve6(hostname: string): Promise<string[]>;
}

/** One address to try: the host's name (the MX exchange, or the literal) and one of its addresses. */
export interface Hop {
  readonly name: string;
  readonly address: string;
  /** MX preference; null for an implicit MX, a literal or a host destination. */
  readonly preference: number | null;
}

export type RouteFailureReason = 'nxdomain' | 'null-mx' | 'no-address' | 'dns-error' | 'bad-literal';

/** No hop can be tried; `kind` says whether a later attempt may succeed. */
export interface RouteFailure {
  readonly kind: 'temporary' | 'permanent';
  readonly reason: RouteFailureReason;
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

export type HopLookup = { readonly kind: 'hops'; readonly hops: readonly Hop[] } | RouteFailure;

export interface MxOptions {
  readonly resolver: MxResolver;
  /** At most this many addresses are returned (Postfix: smtp_mx_address_limit = 5). */
  readonly maxHops?: number;
  /** Address families to use. */
  readonly families?: 'ipv4' | 'ipv6' | 'both';
  /** With both families, which comes first for each host. */
  readonly prefer?: 'ipv4' | 'ipv6';
  /** Uniform in [0, 1): shuffles MX hosts of equal preference (a parameter so tests are exact). */
  readonly random?: () => number;
}

export const DEFAULT_MAX_HOPS = 5;

type Lookup<T> = { ok: true; value: T } | { ok: false; missing: boolean; code: string };

/** ENOTFOUND is NXDOMAIN and ENODATA an empty answer: facts about the name. Anything else is the DNS failing. */
async function lookup<T>(q: () => Promise<T>): Promise<Lookup<T>> {
  try {
    return { ok: true, value: await q() };
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const c = typeof code === 'string' ? code : 'EUNKNOWN';
    return { ok: false, missing: c === 'ENOTFOUND' || c === 'ENODATA', code: c };
  }
}

function fail(kind: RouteFailure['kind'], reason: RouteFailureReason, code: number, enhanced: string, text: string): RouteFailure {
  return { kind, reason, code, enhanced, text };
}

const dnsTrouble = (what: string, code: string): RouteFailure =>
  // RFC 3463 X.4.3: directory (routing) server failure; the queue retries later.
  fail('temporary', 'dns-error', 451, '4.4.3', `DNS lookup of ${what} failed (${code}); will try again`);

export type DomainLiteral = { readonly valid: true; readonly address: string } | { readonly valid: false };

/** A domain literal (RFC 5321 §4.1.3): its address, `valid: false` for a bracketed non-address, null when `s` is none. */
export function parseDomainLiteral(s: string): DomainLiteral | null {
  if (!s.startsWith('[') || !s.endsWith(']')) return null;
  const inner = s.slice(1, -1);
  const address = /^ipv6:/i.test(inner) ? inner.slice(5) : inner;
  const valid = /^ipv6:/i.test(inner) ? net.isIPv6(address) : net.isIPv4(address);
  return valid ? { valid, address } : { valid: false };
}

/** Addresses of one host name, in the configured family order. */
async function hostAddresses(name: string, opts: MxOptions): Promise<{ addresses: string[]; trouble: string | null }> {
  const families = opts.families ?? 'both';
  const order: ('4' | '6')[] = families === 'ipv4' ? ['4'] : families === 'ipv6' ? ['6'] : opts.prefer === 'ipv6' ? ['6', '4'] : ['4', '6'];
  if (name.toLowerCase() === 'localhost') {
    // RFC 6761 §6.3: localhost is the loopback address, whatever the DNS says.
    return { addresses: order.map((f) => (f === '4' ? '127.0.0.1' : '::1')), trouble: null };
  }
  const answers = await Promise.all(order.map((f) => lookup(() => (f === '4' ? opts.resolver.resolve4(name) : opts.resolver.resolve6(name)))));
  const addresses: string[] = [];
  let trouble: string | null = null;
  for (const a of answers) {
    if (a.ok) addresses.push(...a.value);
    else if (!a.missing) trouble = a.code;
  }
  return { addresses, trouble };
}

function cap(hops: Hop[], opts: MxOptions): Hop[] {
  const seen = new Set<string>();
  const out: Hop[] = [];
  for (const h of hops) {
    if (seen.has(h.address)) continue;
    seen.add(h.address);
    out.push(h);
  }
  return out.slice(0, Math.max(1, opts.maxHops ?? DEFAULT_MAX_HOPS));
}

/** RFC 5321 §5.1: sort by preference, randomizing hosts of equal preference. */
export function orderMx(records: readonly { exchange: string; priority: number }[], random: () => number): { exchange: string; priority: number }[] {
  return records
    .map((r) => ({ r, k: random() }))
    .sort((a, b) => a.r.priority - b.r.priority || a.k - b.k)
    .map((x) => x.r);
}

/** The next hops for mail to `domain` (RFC 5321 §5.1, RFC 7505). */
export async function resolveNextHops(domain: string, opts: MxOptions): Promise<HopLookup> {
  const literal = parseDomainLiteral(domain);
  if (literal !== null && !literal.valid) return fail('permanent', 'bad-literal', 550, '5.1.2', `${domain} is not a valid address literal`);
  if (literal !== null && literal.valid) return { kind: 'hops', hops: [{ name: literal.address, address: literal.address, preference: null }] };
  const name = domain.replace(/\.$/, '');

  const mx = await lookup(() => opts.resolver.resolveMx(name));
  if (!mx.ok && mx.code === 'ENOTFOUND') return fail('permanent', 'nxdomain', 550, '5.1.2', `domain ${name} does not exist (DNS: NXDOMAIN)`);
  if (!mx.ok && !mx.missing) return dnsTrouble(`MX ${name}`, mx.code);
  const records = mx.ok ? mx.value : [];

  if (records.length === 0) {
    // RFC 5321 §5.1: no MX records, so the domain itself is the implicit MX (preference 0).
    const { addresses, trouble } = await hostAddresses(name, opts);
    if (addresses.length > 0) return { kind: 'hops', hops: cap(addresses.map((address) => ({ name, address, preference: null })), opts) };
    if (trouble !== null) return dnsTrouble(`A/AAAA ${name}`, trouble);
    return fail('permanent', 'no-address', 550, '5.4.4', `domain ${name} has no MX and no address record (RFC 5321 §5.1)`);
  }
  // RFC 7505 §3: a null MX is a single MX with exchange "." (node reports ""); the domain takes no mail.
  const real = records.filter((r) => r.exchange !== '' && r.exchange !== '.');
  if (real.length === 0) return fail('permanent', 'null-mx', 556, '5.1.10', `domain ${name} does not accept mail (null MX, RFC 7505)`);

  const hops: Hop[] = [];
  let trouble: string | null = null;
  for (const r of orderMx(real, opts.random ?? Math.random)) {
    const host = r.exchange.replace(/\.$/, '');
    const a = await hostAddresses(host, opts);
    if (a.trouble !== null && a.addresses.length === 0) trouble = `${host}: ${a.trouble}`;
    for (const address of a.addresses) hops.push({ name: host, address, preference: r.priority });
    if (hops.length >= (opts.maxHops ?? DEFAULT_MAX_HOPS)) break;
  }
  if (hops.length > 0) return { kind: 'hops', hops: cap(hops, opts) };
  if (trouble !== null) return dnsTrouble(`the MX hosts of ${name} (${trouble})`, 'no address resolved');
  return fail('permanent', 'no-address', 550, '5.4.4', `no MX host of ${name} has an address (${real.map((r) => r.exchange).join(', ')})`);
}

/**
 * The hops for one named host (a smarthost or a message store): an IP address, [IP] or
 * [name] (no MX, as in Postfix's relayhost), or a name resolved to A/AAAA.
 */
export async function resolveHost(host: string, opts: MxOptions): Promise<HopLookup> {
  if (net.isIP(host) !== 0) return { kind: 'hops', hops: [{ name: host, address: host, preference: null }] };
  const literal = parseDomainLiteral(host);
  if (literal !== null && literal.valid) return { kind: 'hops', hops: [{ name: literal.address, address: literal.address, preference: null }] };
  const name = (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host).replace(/\.$/, '');
  const { addresses, trouble } = await hostAddresses(name, opts);
  if (addresses.length > 0) return { kind: 'hops', hops: cap(addresses.map((address) => ({ name, address, preference: null })), opts) };
  if (trouble !== null) return dnsTrouble(`A/AAAA ${name}`, trouble);
  // A configured host that does not resolve is a configuration problem: keep the mail until it is fixed.
  return fail('temporary', 'no-address', 451, '4.4.4', `host ${name} has no address record; check the channel's host setting`);
}
