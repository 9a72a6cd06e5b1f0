// The seed tables through second library clients (nodemailer's SMTPConnection and Python's
// smtplib), F6's SEND_ACCESS rows (spec §15.6 rows 71-74), single access flags ($X, $H, $A),
// PORT_ACCESS's verbatim rejections and input flag A (§4.1, §4.5), and MAPPING_PARANOIA left off
// (§5.6; seeds-firewall.test.ts turns it on). Same configuration as seeds.test.ts (seeds-config.ts).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { connectGreeted, DOMAIN, HOSTNAME, openSession, python, Server, status, turnedAway } from './harness.js';
import { ALICE, INTERNAL, outside, SEED_DOMAINS, seedsImta, seedsMappings, SESTA, SESTA_USER } from './seeds-config.js';

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

// ---------------------------------------------------------------------------------------------
// nodemailer

interface NodemailerOutcome {
  readonly accepted?: readonly string[];
  readonly response?: string;
  readonly error?: { code?: string; responseCode?: number; response?: string; rejectedErrors?: { response?: string }[] };
}

/** One message through nodemailer's SMTPConnection, optionally after STARTTLS and AUTH PLAIN. */
async function nodemailerSend(port: number, source: string, from: string, to: readonly string[], auth?: { user: string; pass: string }): Promise<NodemailerOutcome> {
  const conn = new SMTPConnection({
    host: '127.0.0.1',
    port,
    localAddress: source,
    name: 'nodemailer.example',
    ...(auth !== undefined ? { requireTLS: true, authMethod: 'PLAIN' } : { ignoreTLS: true }),
    tls: { ca: readFileSync(server.certFile), servername: HOSTNAME },
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 5000,
  });
  try {
    await new Promise<void>((res, rej) => conn.connect((e) => (e ? rej(e) : res())));
    if (auth !== undefined) await new Promise<void>((res, rej) => conn.login(auth, (e) => (e ? rej(e) : res())));
    return await new Promise<NodemailerOutcome>((res) =>
      conn.send({ from, to: [...to] }, 'Subject: nodemailer\r\n\r\nhi\r\n', (e, info) => {
        if (e) res({ error: e });
        else res({ accepted: info.accepted, response: info.response });
      }),
    );
  } finally {
    conn.quit();
    conn.close();
  }
}

// ---------------------------------------------------------------------------------------------
// smtplib

/** smtplib.sendmail, optionally after STARTTLS and login; prints what the library reported as JSON. */
const SMTPLIB = String.raw`
import json, smtplib, ssl, sys
port, source, cafile, user, password, sender, rcpt = sys.argv[1:8]
out = {}
try:
    s = smtplib.SMTP('127.0.0.1', int(port), source_address=(source, 0), local_hostname='smtplib.example', timeout=10)
    if user != '-':
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        s.starttls(context=ctx)
        s.login(user, password)
    out['refused'] = s.sendmail(sender, [rcpt], 'Subject: smtplib\r\n\r\nhello\r\n')
    s.quit()
except smtplib.SMTPSenderRefused as e:
    out['sender_refused'] = [e.smtp_code, e.smtp_error.decode()]
except smtplib.SMTPRecipientsRefused as e:
    out['recipients_refused'] = {k: [v[0], v[1].decode()] for k, v in e.recipients.items()}
print(json.dumps(out))
`;

interface SmtplibOutcome {
  readonly refused?: Record<string, unknown>;
  readonly sender_refused?: [number, string];
  readonly recipients_refused?: Record<string, [number, string]>;
}

async function smtplibSend(port: number, source: string, sender: string, rcpt: string, auth?: { user: string; pass: string }): Promise<SmtplibOutcome> {
  const r = await python(SMTPLIB, [String(port), source, server.certFile, auth?.user ?? '-', auth?.pass ?? '-', sender, rcpt]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SmtplibOutcome;
}

const alice = { user: ALICE.address, pass: ALICE.password };

describe('the seed tables through library clients', () => {
  test('seed 000 / §15.5 row 51 (nodemailer): MAIL with a hosted-domain From from an unauthenticated outsider fails with the F4 text', async () => {
    const out = await nodemailerSend(server.ports.smtp, outside(10), `ceo@${DOMAIN}`, [ALICE.address]);
    assert.equal(out.error?.code, 'EENVELOPE', JSON.stringify(out));
    assert.equal(out.error?.responseCode, 550);
    assert.equal(out.error?.response, `550 5.7.1 ${SEED000}`);
  });

  test('§15.6 row 57 (nodemailer): relaying from outside fails with "550 5.7.1 Relaying not allowed: <rcpt>"', async () => {
    const out = await nodemailerSend(server.ports.smtp, outside(10), 'spammer@bad.example', ['victim@elsewhere.example']);
    assert.equal(out.error?.code, 'EENVELOPE', JSON.stringify(out));
    assert.equal(out.error?.rejectedErrors?.[0]?.response, '550 5.7.1 Relaying not allowed: victim@elsewhere.example');
  });

  test('§15.5 rows 53-54 + §15.6 row 59 (nodemailer, STARTTLS + AUTH on the SMTP port): own domain relays, another domain fails at MAIL', async () => {
    const ok = await nodemailerSend(server.ports.smtp, outside(10), ALICE.address, ['friend@elsewhere.example'], alice);
    assert.deepEqual(ok.accepted, ['friend@elsewhere.example'], JSON.stringify(ok));
    assert.equal(server.envelope(Server.idOf(ok.response ?? '')).sourceChannel, 'tcp_auth');
    const bad = await nodemailerSend(server.ports.smtp, outside(10), 'alice@other.example', ['friend@elsewhere.example'], alice);
    assert.equal(bad.error?.response, '550 5.7.1 Sender address rejected for other.example', JSON.stringify(bad));
  });

  test('seed 000 / §15.5 row 51 (smtplib): SMTPSenderRefused with the F4 text', async () => {
    const out = await smtplibSend(server.ports.smtp, outside(11), `ceo@${DOMAIN}`, ALICE.address);
    assert.deepEqual(out.sender_refused, [550, `5.7.1 ${SEED000}`]);
  });

  test('§15.5 row 54 (smtplib, STARTTLS + login on the SMTP port): SMTPSenderRefused "Sender address rejected for other.example"', async () => {
    const out = await smtplibSend(server.ports.smtp, outside(11), 'alice@other.example', ALICE.address, alice);
    assert.deepEqual(out.sender_refused, [550, '5.7.1 Sender address rejected for other.example']);
    const own = await smtplibSend(server.ports.smtp, outside(11), ALICE.address, 'friend@elsewhere.example', alice);
    assert.deepEqual(own.refused, {}, JSON.stringify(own));
  });

  test('§15.6 row 57 (smtplib): SMTPRecipientsRefused "Relaying not allowed"; row 58: the internal host relays', async () => {
    const out = await smtplibSend(server.ports.smtp, outside(11), 'spammer@bad.example', 'victim@elsewhere.example');
    assert.deepEqual(out.recipients_refused, { 'victim@elsewhere.example': [550, '5.7.1 Relaying not allowed: victim@elsewhere.example'] });
    const inside = await smtplibSend(server.ports.smtp, INTERNAL, `user@${DOMAIN}`, 'friend@elsewhere.example');
    assert.deepEqual(inside.refused, {}, JSON.stringify(inside));
  });
});

describe('SEND_ACCESS after alias expansion (spec §15.1 F6, §15.6 rows 71-74; sesta.com → sesta.example)', () => {
  test('§15.6 rows 71-72: an allowed sender from the domain passes, any other is blocked "Mail Blocked" (from an internal host, which F1 lets relay)', async () => {
    const c = await openSession(server.ports.smtp, INTERNAL);
    try {
      const env = await server.deliver(c, `Elvis1@${SESTA}`, ['x@y.example'], 'row 71');
      assert.equal(env.sourceChannel, 'tcp_intranet');
      assert.equal((await c.cmd(`MAIL FROM:<joe@${SESTA}>`)).code, 250);
      assert.equal((await c.cmd('RCPT TO:<x@y.example>')).raw, '550 5.7.1 Mail Blocked: x@y.example\r\n');
      await c.cmd('RSET');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.6 rows 73-74: the unwelcome sender gets "Go away!" for the hosted user, another sender passes', async () => {
    const c = await openSession(server.ports.smtp, outside(12));
    try {
      assert.equal((await c.cmd('MAIL FROM:<unwelcome@varrius.example>')).code, 250);
      // RCPT written as F6 writes it ("User@"): the reply names the recipient as given.
      assert.equal((await c.cmd(`RCPT TO:<User@${SESTA}>`)).raw, `550 5.7.1 Go away!: User@${SESTA}\r\n`);
      await c.cmd('RSET');
      const env = await server.deliver(c, 'friendly@siroe.example', [`User@${SESTA}`], 'row 74');
      assert.deepEqual(env.recipients[0]?.deliverTo, [{ address: SESTA_USER.address, channel: 'ims-ms' }]);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§15.6 row 73 as F6 writes it (destination l in SEND_ACCESS) never matches: SEND_ACCESS sees the expanded recipient on ims-ms (§5.4)', async () => {
    const c = await openSession(server.ports.smtp, outside(12));
    try {
      const env = await server.deliver(c, 'literal@varrius.example', [`User@${SESTA}`], 'row 73 literal');
      assert.equal(env.recipients[0]?.channel, 'l');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('single access flags on the spooled message and the reply (spec §4.2, §4.3, §4.7)', () => {
  test('§4.7: $X4.7.1 in an ORIG_SEND_ACCESS entry turns the refusal temporary: 450 4.7.1', async () => {
    const c = await openSession(server.ports.smtp, outside(13));
    try {
      assert.equal((await c.cmd('MAIL FROM:<tempfail@remote.example>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${ALICE.address}>`)).raw, `450 4.7.1 Try again later: ${ALICE.address}\r\n`);
      await c.cmd('RSET');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§4.2: $H on an accepting entry marks the spooled envelope with flag H; an ordinary message carries no flag', async () => {
    const c = await openSession(server.ports.smtp, outside(13));
    try {
      assert.deepEqual((await server.deliver(c, 'holdme@remote.example', [ALICE.address], 'hold me')).flags, ['H']);
      assert.deepEqual((await server.deliver(c, 'plain@remote.example', [ALICE.address], 'plain')).flags, []);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('§4.3: $A adds its header line to the spooled message', async () => {
    const c = await openSession(server.ports.smtp, outside(13));
    try {
      const r = await c.sendMail('tagme@remote.example', [ALICE.address], 'Subject: tag me\r\n\r\nhello\r\n');
      assert.equal(r.code, 250, r.raw);
      const body = server.body(Server.idOf(r.text));
      const headers = body.slice(0, body.indexOf('\r\n\r\n')).split(/\r\n(?![ \t])/);
      assert.ok(headers.includes('X-Seed-Tag: added by ORIG_SEND_ACCESS'), body);
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('PORT_ACCESS rejections (spec §4.1, §4.5)', () => {

  test('§4.5: "$N421$ Connection$ declined..." is sent verbatim, with no greeting, and the connection closed', async () => {
    assert.equal(await turnedAway(server.ports.smtp, '127.0.0.60'), '421 Connection declined at this time\r\n');
  });

  test('§4.5 (MS 8.0.1.3+): "~" in the text separates the lines of a multi-line reply', async () => {
    assert.equal(await turnedAway(server.ports.smtp, '127.0.0.61'), '421-Connection declined\r\n421 Try again later\r\n');
  });

  test('§4.1: PORT_ACCESS is probed twice — with input flag A (Dispatcher) and without (SMTP server) — and either probe can refuse', async () => {
    assert.equal(await turnedAway(server.ports.smtp, '127.0.0.62'), '421 Refused by the Dispatcher probe\r\n');
    assert.equal(await turnedAway(server.ports.smtp, '127.0.0.63'), '421 Refused by the SMTP server probe\r\n');
  });

  test('§15.4 rows 36-37: under F1\'s entries 127.0.0.1 (INTERNAL_IP $Y) and an Internet host (EXTERNAL) are both greeted', async () => {
    for (const source of ['127.0.0.1', outside(14)]) {
      const { c, greeting } = await connectGreeted(server.ports.smtp, { localAddress: source });
      c.destroy();
      assert.equal(greeting.code, 220, `${source}: ${greeting.raw}`);
    }
  });
});

test('§5.6 MAPPING_PARANOIA off (the default): a "|" in the envelope From shifts the FROM_ACCESS fields, and an entry that needs an extra field matches', async () => {
  // The counterpart with mta.mapping_paranoia = ! is in seeds-firewall.test.ts.
  const c = await openSession(server.ports.smtp, outside(15));
  try {
    assert.equal((await c.cmd('MAIL FROM:<a|b@remote.example>')).raw, '550 5.7.1 Faked field boundary\r\n');
    assert.equal(status(await c.cmd('MAIL FROM:<ab@remote.example>')), '250 2.1.0');
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
