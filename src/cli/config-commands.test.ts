// The handlers of `portcullis init` and `portcullis check`, driven directly with in-memory streams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { CommandSpec } from './command.js';
import { EXIT } from './command.js';
import { CONFIG_COMMANDS } from './config-commands.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-cli-config-'));

function command(name: string): CommandSpec {
  const c = CONFIG_COMMANDS.find((s) => s.path.join(' ') === name);
  assert.ok(c, name);
  return c;
}

async function run(name: string, args: string[], opts: Record<string, unknown>): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { out: '', err: '' };
  stdout.on('data', (b: Buffer) => (chunks.out += b.toString()));
  stderr.on('data', (b: Buffer) => (chunks.err += b.toString()));
  const code = await command(name).run({ stdin: new PassThrough(), stdout, stderr }, args, opts);
  await new Promise((r) => setImmediate(r));
  return { code, stdout: chunks.out, stderr: chunks.err };
}

const dir = join(root, 'demo');
const init = await run('init', [dir], { domain: 'example.com', hostname: 'mx.example.com', unprivileged: true });

test('init writes a configuration and says how to check it', () => {
  assert.equal(init.code, EXIT.ok, init.stderr);
  assert.match(init.stdout, /wrote .*msg\.conf, mappings, imta\.cnf, tls\/cert\.pem, tls\/key\.pem/);
  assert.match(readFileSync(join(dir, 'msg.conf'), 'utf8'), /^service\.smtp\.port = 2525$/m);
});

test('check on a fresh configuration: exit 0, a one-line summary, nothing on stderr', async () => {
  const r = await run('check', [], { config: dir });
  assert.equal(r.code, EXIT.ok);
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, 'config OK: 3 files, 3 tables, 6 channels, 6 rewrite rules\n');
});

test('init refuses a non-empty directory with exit 2', async () => {
  const r = await run('init', [dir], { domain: 'example.com', hostname: 'mx.example.com' });
  assert.equal(r.code, EXIT.usage);
  assert.match(r.stderr, /is not empty/);
});

function lineOf(d: string, key: string): number {
  return readFileSync(join(d, 'msg.conf'), 'utf8').split('\n').findIndex((l) => l.startsWith(key)) + 1;
}

test('check: warnings are printed as file:line:col and the exit status stays 0', async () => {
  const d = join(root, 'warn');
  assert.equal((await run('init', [d], { domain: 'example.com', hostname: 'mx.example.com' })).code, EXIT.ok);
  const first = lineOf(d, 'smtp.maxerrors');
  appendFileSync(join(d, 'msg.conf'), 'smtp.maxerrors = 5\n');
  const last = readFileSync(join(d, 'msg.conf'), 'utf8').split('\n').length - 1;
  const r = await run('check', [], { config: d });
  assert.equal(r.code, EXIT.ok);
  assert.equal(r.stderr, `${join(d, 'msg.conf')}:${last}:1: warning: smtp.maxerrors is also set at line ${first}; this later value wins — remove one of them\n`);
  assert.match(r.stdout, /^config OK \(1 warning\): /);
});

test('check: errors in every file are printed as file:line:col and the exit status is 2', async () => {
  const d = join(root, 'bad');
  assert.equal((await run('init', [d], { domain: 'example.com', hostname: 'mx.example.com' })).code, EXIT.ok);
  appendFileSync(join(d, 'msg.conf'), 'smtp.maxrecipient = 5\n');
  writeFileSync(join(d, 'imta.cnf'), '\nc maxjobs x\nc-daemon\n');
  const r = await run('check', [], { config: d });
  assert.equal(r.code, EXIT.usage);
  const lines = r.stderr.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /msg\.conf:\d+:1: unknown option smtp\.maxrecipient — did you mean smtp\.maxrecipients\?/);
  assert.equal(lines[1], `${join(d, 'imta.cnf')}:2:11: keyword maxjobs needs a whole number, not "x"`);
  assert.equal(lines[2], 'config has 2 errors');
  assert.equal(r.stdout, '');
});

test('check: a missing directory or missing --config is exit 2; --options lists the schema', async () => {
  assert.equal((await run('check', [], { config: join(root, 'absent') })).code, EXIT.usage);
  assert.equal((await run('check', [], {})).code, EXIT.usage);
  const o = await run('check', [], { options: true });
  assert.equal(o.code, EXIT.ok);
  assert.match(o.stdout, /^service\.smtp\.port {2}\(integer 0\.\.65535; default: 25\)$/m);
  assert.match(o.stdout, /^smtp\.commandtimeout {2}\(duration 1s\.\.24h \(30, 30s, 5m, 1h\); default: 300\)$/m);
});
