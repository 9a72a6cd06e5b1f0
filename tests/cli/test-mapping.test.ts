// Runs the real `portcullis` executable (the build output, as npm's bin link does) — no mocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'bin.js');

/** Parses one JSON line of --json output. */
function json(line: string): Record<string, unknown> & { args: Record<string, string> } {
  return JSON.parse(line) as Record<string, unknown> & { args: Record<string, string> };
}

function portcullis(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  assert.ok(existsSync(BIN), `${BIN} is missing: run "npm run build" (npm test does)`);
  const r = spawnSync(process.execPath, [BIN, ...args], { input: input ?? '', encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
const F1 = join(dir, 'mappings');
writeFileSync(
  F1,
  `INTERNAL_IP
  $(192.0.2.10/32)   $Y
  127.0.0.1          $Y
  *                  $N

PORT_ACCESS

  *|*|*|*|*   $C$|INTERNAL_IP;$3|$Y$E
  *           $YEXTERNAL

ORIG_SEND_ACCESS

  tcp_local|*|tcp_local|*              $N$D30|Relaying$ not$ allowed

FROM_ACCESS
  TCP|*|25|*|*|SMTP*|*|tcp_local|*@*|*  $C$}$6,_canonical_name_{$N$ -$ Authentication$ required$ when$ sending$ with$ this$ envelope$ sender$ domain$E

TEST_FLAG
  *       $C$:T$YTLS$E
  *       $NNo$ TLS
`,
);

test('§12.1 test mapping: human output shows input, output string and flags like imsimta', () => {
  const r = portcullis(['test', 'mapping', '--mappings', F1, '--table', 'port_access', 'TCP|192.0.2.10|25|198.51.100.7|40000']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    `Input string:  TCP|192.0.2.10|25|198.51.100.7|40000\nOutput string: EXTERNAL\nOutput flags:  [0, 'Y' (89)]\nEntry:         ${F1}:9\n\n`,
  );
});

test('§12.1 test mapping --json: one object per probe, probes from standard input', () => {
  const r = portcullis(['test', 'mapping', '--mappings', F1, '--table', 'ORIG_SEND_ACCESS', '--json'], 'tcp_local|a@b.example|tcp_local|victim@elsewhere.example\r\ntcp_intranet|a@b|tcp_local|c@d\n');
  assert.equal(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(rows[0], {
    table: 'ORIG_SEND_ACCESS',
    input: 'tcp_local|a@b.example|tcp_local|victim@elsewhere.example',
    matched: true,
    output: '30|Relaying not allowed',
    flags: 'DN',
    args: { D: '30', N: 'Relaying not allowed' },
    decision: 'reject',
    entry: `${F1}:13`,
  });
  assert.equal(rows[1]?.matched, false);
  assert.equal(rows[1]?.decision, 'none');
  assert.equal(rows.length, 2);
});

test('§3.5 test mapping --flags sets input flags', () => {
  const on = portcullis(['test', 'mapping', '--mappings', F1, '--table', 'TEST_FLAG', '--flags', 'T', '--json', 'x']);
  assert.equal(json(on.stdout).output, 'TLS');
  const off = portcullis(['test', 'mapping', '--mappings', F1, '--table', 'TEST_FLAG', '--json', 'x']);
  assert.equal(json(off.stdout).output, 'No TLS');
});

test('test mapping --domain answers $}domain,attribute{ (seed FROM_ACCESS, §15.5 rows 51–52)', () => {
  const args = ['test', 'mapping', '--mappings', F1, '--table', 'FROM_ACCESS', '--domain', 'example.com', '--json'];
  const hosted = portcullis([...args, 'TCP|192.0.2.10|25|203.0.113.5|3333|SMTP/mx.bad.example|MAIL|tcp_local|ceo@example.com|']);
  assert.equal(json(hosted.stdout).args.N, 'example.com - Authentication required when sending with this envelope sender domain');
  const other = portcullis([...args, 'TCP|192.0.2.10|25|203.0.113.5|3333|SMTP/mx.ok.example|MAIL|tcp_local|someone@other.org|']);
  assert.equal(json(other.stdout).decision, 'none');
});

test('test mapping: a missing table exits 2 and names the tables that exist', () => {
  const r = portcullis(['test', 'mapping', '--mappings', F1, '--table', 'NOPE', 'x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no table named NOPE \(tables: INTERNAL_IP, PORT_ACCESS, ORIG_SEND_ACCESS, FROM_ACCESS, TEST_FLAG\)/);
});

test('test mapping: a bad file exits 2 with every file:line:col error and no stack trace', () => {
  const bad = join(dir, 'bad');
  writeFileSync(bad, 'T\n  *  $[x.so,r,$0\n  a  b c\n');
  const r = portcullis(['test', 'mapping', '--mappings', bad, '--table', 'T', 'x']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0] as string, new RegExp(`^${bad}:2:6: unterminated \\$\\[ callout — add "\\]"$`));
  assert.match(lines[1] as string, new RegExp(`^${bad}:3:8: unexpected text "c" after the template`));
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('test mapping: a missing file and bad usage exit 2', () => {
  const r = portcullis(['test', 'mapping', '--mappings', join(dir, 'nope'), '--table', 'T', 'x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot read .*nope: no such file/);
  assert.equal(portcullis(['test', 'mapping', '--table', 'T']).code, 2);
  assert.equal(portcullis(['test', 'mapping', '--mappings', F1, '--table', 'T', '--flags', '9']).code, 2);
});

test('§12.2 test match prints the compiled pattern and numbered captures; --json for scripts', () => {
  const r = portcullis(['test', 'match', '--pattern', '$[ax1]*@*.example.com', '--input', 'xx11a@sys1.example.com']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Pattern: \$\[ax1\]\*@\*\.example\.com\n\[1 S0\] greedy run \$\[ax1\]\*\n/);
  assert.match(r.stdout, /Match\.\n0 - xx11a\n1 - sys1\n$/);
  const j = portcullis(['test', 'match', '--pattern', '$[ax1]*@*.example.com', '--json'], '12a@node.example.com\n1xa@node.example.com\n');
  assert.deepEqual(
    j.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown),
    [
      { matched: false, captures: [] },
      { matched: true, captures: ['1xa', 'node'] },
    ],
  );
  const bad = portcullis(['test', 'match', '--pattern', '$(1.2.3/8)', '--input', 'x']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^pattern:1:1: "1\.2\.3\/8" is not a dotted IPv4 address/);
});
