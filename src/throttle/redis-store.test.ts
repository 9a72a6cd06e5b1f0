// The Redis store against a real redis-server (tests/support/redis.ts): the shared conformance
// suite, then what only a network store has — keys that expire by themselves, AUTH, several
// processes counting one key, and the failure rules of check_metermaid's client (spec §7.3: every
// communication problem fails the call, promptly, and the store reconnects by itself).
//
// redis-server is required: when it is missing these tests fail (CI installs it), they do not
// skip. Only the outage tests wait on the real clock, for the reconnect and back-off periods.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { haveRedis, RedisServer, REDIS_SERVER } from '../../tests/support/redis.js';
import { RedisStore } from './redis-store.js';
import type { RedisStoreOptions } from './redis-store.js';
import { ModelTable, simpleSpec, storeConformance, T0, throttleSpec } from './store-conformance.js';
import type { HitResult, TableSpec } from './types.js';
import { StoreError } from './types.js';

let shared: RedisServer | undefined;
let prefixSeq = 0;

before(async () => {
  if (!haveRedis()) throw new Error(`${REDIS_SERVER} is not installed: the Redis store tests need it (apt-get install redis-server)`);
  shared = await RedisServer.start();
});

after(async () => {
  await shared?.close();
});

function server(): RedisServer {
  assert.ok(shared !== undefined, 'the shared redis-server did not start');
  return shared;
}

/** A store on `srv` with a key prefix of its own, so tests never see each other's keys. */
function open(srv: RedisServer, over: Partial<RedisStoreOptions> = {}): RedisStore {
  return new RedisStore({
    host: '127.0.0.1',
    port: srv.port,
    secret: srv.password,
    connectFrequencyMs: 200,
    connectWaitMs: 2000,
    timeoutMs: 2000,
    keyPrefix: `test:${process.pid}:${++prefixSeq}:`,
    ...over,
  });
}

async function connected(srv: RedisServer, over: Partial<RedisStoreOptions> = {}): Promise<RedisStore> {
  const store = open(srv, over);
  try {
    await store.waitReady();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

/** Runs `f` and returns how long it took to reject, with the StoreError it rejected with. */
async function failure(f: () => Promise<unknown>): Promise<{ ms: number; err: StoreError }> {
  const start = performance.now();
  try {
    await f();
  } catch (err) {
    const ms = performance.now() - start;
    assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
    return { ms, err };
  }
  assert.fail('the call succeeded');
}

/** Keys under `prefix` on `srv`. */
function keysOf(srv: RedisServer, prefix: string): string[] {
  return srv
    .cli('--scan', '--pattern', `${prefix}*`)
    .split('\n')
    .filter((k) => k !== '');
}

test('redis-server is installed (CI installs it; these tests fail rather than skip without it)', () => {
  assert.ok(haveRedis(), `${REDIS_SERVER} --version failed`);
});

storeConformance('redis', () => connected(server()));

void describe('redis only', () => {
  test('every key the store creates expires by itself: PTTL > 0, never -1', async () => {
    const srv = server();
    const prefix = `pttl:${process.pid}:`;
    const store = await connected(srv, { keyPrefix: prefix });
    try {
      const decay = throttleSpec({ quota: 3 });
      const penal = throttleSpec({ quota: 3, penalize: true });
      const window = throttleSpec({ quota: 3, mode: 'window' });
      const windowPenal = throttleSpec({ quota: 3, mode: 'window', penalize: true });
      const simple = simpleSpec();
      for (const s of [decay, penal, window, windowPenal]) {
        for (let i = 0; i < 6; i++) await store.hit(s, `k${i % 2}`, T0 + i);
        await store.hit(s, 'later', T0 + 100_000);
      }
      await store.store(simple, 'a', '1', T0);
      await store.adjust(simple, 'a', 2, T0);
      await store.adjust(simple, 'b', 2, T0);
      await store.store(simple, 'c', 'x', T0);
      await store.remove(simple, 'c');
      await store.hit(throttleSpec({ quota: 1, maxEntries: 1 }), 'evicted', T0);
      const keys = keysOf(srv, prefix);
      assert.ok(keys.length >= 10, `expected the store's keys, found ${keys.join(', ')}`);
      for (const k of keys) {
        const pttl = Number(srv.cli('pttl', k).trim());
        assert.ok(pttl > 0, `${k} has PTTL ${pttl}`);
      }
    } finally {
      await store.close();
    }
  });

  test('max_entries bounds the keys held in Redis, penalized long-lived keys included', async () => {
    const srv = server();
    const prefix = `maxe:${process.pid}:`;
    const store = await connected(srv, { keyPrefix: prefix });
    // A plain client looks at the keys (redis-cli per step would be slow).
    const look = new Redis({ host: '127.0.0.1', port: srv.port, lazyConnect: true });
    await look.connect();
    try {
      for (const s of [throttleSpec({ quota: 2, maxEntries: 3 }), throttleSpec({ quota: 2, maxEntries: 3, penalize: true }), throttleSpec({ quota: 2, maxEntries: 3, mode: 'window' })]) {
        let now = T0;
        for (let round = 0; round < 4; round++) {
          for (let k = 0; k < 8; k++) {
            for (let i = 0; i < 5; i++) await store.hit(s, `k${k}`, now);
            now += 7_000 + round * 20_000;
            const held = (await look.keys(`${prefix}${s.name}:*`)).filter((key) => !key.endsWith('#idx'));
            assert.ok(held.length <= 3, `${s.name}${s.penalize ? ' (penalize)' : ''}: ${held.length} keys held: ${held.join(', ')}`);
          }
        }
      }
    } finally {
      look.disconnect();
      await store.close();
    }
  });

  test('AUTH: the secret opens the store; a wrong or missing one gives "unavailable"', async () => {
    const srv = await RedisServer.start({ password: 's3cret-pass' });
    const stores: RedisStore[] = [];
    try {
      const good = await connected(srv);
      stores.push(good);
      assert.equal((await good.hit(throttleSpec(), 'k', T0)).over, false);
      for (const secret of ['wrong', '']) {
        const bad = open(srv, { secret, connectWaitMs: 300 });
        stores.push(bad);
        const wait = await failure(() => bad.waitReady());
        assert.equal(wait.err.code, 'unavailable', `secret ${JSON.stringify(secret)}: ${wait.err.message}`);
        const call = await failure(() => bad.hit(throttleSpec(), 'k', T0));
        assert.equal(call.err.code, 'unavailable', `secret ${JSON.stringify(secret)}: ${call.err.message}`);
        assert.ok(call.ms < 100, `rejected after ${call.ms} ms`);
      }
    } finally {
      for (const s of stores) await s.close();
      await srv.close();
    }
  });

  for (const mode of ['decay', 'window'] as const) {
    test(`${mode}: concurrent hits on one key from two stores and a child process admit exactly quota in total`, async () => {
      const srv = server();
      const keyPrefix = `conc:${process.pid}:${mode}:`;
      const s = throttleSpec({ mode, quota: 50 });
      const perClient = 120;
      const child = spawnCounter(srv, keyPrefix, s, perClient);
      const a = await connected(srv, { keyPrefix });
      const b = await connected(srv, { keyPrefix });
      try {
        await child.ready;
        child.go();
        const hits = (store: RedisStore): Promise<HitResult[]> => Promise.all(Array.from({ length: perClient }, () => store.hit(s, 'k', T0)));
        const [ra, rb, fromChild] = await Promise.all([hits(a), hits(b), child.admitted]);
        const admitted = ra.filter((r) => !r.over).length + rb.filter((r) => !r.over).length + fromChild;
        assert.equal(admitted, s.quota, `admitted: store A ${ra.filter((r) => !r.over).length}, store B ${rb.filter((r) => !r.over).length}, child ${fromChild}`);
        assert.equal((await a.peek(s, 'k', T0))?.count, s.quota);
      } finally {
        child.kill();
        await a.close();
        await b.close();
      }
    });
  }

  test('Redis stopped: calls fail at once with "unavailable"; after a restart the store reconnects by itself', async () => {
    const srv = await RedisServer.start();
    const states: string[] = [];
    const store = await connected(srv, { connectFrequencyMs: 200, timeoutMs: 500, onState: (st) => states.push(st) });
    try {
      const s = throttleSpec({ quota: 1 });
      assert.equal((await store.hit(s, 'k', T0)).over, false);
      await srv.stop();
      for (let i = 0; i < 5; i++) {
        const f = await failure(() => store.hit(s, 'k', T0));
        assert.equal(f.err.code, 'unavailable', f.err.message);
        assert.ok(f.ms < 100, `call ${i + 1} took ${f.ms.toFixed(1)} ms to fail`);
        const g = await failure(() => store.fetch(simpleSpec(), 'k'));
        assert.equal(g.err.code, 'unavailable');
      }
      await srv.start();
      await store.waitReady();
      // The restarted server forgot everything (spec §7.1: MeterMaid keeps no data across restarts).
      assert.equal((await store.hit(s, 'k', T0)).over, false);
      assert.equal((await store.hit(s, 'k', T0)).over, true);
      assert.deepEqual(states, ['ready', 'down', 'ready'], 'the state is reported once per change');
    } finally {
      await store.close();
      await srv.close();
    }
  });

  test('Redis paused: calls time out after timeoutMs; after three timeouts they fail fast until connectfrequency passes', async () => {
    const srv = await RedisServer.start();
    const timeoutMs = 150;
    const connectFrequencyMs = 400;
    // Timers fire late on a loaded machine; the point is "about timeoutMs", not "the full connectwait".
    const slack = 500;
    const store = await connected(srv, { connectFrequencyMs, timeoutMs });
    const s = throttleSpec({ quota: 100 });
    try {
      assert.equal((await store.hit(s, 'k', T0)).over, false);
      srv.pause();
      try {
        for (let i = 1; i <= 3; i++) {
          const f = await failure(() => store.hit(s, 'k', T0));
          assert.equal(f.err.code, 'timeout', `call ${i}: ${f.err.message}`);
          assert.ok(f.ms >= timeoutMs - 10 && f.ms < timeoutMs + slack, `call ${i} failed after ${f.ms.toFixed(1)} ms (timeoutMs ${timeoutMs})`);
        }
        const fast = await failure(() => store.hit(s, 'k', T0));
        assert.equal(fast.err.code, 'unavailable', fast.err.message);
        assert.ok(fast.ms < 50, `fail-fast call took ${fast.ms.toFixed(1)} ms`);
        await sleep(connectFrequencyMs + 50);
        const probe = await failure(() => store.hit(s, 'k', T0));
        assert.equal(probe.err.code, 'timeout', 'after connectfrequency the store asks again');
        const again = await failure(() => store.hit(s, 'k', T0));
        assert.equal(again.err.code, 'unavailable', 'still hung: back to failing fast');
      } finally {
        srv.resume();
      }
      await sleep(connectFrequencyMs + 50);
      // The server answers again; the hits that timed out may or may not have been counted.
      const r = await store.hit(s, 'k', T0);
      assert.equal(r.over, false);
      assert.ok(r.count >= 2 && r.count <= 6, `count ${r.count}`);
      assert.equal((await store.hit(s, 'k', T0)).count, r.count + 1, 'the store works normally again');
    } finally {
      srv.resume();
      await store.close();
      await srv.close();
    }
  });

  test('a closed store rejects every call with "unavailable"', async () => {
    const store = await connected(server());
    await store.close();
    await store.close();
    const f = await failure(() => store.hit(throttleSpec(), 'k', T0));
    assert.equal(f.err.code, 'unavailable');
  });

  test('the model agrees with the store across a long decay-then-window script (sanity check of the suite)', async () => {
    const store = await connected(server());
    try {
      for (const mode of ['decay', 'window'] as const) {
        const s = throttleSpec({ mode, quota: 3, quotaTimeMs: 60_000 });
        const model = new ModelTable(s);
        for (let i = 0; i < 40; i++) {
          const now = T0 + i * 7_919;
          assert.deepEqual(await store.hit(s, `k${i % 4}`, now), model.hit(`k${i % 4}`, now));
        }
      }
    } finally {
      await store.close();
    }
  });
});

/** A separate node process counting `n` hits of key "k" at T0 through its own RedisStore. */
function spawnCounter(srv: RedisServer, keyPrefix: string, s: TableSpec, n: number): { ready: Promise<void>; go(): void; admitted: Promise<number>; kill(): void } {
  const storeUrl = pathToFileURL(fileURLToPath(new URL('./redis-store.ts', import.meta.url))).href;
  const code = `
    import { RedisStore } from ${JSON.stringify(storeUrl)};
    const [port, prefix, spec, now, n] = process.argv.slice(1);
    const store = new RedisStore({ host: '127.0.0.1', port: Number(port), secret: '', connectFrequencyMs: 200, connectWaitMs: 5000, timeoutMs: 5000, keyPrefix: prefix });
    await store.waitReady();
    process.stdout.write('ready\\n');
    process.stdin.once('data', async () => {
      const rs = await Promise.all(Array.from({ length: Number(n) }, () => store.hit(JSON.parse(spec), 'k', Number(now))));
      process.stdout.write(rs.filter((r) => !r.over).length + '\\n');
      await store.close();
      process.exit(0);
    });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, String(srv.port), keyPrefix, JSON.stringify(s), String(T0), String(n)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    child.once('exit', (code) => reject(new Error(`counter process exited with ${code} before it was ready: ${err}`)));
  });
  const admitted = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) onReady();
      const lines = out.split('\n');
      if (lines.length >= 3) resolve(Number(lines[1]));
    });
    child.once('exit', (code) => reject(new Error(`counter process exited with ${code}: ${err}`)));
  });
  // Either promise may be left unawaited when the other fails; they must not become unhandled.
  ready.catch(() => undefined);
  admitted.catch(() => undefined);
  return {
    ready,
    go: () => child.stdin.write('go\n'),
    admitted,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}
