// `portcullis throttle show|reset` through the command table (main.ts), against a control socket
// served in this process by the daemon's own handler over a MeterMaid whose clock the test sets,
// so counts, retry-after and reset times are exact. tests/integration/metermaid.test.ts runs the
// same commands against the real server.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from './main.js';
import { EXIT } from './command.js';
import { serveControl } from '../daemon/control.js';
import { throttleControl } from '../daemon/throttle-control.js';
import type { MeterMaidOptions } from '../config/types.js';
import { MeterMaid } from '../throttle/service.js';
import type { TableSpec } from '../throttle/types.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-cli-throttle-'));

const base: Omit<TableSpec, 'name'> = {
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
};
const EXT: TableSpec = { ...base, name: 'ext_throttle', dataType: 'ipv4' };
const SENDLIM: TableSpec = { ...base, name: 'sendlim', quota: 3, quotaTimeMs: 300_000, mode: 'window' };
const NOTES: TableSpec = { ...base, name: 'notes', type: 'simple', quotaTimeMs: 3_600_000 };

function options(tables: readonly TableSpec[], server: MeterMaidOptions['server'] = null): MeterMaidOptions {
  return { tables: new Map(tables.map((t) => [t.name, t])), server, client: { connectFrequencyMs: 60_000, connectWaitMs: 200, timeoutMs: 200 } };
}

/** A configuration directory (msg.conf names the data directory) with a control socket served in it. */
async function serve(name: string, meter: MeterMaid): Promise<{ config: string; server: Server }> {
  const config = join(root, name);
  mkdirSync(join(config, 'data'), { recursive: true });
  writeFileSync(join(config, 'msg.conf'), '! throttle CLI test\n');
  const server = await serveControl(join(config, 'data'), (req) => (req.cmd === 'throttle-show' || req.cmd === 'throttle-reset' ? throttleControl(meter, req) : Promise.resolve({ ok: false, error: 'not here' })));
  return { config, server };
}

async function portcullis(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough() };
  let stdout = '';
  let stderr = '';
  io.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  io.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const code = await main(argv, io);
  await new Promise((r) => setImmediate(r));
  return { code, stdout, stderr };
}

let now = 1_000_000;
const meter = new MeterMaid({ now: () => now });
meter.reconfigure(options([EXT, SENDLIM, NOTES]));
const { config, server } = await serve('running', meter);

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await meter.close();
  rmSync(root, { recursive: true, force: true });
});

/** Fresh counts: 15 hits from 127.0.0.2 and 3 from 127.0.0.3 at t0, the clock then 2 s later. */
async function fifteenAndThree(): Promise<void> {
  await meter.reset('ext_throttle', undefined);
  const t0 = now;
  for (let i = 0; i < 15; i++) await meter.store.hit(EXT, '127.0.0.2', t0);
  for (let i = 0; i < 3; i++) await meter.store.hit(EXT, '127.0.0.3', t0);
  now = t0 + 2000;
}

test('throttle show TABLE: a header, then one row per key, most recently used first; decaying counts with two decimals', async () => {
  await fifteenAndThree();
  const r = await portcullis('throttle', 'show', 'ext_throttle', '--config', config);
  assert.equal(r.stderr, '');
  assert.equal(r.code, EXIT.ok);
  // 2 s at 15/60 s drain 0.5: 14.5 left (over: 15.5 > 15, admitted again in 2 s, empty in 58 s).
  assert.equal(
    r.stdout,
    [
      'table ext_throttle: throttle, mode decay, quota 15 per 60 s, store embedded',
      'KEY        COUNT  REMAINING  OVER  RETRY-AFTER  RESET',
      '127.0.0.3  2.50   12         no    0s           10s',
      '127.0.0.2  14.50  0          yes   2s           58s',
      '',
    ].join('\n'),
  );
});

test('throttle show TABLE KEY --json prints the view object; the key is canonicalised by the table (ipv4)', async () => {
  await fifteenAndThree();
  const r = await portcullis('throttle', 'show', 'EXT_THROTTLE', '::ffff:127.0.0.2', '--json', '--config', config);
  assert.equal(r.code, EXIT.ok, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    table: 'ext_throttle',
    type: 'throttle',
    mode: 'decay',
    quota: 15,
    quotaTimeSeconds: 60,
    store: 'embedded',
    keys: [{ key: '127.0.0.2', count: 14.5, over: true, remaining: 0, resetMs: 58_000, retryAfterMs: 2000 }],
  });
});

test('throttle show: a key with nothing counted, an empty table, --limit, and a window table with whole counts', async () => {
  await fifteenAndThree();
  const none = await portcullis('throttle', 'show', 'ext_throttle', '127.0.0.9', '--config', config);
  assert.equal(none.code, EXIT.ok, none.stderr);
  assert.equal(none.stdout.split('\n')[1], '127.0.0.9: nothing counted (15 remaining)');
  const limited = await portcullis('throttle', 'show', 'ext_throttle', '--limit', '1', '--json', '--config', config);
  assert.deepEqual(
    (JSON.parse(limited.stdout) as { keys: { key: string }[] }).keys.map((k) => k.key),
    ['127.0.0.3'],
  );
  const empty = await portcullis('throttle', 'show', 'sendlim', '--config', config);
  assert.equal(empty.stdout, 'table sendlim: throttle, mode window, quota 3 per 300 s, store embedded\n(no keys counted)\n');
  await meter.store.hit(SENDLIM, 'alice@example.test', now - 100_000);
  await meter.store.hit(SENDLIM, 'alice@example.test', now);
  const w = await portcullis('throttle', 'show', 'sendlim', 'alice@example.test', '--config', config);
  assert.equal(w.stdout.split('\n')[2], 'alice@example.test  2      1          no    0s           300s');
});

test('throttle show on a simple table lists key, value and time to live', async () => {
  await meter.store.store(NOTES, 'alice@example.test', 'over the limit', now - 600_000);
  await meter.store.store(NOTES, 'bob@example.test', '7', now);
  const r = await portcullis('throttle', 'show', 'notes', '--config', config);
  assert.equal(r.code, EXIT.ok, r.stderr);
  assert.equal(
    r.stdout,
    [
      'table notes: simple, entries live 3600 s, store embedded',
      'KEY                 VALUE           TTL',
      'bob@example.test    7               3600s',
      'alice@example.test  over the limit  3000s',
      '',
    ].join('\n'),
  );
  const one = await portcullis('throttle', 'show', 'notes', 'carol@example.test', '--config', config);
  assert.equal(one.stdout.split('\n')[1], 'carol@example.test: no entry');
});

test('throttle reset TABLE KEY forgets one key; reset TABLE forgets the table and says how many keys went', async () => {
  await fifteenAndThree();
  const one = await portcullis('throttle', 'reset', 'ext_throttle', '127.0.0.2', '--config', config);
  assert.deepEqual(one, { code: EXIT.ok, stdout: 'ext_throttle: reset 127.0.0.2\n', stderr: '' });
  assert.equal(await meter.store.peek(EXT, '127.0.0.2', now), undefined);
  const again = await portcullis('throttle', 'reset', 'ext_throttle', '127.0.0.2', '--config', config);
  assert.equal(again.stdout, 'ext_throttle: 127.0.0.2 had nothing counted\n');
  await meter.store.hit(EXT, '127.0.0.4', now);
  const all = await portcullis('throttle', 'reset', 'ext_throttle', '--config', config);
  assert.deepEqual(all, { code: EXIT.ok, stdout: 'ext_throttle: reset, 2 keys removed\n', stderr: '' });
  assert.deepEqual(await meter.store.list(EXT, now, 10), []);
});

test('an unknown table or a key that does not fit the table: the server\'s message on stderr, exit 2', async () => {
  const r = await portcullis('throttle', 'show', 'nosuch', '--config', config);
  assert.deepEqual(r, { code: EXIT.usage, stdout: '', stderr: 'portcullis: no MeterMaid table "nosuch" (tables: ext_throttle, sendlim, notes)\n' });
  const reset = await portcullis('throttle', 'reset', 'nosuch', 'k', '--config', config);
  assert.equal(reset.code, EXIT.usage);
  assert.match(reset.stderr, /no MeterMaid table "nosuch"/);
  const key = await portcullis('throttle', 'show', 'ext_throttle', 'not-an-address', '--config', config);
  assert.deepEqual(key, { code: EXIT.usage, stdout: '', stderr: 'portcullis: "not-an-address" is not an IP address (table ext_throttle has data_type ipv4)\n' });
});

test('bad usage is exit 2 before anything is asked: no table, a bad --limit, no --config', async () => {
  assert.equal((await portcullis('throttle', 'show', '--config', config)).code, EXIT.usage);
  const limit = await portcullis('throttle', 'show', 'ext_throttle', '--limit', 'lots', '--config', config);
  assert.deepEqual(limit, { code: EXIT.usage, stdout: '', stderr: 'portcullis: --limit takes a whole number of keys from 1, not "lots"\n' });
  assert.equal((await portcullis('throttle', 'reset', 'ext_throttle')).code, EXIT.usage);
});

test('no server running: exit 1 and "no server is running", like status and reload', async () => {
  const idle = join(root, 'idle');
  mkdirSync(idle);
  writeFileSync(join(idle, 'msg.conf'), '');
  for (const cmd of ['show', 'reset']) {
    const r = await portcullis('throttle', cmd, 'ext_throttle', '--config', idle);
    assert.equal(r.code, EXIT.failure, cmd);
    assert.match(r.stderr, /^portcullis: no server is running \(no control socket at .*control\.sock\)\n$/);
  }
});

test('a store that cannot answer (Redis unreachable): the store error on stderr, exit 1', async () => {
  const down = new MeterMaid();
  // Port 9 on loopback: nothing listens there, the connection is refused at once.
  down.reconfigure(options([EXT], { host: '127.0.0.1', port: 9, secret: '' }));
  const s = await serve('down', down);
  try {
    const r = await portcullis('throttle', 'show', 'ext_throttle', '--config', s.config);
    assert.equal(r.code, EXIT.failure);
    assert.match(r.stderr, /^portcullis: Redis at 127\.0\.0\.1:9 is not connected\n$/);
  } finally {
    await new Promise<void>((r) => s.server.close(() => r()));
    await down.close();
  }
});
