import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StaticDirectory } from '../mapping/services/static-directory.js';
import { selfSignedCertificate } from './init.js';
import { loadConfig } from './load.js';

const root = mkdtempSync(join(tmpdir(), 'portcullis-load-'));
let counter = 0;

const MAPPINGS = 'INTERNAL_IP\n  127.0.0.1  $Y\n  *  $N\n\nORIG_SEND_ACCESS\n  tcp_local|*|tcp_local|*  $NRelaying$ not$ allowed\n';
/** The channels every enabled service needs (tcp_local for 25, tcp_submit for 587/465), and `l`. */
const IMTA = 'example.com $U%$D@mx.example.com\n\nl\nmx.example.com\n\ntcp_local smtp\ntcp-daemon\n\ntcp_submit smtp\ntcp_submit-daemon\n';

function configDir(files: Record<string, string>): string {
  const dir = join(root, `c${++counter}`);
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const certA = await selfSignedCertificate('mx.example.com', new Date());
const certB = await selfSignedCertificate('other.example.com', new Date());

test('a minimal directory loads into a snapshot', () => {
  const dir = configDir({ 'msg.conf': 'service.hostname = mx.example.com\n', mappings: MAPPINGS, 'imta.cnf': IMTA });
  const r = loadConfig(dir, { now: 1234 });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  assert.equal(r.snapshot.dir, dir);
  assert.equal(r.snapshot.loadedAt, 1234);
  assert.equal(r.snapshot.options.dataDir, join(dir, 'data'));
  assert.ok(r.snapshot.mappings.table('internal_ip'));
  assert.equal(r.snapshot.imta.channels.length, 3);
});

test('a missing directory is one error', () => {
  const r = loadConfig(join(root, 'nope'));
  assert.ok(!r.ok);
  assert.deepEqual(
    r.problems.map((p) => p.code),
    ['missing-directory'],
  );
});

test('missing files are errors naming each file', () => {
  const dir = configDir({});
  const r = loadConfig(dir);
  assert.ok(!r.ok);
  assert.deepEqual(
    r.problems.map((p) => [p.file, p.code]),
    [
      [join(dir, 'msg.conf'), 'missing-file'],
      [join(dir, 'mappings'), 'missing-file'],
      [join(dir, 'imta.cnf'), 'missing-file'],
    ],
  );
  assert.match(r.problems[0]?.message ?? '', /msg\.conf is missing/);
});

test('problems are collected from all three files, file by file', () => {
  const dir = configDir({
    'msg.conf': 'smtp.maxrecipients = many\n',
    mappings: 'T\n  a  $Y\nbad line here\n',
    'imta.cnf': 'rule-without-template\n',
  });
  const r = loadConfig(dir);
  assert.ok(!r.ok);
  assert.deepEqual(
    r.problems.map((p) => [p.file.slice(dir.length + 1), p.line]),
    [
      ['msg.conf', 1],
      ['mappings', 3],
      ['imta.cnf', 1],
    ],
  );
});

test('warnings alone do not prevent a snapshot; they are kept on it', () => {
  const dir = configDir({ 'msg.conf': 'smtp.maxerrors = 3\nsmtp.maxerrors = 4\n', mappings: MAPPINGS, 'imta.cnf': IMTA.replace('tcp_local smtp', 'tcp_local smtp whatever') });
  const r = loadConfig(dir);
  assert.ok(r.ok);
  assert.deepEqual(
    r.snapshot.warnings.map((w) => w.code),
    ['duplicate-key', 'unknown-keyword'],
  );
  assert.equal(r.snapshot.options.limits.maxErrors, 4);
});

test('mapping callouts are checked against the services given', () => {
  const files = { 'msg.conf': '', mappings: `${MAPPINGS}\nT\n  *  $}$0,_canonical_name_{\n`, 'imta.cnf': IMTA };
  const without = loadConfig(configDir(files));
  assert.ok(!without.ok);
  assert.equal(without.problems[0]?.code, 'no-directory');
  assert.ok(loadConfig(configDir(files), { services: { directory: new StaticDirectory([]) } }).ok);
});

test('mapping includes resolve against the configuration directory', () => {
  const dir = configDir({ 'msg.conf': '', mappings: '<tables/internal\n', 'tables/internal': MAPPINGS, 'imta.cnf': IMTA });
  const r = loadConfig(dir);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  assert.ok(r.snapshot.mappings.table('INTERNAL_IP'));
});

function tlsConf(cert: string, key: string, keyMode = 0o600, hostname = 'mx.example.com') {
  const dir = configDir({
    'msg.conf': `service.hostname = ${hostname}\nservice.tls.certfile = cert.pem\nservice.tls.keyfile = key.pem\n`,
    mappings: MAPPINGS,
    'imta.cnf': IMTA,
    'cert.pem': cert,
    'key.pem': key,
  });
  chmodSync(join(dir, 'key.pem'), keyMode);
  return dir;
}

test('TLS: a matching certificate and key load; positions of TLS problems are the msg.conf values', () => {
  const ok = loadConfig(tlsConf(certA.cert, certA.key));
  assert.ok(ok.ok, JSON.stringify(!ok.ok && ok.problems));
  assert.deepEqual(ok.snapshot.warnings, []);

  const mismatch = loadConfig(tlsConf(certA.cert, certB.key));
  assert.ok(!mismatch.ok);
  assert.deepEqual(
    mismatch.problems.map((p) => [p.code, p.line, p.col]),
    [['tls-key-mismatch', 3, 23]],
  );

  const garbage = loadConfig(tlsConf('not a certificate', 'not a key'));
  assert.ok(!garbage.ok);
  assert.deepEqual(
    garbage.problems.map((p) => [p.code, p.line]),
    [
      ['tls-bad-certificate', 2],
      ['tls-bad-key', 3],
    ],
  );
});

test('TLS: missing files are errors; a readable key, another host name and expiry are warnings', () => {
  const dir = configDir({ 'msg.conf': 'service.tls.certfile = nope.pem\nservice.tls.keyfile = nokey.pem\n', mappings: MAPPINGS, 'imta.cnf': IMTA });
  const missing = loadConfig(dir);
  assert.ok(!missing.ok);
  assert.deepEqual(
    missing.problems.map((p) => p.code),
    ['tls-unreadable', 'tls-unreadable'],
  );

  const loose = loadConfig(tlsConf(certA.cert, certA.key, 0o644, 'mail.example.org'), { now: Date.now() + 400 * 86_400_000 });
  assert.ok(loose.ok, JSON.stringify(!loose.ok && loose.problems));
  assert.deepEqual(loose.snapshot.warnings.map((w) => w.code).sort(), ['tls-expired', 'tls-hostname', 'tls-key-permissions']);
});
