import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import { parseMsgConfText, readOptions } from './msgconf.js';
import { OPTION_SCHEMA, optionReference, parseValue, suggestKey } from './options.js';
import type { OptionDef } from './options.js';
import type { ConfigProblem } from './types.js';

const DIR = resolve('/etc/portcullis');

function read(text: string) {
  return readOptions('msg.conf', text, { configDir: DIR });
}

function options(text: string) {
  const r = read(text);
  assert.ok(r.options, `expected options, got ${JSON.stringify(r.problems)}`);
  return r.options;
}

function only(problems: readonly ConfigProblem[], severity: 'error' | 'warning' = 'error'): ConfigProblem {
  const list = problems.filter((p) => p.severity === severity);
  assert.equal(list.length, 1, JSON.stringify(problems));
  return list[0] as ConfigProblem;
}

function def(key: string): OptionDef {
  const d = OPTION_SCHEMA.find((o) => o.key === key);
  assert.ok(d, key);
  return d;
}

test('defaults: an empty msg.conf gives the documented defaults', () => {
  const o = options('');
  assert.equal(o.hostname, osHostname());
  assert.deepEqual(o.listenAddresses, []);
  assert.deepEqual(o.ports, { smtp: 25, submit: 587, smtps: 465 });
  assert.deepEqual(o.tls, { certFile: null, keyFile: null });
  assert.equal(o.dataDir, resolve(DIR, 'data'));
  assert.deepEqual(o.limits, {
    maxMessageSize: 52428800,
    maxRecipients: 100,
    maxConnections: 1000,
    maxConnectionsPerIp: 20,
    commandTimeoutMs: 300_000,
    dataTimeoutMs: 180_000,
    maxErrors: 20,
    maxAuthFailures: 3,
    spoolMinFree: 104_857_600,
  });
  assert.deepEqual(o.proxyHosts, []);
  assert.deepEqual(o.xclientHosts, []);
  assert.equal(o.authWithoutTls, false);
  assert.equal(o.greetingDelayMs, 0);
});

test('every default in the schema parses, and every option is documented', () => {
  for (const d of OPTION_SCHEMA) {
    const text = typeof d.default === 'function' ? d.default() : d.default;
    assert.ok(parseValue(d, text, DIR, false).ok, d.key);
    assert.ok(d.description.length > 10, d.key);
  }
  assert.equal(optionReference().length, OPTION_SCHEMA.length * 2);
});

test('syntax: comments (! and #), blank lines, quotes, case-insensitive keys, trimmed values, CRLF', () => {
  const o = options(
    [
      '! a comment',
      '# another',
      '   ! indented comment',
      '',
      'SERVICE.HostName   =   mx.example.com   ',
      'service.smtp.port="2525"',
      'smtp.maxrecipients = "50"',
      'service.listenaddr =',
    ].join('\r\n'),
  );
  assert.equal(o.hostname, 'mx.example.com');
  assert.equal(o.ports.smtp, 2525);
  assert.equal(o.limits.maxRecipients, 50);
  assert.deepEqual(o.listenAddresses, []);
});

test('type integer: whole numbers within range; errors point at the value', () => {
  assert.equal(options('smtp.maxconnections = 5').limits.maxConnections, 5);
  let p = only(read('smtp.maxconnections = five').problems);
  assert.deepEqual([p.line, p.col, p.code], [1, 23, 'bad-value']);
  assert.match(p.message, /whole number/);
  p = only(read('\n\nservice.smtp.port =   70000').problems);
  assert.deepEqual([p.line, p.col], [3, 23]);
  assert.match(p.message, /0 to 65535/);
  assert.match(only(read('smtp.maxrecipients = 0').problems).message, /1 to/);
  assert.match(only(read('smtp.maxrecipients = 1.5').problems).message, /whole number/);
  assert.match(only(read('smtp.maxrecipients = 5 # five').problems).message, /lines of their own/);
});

test('type boolean: yes/no/true/false/1/0 in any case', () => {
  for (const [text, value] of [['yes', true], ['YES', true], ['true', true], ['1', true], ['no', false], ['False', false], ['0', false]] as const) {
    assert.equal(options(`smtp.authwithouttls = ${text}`).authWithoutTls, value, text);
  }
  const p = only(read('smtp.authwithouttls = maybe').problems);
  assert.equal(p.col, 23);
  assert.match(p.message, /yes or no/);
});

test('type duration: seconds, s, m, h; stored in milliseconds', () => {
  assert.equal(options('smtp.commandtimeout = 30').limits.commandTimeoutMs, 30_000);
  assert.equal(options('smtp.commandtimeout = 30s').limits.commandTimeoutMs, 30_000);
  assert.equal(options('smtp.commandtimeout = 5m').limits.commandTimeoutMs, 300_000);
  assert.equal(options('smtp.datatimeout = 1h').limits.dataTimeoutMs, 3_600_000);
  assert.equal(options('smtp.datatimeout = 2M').limits.dataTimeoutMs, 120_000);
  assert.match(only(read('smtp.datatimeout = 5 minutes').problems).message, /30, 30s, 5m or 1h/);
  assert.match(only(read('smtp.datatimeout = 0').problems).message, /out of range/);
  assert.match(only(read('smtp.datatimeout = 2d').problems).message, /duration/);
});

test('type list: comma-separated items, trimmed, empty items dropped; listen addresses must be IPs', () => {
  assert.deepEqual(options('service.listenaddr = 127.0.0.1, ::1 ,, 192.0.2.10').listenAddresses, ['127.0.0.1', '::1', '192.0.2.10']);
  const p = only(read('service.listenaddr = 127.0.0.1, localhost').problems);
  assert.equal(p.col, 33);
  assert.match(p.message, /"localhost" is not an IP address/);
});

test('delivery.dns_servers: empty by default (the system resolvers); addresses with an optional port, as dns.Resolver#setServers takes them', () => {
  assert.deepEqual(options('').delivery.dnsServers, []);
  const o = options('delivery.dns_servers = 127.0.0.1:5353, 192.0.2.53 ,::1, [2001:db8::53]:53');
  assert.deepEqual(o.delivery.dnsServers, ['127.0.0.1:5353', '192.0.2.53', '::1', '[2001:db8::53]:53']);
  for (const bad of ['ns.example', '127.0.0.1:0', '127.0.0.1:65536', '[127.0.0.1]:53', '[::1]', '::1:53x', '10.0.0.0/8', 'fe80::1%eth0', '1.2.3:53']) {
    const p = only(read(`delivery.dns_servers = ${bad}`).problems);
    assert.equal(p.col, 24, bad);
    assert.match(p.message, /is not a DNS server \(an IP address, IPv4:port or \[IPv6\]:port\)/, bad);
  }
  // The second item is located inside the list.
  assert.equal(only(read('delivery.dns_servers = 127.0.0.1, nowhere').problems).col, 35);
});

test('type cidr-list: networks parsed; a bad entry is located inside the list', () => {
  const o = options('smtp.proxyhosts = 10.0.0.0/8, 2001:db8::/32, 192.0.2.1\nsmtp.xclienthosts = ::1');
  assert.deepEqual(
    o.proxyHosts.map((c) => [c.family, c.prefix]),
    [
      [4, 8],
      [6, 32],
      [4, 32],
    ],
  );
  assert.equal(o.xclientHosts[0]?.prefix, 128);
  const p = only(read('smtp.proxyhosts = 10.0.0.0/8, 10.0.0/8').problems);
  assert.deepEqual([p.line, p.col], [1, 31]);
  assert.match(p.message, /not an IPv4 or IPv6 address/);
  const w = read('smtp.proxyhosts = 10.1.2.3/8');
  assert.ok(w.options);
  const warning = only(w.problems, 'warning');
  assert.match(warning.message, /read as the network 10\.0\.0\.0\/8/);
});

test('type path: relative paths resolve against the configuration directory; absolute ones stay', () => {
  const o = options('store.datadir = /var/spool/portcullis\nservice.tls.certfile = tls/cert.pem\nservice.tls.keyfile = tls/key.pem');
  assert.equal(o.dataDir, '/var/spool/portcullis');
  assert.equal(o.tls.certFile, resolve(DIR, 'tls/cert.pem'));
  assert.equal(o.tls.keyFile, resolve(DIR, 'tls/key.pem'));
  assert.match(only(read('store.datadir =').problems).message, /needs a path/);
});

test('type string: the host name is checked', () => {
  assert.equal(options('service.hostname = mail.example.com').hostname, 'mail.example.com');
  assert.match(only(read('service.hostname = mail example com').problems).message, /not a host name/);
});

test('a key given twice: the later wins, with a warning at the second', () => {
  const r = read('smtp.maxerrors = 5\nservice.hostname = a.example\nSMTP.MaxErrors = 7\n');
  assert.equal(r.options?.limits.maxErrors, 7);
  const w = only(r.problems, 'warning');
  assert.deepEqual([w.file, w.line, w.col, w.code], ['msg.conf', 3, 1, 'duplicate-key']);
  assert.match(w.message, /also set at line 1/);
});

test('unknown keys are errors with file:line:col and the closest known key', () => {
  const r = read('service.smtp.port = 25\n  smtp.maxrecipient = 5\n');
  assert.equal(r.options, null);
  const p = only(r.problems);
  assert.deepEqual([p.file, p.line, p.col, p.code], ['msg.conf', 2, 3, 'unknown-option']);
  assert.match(p.message, /did you mean smtp\.maxrecipients\?/);
  assert.doesNotMatch(only(read('totally.different = 1').problems).message, /did you mean/);
  assert.equal(suggestKey('service.smtps.prot'), 'service.smtps.port');
  assert.equal(suggestKey('maxconnections'), 'smtp.maxconnections');
});

test('malformed lines are errors', () => {
  const cases: [string, string, number][] = [
    ['just words', 'malformed-line', 1],
    ['  = 5', 'missing-key', 3],
    ['smtp max = 5', 'malformed-key', 1],
    ['service.hostname = "open', 'unterminated-quote', 20],
    ['service.hostname = "a" b', 'text-after-quote', 23],
  ];
  for (const [text, code, col] of cases) {
    const p = only(read(text).problems);
    assert.deepEqual([p.code, p.line, p.col], [code, 1, col], text);
  }
});

test('TLS: a certificate without a key (or the reverse) is an error at the one given', () => {
  const p = only(read('\nservice.tls.keyfile = k.pem').problems);
  assert.deepEqual([p.code, p.line, p.col], ['tls-incomplete', 2, 23]);
  assert.match(p.message, /service\.tls\.certfile is not/);
});

test('port collisions between services are errors at the later value; 0 disables a service', () => {
  let p = only(read('service.submit.port = 2525\nservice.smtp.port = 2525').problems);
  assert.deepEqual([p.code, p.line, p.col], ['port-collision', 2, 21]);
  p = only(read('service.submit.port = 25').problems);
  assert.deepEqual([p.code, p.line], ['port-collision', 1]);
  assert.deepEqual(options('service.submit.port = 0\nservice.smtps.port = 0').ports, { smtp: 25, submit: 0, smtps: 0 });
});

test('all problems of a file are reported, in line order', () => {
  const r = read('smtp.maxerrors = x\nbogus = 1\nsmtp.authwithouttls = perhaps\n');
  assert.deepEqual(
    r.problems.map((p) => p.line),
    [1, 2, 3],
  );
});

test('parseMsgConfText keeps the value position inside quotes', () => {
  const s = parseMsgConfText('f', 'a.b = "xyz"');
  assert.equal(s.entries[0]?.value, 'xyz');
  assert.equal(s.entries[0]?.valuePos.col, 8);
});

test('every option key of the schema is lower case and unique', () => {
  const keys = OPTION_SCHEMA.map((d) => d.key);
  assert.equal(new Set(keys).size, keys.length);
  for (const k of keys) assert.equal(k, k.toLowerCase());
  assert.equal(def('smtp.greetingdelayms').type.kind, 'integer');
});
