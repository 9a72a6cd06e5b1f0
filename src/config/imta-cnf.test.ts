import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHANNEL_KEYWORDS, isoDurationMs, parseImtaCnf } from './imta-cnf.js';
import type { ChannelDef } from './imta-cnf.js';
import type { ConfigProblem } from './types.js';

// spec §6.5, as printed (including its inline "! UNSURE" remark after a template).
const SAMPLE = `! Part I: rewrite rules (first blank line ends this part)
!<IMTA_TABLE:domain_rewrite_rules.txt      ! hosted-domain rules, or taken from LDAP
[]                 $E$R\${INTERNAL_IP,$L}$U%[$L]@tcp_intranet-daemon
[]                 $U%[$L]@tcp-daemon
ims-ms             $E$U@ims-ms-daemon
.                  $U%$H$D@tcp-daemon      ! UNSURE exact catch-all form
! ... reprocess/process/conversion/bitbucket/hold rules

! Part II: channel blocks, one blank line between blocks
defaults notices 1 2 4 7 copywarnpost copysendpost postheadonly noswitchchannel immnonurgent maxjobs 7 defaulthost example.com example.com

l subdirs 20 viaaliasrequired maxjobs 7 pool LOCAL_POOL
mail.example.com

ims-ms defragment subdirs 20 notices 1 7 14 21 28 backoff "pt5m" "pt10m" "pt30m" "pt1h" "pt2h" "pt4h" maxjobs 4 pool IMS_POOL fileinto $U+$S@$D
ims-ms-daemon

tcp_local smtp mx single_sys remotehost inner switchchannel identnonenumeric subdirs 20 maxjobs 7 pool SMTP_POOL maytlsserver maysaslserver saslswitchchannel tcp_auth missingrecipientpolicy 0
tcp-daemon

tcp_intranet smtp mx single_sys subdirs 20 dequeue_removeroute maxjobs 7 pool SMTP_POOL maytlsserver allowswitchchannel saslswitchchannel tcp_auth missingrecipientpolicy 4
tcp_intranet-daemon

tcp_submit submit smtp mx single_sys mustsaslserver maytlsserver missingrecipientpolicy 4
tcp_submit-daemon

tcp_auth smtp mx single_sys mustsaslserver missingrecipientpolicy 4
tcp_auth-daemon
`;

function parse(text: string) {
  return parseImtaCnf('imta.cnf', text);
}

function only(problems: readonly ConfigProblem[], severity: 'error' | 'warning' = 'error'): ConfigProblem {
  const list = problems.filter((p) => p.severity === severity);
  assert.equal(list.length, 1, JSON.stringify(problems));
  return list[0] as ConfigProblem;
}

function channel(text: string, name: string): ChannelDef {
  const c = parse(text).config.channels.find((ch) => ch.name === name);
  assert.ok(c, name);
  return c;
}

test('§6.5 sample: parses without problems into rewrite rules, a defaults block and six channels', () => {
  const { config, problems } = parse(SAMPLE);
  assert.deepEqual(problems, []);
  assert.deepEqual(
    config.rewriteRules.map((r) => [r.pattern, r.template]),
    [
      ['[]', '$E$R${INTERNAL_IP,$L}$U%[$L]@tcp_intranet-daemon'],
      ['[]', '$U%[$L]@tcp-daemon'],
      ['ims-ms', '$E$U@ims-ms-daemon'],
      ['.', '$U%$H$D@tcp-daemon'],
    ],
  );
  assert.deepEqual(
    config.blocks.map((b) => (b.kind === 'defaults' ? 'defaults' : b.name)),
    ['defaults', 'l', 'ims-ms', 'tcp_local', 'tcp_intranet', 'tcp_submit', 'tcp_auth'],
  );
  assert.deepEqual(
    config.channels.map((c) => [c.name, c.hosts]),
    [
      ['l', ['mail.example.com']],
      ['ims-ms', ['ims-ms-daemon']],
      ['tcp_local', ['tcp-daemon']],
      ['tcp_intranet', ['tcp_intranet-daemon']],
      ['tcp_submit', ['tcp_submit-daemon']],
      ['tcp_auth', ['tcp_auth-daemon']],
    ],
  );
});

test('§6.5 sample: keyword arguments of every arity', () => {
  const { config } = parse(SAMPLE);
  const defaults = config.blocks[0];
  assert.ok(defaults?.kind === 'defaults');
  const kw = (list: readonly { name: string; args: readonly string[] }[]) => list.map((k) => [k.name, ...k.args].join(' '));
  assert.deepEqual(kw(defaults.keywords), [
    'notices 1 2 4 7',
    'copywarnpost',
    'copysendpost',
    'postheadonly',
    'noswitchchannel',
    'immnonurgent',
    'maxjobs 7',
    'defaulthost example.com example.com',
  ]);
  assert.deepEqual(kw(channel(SAMPLE, 'ims-ms').keywords), [
    'defragment',
    'subdirs 20',
    'notices 1 7 14 21 28',
    'backoff pt5m pt10m pt30m pt1h pt2h pt4h',
    'maxjobs 4',
    'pool IMS_POOL',
    'fileinto $U+$S@$D',
  ]);
  assert.ok(kw(channel(SAMPLE, 'tcp_local').keywords).includes('saslswitchchannel tcp_auth'));
});

test('positions: rules, channels and keywords carry file:line:col', () => {
  const { config } = parse(SAMPLE);
  const r = config.rewriteRules[3];
  assert.deepEqual([r?.pos.line, r?.pos.col, r?.templatePos.col], [6, 1, 20]);
  const tcp = channel(SAMPLE, 'tcp_local');
  assert.deepEqual([tcp.pos.file, tcp.pos.line, tcp.pos.col], ['imta.cnf', 18, 1]);
  const sw = tcp.keywords.find((k) => k.name === 'switchchannel');
  assert.deepEqual([sw?.pos.line, sw?.pos.col], [18, 47]);
});

test('continuation lines: a trailing backslash joins the next line; positions stay on the physical line', () => {
  const text = 'a.example $U@a-daemon\n\nmine smtp \\\n   maxjobs 3 \\\n   pool P\nmine-daemon\n';
  const { config, problems } = parse(text);
  assert.deepEqual(problems, []);
  const c = config.channels[0] as ChannelDef;
  assert.deepEqual(
    c.keywords.map((k) => [k.name, k.args, k.pos.line, k.pos.col]),
    [
      ['smtp', [], 3, 6],
      ['maxjobs', ['3'], 4, 4],
      ['pool', ['P'], 5, 4],
    ],
  );
  assert.deepEqual(c.hosts, ['mine-daemon']);
  assert.deepEqual(parse('x $U@y\n\nc smtp \\').problems[0]?.code, 'continuation-at-eof');
});

test('further lines of a block are more host names', () => {
  const c = channel('\nmine smtp\nmine-daemon\nalias-one\nalias-two ! comment\n', 'mine');
  assert.deepEqual(c.hosts, ['mine-daemon', 'alias-one', 'alias-two']);
});

test('keyword arity errors: missing argument, bad integer, stray argument', () => {
  let p = only(parse('\nc maxjobs\nc-daemon').problems);
  assert.deepEqual([p.code, p.line, p.col], ['missing-argument', 2, 3]);
  p = only(parse('\nc maxjobs smtp\nc-daemon').problems);
  assert.deepEqual([p.code, p.col], ['missing-argument', 11]);
  assert.match(p.message, /found keyword "smtp"/);
  p = only(parse('\nc maxjobs seven\nc-daemon').problems);
  assert.deepEqual([p.code, p.col], ['bad-integer', 11]);
  p = only(parse('\nc pool\nc-daemon').problems);
  assert.equal(p.code, 'missing-argument');
  p = only(parse('\nc notices smtp\nc-daemon').problems);
  assert.match(p.message, /whole numbers/);
  p = only(parse('\nc backoff smtp\nc-daemon').problems);
  assert.match(p.message, /ISO 8601 durations/);
  p = only(parse('\nc backoff "5 minutes"\nc-daemon').problems);
  assert.deepEqual([p.code, p.col], ['bad-duration', 11]);
  p = only(parse('\nc maxjobs 7 8\nc-daemon').problems);
  assert.deepEqual([p.code, p.col], ['stray-argument', 13]);
  p = only(parse('\nc backoff "pt5m\nc-daemon').problems);
  assert.equal(p.code, 'unterminated-quote');
});

test('backoff takes ISO 8601 durations, quoted (6.3 guide) or not (2005Q4 guide)', () => {
  for (const text of ['\nc backoff "pt2m" "pt5m" "PT1H" maxjobs 2\nc-daemon', '\nc backoff pt2m pt5m PT1H maxjobs 2\nc-daemon']) {
    const r = parse(text);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(channel(text, 'c').keywords.map((k) => [k.name, k.args]), [
      ['backoff', ['pt2m', 'pt5m', 'PT1H']],
      ['maxjobs', ['2']],
    ]);
  }
});

test('isoDurationMs: weeks, days, hours, minutes, seconds; not years, months, zero or junk', () => {
  assert.equal(isoDurationMs('pt5m'), 300_000);
  assert.equal(isoDurationMs('PT1H30M'), 5_400_000);
  assert.equal(isoDurationMs('p1dt12h'), 129_600_000);
  assert.equal(isoDurationMs('p1w'), 604_800_000);
  assert.equal(isoDurationMs('pt1.5s'), 1500);
  for (const bad of ['p1y', 'p1m', 'pt0m', 'p', 'pt', 'p1dt', '5m', 'ptm']) assert.equal(isoDurationMs(bad), null, bad);
});

test('defaulthost takes one or two arguments', () => {
  assert.deepEqual(channel('\nc defaulthost a.example smtp\nc-daemon', 'c').keywords.map((k) => [k.name, k.args]), [
    ['defaulthost', ['a.example']],
    ['smtp', []],
  ]);
  assert.deepEqual(channel('\nc defaulthost a.example b.example\nc-daemon', 'c').keywords[0]?.args, ['a.example', 'b.example']);
});

test('unknown keywords are warnings, and their apparent arguments are not read as keywords', () => {
  const { config, problems } = parse('\nc smtp frobnicate 12 "x" maxjobs 2\nc-daemon');
  const w = only(problems, 'warning');
  assert.deepEqual([w.code, w.line, w.col], ['unknown-keyword', 2, 8]);
  assert.equal(w.message, 'keyword frobnicate is not implemented yet and is ignored');
  assert.deepEqual(
    config.channels[0]?.keywords.map((k) => [k.name, k.args]),
    [
      ['smtp', []],
      ['frobnicate', ['12', 'x']],
      ['maxjobs', ['2']],
    ],
  );
});

test('keywords are case-insensitive', () => {
  const { problems, config } = parse('\nc SMTP MaxJobs 3\nc-daemon');
  assert.deepEqual(problems, []);
  assert.deepEqual(config.channels[0]?.keywords.map((k) => k.name), ['smtp', 'maxjobs']);
});

test('block errors: duplicate channel, no host line, bad name, a host line after defaults', () => {
  let p = only(parse('\na smtp\na-daemon\n\nA mx\nother\n').problems);
  assert.deepEqual([p.code, p.line], ['duplicate-channel', 5]);
  assert.match(p.message, /already defined at imta\.cnf:2/);
  p = only(parse('\na smtp\n\nb smtp\nb-daemon\n').problems);
  assert.deepEqual([p.code, p.line, p.col], ['missing-host', 2, 1]);
  p = only(parse('\na smtp\n! only a comment\n').problems);
  assert.equal(p.code, 'missing-host');
  p = only(parse('\na@b smtp\nx\n').problems);
  assert.equal(p.code, 'bad-channel-name');
  p = only(parse('\ndefaults maxjobs 2\nl smtp\nl-host\n').problems);
  assert.deepEqual([p.code, p.line], ['defaults-host', 3]);
});

test('rewrite rule errors: no template, extra text; comments after a template are allowed', () => {
  let p = only(parse('example.com\n').problems);
  assert.deepEqual([p.code, p.line, p.col], ['missing-template', 1, 1]);
  p = only(parse('  a.example   $U@x   junk\n').problems);
  assert.deepEqual([p.code, p.col], ['extra-text', 22]);
  assert.deepEqual(parse('a.example $U@x ! fine\n').problems, []);
});

test('uncommented includes are refused; all problems of the file are reported', () => {
  const { problems } = parse('<rules.txt\nbad\n\nc maxjobs x\nc-daemon\n\nd smtp\n');
  assert.deepEqual(
    problems.map((p) => p.code),
    ['include-unsupported', 'missing-template', 'bad-integer', 'missing-host'],
  );
});

test('the keyword table covers every keyword of the §6.5 sample and §6.2', () => {
  for (const k of ['switchchannel', 'allowswitchchannel', 'noswitchchannel', 'saslswitchchannel', 'tlsswitchchannel', 'userswitchchannel', 'routelocal', 'sourcefilter', 'destinationfilter', 'mailfromdnsverify', 'nosaslswitchchannel']) {
    assert.ok(CHANNEL_KEYWORDS.has(k), k);
  }
});
