// msg.conf's MeterMaid options (spec §7.2–§7.4): the metermaid.table.NAME.* family read through
// readOptions, with every problem at file:line:col, and the store/client options.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { readOptions } from './msgconf.js';
import { MAX_WINDOW_QUOTA, TABLE_OPTIONS } from './metermaid-options.js';
import type { TableSpec } from '../throttle/types.js';
import type { ConfigProblem, MeterMaidOptions } from './types.js';

const DIR = resolve('/etc/portcullis');

function read(...lines: string[]) {
  return readOptions('msg.conf', lines.join('\n') + '\n', { configDir: DIR });
}

function metermaid(...lines: string[]): MeterMaidOptions {
  const r = read(...lines);
  assert.ok(r.options, `expected options, got ${JSON.stringify(r.problems)}`);
  return r.options.metermaid;
}

function tableOf(name: string, ...lines: string[]): TableSpec {
  const t = metermaid(...lines).tables.get(name);
  assert.ok(t, `no table ${name}`);
  return t;
}

/** Problems as "file:line:col code: message". */
function problems(...lines: string[]): string[] {
  return read(...lines).problems.map((p: ConfigProblem) => `${p.file}:${p.line}:${p.col} ${p.severity} ${p.code}: ${p.message}`);
}

function errors(...lines: string[]): string[] {
  const r = read(...lines);
  assert.equal(r.options, null, 'expected the configuration to be refused');
  return problems(...lines).filter((p) => p.includes(' error '));
}

test('§7.2 defaults: no tables, the embedded store, client timings of §7.3', () => {
  const m = metermaid();
  assert.equal(m.tables.size, 0);
  assert.equal(m.server, null);
  assert.deepEqual(m.client, { connectFrequencyMs: 15_000, connectWaitMs: 5_000, timeoutMs: 500 });
});

test('§7.4 a table given one option takes the documented defaults for the rest', () => {
  assert.deepEqual(tableOf('ext_throttle', 'metermaid.table.ext_throttle.quota = 15'), {
    name: 'ext_throttle',
    type: 'throttle',
    dataType: 'string',
    valueType: 'string',
    quota: 15,
    quotaTimeMs: 60_000,
    penalize: false,
    nocase: false,
    maxEntries: 1000,
    onError: 'allow',
    mode: 'decay',
  });
  assert.equal(tableOf('t', 'metermaid.table.t.type = throttle').quota, 10, 'quota defaults to 10');
});

test('§7.4 the seeds: ext_throttle, limitauthspam, sendlim, bad_password_attempts', () => {
  const m = metermaid(
    'metermaid.table.ext_throttle.data_type = ipv4',
    'metermaid.table.ext_throttle.quota = 15',
    'metermaid.table.ext_throttle.quota_time = 60',
    'metermaid.table.limitauthspam.quota = 50',
    'metermaid.table.limitauthspam.quota_time = 3600',
    'metermaid.table.limitauthspam.max_entries = 1000',
    'metermaid.table.sendlim.data_type = string',
    'metermaid.table.sendlim.quota = 10',
    'metermaid.table.sendlim.quota_time = 300',
    'metermaid.table.sendlim.max_entries = 100000',
    'metermaid.table.bad_password_attempts.quota = 2',
    'metermaid.table.bad_password_attempts.quota_time = 1h',
  );
  assert.deepEqual([...m.tables.keys()].sort(), ['bad_password_attempts', 'ext_throttle', 'limitauthspam', 'sendlim']);
  assert.equal(m.tables.get('ext_throttle')?.dataType, 'ipv4');
  assert.equal(m.tables.get('limitauthspam')?.quotaTimeMs, 3_600_000);
  assert.equal(m.tables.get('sendlim')?.maxEntries, 100_000);
  assert.equal(m.tables.get('bad_password_attempts')?.quotaTimeMs, 3_600_000);
});

test('§7.4 every sub-option', () => {
  const t = tableOf(
    'all',
    'metermaid.table.all.type = Simple',
    'metermaid.table.all.data_type = IPV4',
    'metermaid.table.all.value_type = integer',
    'metermaid.table.all.quota_time = 5m',
    'metermaid.table.all.options = penalize, NOCASE',
    'metermaid.table.all.max_entries = 7',
    'metermaid.table.all.on_error = deny',
    'metermaid.table.all.mode = window',
  );
  assert.deepEqual(t, {
    name: 'all',
    type: 'simple',
    dataType: 'ipv4',
    valueType: 'integer',
    quota: 10,
    quotaTimeMs: 300_000,
    penalize: true,
    nocase: true,
    maxEntries: 7,
    onError: 'deny',
    mode: 'window',
  });
  assert.equal(tableOf('p', 'metermaid.table.p.options = penalize').nocase, false);
  assert.equal(tableOf('n', 'metermaid.table.n.options = nocase').penalize, false);
  assert.equal(tableOf('q', 'metermaid.table.q.quota_time = 90s').quotaTimeMs, 90_000);
  assert.deepEqual(
    TABLE_OPTIONS.map((d) => d.key),
    ['type', 'data_type', 'value_type', 'quota', 'quota_time', 'options', 'max_entries', 'on_error', 'mode', 'storage'],
  );
});

test('table names are case-insensitive like every msg.conf key; one table may be spread over the file', () => {
  const m = metermaid('metermaid.table.Ext_Throttle.quota = 15', 'service.smtp.port = 2525', 'METERMAID.TABLE.ext_throttle.DATA_TYPE = ipv4', 'metermaid.table.b-2.quota = 1');
  assert.deepEqual([...m.tables.keys()], ['ext_throttle', 'b-2']);
  assert.equal(m.tables.get('ext_throttle')?.quota, 15);
  assert.equal(m.tables.get('ext_throttle')?.dataType, 'ipv4');
});

test('warnings: storage has no effect; quota on a simple table has none either', () => {
  const p = problems('metermaid.table.kv.type = simple', 'metermaid.table.kv.quota = 5', 'metermaid.table.kv.storage = hash');
  assert.deepEqual(p, [
    'msg.conf:2:1 warning quota-on-simple-table: metermaid.table.kv is a simple table: quota has no effect there',
    'msg.conf:3:1 warning no-effect: metermaid.table.kv.storage has no effect in Portcullis',
  ]);
  assert.ok(read('metermaid.table.kv.storage = hash').options?.metermaid.tables.has('kv'), 'warnings do not drop the table');
});

test('an unknown sub-option is an error at its key, with a suggestion', () => {
  assert.deepEqual(errors('metermaid.table.ext_throttle.qouta = 15'), [
    'msg.conf:1:1 error unknown-option: unknown MeterMaid table option "qouta" in metermaid.table.ext_throttle.qouta — did you mean metermaid.table.ext_throttle.quota? (options: type, data_type, value_type, quota, quota_time, options, max_entries, on_error, mode, storage)',
  ]);
  const [e] = errors('! comment', '  metermaid.table.t.max-entries = 5');
  assert.match(e as string, /^msg\.conf:2:3 error unknown-option: .*did you mean metermaid\.table\.t\.max_entries\?/);
  const [far] = errors('metermaid.table.t.colour = red');
  assert.doesNotMatch(far as string, /did you mean/, 'no suggestion when nothing is close');
});

test('bad table names: NAME of letters, digits, "_" and "-"', () => {
  for (const key of ['metermaid.table.quota', 'metermaid.table.a.b.quota', 'metermaid.table..quota']) {
    const [e] = errors(`${key} = 5`);
    assert.equal(e, `msg.conf:1:1 error bad-table-name: ${key}: write metermaid.table.NAME.OPTION with a NAME of letters, digits, "_" and "-"`);
  }
  // A misspelt family is an unknown option of the schema, not a table.
  const [e] = errors('metermaid.tables.t.quota = 5');
  assert.match(e as string, /^msg\.conf:1:1 error unknown-option: unknown option metermaid\.tables\.t\.quota/);
});

test('bad values: errors at the value, naming the option and what it takes', () => {
  const cases: [string, RegExp][] = [
    ['metermaid.table.t.quota = 0', /^msg\.conf:1:27 error bad-value: metermaid\.table\.t\.quota must be from 1 to 1000000000; 0 is out of range$/],
    ['metermaid.table.t.quota = many', /^msg\.conf:1:27 error bad-value: metermaid\.table\.t\.quota expects a whole number, not "many"$/],
    ['metermaid.table.t.quota =', /^msg\.conf:1:26 error bad-value: metermaid\.table\.t\.quota expects a whole number$/],
    ['metermaid.table.t.quota_time = 0', /error bad-value: metermaid\.table\.t\.quota_time must be from 1s to 720h; 0 is out of range$/],
    ['metermaid.table.t.quota_time = 1 day', /error bad-value: metermaid\.table\.t\.quota_time expects a duration such as 30, 30s, 5m or 1h/],
    ['metermaid.table.t.type = counter', /^msg\.conf:1:26 error bad-value: "counter" is not a table type: throttle or simple$/],
    ['metermaid.table.t.data_type = ipv6', /error bad-value: "ipv6" is not a key type: string or ipv4$/],
    ['metermaid.table.t.value_type = float', /error bad-value: "float" is not a value type: string or integer$/],
    ['metermaid.table.t.on_error = ignore', /error bad-value: "ignore" is not a choice: allow or deny$/],
    ['metermaid.table.t.mode = fixed', /error bad-value: "fixed" is not a counting mode: decay or window$/],
    ['metermaid.table.t.max_entries = 0', /error bad-value: metermaid\.table\.t\.max_entries must be from 1 to 100000000/],
  ];
  for (const [line, want] of cases) {
    const e = errors(line);
    assert.equal(e.length, 1, `${line}: ${e.join('\n')}`);
    assert.match(e[0] as string, want, line);
  }
  // The column of a bad list item is the item's own.
  assert.deepEqual(errors('metermaid.table.t.options = penalize, nocsae'), [
    'msg.conf:1:39 error bad-value: metermaid.table.t.options: "nocsae" is not a table option: penalize, nocase',
  ]);
});

test('a table with a bad value is dropped and the configuration refused; other tables report their own problems', () => {
  const r = read('metermaid.table.a.quota = 0', 'metermaid.table.b.quota = 5', 'metermaid.table.c.mode = sliding');
  assert.equal(r.options, null);
  assert.deepEqual(
    r.problems.map((p) => `${p.line}:${p.col} ${p.code}`),
    ['1:27 bad-value', '3:26 bad-value'],
  );
});

test(`window mode keeps a timestamp per hit, so its quota is at most ${MAX_WINDOW_QUOTA}`, () => {
  assert.equal(tableOf('w', 'metermaid.table.w.mode = window', `metermaid.table.w.quota = ${MAX_WINDOW_QUOTA}`).quota, MAX_WINDOW_QUOTA);
  assert.deepEqual(errors('metermaid.table.w.mode = window', `metermaid.table.w.quota = ${MAX_WINDOW_QUOTA + 1}`), [
    `msg.conf:2:27 error window-quota-too-large: metermaid.table.w: mode = window keeps one timestamp per hit, so quota is limited to ${MAX_WINDOW_QUOTA}; use mode = decay for larger quotas`,
  ]);
  assert.equal(tableOf('d', `metermaid.table.d.quota = ${MAX_WINDOW_QUOTA + 1}`).mode, 'decay', 'decay mode takes large quotas');
});

test('greylisting tables are refused with a clear message', () => {
  assert.deepEqual(errors('metermaid.table.grey.type = greylisting'), [
    'msg.conf:1:29 error bad-value: greylisting tables are not available yet (they come with greylisting)',
  ]);
  assert.equal(errors('metermaid.table.grey.type = GreyListing').length, 1);
});

test('§7.2 metermaid.config.serverhost/port/secret select the shared Redis store', () => {
  const m = metermaid('metermaid.config.serverhost = redis.example.net', 'metermaid.config.port = 6380', 'metermaid.config.secret = "s3cret with spaces"');
  assert.deepEqual(m.server, { host: 'redis.example.net', port: 6380, secret: 's3cret with spaces' });
  assert.deepEqual(metermaid('metermaid.config.serverhost = 192.0.2.5').server, { host: '192.0.2.5', port: 6379, secret: '' });
  assert.deepEqual(metermaid('metermaid.config.serverhost = ::1').server, { host: '::1', port: 6379, secret: '' });
  assert.equal(metermaid('metermaid.config.port = 6380', 'metermaid.config.secret = x').server, null, 'no serverhost: the embedded store');
  assert.deepEqual(errors('metermaid.config.serverhost = not a host!'), ['msg.conf:1:31 error bad-value: "not a host!" is not a host name or IP address']);
  assert.match(errors('metermaid.config.port = 0')[0] as string, /^msg\.conf:1:25 error bad-value: metermaid\.config\.port must be from 1 to 65535/);
});

test('§7.3 metermaid.mtaclient.* set the client timings', () => {
  const m = metermaid('metermaid.mtaclient.connectfrequency = 30', 'metermaid.mtaclient.connectwait = 2s', 'metermaid.mtaclient.timeoutms = 250');
  assert.deepEqual(m.client, { connectFrequencyMs: 30_000, connectWaitMs: 2_000, timeoutMs: 250 });
  assert.equal(metermaid('metermaid.mtaclient.connectfrequency = 1m').client.connectFrequencyMs, 60_000);
  assert.match(errors('metermaid.mtaclient.timeoutms = 5')[0] as string, /metermaid\.mtaclient\.timeoutms must be from 10 to 60000/);
  assert.match(errors('metermaid.mtaclient.connectwait = 2m')[0] as string, /metermaid\.mtaclient\.connectwait must be from 1s to 1m/);
  assert.match(errors('metermaid.mtaclient.debug = yes')[0] as string, /unknown option metermaid\.mtaclient\.debug/);
});
