import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accessResult, compileMappingsText, mapSync } from '../mapping/index.js';
import { StaticDirectory } from '../mapping/services/static-directory.js';
import { initConfig, renderMappings, UNPRIVILEGED_PORTS } from './init.js';
import { loadConfig } from './load.js';
import { parseMsgConfText } from './msgconf.js';
import { OPTION_SCHEMA } from './options.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-init-'));
const NOW = new Date();
const dir = join(root, 'config');
const made = await initConfig(dir, { domain: 'Example.COM', hostname: 'mx.example.com', now: NOW });

test('§14 init writes msg.conf, mappings, imta.cnf and a certificate with its key', () => {
  assert.ok(made.ok, JSON.stringify(made));
  assert.deepEqual(made.files, ['msg.conf', 'mappings', 'imta.cnf', 'tls/cert.pem', 'tls/key.pem']);
  assert.equal(statSync(join(dir, 'tls/key.pem')).mode & 0o777, 0o600);
});

test('init output passes loadConfig with no errors and no warnings', () => {
  const r = loadConfig(dir);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  assert.deepEqual(r.snapshot.warnings, []);
  const o = r.snapshot.options;
  assert.equal(o.hostname, 'mx.example.com');
  assert.deepEqual(o.ports, { smtp: 25, submit: 587, smtps: 465 });
  assert.equal(o.tls.certFile, join(dir, 'tls/cert.pem'));
  assert.equal(o.authWithoutTls, false);
  assert.deepEqual(
    r.snapshot.imta.channels.map((c) => c.name),
    ['l', 'ims-ms', 'tcp_local', 'tcp_intranet', 'tcp_submit', 'tcp_auth'],
  );
  // The hosted domain (lower-cased) and the host name rewrite to the local channel's host.
  assert.deepEqual(
    r.snapshot.imta.rewriteRules.slice(0, 2).map((x) => [x.pattern, x.template]),
    [
      ['mx.example.com', '$U%$D@mx.example.com'],
      ['example.com', '$U%$D@mx.example.com'],
    ],
  );
  assert.deepEqual(r.snapshot.imta.channels[0]?.hosts, ['mx.example.com']);
});

test('msg.conf lists every option of the schema, each with its description', () => {
  const text = readFileSync(join(dir, 'msg.conf'), 'utf8');
  const syntax = parseMsgConfText('msg.conf', text);
  assert.deepEqual(syntax.problems, []);
  assert.deepEqual(
    syntax.entries.map((e) => e.key),
    OPTION_SCHEMA.map((d) => d.key),
  );
  for (const d of OPTION_SCHEMA) assert.ok(text.includes(`! ${d.description}.`), d.key);
});

test('the certificate names the host (CN and subjectAltName), is valid 365 days and matches the key', () => {
  const cert = new X509Certificate(readFileSync(join(dir, 'tls/cert.pem')));
  assert.match(cert.subject, /CN=mx\.example\.com/);
  assert.equal(cert.subjectAltName, 'DNS:mx.example.com');
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
  assert.ok(Math.abs(days - 365) < 1, String(days));
  assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'tls/key.pem'), 'utf8'))));
});

test('§14 default tables: loopback is internal, outsiders cannot relay, internal channels are closed', () => {
  const r = loadConfig(dir);
  assert.ok(r.ok);
  const set = r.snapshot.mappings;
  const flags = (table: string, probe: string) => accessResult(mapSync(set, table, probe));
  assert.equal(flags('INTERNAL_IP', '127.0.0.1').decision, 'allow');
  assert.equal(flags('INTERNAL_IP', '::1').decision, 'allow');
  assert.equal(flags('INTERNAL_IP', '198.51.100.7').decision, 'reject');
  assert.equal(mapSync(set, 'PORT_ACCESS', 'TCP|192.0.2.10|25|198.51.100.7|40000').output, 'EXTERNAL');
  const relay = flags('ORIG_SEND_ACCESS', 'tcp_local|a@other.org|tcp_local|b@elsewhere.net');
  assert.equal(relay.decision, 'reject');
  assert.equal(relay.args.N, 'Relaying not allowed');
  assert.equal(flags('ORIG_SEND_ACCESS', 'tcp_local|a@other.org|ims-ms|b@ims-ms-daemon').args.N, 'Invalid destination');
  assert.equal(flags('ORIG_SEND_ACCESS', 'tcp_auth|a@example.com|tcp_local|b@elsewhere.net').decision, 'none');
});

test('the commented FROM_ACCESS seed uses the configured SMTP port and compiles once uncommented', () => {
  const text = renderMappings('example.com', 2525);
  assert.ok(text.includes('!  TCP|*|2525|*|*|SMTP*'));
  const at = text.indexOf('!FROM_ACCESS');
  const uncommented = text.slice(0, at) + text.slice(at).replace(/^!/gm, '');
  const r = compileMappingsText(uncommented, { services: { directory: new StaticDirectory([{ name: 'example.com', canonical: 'example.com' }]) } });
  assert.ok(r.ok, JSON.stringify(r.problems));
  assert.ok(r.set.table('FROM_ACCESS'));
  assert.equal(r.set.table('FROM_ACCESS')?.entries.length, 3);
});

test('unprivileged ports are written into msg.conf', async () => {
  const d = join(root, 'unprivileged');
  const r = await initConfig(d, { domain: 'example.net', hostname: 'example.net', ports: UNPRIVILEGED_PORTS, now: NOW });
  assert.ok(r.ok);
  const l = loadConfig(d);
  assert.ok(l.ok, JSON.stringify(!l.ok && l.problems));
  assert.deepEqual(l.snapshot.options.ports, { smtp: 2525, submit: 2587, smtps: 2465 });
  // Host name and domain are the same: one local rewrite rule.
  assert.equal(l.snapshot.imta.rewriteRules.filter((x) => x.pattern === 'example.net').length, 1);
});

test('init refuses a non-empty directory and writes nothing into it', async () => {
  const d = join(root, 'busy');
  mkdirSync(d);
  writeFileSync(join(d, 'notes.txt'), 'mine');
  const r = await initConfig(d, { domain: 'example.com', hostname: 'mx.example.com' });
  assert.deepEqual(r.ok ? 'ok' : r.code, 'not-empty');
  assert.equal(readFileSync(join(d, 'notes.txt'), 'utf8'), 'mine');
  assert.throws(() => statSync(join(d, 'msg.conf')));
  const again = await initConfig(dir, { domain: 'example.com', hostname: 'mx.example.com' });
  assert.deepEqual(again.ok ? 'ok' : again.code, 'not-empty');
});

test('init accepts an existing empty directory; refuses a file, a bad domain and a bad host name', async () => {
  const empty = join(root, 'empty');
  mkdirSync(empty);
  assert.ok((await initConfig(empty, { domain: 'example.com', hostname: 'mx.example.com', now: NOW })).ok);
  const file = join(root, 'a-file');
  writeFileSync(file, '');
  const f = await initConfig(file, { domain: 'example.com', hostname: 'mx.example.com' });
  assert.deepEqual(f.ok ? 'ok' : f.code, 'not-a-directory');
  const bd = await initConfig(join(root, 'x'), { domain: 'not a domain', hostname: 'mx.example.com' });
  assert.deepEqual(bd.ok ? 'ok' : bd.code, 'bad-domain');
  const bh = await initConfig(join(root, 'y'), { domain: 'example.com', hostname: 'bad host' });
  assert.deepEqual(bh.ok ? 'ok' : bh.code, 'bad-hostname');
});
