import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DnsServer } from '../../tests/support/dns.js';
import { liveResolver } from './resolver.js';

let one: DnsServer;
let two: DnsServer;

before(async () => {
  one = await DnsServer.start({ 'a.test': { MX: [{ exchange: 'mx.one.test', priority: 10 }] } });
  two = await DnsServer.start({ 'a.test': { MX: [{ exchange: 'mx.two.test', priority: 20 }] } });
});
after(async () => {
  await Promise.all([one.close(), two.close()]);
});

test('liveResolver asks the servers the option names now: a changed list (a reload) takes effect at the next lookup', async () => {
  let servers: readonly string[] = [`127.0.0.1:${one.port}`];
  const r = liveResolver(() => servers, { timeoutMs: 1000, tries: 1 });
  assert.deepEqual(await r.resolveMx('a.test'), [{ exchange: 'mx.one.test', priority: 10 }]);
  servers = [`127.0.0.1:${two.port}`];
  assert.deepEqual(await r.resolveMx('a.test'), [{ exchange: 'mx.two.test', priority: 20 }]);
  assert.deepEqual(one.queries, ['a.test MX']);
  assert.deepEqual(two.queries, ['a.test MX']);
  // Names not in the zone: NXDOMAIN from the server asked, as resolveNextHops expects it.
  await assert.rejects(r.resolve4('nowhere.test'), { code: 'ENOTFOUND' });
});
