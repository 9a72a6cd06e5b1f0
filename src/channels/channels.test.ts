import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseImtaCnf } from '../config/imta-cnf.js';
import { compileMappingsText, mapAsync, parseFlagLetters } from '../mapping/index.js';
import { buildChannels } from './model.js';
import { candidates, compileRules, Rewriter, splitAddress } from './rewrite.js';
import type { MapTable } from './rewrite.js';
import { Router } from './routing.js';

// The §6.5 shape, with an internal domain routed to tcp_intranet for the seed-004 cases.
const IMTA = `! rules
example.com        $U%$D@mail.example.com
internal.example   $U%$D@tcp_intranet-daemon
[]                 $E$R\${INTERNAL_IP,$L}$U%[$L]@tcp_intranet-daemon
[]                 $U%[$L]@tcp-daemon
ims-ms             $E$U@ims-ms-daemon
.                  $U%$H$D@tcp-daemon

defaults notices 1 2 4 7 noswitchchannel maxjobs 7

l subdirs 20
mail.example.com

ims-ms defragment
ims-ms-daemon

tcp_local smtp mx switchchannel maytlsserver maysaslserver saslswitchchannel tcp_auth
tcp-daemon

tcp_intranet smtp mx allowswitchchannel saslswitchchannel tcp_auth
tcp_intranet-daemon

tcp_submit submit smtp mx mustsaslserver maytlsserver
tcp_submit-daemon

tcp_auth smtp mx mustsaslserver
tcp_auth-daemon
`;

const MAPPINGS = `INTERNAL_IP
  192.0.2.1          $N
  $(192.0.2.0/24)    $Y
  127.0.0.1          $Y
  *                  $N
`;

function setup(): { router: Router; map: MapTable; problems: string[] } {
  const cnf = parseImtaCnf('imta.cnf', IMTA);
  assert.deepEqual(cnf.problems.filter((p) => p.severity === 'error'), []);
  const built = buildChannels(cnf.config);
  const m = compileMappingsText(MAPPINGS);
  assert.ok(m.ok);
  const rules = compileRules(cnf.config.rewriteRules, (t) => m.set.table(t) !== undefined);
  const map: MapTable = async (table, arg) => {
    const r = await mapAsync(m.set, table, arg);
    return { yes: (r.flags & (parseFlagLetters('Y') as number)) !== 0, output: r.output };
  };
  const router = new Router(built.table, new Rewriter(rules.rules, built.table, () => undefined));
  return { router, map, problems: [...built.problems, ...rules.problems].map((p) => `${p.line}:${p.col} ${p.severity} ${p.message}`) };
}

test('§6.4 domain lookup order: exact, then parent domains with a leading dot, then "."; literals by prefix then []', () => {
  assert.deepEqual(
    candidates('a.b.c').map((c) => [c.pattern, c.h, c.d]),
    [
      ['a.b.c', '', 'a.b.c'],
      ['.b.c', 'a.', 'b.c'],
      ['.c', 'a.b.', 'c'],
      ['.', 'a.b.c', ''],
    ],
  );
  assert.deepEqual(
    candidates('[192.0.2.7]').map((c) => [c.pattern, c.l]),
    [
      ['[192.0.2.7]', ''],
      ['[192.0.2.]', '7'],
      ['[192.0.]', '2.7'],
      ['[192.]', '0.2.7'],
      ['[]', '192.0.2.7'],
      ['.', ''],
    ],
  );
  assert.deepEqual(splitAddress('@relay.example,@b.example:user@internal.example'), { local: '@b.example:user@internal.example', domain: 'relay.example' });
  assert.deepEqual(splitAddress('user%other@internal.example'), { local: 'user%other', domain: 'internal.example' });
});

test('§6.2 keyword groups: a channel keyword replaces the default of its group; unimplemented keywords are warned about', () => {
  const { router, problems } = setup();
  assert.equal(router.channel('tcp_local')?.switching, 'switch');
  assert.equal(router.channel('tcp_intranet')?.switching, 'allow');
  assert.equal(router.channel('tcp_auth')?.switching, 'no');
  assert.equal(router.channel('tcp_local')?.saslSwitchTo, 'tcp_auth');
  assert.ok(problems.some((p) => p.includes('warning') && p.includes('subdirs')));
  assert.ok(!problems.some((p) => p.includes('notices') || p.includes('maxjobs')), 'delivery keywords take effect');
  assert.ok(!problems.some((p) => p.includes('error')));
});

test('delivery keywords: backoff, notices and maxjobs from the defaults block or the channel', () => {
  const cnf = parseImtaCnf('imta.cnf', '\ndefaults notices 1 2 4 7 maxjobs 7\n\nl\nlocal-daemon\n\nims-ms backoff "pt5m" pt10m "PT1H" notices 3 maxjobs 4\nims-ms-daemon\n\ntcp_lmtpcs lmtp\ntcp_lmtpcs-daemon\n\nrelay_out smtp mx\nrelay-daemon\n');
  assert.deepEqual(cnf.problems, []);
  const { table } = buildChannels(cnf.config);
  assert.deepEqual(table.get('l')?.delivery, { protocol: null, backoffMs: null, noticesDays: [1, 2, 4, 7], maxJobs: 7 });
  assert.deepEqual(table.get('ims-ms')?.delivery, { protocol: null, backoffMs: [300_000, 600_000, 3_600_000], noticesDays: [3], maxJobs: 4 });
  assert.equal(table.get('tcp_lmtpcs')?.delivery.protocol, 'lmtp');
  assert.equal(table.get('relay_out')?.delivery.protocol, 'smtp');
});

test('§6.3 switchchannel: internal clients move to tcp_intranet, the firewall listed $N first stays on tcp_local', async () => {
  const { router, map } = setup();
  assert.equal((await router.sourceChannel('smtp', '192.0.2.55', map)).channel, 'tcp_intranet');
  assert.equal((await router.sourceChannel('smtp', '127.0.0.1', map)).channel, 'tcp_intranet');
  assert.equal((await router.sourceChannel('smtp', '192.0.2.1', map)).channel, 'tcp_local');
  assert.equal((await router.sourceChannel('smtp', '203.0.113.9', map)).channel, 'tcp_local');
  // The submission port's channel has no switchchannel.
  assert.equal((await router.sourceChannel('submit', '192.0.2.55', map)).channel, 'tcp_submit');
  assert.equal(router.afterAuth('tcp_local'), 'tcp_auth');
  assert.equal(router.afterAuth('tcp_intranet'), 'tcp_auth');
  assert.equal(router.sasl('tcp_intranet', 'smtp'), 'may', 'no SASL keyword: inherits the service channel (tcp_local)');
  assert.equal(router.sasl('tcp_submit', 'submit'), 'must');
});

test('§6.4 destination channels: hosted → l, Internet → tcp_local, channel hosts, internal domains, literals as forward addresses', async () => {
  const { router, map } = setup();
  const dest = async (a: string): Promise<string | undefined> => (await router.destination(a, map))?.channel.name;
  assert.equal(await dest('user@example.com'), 'l');
  assert.equal(await dest('User@EXAMPLE.COM'), 'l');
  assert.equal(await dest('friend@elsewhere.example'), 'tcp_local');
  assert.equal(await dest('user@ims-ms-daemon'), 'ims-ms');
  assert.equal(await dest('user@internal.example'), 'tcp_intranet');
  // $R rules do not apply to recipients: an internal literal is still tcp_local for RCPT.
  assert.equal(await dest('user@[192.0.2.55]'), 'tcp_local');
  // Seed 004's source-routed forms go where their first hop goes.
  assert.equal(await dest('@internal.example:user@other.example'), 'tcp_intranet');
  assert.equal(await dest('user%other.example@internal.example'), 'tcp_intranet');
  assert.equal(await dest('host!user@internal.example'), 'tcp_intranet');
  assert.equal(await dest('"user@other.example"@internal.example'), 'tcp_intranet');
  const r = await router.destination('friend@elsewhere.example', map);
  assert.equal(r?.address, 'friend@elsewhere.example');
  assert.equal(r?.host, 'tcp-daemon');
});

test('rewrite templates with unsupported constructs are configuration errors with a position', () => {
  const cnf = parseImtaCnf('imta.cnf', 'example.com  $U%$D@x$Qy\n.  $U%$H$D\n\ntcp_local smtp\ntcp-daemon\n');
  const r = compileRules(cnf.config.rewriteRules, () => true);
  assert.deepEqual(
    r.problems.map((p) => `${p.line}:${p.col}`),
    ['1:21', '2:4'],
  );
  assert.match(r.problems[0]?.message ?? '', /^rewrite template construct "\$Q" is not supported/);
  assert.match(r.problems[1]?.message ?? '', /^a rewrite template must route to a host/);
});
