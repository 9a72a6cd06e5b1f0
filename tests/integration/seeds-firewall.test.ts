// The firewall deployment of the seeds through the real executable (spec §15.1 F2, §15.4 rows
// 40-43): the SMTP port is open only to the firewall; everyone else, inside or outside, is told
// to use the submission port and disconnected, and the submission port takes them. Unlike init's,
// this imta.cnf gives tcp_submit no saslswitchchannel (the §6.5 reconstruction), and
// mta.mapping_paranoia is set (§5.6). Tables: seeds-config.ts.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectGreeted, DOMAIN, openSession, Server, startTlsAndAuth, status, swaks, turnedAway } from './harness.js';
import { ALICE, FIREWALL, firewallImta, firewallMappings, INTERNAL, outside } from './seeds-config.js';

let server: Server;

before(async () => {
  server = await Server.start({
    users: [ALICE],
    conf: { 'mta.mapping_paranoia': '!' },
    mappings: ({ ports }) => firewallMappings(ports),
    imta: ({ text }) => firewallImta(text),
    // 127.0.0.1 is turned away from the SMTP port like everyone but the firewall.
    readyFrom: FIREWALL,
  });
});

after(async () => {
  await server?.stop();
});

const usePort = (): string => `500 Please use port ${server.ports.submit} to send mail`;

describe('port 25 open only to the firewall (spec §15.1 F2, §15.4 rows 40-43)', () => {
  test('§15.4 row 40: the firewall is greeted on the SMTP port, lands on tcp_local (row 44) and delivers inbound mail', async () => {
    const c = await openSession(server.ports.smtp, FIREWALL);
    try {
      const env = await server.deliver(c, 'someone@remote.example', [ALICE.address], 'via the firewall');
      assert.equal(env.sourceChannel, 'tcp_local');
      assert.equal((await c.cmd('MAIL FROM:<someone@remote.example>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<victim@elsewhere.example>')).raw, '550 5.7.1 Relaying not allowed: victim@elsewhere.example\r\n');
      await c.cmd('RSET');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('seed 000 / §15.5 row 51 in this deployment: the firewall (tcp_local) relaying a forged hosted-domain From is refused', async () => {
    const c = await openSession(server.ports.smtp, FIREWALL);
    try {
      const r = await c.cmd(`MAIL FROM:<ceo@${DOMAIN}>`);
      assert.equal(r.raw, `550 5.7.1 ${DOMAIN} - Authentication required when sending with this envelope sender domain\r\n`);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.4 row 41 (raw): an Internet host is sent "500 Please use port <submission> to send mail" verbatim, before any greeting, and disconnected', async () => {
    assert.equal(await turnedAway(server.ports.smtp, outside(20)), `${usePort()}\r\n`);
  });

  test('§15.4 row 41 (swaks): swaks sees the 500 as its greeting', async () => {
    const r = await swaks(['--server', `127.0.0.1:${server.ports.smtp}`, '--local-interface', outside(21), '--from', 'a@remote.example', '--to', ALICE.address]);
    assert.notEqual(r.code, 0);
    assert.ok(r.stdout.includes(`<** ${usePort()}`), r.stdout);
  });

  test('§15.4 row 42: an internal host is turned away from the SMTP port too — the port rule comes before the INTERNAL_IP test', async () => {
    assert.equal(await turnedAway(server.ports.smtp, INTERNAL), `${usePort()}\r\n`);
    assert.equal(await turnedAway(server.ports.smtp, '127.0.0.1'), `${usePort()}\r\n`);
  });

  test('§15.4 row 43: the submission port greets an Internet host (EXTERNAL) and an internal one; after AUTH they send', async () => {
    for (const source of [outside(22), INTERNAL]) {
      const { c, greeting } = await connectGreeted(server.ports.submit, { localAddress: source });
      try {
        assert.equal(greeting.code, 220, `${source}: ${greeting.raw}`);
        assert.equal(status(await startTlsAndAuth(c, ALICE.address, ALICE.password)), '235 2.7.0');
        const env = await server.deliver(c, ALICE.address, ['friend@elsewhere.example'], `submitted from ${source}`);
        assert.equal(env.service, 'submit');
        assert.equal(env.client.ip, source);
        await c.quit();
      } finally {
        c.destroy();
      }
    }
  });

  test('§15.4 row 43 + §6.5: on the submission port, MAIL without AUTH is still refused 530 5.7.0', async () => {
    const c = await openSession(server.ports.submit, outside(22));
    try {
      assert.equal(status(await c.cmd(`MAIL FROM:<${ALICE.address}>`)), '530 5.7.0');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('F4 with §6.5\'s tcp_submit, which has no saslswitchchannel (spec §6.5, §15.5)', () => {
  test('F4 entries 2-3 name tcp_auth: an authenticated submission session stays on tcp_submit, so a foreign envelope From is accepted there', async () => {
    // init's tcp_submit switches to tcp_auth and F4 then binds the submission port too
    // (seeds.test.ts); with an imta.cnf carried over from Messaging Server without that keyword,
    // the seed, read literally, only covers sessions that authenticated on the SMTP port.
    const { c } = await connectGreeted(server.ports.submit, { localAddress: outside(23) });
    try {
      assert.equal(status(await startTlsAndAuth(c, ALICE.address, ALICE.password, { helo: 'laptop' })), '235 2.7.0');
      const env = await server.deliver(c, 'alice@other.example', ['friend@elsewhere.example'], 'foreign From on tcp_submit');
      assert.equal(env.sourceChannel, 'tcp_submit');
      assert.equal(env.service, 'submit');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

test('§5.6 mta.mapping_paranoia = !: a "|" in the envelope From reaches FROM_ACCESS as "!", so it cannot fake a field boundary', async () => {
  // seeds-tables.test.ts shows the same From refused by the extra-field entry when paranoia is off.
  const c = await openSession(server.ports.smtp, FIREWALL);
  try {
    const env = await server.deliver(c, 'a|b@remote.example', [ALICE.address], 'paranoia');
    assert.equal(env.sender, 'a|b@remote.example', 'only the probe is guarded, not the envelope');
    assert.equal((await c.cmd('MAIL FROM:<x|y@remote.example>')).raw, '550 5.7.1 Guarded form seen\r\n');
    await c.quit();
  } finally {
    c.destroy();
  }
});

test('the server reported no internal faults and left no debris in the spool', async () => {
  assert.ok(server.running, 'server still running');
  assert.deepEqual(server.faults(), []);
  assert.deepEqual(await server.settledDebris(), []);
});
