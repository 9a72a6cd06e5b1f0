// The seed scenarios of issue 4 through the real executable (spec §14, §15.4-§15.6): anti-spoofing
// (seed 000, FROM_ACCESS F4), anti-relay (ORIG_SEND_ACCESS F1), explicit routing (seed 004), the
// internal delivery channels, the firewall listed $N first in INTERNAL_IP (F2), the submission
// port without AUTH and unknown local recipients. Loopback addresses play the hosts; see
// seeds-config.ts for the roles and the tables. seeds-tables.test.ts covers F6 and single flags,
// seeds-firewall.test.ts the port-25-only-to-the-firewall deployment.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectGreeted, DOMAIN, openSession, Server, startTlsAndAuth, status, swaks, timed } from './harness.js';
import type { SmtpClient } from './harness.js';
import { ALIAS_DOMAIN, ALICE, FIREWALL, INTERNAL, INTERNAL2, outside, SEED_DOMAINS, seedsImta, seedsMappings, SESTA, SESTA_USER } from './seeds-config.js';

let server: Server;

before(async () => {
  server = await Server.start({
    domains: SEED_DOMAINS,
    users: [ALICE, SESTA_USER],
    mappings: ({ ports }) => seedsMappings(ports),
    imta: ({ text }) => seedsImta(text),
  });
});

after(async () => {
  await server?.stop();
});

const SEED000 = `${DOMAIN} - Authentication required when sending with this envelope sender domain`;
/** $D30 is 300 ms; allow for timer granularity, never for a missing delay. */
const D30_MIN_MS = 250;

/** A session on `port` from `source` after STARTTLS and AUTH as alice. */
async function openAuthenticated(port: number, source: string): Promise<SmtpClient> {
  const { c } = await connectGreeted(port, { localAddress: source });
  assert.equal(status(await startTlsAndAuth(c, ALICE.address, ALICE.password, { helo: 'laptop.example' })), '235 2.7.0');
  return c;
}

const smtp = (): string => `127.0.0.1:${server.ports.smtp}`;

describe('seed 000: anti-spoofing with FROM_ACCESS (spec §15.1 F4, §15.5)', () => {
  test('§15.5 row 51 (swaks): an unauthenticated Internet client on the SMTP port with a hosted-domain envelope From is refused at MAIL', async () => {
    const r = await swaks(['--server', smtp(), '--local-interface', outside(0), '--from', `ceo@${DOMAIN}`, '--to', ALICE.address]);
    assert.notEqual(r.code, 0);
    assert.ok(r.stdout.includes(`<** 550 5.7.1 ${SEED000}`), r.stdout);
    assert.doesNotMatch(r.stdout, /RCPT TO/, 'the transaction ends at MAIL');
  });

  test('§15.5 row 51 (raw): the reply is exactly "550 5.7.1 <canonical domain> - Authentication required ..." for every hosted domain, in any case, and for an alias domain', async () => {
    const c = await openSession(server.ports.smtp, outside(1), 'mx.bad.example');
    try {
      const r = await c.cmd(`MAIL FROM:<ceo@${DOMAIN}>`);
      assert.equal(r.raw, `550 5.7.1 ${SEED000}\r\n`);
      // The second hosted domain gets its own canonical name in the text.
      assert.equal((await c.cmd(`MAIL FROM:<boss@${SESTA.toUpperCase()}>`)).text, `5.7.1 ${SESTA} - Authentication required when sending with this envelope sender domain`);
      // An alias domain is named by its canonical domain ($}$6,_canonical_name_{).
      assert.equal((await c.cmd(`MAIL FROM:<ceo@${ALIAS_DOMAIN}>`)).raw, `550 5.7.1 ${SEED000}\r\n`);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.5 row 51 + F2: mail relayed by the firewall is on tcp_local too (INTERNAL_IP $N first), so the firewall cannot pass a forged hosted-domain From', async () => {
    const c = await openSession(server.ports.smtp, FIREWALL);
    try {
      assert.equal((await c.cmd(`MAIL FROM:<ceo@${DOMAIN}>`)).raw, `550 5.7.1 ${SEED000}\r\n`);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.5 row 52: an envelope From in a domain not hosted here passes ($} fails after $C, no further entry matches)', async () => {
    const c = await openSession(server.ports.smtp, outside(1), 'mx.ok.example');
    try {
      const env = await server.deliver(c, 'someone@other.example', [ALICE.address], 'row 52');
      assert.equal(env.sourceChannel, 'tcp_local');
      assert.equal(env.sender, 'someone@other.example');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('F4 entry 1 names tcp_local: an internal client (tcp_intranet) may use the hosted domain without AUTH', async () => {
    const c = await openSession(server.ports.smtp, INTERNAL);
    try {
      const env = await server.deliver(c, `ceo@${DOMAIN}`, [ALICE.address], 'internal ceo');
      assert.equal(env.sourceChannel, 'tcp_intranet');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.5 rows 53-55 (raw, tcp_auth after STARTTLS + AUTH on the SMTP port): another domain is refused, her own domain passes whatever its case', async () => {
    const c = await openAuthenticated(server.ports.smtp, outside(4));
    try {
      // Row 54 (entry 3): "Sender address rejected for <from domain>".
      assert.equal((await c.cmd('MAIL FROM:<alice@other.example>')).raw, '550 5.7.1 Sender address rejected for other.example\r\n');
      // Row 55 (entry 2, back-match $4): the domain in capitals. The server lower-cases an
      // envelope domain before probing, so the case-blind back-match is only half exercised here.
      const env = await server.deliver(c, `Alice@${DOMAIN.toUpperCase()}`, ['friend@elsewhere.example'], 'row 55');
      assert.equal(env.sourceChannel, 'tcp_auth');
      assert.equal(env.auth, ALICE.address);
      assert.equal(env.sender, `Alice@${DOMAIN}`);
      // Row 53 (entry 2): her own address.
      await server.deliver(c, ALICE.address, [ALICE.address], 'row 53');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.5 row 54 (swaks --tls --auth on the SMTP port): "Sender address rejected for other.example"', async () => {
    const r = await swaks([
      '--server', smtp(), '--local-interface', outside(4), '--tls', '--tls-ca-path', server.certFile,
      '--auth', 'PLAIN', '--auth-user', ALICE.address, '--auth-password', ALICE.password,
      '--from', 'alice@other.example', '--to', 'friend@elsewhere.example',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /<~\* 550 5\.7\.1 Sender address rejected for other\.example/);
  });

  test('§15.5 rows 53-54 on the submission port: init\'s tcp_submit switches to tcp_auth after AUTH (saslswitchchannel), so F4 binds submission too', async () => {
    // F4's entries 2-3 name tcp_auth. With §6.5's tcp_submit (no saslswitchchannel) a submission
    // session would stay on tcp_submit and escape them: seeds-firewall.test.ts shows that case.
    const c = await openAuthenticated(server.ports.submit, outside(4));
    try {
      assert.equal((await c.cmd('MAIL FROM:<alice@other.example>')).raw, '550 5.7.1 Sender address rejected for other.example\r\n');
      const env = await server.deliver(c, ALICE.address, ['friend@elsewhere.example'], 'row 53 on submission');
      assert.equal(env.sourceChannel, 'tcp_auth');
      assert.equal(env.service, 'submit');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('anti-relay with ORIG_SEND_ACCESS (spec §14 / F1, §15.6)', () => {
  test('§15.6 row 57 (raw): relay from outside is refused "550 5.7.1 Relaying not allowed: <rcpt>" after the $D30 delay, which holds up no other session', async () => {
    const c = await openSession(server.ports.smtp, outside(2));
    const other = await openSession(server.ports.smtp, outside(3));
    try {
      assert.equal((await c.cmd('MAIL FROM:<spammer@bad.example>')).code, 250);
      const pending = timed(() => c.cmd('RCPT TO:<victim@elsewhere.example>'));
      // While that reply is delayed, another session is answered at once.
      const noop = await timed(() => other.cmd('NOOP'));
      const { value: r, ms } = await pending;
      assert.equal(r.raw, '550 5.7.1 Relaying not allowed: victim@elsewhere.example\r\n');
      assert.ok(ms >= D30_MIN_MS, `the refusal came after ${ms.toFixed(0)} ms; $D30 asks for 300 ms`);
      assert.equal(noop.value.code, 250);
      assert.ok(noop.ms < D30_MIN_MS, `another session waited ${noop.ms.toFixed(0)} ms`);
      await c.cmd('RSET');
      await c.quit();
      await other.quit();
    } finally {
      c.destroy();
      other.destroy();
    }
  });

  test('§15.6 row 57 (swaks): relay from outside refused, nothing spooled', async () => {
    const before = server.spoolIds().length;
    const r = await swaks(['--server', smtp(), '--local-interface', outside(0), '--from', 'spammer@bad.example', '--to', 'victim@elsewhere.example']);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /<\*\* 550 5\.7\.1 Relaying not allowed: victim@elsewhere\.example/);
    assert.equal(server.spoolIds().length, before);
  });

  test('§15.6 row 58 (swaks): an internal client (INTERNAL_IP $Y → tcp_intranet) relays', async () => {
    const r = await swaks(['--server', smtp(), '--local-interface', INTERNAL, '--from', `user@${DOMAIN}`, '--to', 'friend@elsewhere.example']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const env = server.envelope(Server.idOf(r.stdout));
    assert.equal(env.sourceChannel, 'tcp_intranet');
    assert.equal(env.recipients[0]?.channel, 'tcp_local');
  });

  test('§15.6 row 59 (swaks --tls --auth on the SMTP port): an authenticated client (saslswitchchannel → tcp_auth) relays', async () => {
    const r = await swaks([
      '--server', smtp(), '--local-interface', outside(5), '--tls', '--tls-ca-path', server.certFile,
      '--auth', 'PLAIN', '--auth-user', ALICE.address, '--auth-password', ALICE.password,
      '--from', ALICE.address, '--to', 'friend@elsewhere.example',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const env = server.envelope(Server.idOf(r.stdout));
    assert.equal(env.sourceChannel, 'tcp_auth');
    assert.equal(env.recipients[0]?.channel, 'tcp_local');
    assert.equal(env.client.ip, outside(5));
  });

  test('§15.6 row 60: normal inbound mail from outside to a hosted user passes (destination l, then the store)', async () => {
    const c = await openSession(server.ports.smtp, outside(2));
    try {
      const env = await server.deliver(c, 'a@remote.example', [ALICE.address], 'row 60');
      assert.equal(env.sourceChannel, 'tcp_local');
      assert.equal(env.recipients[0]?.channel, 'l');
      assert.deepEqual(env.recipients[0]?.deliverTo, [{ address: ALICE.address, channel: 'ims-ms' }]);
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('seed 004: explicit routing to an internal domain (spec §14, §15.6 rows 62-66)', () => {
  test('§15.6 rows 62-65: the four source-routed forms are refused "Explicit routing not allowed", each after $D30', async () => {
    const c = await openSession(server.ports.smtp, outside(6));
    try {
      assert.equal((await c.cmd('MAIL FROM:<x@remote.example>')).code, 250);
      const forms = [
        // Row 62's pattern @*:*.* — a source route whose first hop is the internal domain.
        '@internal.example:user@other.example',
        'user%other.example@internal.example', // row 63, $%
        'host!user@internal.example', // row 64, !
        '"user@other.example"@internal.example', // row 65, quoted local part
      ];
      for (const rcpt of forms) {
        const { value: r, ms } = await timed(() => c.cmd(`RCPT TO:<${rcpt}>`));
        assert.equal(r.raw, `550 5.7.1 Explicit routing not allowed: ${rcpt}\r\n`, rcpt);
        assert.ok(ms >= D30_MIN_MS, `${rcpt}: refused after ${ms.toFixed(0)} ms`);
      }
      await c.cmd('RSET');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.6 row 62 as written (@relay.example:user@internal.example): a source route goes to its first hop, here the Internet, so it is refused as relaying', async () => {
    // Spec row 62 expects destination tcp_intranet for this address; our router follows the
    // first hop (relay.example → tcp_local). Refused either way; reported as a spec question.
    const c = await openSession(server.ports.smtp, outside(6));
    try {
      assert.equal((await c.cmd('MAIL FROM:<x@remote.example>')).code, 250);
      const r = await c.cmd('RCPT TO:<@relay.example:user@internal.example>');
      assert.equal(r.raw, '550 5.7.1 Relaying not allowed: @relay.example:user@internal.example\r\n');
      await c.cmd('RSET');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('seed 004 from inside (tcp_intranet may route explicitly): a source-routed recipient is accepted and spooled with its route, on the first hop\'s channel', async () => {
    const c = await openSession(server.ports.smtp, INTERNAL);
    try {
      const env = await server.deliver(c, `user@${DOMAIN}`, ['@internal.example:user@other.example'], 'route from inside');
      assert.equal(env.recipients[0]?.channel, 'tcp_intranet');
      assert.deepEqual(env.recipients[0]?.deliverTo, [{ address: '@internal.example:user@other.example', channel: 'tcp_intranet' }]);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.6 row 66: a plain address in the internal domain is accepted from outside and routed to tcp_intranet', async () => {
    const c = await openSession(server.ports.smtp, outside(6));
    try {
      const env = await server.deliver(c, 'x@remote.example', ['user@internal.example'], 'row 66');
      assert.equal(env.sourceChannel, 'tcp_local');
      assert.equal(env.recipients[0]?.channel, 'tcp_intranet');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('internal delivery channels (spec §14, §15.6 rows 61, 67)', () => {
  test('§15.6 row 61 and the other tcp_* blocks: from outside, ims-ms, hold, pipe, native and tcp_lmtpcs addresses are refused "Invalid destination"', async () => {
    const c = await openSession(server.ports.smtp, outside(7));
    try {
      assert.equal((await c.cmd('MAIL FROM:<a@remote.example>')).code, 250);
      // user@ims-ms goes to ims-ms-daemon by the §6.5 rule "ims-ms $E$U@ims-ms-daemon".
      for (const rcpt of ['user@ims-ms-daemon', 'user@ims-ms', 'user@hold-daemon', 'prog@pipe-daemon', 'user@native-daemon', 'user@store.example']) {
        assert.equal((await c.cmd(`RCPT TO:<${rcpt}>`)).raw, `550 5.7.1 Invalid destination: ${rcpt}\r\n`, rcpt);
      }
      await c.cmd('RSET');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.6 row 67: the blocks name tcp_*, so an internal client (tcp_intranet) and an authenticated one (tcp_auth) are refused too', async () => {
    for (const connect of [() => openSession(server.ports.smtp, INTERNAL), () => openAuthenticated(server.ports.smtp, outside(7))]) {
      const c = await connect();
      try {
        assert.equal((await c.cmd(`MAIL FROM:<${ALICE.address}>`)).code, 250);
        assert.equal((await c.cmd('RCPT TO:<user@store.example>')).raw, '550 5.7.1 Invalid destination: user@store.example\r\n');
        assert.equal((await c.cmd('RCPT TO:<user@ims-ms-daemon>')).raw, '550 5.7.1 Invalid destination: user@ims-ms-daemon\r\n');
        await c.cmd('RSET');
        await c.quit();
      } finally {
        c.destroy();
      }
    }
  });
});

describe('the firewall listed $N first in INTERNAL_IP (spec §5.2, §15.1 F2, §15.4 rows 44-45)', () => {
  test('§15.4 rows 44-45: the firewall lands on tcp_local and may not relay; another internal host (tcp_intranet) relays; the spool records each channel', async () => {
    const fw = await openSession(server.ports.smtp, FIREWALL);
    try {
      assert.equal((await fw.cmd('MAIL FROM:<someone@remote.example>')).code, 250);
      assert.equal((await fw.cmd('RCPT TO:<victim@elsewhere.example>')).raw, '550 5.7.1 Relaying not allowed: victim@elsewhere.example\r\n');
      assert.equal((await fw.cmd('RSET')).code, 250);
      const env = await server.deliver(fw, 'someone@remote.example', [ALICE.address], 'through the firewall');
      assert.equal(env.sourceChannel, 'tcp_local');
      assert.equal(env.client.ip, FIREWALL);
      await fw.quit();
    } finally {
      fw.destroy();
    }
    const inside = await openSession(server.ports.smtp, INTERNAL2);
    try {
      const env = await server.deliver(inside, `user@${DOMAIN}`, ['friend@elsewhere.example'], 'from inside');
      assert.equal(env.sourceChannel, 'tcp_intranet');
      assert.equal(env.client.ip, INTERNAL2);
      await inside.quit();
    } finally {
      inside.destroy();
    }
  });
});

describe('the submission port and local recipients', () => {
  test('§6.5 tcp_submit mustsaslserver: MAIL without AUTH on the submission port is refused 530 5.7.0, from outside and from inside alike', async () => {
    for (const source of [outside(8), INTERNAL]) {
      const c = await openSession(server.ports.submit, source);
      try {
        const r = await c.cmd(`MAIL FROM:<${ALICE.address}>`);
        assert.equal(status(r), '530 5.7.0', `${source}: ${r.raw}`);
        await c.quit();
      } finally {
        c.destroy();
      }
    }
    const r = await swaks(['--server', `127.0.0.1:${server.ports.submit}`, '--local-interface', outside(8), '--from', ALICE.address, '--to', 'friend@elsewhere.example']);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /<\*\* 530 5\.7\.0/);
  });

  test('seed 002: an unknown local recipient is refused at RCPT with 550 5.1.1, from outside, inside and after AUTH', async () => {
    const sessions: [() => Promise<SmtpClient>, string][] = [
      [() => openSession(server.ports.smtp, outside(9)), 'someone@remote.example'],
      [() => openSession(server.ports.smtp, INTERNAL), `someone@${DOMAIN}`],
      [() => openAuthenticated(server.ports.submit, outside(9)), ALICE.address],
    ];
    for (const [connect, from] of sessions) {
      const c = await connect();
      try {
        assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
        assert.equal((await c.cmd(`RCPT TO:<nobody@${DOMAIN}>`)).raw, `550 5.1.1 unknown or illegal alias: nobody@${DOMAIN}\r\n`);
        assert.equal((await c.cmd(`RCPT TO:<${ALICE.address}>`)).code, 250, 'a known user in the same transaction is fine');
        await c.cmd('RSET');
        await c.quit();
      } finally {
        c.destroy();
      }
    }
    const r = await swaks(['--server', smtp(), '--local-interface', outside(9), '--from', 'someone@remote.example', '--to', `nobody@${DOMAIN}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, new RegExp(`<\\*\\* 550 5\\.1\\.1 unknown or illegal alias: nobody@${DOMAIN.replace('.', '\\.')}`));
  });
});

test('the server reported no internal faults and left no debris in the spool', async () => {
  assert.ok(server.running, 'server still running');
  assert.deepEqual(server.faults(), []);
  assert.deepEqual(await server.settledDebris(), []);
});
