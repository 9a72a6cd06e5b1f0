// Next-hop lookup (RFC 5321 §5.1, RFC 7505) against a real DNS server in the test process (dns2 on a
// free UDP port, tests/support/dns.ts) through node's own resolver.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DnsServer } from '../../tests/support/dns.js';
import { orderMx, parseDomainLiteral, resolveHost, resolveNextHops } from './mx.js';
import type { HopLookup, MxOptions, RouteFailure } from './mx.js';

let dns: DnsServer;

before(async () => {
  dns = await DnsServer.start({
    'prio.test': { MX: [{ exchange: 'mx20.prio.test', priority: 20 }, { exchange: 'mx10.prio.test', priority: 10 }, { exchange: 'mx30.prio.test', priority: 30 }] },
    'mx10.prio.test': { A: ['192.0.2.10'], AAAA: ['2001:db8::10'] },
    'mx20.prio.test': { A: ['192.0.2.20', '192.0.2.21'] },
    'mx30.prio.test': { AAAA: ['2001:db8::30'] },
    'equal.test': { MX: [{ exchange: 'a.equal.test', priority: 10 }, { exchange: 'b.equal.test', priority: 10 }, { exchange: 'c.equal.test', priority: 5 }] },
    'a.equal.test': { A: ['192.0.2.1'] },
    'b.equal.test': { A: ['192.0.2.2'] },
    'c.equal.test': { A: ['192.0.2.3'] },
    'implicit.test': { A: ['192.0.2.50'], AAAA: ['2001:db8::50'] },
    'bare.test': {},
    'nullmx.test': { MX: [{ exchange: '', priority: 0 }], A: ['192.0.2.99'] },
    'broken.test': 'servfail',
    'slow.test': 'timeout',
    'refusing.test': 'refused',
    'mxfail.test': { MX: [{ exchange: 'mx.broken.test', priority: 10 }] },
    'mx.broken.test': 'servfail',
    'mxmissing.test': { MX: [{ exchange: 'nowhere.mxmissing.test', priority: 10 }] },
    'halfbad.test': { MX: [{ exchange: 'mx.broken.test', priority: 10 }, { exchange: 'mx20.prio.test', priority: 20 }] },
    'many.test': { MX: [{ exchange: 'big.many.test', priority: 10 }] },
    'big.many.test': { A: Array.from({ length: 12 }, (_, i) => `192.0.2.${100 + i}`) },
    'smarthost.test': { A: ['192.0.2.77'] },
  });
});
after(async () => dns.close());

function opts(extra: Partial<MxOptions> = {}): MxOptions {
  return { resolver: dns.resolver(300), random: () => 0.5, ...extra };
}

function failure(r: HopLookup): RouteFailure {
  if (r.kind === 'hops') assert.fail(`expected a failure, got hops ${JSON.stringify(r.hops)}`);
  return r;
}

function addresses(r: HopLookup): string[] {
  assert.equal(r.kind, 'hops', `expected hops, got ${JSON.stringify(r)}`);
  return r.kind === 'hops' ? r.hops.map((h) => h.address) : [];
}

describe('MX order (RFC 5321 §5.1)', () => {
  test('MX hosts by preference, each with its A then AAAA addresses', async () => {
    const r = await resolveNextHops('prio.test', opts({ maxHops: 10 }));
    assert.deepEqual(addresses(r), ['192.0.2.10', '2001:db8::10', '192.0.2.20', '192.0.2.21', '2001:db8::30']);
    assert.equal(r.kind === 'hops' && r.hops[0]?.name, 'mx10.prio.test');
    assert.equal(r.kind === 'hops' && r.hops[0]?.preference, 10);
  });

  test('prefer ipv6 puts AAAA first; families restricts', async () => {
    assert.deepEqual(addresses(await resolveNextHops('prio.test', opts({ prefer: 'ipv6', maxHops: 3 }))), ['2001:db8::10', '192.0.2.10', '192.0.2.20']);
    assert.deepEqual(addresses(await resolveNextHops('prio.test', opts({ families: 'ipv4', maxHops: 10 }))), ['192.0.2.10', '192.0.2.20', '192.0.2.21']);
  });

  test('equal preferences come in random order, the better preference always first', async () => {
    const seen = new Set<string>();
    for (const rnd of [0.1, 0.9]) {
      let k = 0;
      const seq = rnd < 0.5 ? [0.1, 0.9, 0.5] : [0.9, 0.1, 0.5];
      const r = await resolveNextHops('equal.test', opts({ random: () => seq[k++ % 3] as number }));
      const a = addresses(r);
      assert.equal(a[0], '192.0.2.3');
      seen.add(a.slice(1).join(','));
    }
    assert.deepEqual([...seen].sort(), ['192.0.2.1,192.0.2.2', '192.0.2.2,192.0.2.1']);
  });

  test('orderMx is a stable shuffle within preference groups', () => {
    const recs = [{ exchange: 'x', priority: 10 }, { exchange: 'y', priority: 10 }, { exchange: 'z', priority: 0 }];
    const keys = [0.9, 0.1, 0.5];
    let i = 0;
    assert.deepEqual(orderMx(recs, () => keys[i++] as number).map((r) => r.exchange), ['z', 'y', 'x']);
  });

  test('the number of addresses is capped (default 5)', async () => {
    assert.equal(addresses(await resolveNextHops('many.test', opts())).length, 5);
    assert.equal(addresses(await resolveNextHops('many.test', opts({ maxHops: 2 }))).length, 2);
  });
});

describe('no MX, null MX, missing domains', () => {
  test('no MX records: the domain itself is the implicit MX', async () => {
    const r = await resolveNextHops('implicit.test', opts());
    assert.deepEqual(addresses(r), ['192.0.2.50', '2001:db8::50']);
    assert.equal(r.kind === 'hops' && r.hops[0]?.name, 'implicit.test');
  });

  test('no MX and no address: permanent', async () => {
    const r = await resolveNextHops('bare.test', opts());
    assert.equal(r.kind, 'permanent');
    assert.equal(failure(r).reason, 'no-address');
  });

  test('null MX (RFC 7505): permanent 556 5.1.10 "does not accept mail", even though the domain has an A record', async () => {
    const r = await resolveNextHops('nullmx.test', opts());
    assert.deepEqual(r, { kind: 'permanent', reason: 'null-mx', code: 556, enhanced: '5.1.10', text: 'domain nullmx.test does not accept mail (null MX, RFC 7505)' });
  });

  test('NXDOMAIN: permanent 5.1.2', async () => {
    const r = await resolveNextHops('nosuch.test', opts());
    assert.equal(r.kind, 'permanent');
    assert.equal(failure(r).reason, 'nxdomain');
    assert.equal(failure(r).enhanced, '5.1.2');
  });

  test('an MX host that does not exist: permanent, no address', async () => {
    const r = await resolveNextHops('mxmissing.test', opts());
    assert.equal(r.kind, 'permanent');
    assert.equal(failure(r).reason, 'no-address');
  });
});

describe('DNS failures are temporary', () => {
  test('SERVFAIL on the MX lookup', async () => {
    const r = await resolveNextHops('broken.test', opts());
    assert.equal(r.kind, 'temporary');
    assert.equal(failure(r).reason, 'dns-error');
    assert.equal(failure(r).enhanced, '4.4.3');
    assert.match(failure(r).text, /ESERVFAIL/);
  });

  test('REFUSED and a server that never answers', async () => {
    assert.equal((await resolveNextHops('refusing.test', opts())).kind, 'temporary');
    const t0 = Date.now();
    const r = await resolveNextHops('slow.test', opts());
    assert.equal(r.kind, 'temporary');
    assert.match(failure(r).text, /ETIMEOUT/);
    assert.ok(Date.now() - t0 < 3000);
  });

  test('SERVFAIL on the only MX host address: temporary', async () => {
    assert.equal((await resolveNextHops('mxfail.test', opts())).kind, 'temporary');
  });

  test('SERVFAIL on one MX host: the others are used', async () => {
    assert.deepEqual(addresses(await resolveNextHops('halfbad.test', opts())), ['192.0.2.20', '192.0.2.21']);
  });
});

describe('literals and hosts', () => {
  test('domain literals bypass DNS (RFC 5321 §4.1.3)', async () => {
    const before = dns.queries.length;
    assert.deepEqual(addresses(await resolveNextHops('[192.0.2.7]', opts())), ['192.0.2.7']);
    assert.deepEqual(addresses(await resolveNextHops('[IPv6:2001:db8::7]', opts())), ['2001:db8::7']);
    assert.equal(dns.queries.length, before);
    const bad = await resolveNextHops('[300.1.1.1]', opts());
    assert.equal(bad.kind, 'permanent');
    assert.equal(failure(bad).reason, 'bad-literal');
    assert.deepEqual(parseDomainLiteral('[ipv6:::1]'), { valid: true, address: '::1' });
    assert.equal(parseDomainLiteral('example.test'), null);
  });

  test('hosts: IP, [name] without MX, name, localhost; an unknown host is temporary (a configuration error)', async () => {
    assert.deepEqual(addresses(await resolveHost('127.0.0.1', opts())), ['127.0.0.1']);
    assert.deepEqual(addresses(await resolveHost('[smarthost.test]', opts())), ['192.0.2.77']);
    assert.deepEqual(addresses(await resolveHost('smarthost.test', opts())), ['192.0.2.77']);
    assert.deepEqual(addresses(await resolveHost('localhost', opts({ families: 'ipv4' }))), ['127.0.0.1']);
    assert.ok(!dns.queries.includes('smarthost.test MX'));
    const r = await resolveHost('nosuch.test', opts());
    assert.equal(r.kind, 'temporary');
    assert.match(failure(r).text, /check the channel's host setting/);
  });
});
