// The administrator's lifecycle commands against a running server (issue 3, "Configuration
// directory"): `portcullis status`, `portcullis check` on good and bad configurations,
// `portcullis reload` (and SIGHUP) with a good configuration (the new limits apply, sessions in
// progress keep going) and with a bad one (refused with file:line:col, the old one keeps running).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectGreeted, DOMAIN, freePort, portcullis, Server, SmtpClient, status } from './harness.js';

let server: Server;
const USERS = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'].map((n) => `${n}@${DOMAIN}`);
let scratch: string;

before(async () => {
  server = await Server.start({ conf: { 'smtp.maxrecipients': '2' }, users: USERS.map((address) => ({ address, password: 'pw-' + address })) });
  scratch = mkdtempSync(join(tmpdir(), 'portcullis-admin-'));
});

after(async () => {
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** How many RCPTs a new session gets accepted before the 452, trying up to `tries`. */
async function acceptedRecipients(tries: number): Promise<number> {
  const { c } = await connectGreeted(server.ports.smtp);
  try {
    await c.ehlo('count.example');
    assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
    let n = 0;
    for (const u of USERS.slice(0, tries)) {
      const r = await c.cmd(`RCPT TO:<${u}>`);
      if (r.code !== 250) {
        assert.equal(status(r), '452 4.5.3');
        break;
      }
      n++;
    }
    await c.quit();
    return n;
  } finally {
    c.destroy();
  }
}

async function statusJson(): Promise<{ pid: number; connections: number; configLoadedAt: string; listening: string[] }> {
  const r = await portcullis(['status', '--config', server.configDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { pid: number; connections: number; configLoadedAt: string; listening: string[] };
}

describe('status and check', () => {
  test('`portcullis status` reports the running server (pid, connections, configuration time, listeners)', async () => {
    const text = await portcullis(['status', '--config', server.configDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^running: pid ${server.pid}, \\d+ connection\\(s\\), configuration loaded \\d{4}-\\d\\d-\\d\\dT`));
    // The harness turns the runner off: status says the queue is not being delivered.
    assert.match(text.stdout, /\nqueue: \d+ message\(s\), 0 being delivered, 0 held \(delivery.runner = no: nothing is delivered\)\n/);
    const j = await statusJson();
    assert.equal(j.pid, server.pid);
    assert.ok(j.listening.includes(`smtp@127.0.0.1:${server.ports.smtp}`), j.listening.join(','));
    assert.ok(j.listening.includes(`submit@127.0.0.1:${server.ports.submit}`));
    assert.ok(j.listening.includes(`smtps@127.0.0.1:${server.ports.smtps}`));
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      assert.equal((await statusJson()).connections, 1);
    } finally {
      await c.quit();
    }
  });

  test('`portcullis status` and `reload` without a running server exit 1 and say so', async () => {
    const dir = join(scratch, 'idle');
    assert.equal((await portcullis(['init', dir, '--domain', DOMAIN, '--unprivileged'])).code, 0);
    for (const cmd of ['status', 'reload']) {
      const r = await portcullis([cmd, '--config', dir]);
      assert.equal(r.code, 1, `${cmd}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /no server is running/);
    }
  });

  test('`portcullis check` on the running configuration: exit 0, "config OK"', async () => {
    const r = await portcullis(['check', '--config', server.configDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^config OK/);
  });

  test('`portcullis check` on bad configurations: exit 2, every problem as file:line:col; a repeated key is only a warning', async () => {
    const bad = join(scratch, 'bad');
    cpSync(server.configDir, bad, { recursive: true, filter: (src) => !src.startsWith(join(server.configDir, 'data')) });
    const conf = readFileSync(join(bad, 'msg.conf'), 'utf8').replace(/^smtp\.maxrecipients = .*$/m, 'smtp.maxrecipients = lots');
    writeFileSync(join(bad, 'msg.conf'), conf + 'smtp.nosuchoption = 1\n');
    const lines = readFileSync(join(bad, 'msg.conf'), 'utf8').split('\n');
    const rcptLine = lines.findIndex((l) => l.startsWith('smtp.maxrecipients')) + 1;
    const bogusLine = lines.findIndex((l) => l.startsWith('smtp.nosuchoption')) + 1;
    appendFileSync(join(bad, 'mappings'), '\nBROKEN\n  a|b   $[lib,routine\n');

    const r = await portcullis(['check', '--config', bad]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const msgConf = join(bad, 'msg.conf').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    assert.match(r.stderr, new RegExp(`^${msgConf}:${rcptLine}:\\d+: .*maxrecipients`, 'm'));
    assert.match(r.stderr, new RegExp(`^${msgConf}:${bogusLine}:1: .*smtp\\.nosuchoption`, 'm'));
    assert.match(r.stderr, /mappings:\d+:\d+: /);
    assert.match(r.stderr, /config has 3 errors/);

    const dup = join(scratch, 'dup');
    cpSync(server.configDir, dup, { recursive: true, filter: (src) => !src.startsWith(join(server.configDir, 'data')) });
    appendFileSync(join(dup, 'msg.conf'), 'smtp.maxerrors = 7\n');
    const w = await portcullis(['check', '--config', dup]);
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stderr, /msg\.conf:\d+:\d+: warning: smtp\.maxerrors is also set/);
    assert.match(w.stdout, /config OK \(1 warning\)/);
  });
});

describe('reload', () => {
  test('`portcullis reload` with a good configuration: exit 0; a new session sees the new limit; a session opened before is still served', async () => {
    assert.equal(await acceptedRecipients(5), 2);
    const old = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.70' });
    const c: SmtpClient = old.c;
    try {
      await c.ehlo('before-reload.example');
      assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${USERS[0]}>`)).code, 250);
      const loadedBefore = (await statusJson()).configLoadedAt;

      server.setConf({ 'smtp.maxrecipients': '4' });
      const r = await portcullis(['reload', '--config', server.configDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /configuration reloaded/);
      await server.waitForLog('config-reloaded');
      assert.notEqual((await statusJson()).configLoadedAt, loadedBefore);

      assert.equal(await acceptedRecipients(6), 4, 'the new limit on a new session');
      // The session from before the reload goes on and its message is accepted.
      assert.equal((await c.cmd(`RCPT TO:<${USERS[1]}>`)).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      await c.write('Subject: across a reload\r\n\r\nx\r\n.\r\n');
      const done = await c.read();
      assert.equal(done.code, 250);
      assert.equal(server.envelope(Server.idOf(done.text)).recipients.length, 2);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('`portcullis reload` with a bad configuration: exit 2, errors with file:line:col, the server keeps the old configuration', async () => {
    const goodConf = readFileSync(server.msgConfPath, 'utf8');
    const mappingsPath = join(server.configDir, 'mappings');
    const goodMappings = readFileSync(mappingsPath, 'utf8');
    const loadedBefore = (await statusJson()).configLoadedAt;
    try {
      // A broken mappings file: the server itself refuses the new snapshot.
      server.setConf({ 'smtp.maxrecipients': '1' });
      writeFileSync(mappingsPath, goodMappings + '\nBROKEN\n  a|b   $[lib,routine\n');
      const brokenLine = goodMappings.split('\n').length + 2;
      const r = await portcullis(['reload', '--config', server.configDir]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`mappings:${brokenLine}:\\d+: `));
      assert.match(r.stderr, /reload refused; the server keeps running its previous configuration/);
      await server.waitForLog('config-reload-refused');
      assert.ok(server.running);
      assert.equal((await statusJson()).configLoadedAt, loadedBefore);
      assert.equal(await acceptedRecipients(6), 4, 'still the old limit, not the 1 of the refused configuration');

      // A bad msg.conf value: refused as well (the command reports it before asking the server).
      writeFileSync(mappingsPath, goodMappings);
      server.setConf({ 'smtp.maxerrors': 'many' });
      const errLine = readFileSync(server.msgConfPath, 'utf8').split('\n').findIndex((l) => l.startsWith('smtp.maxerrors')) + 1;
      const r2 = await portcullis(['reload', '--config', server.configDir]);
      assert.equal(r2.code, 2, r2.stdout + r2.stderr);
      assert.match(r2.stderr, new RegExp(`msg\\.conf:${errLine}:\\d+: .*smtp\\.maxerrors`));
      assert.ok(server.running);
      assert.equal(await acceptedRecipients(6), 4);
    } finally {
      writeFileSync(server.msgConfPath, goodConf);
      writeFileSync(mappingsPath, goodMappings);
    }
  });

  test('reload reports settings that need a restart (a port change) and keeps listening on the old port', async () => {
    const good = readFileSync(server.msgConfPath, 'utf8');
    try {
      server.setConf({ 'service.smtp.port': String(await freePort()) });
      const r = await portcullis(['reload', '--config', server.configDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /service ports changed: takes effect after a restart/);
      const { c, greeting } = await connectGreeted(server.ports.smtp);
      assert.equal(greeting.code, 220);
      await c.quit();
    } finally {
      writeFileSync(server.msgConfPath, good);
      assert.equal((await portcullis(['reload', '--config', server.configDir])).code, 0);
    }
  });

  test('SIGHUP reloads a good configuration, and refuses a bad one without stopping', async () => {
    const good = readFileSync(server.msgConfPath, 'utf8');
    try {
      const reloadsBefore = server.logs().filter((l) => l.event === 'config-reloaded').length;
      server.setConf({ 'smtp.maxrecipients': '3' });
      process.kill(server.pid, 'SIGHUP');
      await server.waitForLog('config-reloaded', () => server.logs().filter((l) => l.event === 'config-reloaded').length > reloadsBefore);
      assert.equal(await acceptedRecipients(6), 3);

      const refusedBefore = server.logs().filter((l) => l.event === 'config-reload-refused').length;
      server.setConf({ 'smtp.maxrecipients': '0' });
      process.kill(server.pid, 'SIGHUP');
      await server.waitForLog('config-reload-refused', () => server.logs().filter((l) => l.event === 'config-reload-refused').length > refusedBefore);
      assert.match(server.stderr, /reload refused, still running the previous configuration:\n.*msg\.conf:\d+:\d+: .*maxrecipients/);
      assert.ok(server.running);
      assert.equal(await acceptedRecipients(6), 3);
    } finally {
      writeFileSync(server.msgConfPath, good);
    }
  });
});

test('the server reported no internal faults and left no debris in the spool', async () => {
  assert.ok(server.running, 'server still running');
  assert.deepEqual(server.faults(), []);
  assert.deepEqual(await server.settledDebris(), [], 'no partial files left in the queue');
});

test('SIGTERM: no new connections, sessions in progress are still served, then told 421 4.3.2 (inside TLS for a TLS session); exit 0', async () => {
  const { c: plain } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.71' });
  const { c: secure } = await connectGreeted(server.ports.smtps, { tls: true, localAddress: '127.0.0.72' });
  try {
    await plain.ehlo('draining.example');
    await secure.ehlo('draining.example');
    const t0 = Date.now();
    process.kill(server.pid, 'SIGTERM');
    await server.waitForLog('server-stopping');
    await assert.rejects(SmtpClient.connect(server.ports.smtp), /ECONNREFUSED/, 'no longer accepting');
    assert.equal((await plain.cmd('NOOP')).code, 250, 'a session in progress is still served');
    assert.equal((await secure.cmd('NOOP')).code, 250);
    // The grace period is 10 s (src/cli/server-commands.ts); then each session is told.
    assert.equal(status(await plain.read(14_000)), '421 4.3.2');
    assert.equal(status(await secure.read(2000)), '421 4.3.2', 'readable over TLS, not plaintext injected under it');
    const exit = await server.waitExit(3000);
    assert.deepEqual(exit, { code: 0, signal: null }, 'a clean exit, not the SIGKILL fallback');
    assert.ok(Date.now() - t0 < 14_000, `stopped after ${Date.now() - t0} ms`);
  } finally {
    plain.destroy();
    secure.destroy();
  }
});
