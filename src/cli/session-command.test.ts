// `portcullis test session`: scripted dialogues replayed through the real Session and the mapping
// policy against a configuration written by `init` (plus the seed FROM_ACCESS entries, spec §15.1
// F4), driven with in-memory streams, and once through the real executable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { EXIT } from './command.js';
import { parseScript, sessionCommand } from './session-command.js';
import { initServer } from '../daemon/setup.js';
import { DirectoryStore } from '../directory/store.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-cli-session-'));
const config = join(root, 'config');
const init = await initServer(config, { domain: 'example.com', hostname: 'mx.example.com' });
assert.ok(init.ok, init.ok ? '' : init.message);
appendFileSync(
  join(config, 'mappings'),
  [
    'FROM_ACCESS',
    '  TCP|*|25|*|*|SMTP*|*|tcp_local|*@*|*  $C$}$6,_canonical_name_{$N$ -$ Authentication$ required$ when$ sending$ with$ this$ envelope$ sender$ domain$E',
    '  *|SMTP*|*|tcp_auth|*@*|*@$4*          $Y',
    '  *|SMTP*|*|tcp_auth|*@*|*@*            $N$_Sender$ address$ rejected$ for$ $4',
    '',
  ].join('\n'),
);
const dataDir = join(config, 'data');
const store = await DirectoryStore.open(dataDir);
assert.ok(store.ok);
assert.ok((await store.value.addUser({ address: 'alice@example.com', password: 'alice-secret' })).ok);
const directoryBefore = readFileSync(join(dataDir, 'directory.json'), 'utf8');
/** Where this file's sessions make their temporary spools (it must be empty after each run). */
const temps = mkdtempSync(join(tmpdir(), 'portcullis-cli-session-temps-'));
const testSession = sessionCommand(() => temps);

/** `mappings:N` for the first line of the mappings file starting (trimmed) with `start`. */
function entry(start: string, from = 0): string {
  const lines = readFileSync(join(config, 'mappings'), 'utf8').split('\n');
  const k = lines.findIndex((l, i) => i >= from && l.trim().startsWith(start));
  assert.ok(k >= 0, `mappings has no line starting with ${start}`);
  return `mappings:${k + 1}`;
}

async function session(script: string, opts: Record<string, unknown> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const got = { out: '', err: '' };
  stdout.on('data', (b: Buffer) => (got.out += b.toString()));
  stderr.on('data', (b: Buffer) => (got.err += b.toString()));
  stdin.end(script);
  const code = await testSession.run({ stdin, stdout, stderr }, [], { config, ...opts });
  await new Promise((r) => setImmediate(r));
  return { code, stdout: got.out, stderr: got.err };
}

const OUTSIDER = `# an Internet client on port 25 (spec §15.5 row 51, §15.6 row 57)
client 203.0.113.5:4000
server 192.0.2.10:25

> EHLO mx.bad.example
> MAIL FROM:<ceo@example.com>
> MAIL FROM:<x@remote.example>
> RCPT TO:<alice@example.com>
> RCPT TO:<nobody@example.com>
> RCPT TO:<victim@elsewhere.example>
> DATA
Subject: test

.a line that starts with a dot
.
> QUIT
`;

test('an outsider on port 25: PORT_ACCESS, FROM_ACCESS and RCPT decisions with their entries', async () => {
  const r = await session(OUTSIDER);
  assert.equal(r.code, EXIT.ok, r.stderr);
  const out = r.stdout;
  const external = entry('*           $YEXTERNAL');
  const relay = entry('tcp_local|*|tcp_local|*');
  const f4 = entry('TCP|*|25|*|*|SMTP*');
  const expected = [
    '# client 203.0.113.5:4000 -> server 192.0.2.10:25 (smtp)',
    '(connect)',
    `  [PORT_ACCESS ${external}] TCP|192.0.2.10|25|203.0.113.5|4000 (input A) -> allow (Y) "EXTERNAL"`,
    `  [PORT_ACCESS ${external}] TCP|192.0.2.10|25|203.0.113.5|4000 -> allow (Y) "EXTERNAL"`,
    '< 220 mx.example.com ESMTP Portcullis',
    '> EHLO mx.bad.example',
  ].join('\n');
  assert.ok(out.startsWith(expected + '\n'), out);
  for (const block of [
    [
      '> MAIL FROM:<ceo@example.com>',
      `  [FROM_ACCESS ${f4}] TCP|192.0.2.10|25|203.0.113.5|4000|SMTP/mx.bad.example|MAIL|tcp_local|ceo@example.com| -> reject (N) "example.com - Authentication required when sending with this envelope sender domain"`,
      '< 550 5.7.1 example.com - Authentication required when sending with this envelope sender domain',
    ],
    [
      '> MAIL FROM:<x@remote.example>',
      '  [FROM_ACCESS no match] TCP|192.0.2.10|25|203.0.113.5|4000|SMTP/mx.bad.example|MAIL|tcp_local|x@remote.example| -> allow',
      '< 250 2.1.0 Sender OK',
    ],
    [
      '> RCPT TO:<alice@example.com>',
      '  [ORIG_SEND_ACCESS no match] tcp_local|x@remote.example|l|alice@example.com (input E) -> allow',
      '  [alias expansion] alice@example.com -> allow "alice@example.com on ims-ms"',
      '  [route] alice@example.com -> channel l; deliver to alice@example.com (ims-ms)',
      '< 250 2.1.5 Recipient OK',
    ],
    [
      '> RCPT TO:<nobody@example.com>',
      '  [ORIG_SEND_ACCESS no match] tcp_local|x@remote.example|l|nobody@example.com (input E) -> allow',
      '  [alias expansion] nobody@example.com -> reject "unknown or illegal alias: nobody@example.com"',
      '< 550 5.1.1 unknown or illegal alias: nobody@example.com',
    ],
    [
      '> RCPT TO:<victim@elsewhere.example>',
      `  [ORIG_SEND_ACCESS ${relay}] tcp_local|x@remote.example|tcp_local|victim@elsewhere.example (input E) -> reject (DN) "30|Relaying not allowed"`,
      '  [delay] 300 ms before this reply ($D; and before every later reply of the transaction)',
      '< 550 5.7.1 Relaying not allowed: victim@elsewhere.example',
    ],
    ['> DATA', '< 354 End data with <CR><LF>.<CR><LF>', '> [3 message lines]', '> .'],
    ['> QUIT', '< 221 2.0.0 Bye'],
  ]) {
    assert.ok(out.includes('\n' + block.join('\n') + '\n'), `missing:\n${block.join('\n')}\nin:\n${out}`);
  }
  const accepted = /^< 250 2\.0\.0 OK id=(\S+)\n {2}\[spool\] would be accepted as id (\S+): from <x@remote\.example> on tcp_local to alice@example\.com -> alice@example\.com on ims-ms; nothing was queued$/m.exec(out);
  assert.ok(accepted, out);
  assert.equal(accepted[1], accepted[2]);
  // Nothing reached the configuration's spool or directory; the temporary spool is gone.
  assert.equal(existsSync(join(dataDir, 'queue')) ? readdirSync(join(dataDir, 'queue')).length : 0, 0);
  assert.equal(readFileSync(join(dataDir, 'directory.json'), 'utf8'), directoryBefore);
  assert.deepEqual(readdirSync(temps), []);
});

test('auth header on port 25: channel tcp_local -> tcp_auth, and the seed FROM_ACCESS entries for tcp_auth', async () => {
  const r = await session(['client 198.51.100.7:5555', 'auth alice@example.com', '> EHLO laptop', '> MAIL FROM:<alice@example.net>', '> MAIL FROM:<alice@example.com>', '> RCPT TO:<friend@elsewhere.example>'].join('\n'));
  assert.equal(r.code, EXIT.ok, r.stderr);
  assert.match(r.stdout, /^# client 198\.51\.100\.7:5555 -> server 192\.0\.2\.10:25 \(smtp, authenticated as alice@example\.com\)$/m);
  assert.match(r.stdout, /^ {2}\[auth\] authenticated as alice@example\.com by the script \(no password asked\)\n {2}\[saslswitchchannel\] channel tcp_local -> tcp_auth\n< 220 /m);
  const own = entry('*|SMTP*|*|tcp_auth|*@*|*@$4*');
  const other = entry('*|SMTP*|*|tcp_auth|*@*|*@*  ');
  assert.ok(
    r.stdout.includes(
      `  [FROM_ACCESS ${other}] TCP|192.0.2.10|25|198.51.100.7|5555|SMTP/laptop|MAIL|tcp_auth|alice@example.net|alice@example.com (input A) -> reject (N) "Sender address rejected for example.net"\n` +
        '< 550 5.7.1 Sender address rejected for example.net\n',
    ),
    r.stdout,
  );
  assert.ok(r.stdout.includes(`  [FROM_ACCESS ${own}] TCP|192.0.2.10|25|198.51.100.7|5555|SMTP/laptop|MAIL|tcp_auth|alice@example.com|alice@example.com (input A) -> allow (Y)\n< 250 2.1.0 Sender OK\n`), r.stdout);
  assert.match(r.stdout, /^ {2}\[ORIG_SEND_ACCESS no match\] tcp_auth\|alice@example\.com\|tcp_local\|friend@elsewhere\.example \(input AE\) -> allow\n {2}\[route\] friend@elsewhere\.example -> channel tcp_local; deliver to friend@elsewhere\.example \(tcp_local\)\n< 250 2\.1\.5 Recipient OK$/m);
});

test('STARTTLS in a script: the session carries TLS facts from then on (app-info, input flag T)', async () => {
  const r = await session(['> EHLO a', '> STARTTLS', '> EHLO b', '> MAIL FROM:<x@remote.example>'].join('\n'));
  assert.equal(r.code, EXIT.ok, r.stderr);
  assert.match(r.stdout, /^> STARTTLS\n< 220 2\.0\.0 Ready to start TLS$/m);
  assert.match(r.stdout, /\|SMTP\/b\/TLSv1\.3:TLS_AES_256_GCM_SHA384\|MAIL\|tcp_local\|x@remote\.example\| \(input T\) -> allow$/m);
});

test('--json: one object per step, with the script line, the replies and the decisions', async () => {
  const r = await session('client 203.0.113.5:4000\n> EHLO x\n> MAIL FROM:<ceo@example.com>\n> QUIT\n> NOOP\n', { json: true });
  assert.equal(r.code, EXIT.ok, r.stderr);
  const steps = r.stdout
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: string; line: number | null; command: string | null; replies: string[]; decisions: { kind: string; table?: string; entry?: string; decision?: string }[]; note?: string });
  assert.deepEqual(
    steps.map((s) => [s.step, s.line, s.command]),
    [
      ['connect', null, null],
      ['command', 2, 'EHLO x'],
      ['command', 3, 'MAIL FROM:<ceo@example.com>'],
      ['command', 4, 'QUIT'],
      ['end', 5, null],
    ],
  );
  assert.deepEqual(steps[0]?.decisions.map((d) => [d.table, d.entry, d.decision]), [
    ['PORT_ACCESS', entry('*           $YEXTERNAL'), 'allow'],
    ['PORT_ACCESS', entry('*           $YEXTERNAL'), 'allow'],
  ]);
  assert.deepEqual(steps[2]?.replies, ['550 5.7.1 example.com - Authentication required when sending with this envelope sender domain']);
  assert.deepEqual(steps[2]?.decisions.map((d) => [d.kind, d.table, d.entry, d.decision]), [['table', 'FROM_ACCESS', entry('TCP|*|25|*|*|SMTP*'), 'reject']]);
  assert.match(steps[4]?.note ?? '', /closed the connection: 1 command from line 5 on not sent/);
});

test('the submission port needs AUTH before MAIL (mustsaslserver), shown as a built-in decision', async () => {
  const r = await session('server 192.0.2.10:587\ntls yes\n> EHLO x\n> MAIL FROM:<alice@example.com>\n');
  assert.equal(r.code, EXIT.ok, r.stderr);
  assert.match(r.stdout, /^> MAIL FROM:<alice@example\.com>\n {2}\[mustsaslserver\] tcp_submit -> reject "Authentication required"\n< 530 5\.7\.0 Authentication required$/m);
});

test('a bad script: exit 2 and the line that is wrong', async () => {
  for (const [script, message] of [
    ['> EHLO x\nfoo bar\n', /^<stdin>:2: cannot read "foo bar": a line is a command/],
    ['> EHLO x\nclient 1.2.3.4:5\n', /^<stdin>:2: "client" is a header line: put it before the first command/],
    ['\n\nclient 1.2.3:5\n', /^<stdin>:3: client: "1\.2\.3" is not an IP address/],
    ['> DATA\nSubject: x\n', /^<stdin>:1: the message after DATA does not end/],
    ['> BDAT 5 LAST\n', /^<stdin>:1: BDAT chunks cannot be written in a script/],
    ['server 192.0.2.10:2000\n', /^<stdin>:1: server port 2000 is none of the configured ports/],
    ['# who?\nauth bob@example.com\n', /^<stdin>:2: auth: the directory has no user with login bob@example\.com/],
  ] as const) {
    const r = await session(script);
    assert.equal(r.code, EXIT.usage, script);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  }
  const file = join(root, 'bad.script');
  writeFileSync(file, '> EHLO x\n< 250\n');
  const r = await session('', { script: file });
  assert.equal(r.code, EXIT.usage);
  assert.equal(r.stderr, `${file}:2: cannot read "< 250": a line is a command ("> EHLO name"), a header (client, server, tls, auth), a comment (#) or blank\n`);
});

test('parseScript: headers, commands, and a DATA message kept line for line', () => {
  const r = parseScript('client [2001:db8::5]:4000\r\nserver 192.0.2.10\ntls yes\n> EHLO x\n> DATA\n# not a comment\n\n..\n.\n>NOOP\n');
  assert.ok(r.ok);
  assert.deepEqual(r.script.client, { ip: '2001:db8::5', port: 4000, line: 1 });
  assert.deepEqual(r.script.server, { ip: '192.0.2.10', port: null, line: 2 });
  assert.equal(r.script.tls, true);
  assert.deepEqual(r.script.steps, [
    { kind: 'command', line: 4, text: 'EHLO x' },
    { kind: 'data', line: 5, text: 'DATA', body: ['# not a comment', '', '..'], endLine: 9 },
    { kind: 'command', line: 10, text: 'NOOP' },
  ]);
});

test('the real executable: portcullis test session', () => {
  const bin = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'bin.js');
  assert.ok(existsSync(bin), `${bin} is missing: run "npm run build"`);
  const script = join(root, 'outsider.script');
  writeFileSync(script, OUTSIDER);
  const r = spawnSync(process.execPath, [bin, 'test', 'session', '--config', config, '--script', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^< 550 5\.7\.1 Relaying not allowed: victim@elsewhere\.example$/m);
  const bad = spawnSync(process.execPath, [bin, 'test', 'session', '--config', config], { input: 'hello\n', encoding: 'utf8', timeout: 30_000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^<stdin>:1: cannot read "hello"/);
});
