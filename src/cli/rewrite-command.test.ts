// `portcullis test rewrite` (spec §12.3) against a configuration written by `init`: the handler is
// driven with in-memory streams, and once through the real executable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { EXIT } from './command.js';
import { testRewrite } from './rewrite-command.js';
import { initServer } from '../daemon/setup.js';
import { DirectoryStore } from '../directory/store.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-cli-rewrite-'));
const config = join(root, 'config');
const init = await initServer(config, { domain: 'example.com', hostname: 'mx.example.com' });
assert.ok(init.ok, init.ok ? '' : init.message);
// An internal domain (and its hosts) routed to tcp_intranet, above the domain-literal rules.
const imta = join(config, 'imta.cnf');
writeFileSync(
  imta,
  readFileSync(imta, 'utf8').replace(
    /^\[\]/m,
    'internal.example   $U%$D@tcp_intranet-daemon\n.internal.example  $U%$H$D@tcp_intranet-daemon\n[]',
  ),
);
const store = await DirectoryStore.open(join(config, 'data'));
assert.ok(store.ok);
assert.ok((await store.value.addUser({ address: 'alice@example.com', password: 'alice-secret' })).ok);

/** The line of the first line of `file` (in the configuration) starting with `start`, trimmed. */
function lineOf(file: string, start: string): number {
  const k = readFileSync(join(config, file), 'utf8')
    .split('\n')
    .findIndex((l) => l.trim().startsWith(start));
  assert.ok(k >= 0, `${file} has no line starting with ${start}`);
  return k + 1;
}

async function rewrite(address: string[], opts: Record<string, unknown>): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const got = { out: '', err: '' };
  stdout.on('data', (b: Buffer) => (got.out += b.toString()));
  stderr.on('data', (b: Buffer) => (got.err += b.toString()));
  const code = await testRewrite.run({ stdin: new PassThrough(), stdout, stderr }, address, { config, ...opts });
  await new Promise((r) => setImmediate(r));
  return { code, stdout: got.out, stderr: got.err };
}

interface Report {
  rewrite: { rule: { pattern: string; entry: string } | null; channel: string; host: string; address: string } | null;
  source: { channel: string; how: string; switchEntry: string | null; before: string | null };
  steps: { step: string; status: string; entry?: string | null; probe?: string; decision?: string; reply?: string | null; deliverTo?: { address: string; channel: string | null }[] | null }[];
  verdict: { decision: string; reason: string; reply: string | null; delayMs: number | null };
  deliverTo: { address: string; channel: string }[] | null;
}

async function report(address: string, opts: Record<string, unknown> = {}): Promise<Report> {
  const r = await rewrite([address], { ...opts, json: true });
  assert.equal(r.code, EXIT.ok, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 1, 'one JSON object');
  return JSON.parse(lines[0] as string) as Report;
}

const relayEntry = `mappings:${lineOf('mappings', 'tcp_local|*|tcp_local|*')}`;

test('§12.3 a hosted recipient: rule → l → alias expansion → ims-ms', async () => {
  const j = await report('alice@example.com');
  assert.deepEqual(j.rewrite, {
    rule: { pattern: 'example.com', template: '$U%$D@mx.example.com', entry: `imta.cnf:${lineOf('imta.cnf', 'example.com ')}` },
    implicit: null,
    address: 'alice@example.com',
    host: 'mx.example.com',
    channel: 'l',
  });
  assert.deepEqual(
    j.steps.map((s) => [s.step, s.status]),
    [
      ['ORIG_SEND_ACCESS', 'checked'],
      ['ORIG_MAIL_ACCESS', 'no-table'],
      ['alias-expansion', 'expanded'],
      ['SEND_ACCESS', 'no-table'],
      ['MAIL_ACCESS', 'no-table'],
    ],
  );
  assert.equal(j.steps[0]?.probe, 'tcp_local||l|alice@example.com');
  assert.deepEqual(j.steps[2]?.deliverTo, [{ address: 'alice@example.com', channel: 'ims-ms' }]);
  assert.equal(j.verdict.decision, 'accept');

  const h = await rewrite(['alice@example.com'], {});
  assert.equal(h.code, EXIT.ok, h.stderr);
  assert.match(h.stdout, /^Destination channel: l$/m);
  assert.match(h.stdout, /^Alias expansion\n {2}alice@example\.com -> alice@example\.com on ims-ms$/m);
  assert.match(h.stdout, /Submitted address list:\n {2}ims-ms\n {4}alice@example\.com \(orig alice@example\.com\)\n$/);
});

test('§12.3 an unknown local user: 550 5.1.1 at alias expansion, later tables not asked', async () => {
  const j = await report('nobody@example.com', { from: 'x@remote.example' });
  const alias = j.steps.find((s) => s.step === 'alias-expansion');
  assert.equal(alias?.status, 'unknown-user');
  assert.equal(j.verdict.reply, '550 5.1.1 unknown or illegal alias: nobody@example.com');
  assert.equal(j.verdict.reason, 'builtin:unknown-recipient');
  const h = await rewrite(['nobody@example.com'], {});
  assert.match(h.stdout, /^ {2}no such user or alias -- 550 5\.1\.1 unknown or illegal alias: nobody@example\.com$/m);
  assert.match(h.stdout, /^ {2}Address list error -- 550 5\.1\.1 unknown or illegal alias: nobody@example\.com$/m);
});

test('§15.6 row 57: relaying from tcp_local is refused by ORIG_SEND_ACCESS, with its entry and reply', async () => {
  const h = await rewrite(['victim@elsewhere.example'], { from: 'x@remote.example' });
  assert.equal(h.code, EXIT.ok, 'a refusal is a result, not a failure');
  assert.match(h.stdout, /^Destination channel: tcp_local$/m);
  assert.match(h.stdout, /^Source channel: {6}tcp_local /m);
  assert.ok(
    h.stdout.includes(
      [
        'ORIG_SEND_ACCESS',
        '  probe:    tcp_local|x@remote.example|tcp_local|victim@elsewhere.example  (input flags E)',
        `  entry:    ${relayEntry}`,
        '  output:   "30|Relaying not allowed"  flags DN',
        '  decision: reject -- 550 5.7.1 Relaying not allowed: victim@elsewhere.example (after 300 ms)',
        'ORIG_MAIL_ACCESS',
      ].join('\n'),
    ),
    h.stdout,
  );
  assert.match(h.stdout, /^Alias expansion\n {2}not reached/m);
  assert.match(h.stdout, /Submitted address list:\n {2}Address list error -- 550 5\.7\.1 Relaying not allowed: victim@elsewhere\.example\n$/);
  const j = await report('victim@elsewhere.example', { from: 'x@remote.example' });
  assert.equal(j.steps[0]?.entry, relayEntry);
  assert.equal(j.verdict.reason, 'mapping:ORIG_SEND_ACCESS');
  assert.equal(j.verdict.delayMs, 300);
});

test('--client-ip 127.0.0.1: switchchannel picks tcp_intranet, and the same relay is allowed', async () => {
  const j = await report('victim@elsewhere.example', { from: 'x@remote.example', clientIp: '127.0.0.1' });
  assert.equal(j.source.channel, 'tcp_intranet');
  assert.equal(j.source.how, 'switchchannel');
  assert.equal(j.source.switchEntry, `imta.cnf:${lineOf('imta.cnf', '[]                 $E$R${INTERNAL_IP')}`);
  assert.equal(j.steps[0]?.probe, 'tcp_intranet|x@remote.example|tcp_local|victim@elsewhere.example');
  assert.equal(j.verdict.decision, 'accept');
  assert.deepEqual(j.deliverTo, [{ address: 'victim@elsewhere.example', channel: 'tcp_local' }]);
  // An outside address stays on tcp_local; --auth-user then switches as AUTH would (saslswitchchannel).
  const outside = await report('victim@elsewhere.example', { clientIp: '198.51.100.7', authUser: 'alice@example.com' });
  assert.deepEqual([outside.source.before, outside.source.channel, outside.verdict.decision], ['tcp_local', 'tcp_auth', 'accept']);
});

test('seed 004 / §15.6 rows 62–66: source-routed forms to an internal domain are refused from tcp_local', async () => {
  // [RCPT TO address, deciding entry, the recipient the server names in its reply (as given,
  // source route included, like the golden case of spec §15.6 row 62)]
  const forms: [string, string, string][] = [
    ['@relay.internal.example:user@internal.example', 'tcp_local|*|tcp_intranet|@*:*.*', '@relay.internal.example:user@internal.example'],
    ['user%other.example@internal.example', 'tcp_local|*|tcp_intranet|*$%*@*', 'user%other.example@internal.example'],
    ['host!user@internal.example', 'tcp_local|*|tcp_intranet|*!*@*', 'host!user@internal.example'],
    ['"user@other.example"@internal.example', 'tcp_local|*|tcp_intranet|"*@*"@*', '"user@other.example"@internal.example'],
  ];
  for (const [address, pattern, named] of forms) {
    const j = await report(address, { from: 'x@remote.example' });
    assert.equal(j.rewrite?.channel, 'tcp_intranet', address);
    assert.equal(j.steps[0]?.probe, `tcp_local|x@remote.example|tcp_intranet|${address}`);
    assert.equal(j.steps[0]?.entry, `mappings:${lineOf('mappings', pattern)}`, address);
    assert.equal(j.verdict.reply, `550 5.7.1 Explicit routing not allowed: ${named}`);
  }
  // Without a route in the local part the internal domain is reachable (row 66).
  assert.equal((await report('user@internal.example', { from: 'x@remote.example' })).verdict.decision, 'accept');
  // A source route goes to its first hop: through an outside relay it is plain relaying.
  const outside = await report('@relay.example:user@internal.example', { from: 'x@remote.example' });
  assert.deepEqual([outside.rewrite?.channel, outside.verdict.reply], ['tcp_local', '550 5.7.1 Relaying not allowed: @relay.example:user@internal.example']);
});

test('bad arguments and a bad configuration: exit 2 with a message, no stack trace', async () => {
  for (const [args, opts, message] of [
    [['not an address'], {}, /address not an address: Syntax error/],
    [['a@b.example'], { clientIp: '1.2.3' }, /--client-ip 1\.2\.3: not an IP address/],
    [['a@b.example'], { sourceChannel: 'tcp_nowhere' }, /--source-channel tcp_nowhere: imta\.cnf defines no such channel \(channels: l, ims-ms, tcp_local/],
    [['a@b.example'], { authUser: 'bob' }, /--auth-user bob: the directory has no user with this login/],
  ] as const) {
    const r = await rewrite([...args], opts);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
  const broken = join(root, 'broken');
  assert.ok((await initServer(broken, { domain: 'example.com', hostname: 'mx.example.com' })).ok);
  appendFileSync(join(broken, 'mappings'), 'SEND_ACCESS\n  *|*|*|*  $[/opt/x.so,throttle,a]$N\n');
  const r = await rewrite(['a@b.example'], { config: broken });
  assert.equal(r.code, EXIT.usage);
  assert.match(r.stderr, new RegExp(`^${join(broken, 'mappings').replaceAll('/', '\\/')}:\\d+:\\d+: callout image "/opt/x\\.so" is not available`, 'm'));
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('the real executable: portcullis test rewrite', () => {
  const bin = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'bin.js');
  assert.ok(existsSync(bin), `${bin} is missing: run "npm run build"`);
  const r = spawnSync(process.execPath, [bin, 'test', 'rewrite', 'victim@elsewhere.example', '--from', 'x@remote.example', '--config', config], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ {2}Address list error -- 550 5\.7\.1 Relaying not allowed: victim@elsewhere\.example$/m);
});
