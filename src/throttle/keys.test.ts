// Table keys as MeterMaid compares them (spec §7.4 data_type and options=nocase): one canonical
// spelling per client address, so a client cannot get a fresh quota by writing its address
// differently; anything else fed to an ipv4 table is a type mismatch (the routines apply on_error).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_KEY_LENGTH, tableKey } from './keys.js';
import type { TableSpec } from './types.js';

function spec(over: Partial<TableSpec> = {}): TableSpec {
  return {
    name: 'ext_throttle',
    type: 'throttle',
    dataType: 'ipv4',
    valueType: 'string',
    quota: 15,
    quotaTimeMs: 60_000,
    penalize: false,
    nocase: false,
    maxEntries: 1000,
    onError: 'allow',
    mode: 'decay',
    ...over,
  };
}

const IPV4 = spec();
const STRING = spec({ dataType: 'string' });
const NOCASE = spec({ dataType: 'string', nocase: true });

function key(s: TableSpec, raw: string): string {
  const k = tableKey(s, raw);
  assert.ok(k.ok, `${JSON.stringify(raw)}: ${k.ok ? '' : k.message}`);
  return k.key;
}

function mismatch(s: TableSpec, raw: string): string {
  const k = tableKey(s, raw);
  assert.equal(k.ok, false, `${JSON.stringify(raw)} should not fit table ${s.name} (got ${k.ok ? k.key : ''})`);
  return k.ok ? '' : k.message;
}

test('§7.4 ipv4 keys: dotted quads are their own canonical form', () => {
  for (const a of ['192.0.2.7', '0.0.0.0', '255.255.255.255', '127.0.0.1']) assert.equal(key(IPV4, a), a);
  assert.equal(key(IPV4, ' 192.0.2.7 '), '192.0.2.7', 'surrounding blanks are not part of the address');
  assert.equal(key(IPV4, '010.000.000.001'), '10.0.0.1', 'leading zeros are read as decimal, not octal, and dropped');
});

test('ipv4 keys: an IPv4-mapped IPv6 address is the IPv4 client it maps', () => {
  for (const a of ['::ffff:192.0.2.7', '::FFFF:192.0.2.7', '::ffff:c000:207', '::ffff:C000:0207', '0:0:0:0:0:ffff:192.0.2.7', '[::ffff:192.0.2.7]']) {
    assert.equal(key(IPV4, a), '192.0.2.7', a);
  }
  // Not mapped: IPv4-compatible (deprecated) and NAT64 addresses are IPv6 clients of their own.
  assert.equal(key(IPV4, '::192.0.2.7'), '::c000:207');
  assert.equal(key(IPV4, '64:ff9b::192.0.2.7'), '64:ff9b::c000:207');
  assert.equal(key(IPV4, '::fffe:192.0.2.7'), '::fffe:c000:207');
});

test('ipv4 keys: IPv6 addresses take their RFC 5952 form', () => {
  const cases: [string, string][] = [
    // 4.1 leading zeros suppressed; 4.3 lower case
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    // 4.2.1 "::" shortens as much as possible
    ['2001:db8::0:1', '2001:db8::1'],
    // 4.2.2 "::" is not used for one 16-bit 0 field
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // 4.2.3 the longest run of zero fields is shortened; on a tie, the first
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    // the edges
    ['0:0:0:0:0:0:0:0', '::'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ];
  for (const [raw, canonical] of cases) assert.equal(key(IPV4, raw), canonical, raw);
});

test('ipv4 keys: brackets and zone identifiers are not part of the client', () => {
  assert.equal(key(IPV4, '[2001:db8::1]'), '2001:db8::1');
  assert.equal(key(IPV4, '[192.0.2.7]'), '192.0.2.7');
  assert.equal(key(IPV4, 'fe80::1%eth0'), 'fe80::1');
  assert.equal(key(IPV4, '[fe80::1%25eth0]'), 'fe80::1');
});

test('ipv4 keys: every spelling of one IPv6 address gives one key (property)', () => {
  const groups = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 });
  fc.assert(
    fc.property(groups, fc.boolean(), fc.boolean(), (g, upper, pad) => {
      const hex = (n: number): string => {
        const h = pad ? n.toString(16).padStart(4, '0') : n.toString(16);
        return upper ? h.toUpperCase() : h;
      };
      const full = g.map(hex).join(':');
      const k = key(IPV4, full);
      // The canonical key is stable and reads back as the same address.
      assert.equal(key(IPV4, k), k);
      assert.equal(k, k.toLowerCase());
      assert.ok(!/(^|:)0[0-9a-f]/.test(k), `leading zero in ${k}`);
      assert.ok(!/::.*::/.test(k));
      const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
      if (mapped) assert.match(k, /^\d+\.\d+\.\d+\.\d+$/);
      else assert.equal(k.split('::').length <= 2 && !k.includes('.'), true);
      // Any "::" compression of the same groups gives the same key.
      for (let i = 0; i < 8; i++) {
        let j = i;
        while (j < 8 && g[j] === 0) j++;
        if (j > i) assert.equal(key(IPV4, `${g.slice(0, i).map(hex).join(':')}::${g.slice(j).map(hex).join(':')}`), k, `${full} compressed at ${i}..${j}`);
      }
    }),
    { seed: 0x5952, numRuns: 500, includeErrorInReport: true },
  );
});

test('ipv4 keys: anything that is not an address is a type mismatch that names the table', () => {
  for (const raw of ['not-an-ip', '', ' ', '1.2.3', '1.2.3.256', '1.2.3.4.5', '1.2.3.4/24', '::ffff:1.2.3.4.5', '1:2:3:4:5:6:7:8:9', '2001:db8:::1', 'mx.example.com', '192.0.2.7:25', 'gggg::1']) {
    const message = mismatch(IPV4, raw);
    assert.match(message, /is not an IP address \(table ext_throttle has data_type ipv4\)/, raw);
  }
});

test('string keys: kept as written; nocase folds case', () => {
  assert.equal(key(STRING, 'User@Example.COM'), 'User@Example.COM');
  assert.equal(key(STRING, ' spaced '), ' spaced ', 'string keys are not trimmed');
  assert.equal(key(STRING, ''), '');
  assert.equal(key(STRING, 'not-an-ip'), 'not-an-ip');
  assert.equal(key(NOCASE, 'User@Example.COM'), 'user@example.com');
  assert.equal(key(NOCASE, 'user@example.com'), 'user@example.com');
  // nocase has no business with addresses: an ipv4 key is canonical already.
  assert.equal(key(spec({ nocase: true }), '2001:DB8::1'), '2001:db8::1');
});

test('nocase: keys that differ only in case are one key (property)', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (s) => {
      assert.equal(key(NOCASE, s.toUpperCase()), key(NOCASE, s.toLowerCase()));
      assert.equal(key(NOCASE, key(NOCASE, s)), key(NOCASE, s));
    }),
    { seed: 0x7_4001, numRuns: 300 },
  );
});

test('over-long keys are refused in every table', () => {
  for (const s of [STRING, NOCASE, IPV4]) {
    assert.match(mismatch(s, 'x'.repeat(MAX_KEY_LENGTH + 1)), new RegExp(`longer than ${MAX_KEY_LENGTH} characters`));
  }
  assert.equal(key(STRING, 'x'.repeat(MAX_KEY_LENGTH)).length, MAX_KEY_LENGTH, 'the limit itself is allowed');
  // A padded address is over-long before it is an address.
  assert.match(mismatch(IPV4, `${' '.repeat(MAX_KEY_LENGTH)}192.0.2.7`), /longer than/);
});
