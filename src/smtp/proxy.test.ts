import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxyHeader, proxyV2 } from './proxy.js';

test('PROXY v1 TCP4/TCP6/UNKNOWN, byte by byte', () => {
  const h = Buffer.from('PROXY TCP4 203.0.113.9 192.0.2.10 40000 25\r\nEHLO x\r\n');
  for (let n = 1; n < 44; n++) assert.equal(parseProxyHeader(h.subarray(0, n)).status, 'incomplete', `at ${n}`);
  assert.deepEqual(parseProxyHeader(h), { status: 'ok', consumed: 44, source: { ip: '203.0.113.9', port: 40000 }, dest: { ip: '192.0.2.10', port: 25 } });
  const r6 = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 5000 25\r\n'));
  assert.equal(r6.status === 'ok' && r6.source?.ip, '2001:db8::7');
  const u = parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'));
  assert.deepEqual(u, { status: 'ok', consumed: 15, source: null, dest: null });
});

test('PROXY v1 malformed headers are errors, not guesses', () => {
  for (const bad of ['PROXY TCP4 1.2.3.4 5.6.7.8 99999 25\r\n', 'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', 'PROXY TCP4 999.1.1.1 5.6.7.8 1 2\r\n', 'PROXY TCP5 a b 1 2\r\n', 'EHLO x\r\n', 'PROXY ' + 'x'.repeat(200)]) {
    assert.equal(parseProxyHeader(Buffer.from(bad)).status, 'error', bad);
  }
});

test('PROXY v2 TCP4 round trip, LOCAL, and truncation', () => {
  const h = proxyV2({ ip: '198.51.100.7', port: 1234 }, { ip: '192.0.2.10', port: 587 });
  assert.deepEqual(parseProxyHeader(Buffer.concat([h, Buffer.from('EHLO')])), {
    status: 'ok',
    consumed: 28,
    source: { ip: '198.51.100.7', port: 1234 },
    dest: { ip: '192.0.2.10', port: 587 },
  });
  for (let n = 1; n < 28; n++) assert.equal(parseProxyHeader(h.subarray(0, n)).status, 'incomplete');
  const local = Buffer.from(h.subarray(0, 16));
  local[12] = 0x20;
  local.writeUInt16BE(0, 14);
  assert.deepEqual(parseProxyHeader(local), { status: 'ok', consumed: 16, source: null, dest: null });
});
