import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrContains, parseCidr, parseIp } from './cidr.js';
import type { Cidr } from './types.js';

function cidrs(...texts: string[]): Cidr[] {
  return texts.map((t) => {
    const r = parseCidr(t);
    assert.ok(r.ok, `${t} should parse`);
    return r.cidr;
  });
}

test('parseCidr: IPv4 and IPv6 networks and bare addresses', () => {
  const a = parseCidr('10.0.0.0/8');
  assert.ok(a.ok);
  assert.deepEqual({ family: a.cidr.family, prefix: a.cidr.prefix, bytes: [...a.cidr.bytes], text: a.cidr.text }, { family: 4, prefix: 8, bytes: [10, 0, 0, 0], text: '10.0.0.0/8' });
  const b = parseCidr('192.0.2.7');
  assert.ok(b.ok);
  assert.equal(b.cidr.prefix, 32);
  const c = parseCidr('2001:db8::/32');
  assert.ok(c.ok);
  assert.equal(c.cidr.family, 6);
  assert.equal(c.cidr.bytes.length, 16);
  assert.deepEqual([...c.cidr.bytes.subarray(0, 4)], [0x20, 0x01, 0x0d, 0xb8]);
  const d = parseCidr('::1');
  assert.ok(d.ok);
  assert.equal(d.cidr.prefix, 128);
  assert.equal(d.cidr.bytes[15], 1);
});

test('parseCidr: host bits are cleared and reported', () => {
  const r = parseCidr('192.0.2.77/24');
  assert.ok(r.ok);
  assert.equal(r.hostBits, true);
  assert.deepEqual([...r.cidr.bytes], [192, 0, 2, 0]);
  const clean = parseCidr('192.0.2.0/24');
  assert.ok(clean.ok);
  assert.equal(clean.hostBits, false);
});

test('parseCidr: refuses malformed text', () => {
  for (const bad of ['', '10.0.0', '10.0.0.256', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/x', '2001:db8::/129', ':::1', 'example.com', '1.2.3.4/8/9', 'fe80::1%eth0']) {
    assert.equal(parseCidr(bad).ok, false, bad);
  }
});

test('parseIp: IPv4, IPv6, zone ids and brackets', () => {
  assert.equal(parseIp('192.0.2.1')?.family, 4);
  assert.equal(parseIp('2001:db8::1')?.family, 6);
  assert.equal(parseIp('fe80::1%eth0')?.family, 6);
  assert.equal(parseIp('[::1]')?.family, 6);
  assert.equal(parseIp('nonsense'), null);
});

test('cidrContains: IPv4 networks', () => {
  const list = cidrs('10.0.0.0/8', '192.0.2.7');
  assert.equal(cidrContains(list, '10.255.1.2'), true);
  assert.equal(cidrContains(list, '11.0.0.1'), false);
  assert.equal(cidrContains(list, '192.0.2.7'), true);
  assert.equal(cidrContains(list, '192.0.2.8'), false);
  assert.equal(cidrContains(cidrs('0.0.0.0/0'), '203.0.113.9'), true);
  assert.equal(cidrContains(cidrs('192.0.2.128/25'), '192.0.2.127'), false);
  assert.equal(cidrContains(cidrs('192.0.2.128/25'), '192.0.2.200'), true);
});

test('cidrContains: IPv6 networks, including prefixes that end inside a byte', () => {
  const list = cidrs('2001:db8::/32', '::1');
  assert.equal(cidrContains(list, '2001:db8:ffff::5'), true);
  assert.equal(cidrContains(list, '2001:db9::5'), false);
  assert.equal(cidrContains(list, '::1'), true);
  assert.equal(cidrContains(list, '0:0:0:0:0:0:0:1'), true);
  assert.equal(cidrContains(cidrs('2001:db8:8000::/33'), '2001:db8:7fff::1'), false);
  assert.equal(cidrContains(cidrs('2001:db8:8000::/33'), '2001:db8:8001::1'), true);
});

test('cidrContains: IPv4-mapped IPv6 addresses match IPv4 entries, and IPv4 addresses match mapped IPv6 entries', () => {
  assert.equal(cidrContains(cidrs('10.0.0.0/8'), '::ffff:10.1.2.3'), true);
  assert.equal(cidrContains(cidrs('10.0.0.0/8'), '::ffff:11.1.2.3'), false);
  assert.equal(cidrContains(cidrs('127.0.0.1'), '::ffff:127.0.0.1'), true);
  assert.equal(cidrContains(cidrs('::ffff:192.0.2.0/120'), '192.0.2.9'), true);
  // An IPv4 entry does not match an IPv6 address that merely ends in the same bytes.
  assert.equal(cidrContains(cidrs('10.0.0.0/8'), '::10.1.2.3'), false);
  assert.equal(cidrContains(cidrs('2001:db8::/32'), '10.1.2.3'), false);
});

test('cidrContains: an empty list or an unparsable address never matches', () => {
  assert.equal(cidrContains([], '10.0.0.1'), false);
  assert.equal(cidrContains(cidrs('0.0.0.0/0', '::/0'), 'not-an-address'), false);
});
