// Seed 003's tiered limits (issue 5, scenario 3; spec §5.5, §6.3, §7): the shipped example
// configuration examples/tiered-limits/ run by the real executable and driven by real clients
// (the harness's byte-exact SMTP client with STARTTLS and AUTH PLAIN, and swaks). Each tier's
// (quota+1)-th recipient is refused with the tier's own text, while other senders and the same
// sender in another tier go on sending.
//
// The example is copied to a temporary directory (the harness's `from`); nothing is written into
// examples/. Only what a test must change is changed, and each change is made the way an
// administrator would make it:
//   - msg.conf values, rewritten with setConfValues: the ports and the data directory (the harness),
//     small quotas (3/4/5/6 instead of 100/200/500/1000, so each test is a few messages), and the
//     certificate, which the example does not ship (README step 2: here the one `portcullis init`
//     makes, copied in);
//   - the example's addresses, which loopback sources stand in for: its internal network
//     $(192.0.2.0/24) becomes $(127.0.0.0/29) (README step 3), and in the webmail test its
//     placeholder 192.0.2.80 becomes the webmail host below (README step 5).
//
//   127.0.0.2  PRINTER     internal host, no AUTH (tcp_intranet)
//   127.0.0.3  APP_SERVER  another internal host, no AUTH
//   127.0.0.4  WEBMAIL     the webmail server (internal; its own tier once enabled)
//   127.0.0.5  DESKTOP     an internal workstation whose users authenticate
//   127.0.0.20 HOME        an Internet host whose users authenticate (a laptop at home)
//   127.0.0.21 CAFE        another Internet host

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectGreeted, openSession, portcullis, ROOT, Server, setConfValues, startTlsAndAuth, swaks } from './harness.js';
import type { Reply, SmtpClient } from './harness.js';

const EXAMPLE = join(ROOT, 'examples', 'tiered-limits');
const DOMAIN = 'example.com';

const PRINTER = '127.0.0.2';
const APP_SERVER = '127.0.0.3';
const WEBMAIL = '127.0.0.4';
const DESKTOP = '127.0.0.5';
const HOME = '127.0.0.20';
const CAFE = '127.0.0.21';

const QUOTA = { extAuth: 3, webmail: 4, intAuth: 5, intHost: 6 } as const;

/** The refusal texts of the example's ORIG_MAIL_ACCESS entries. */
const TEXT = {
  extAuth: 'Excessive email sent - Please try again later',
  webmail: 'Excessive email sent through webmail - Please try again later',
  intAuth: 'Excessive email sent from the internal network - Please try again later',
  intHost: 'Excessive email sent from this host - Please try again later',
} as const;

const user = (name: string): { address: string; password: string } => ({ address: `${name}@${DOMAIN}`, password: `${name}-secret` });
const ALICE = user('alice');
const BOB = user('bob');
const CAROL = user('carol');
const DAVE = user('dave');
const ERIN = user('erin');
const FRANK = user('frank');
const IVAN = user('ivan');

let server: Server;
let stage: string;
let shipped: string[];

const listing = (dir: string): string[] => (readdirSync(dir, { recursive: true }) as string[]).sort();

/** What a tier's refusal looks like at RCPT (spec §4.7). */
const refusal = (text: string, rcpt: string): string => `550 5.7.1 ${text}: ${rcpt}\r\n`;

before(async () => {
  shipped = listing(EXAMPLE);
  stage = mkdtempSync(join(tmpdir(), 'portcullis-tiered-'));
  const config = join(stage, 'config');
  cpSync(EXAMPLE, config, { recursive: true });
  // README step 2 (a trial certificate): the self-signed one `portcullis init` writes.
  const scratch = join(stage, 'scratch');
  const init = await portcullis(['init', scratch, '--domain', DOMAIN, '--hostname', `mail.${DOMAIN}`]);
  assert.equal(init.code, 0, init.stderr);
  cpSync(join(scratch, 'tls'), join(config, 'tls'), { recursive: true });
  // The example's msg.conf, with only these values rewritten (the harness then sets the ports and
  // store.datadir the same way).
  const msgConf = join(config, 'msg.conf');
  writeFileSync(
    msgConf,
    setConfValues(readFileSync(msgConf, 'utf8'), {
      'service.tls.certfile': 'tls/cert.pem',
      'service.tls.keyfile': 'tls/key.pem',
      'metermaid.table.ext_auth_throttle.quota': String(QUOTA.extAuth),
      'metermaid.table.webmail_throttle.quota': String(QUOTA.webmail),
      'metermaid.table.int_auth_throttle.quota': String(QUOTA.intAuth),
      'metermaid.table.int_host_throttle.quota': String(QUOTA.intHost),
    }),
  );

  server = await Server.start({
    from: config,
    domains: [DOMAIN],
    users: [ALICE, BOB, CAROL, DAVE, ERIN, FRANK, IVAN],
    // README step 3: the internal network.
    mappings: ({ text }) => replaceOnce(text, '$(192.0.2.0/24)', '$(127.0.0.0/29)'),
  });
});

after(async () => {
  await server?.stop();
  if (stage !== undefined) rmSync(stage, { recursive: true, force: true });
});

function replaceOnce(text: string, find: string, by: string): string {
  const at = text.indexOf(find);
  assert.ok(at !== -1 && text.indexOf(find, at + 1) === -1, `the example has changed: "${find}" is not in it exactly once`);
  return text.replace(find, by);
}

/** A session from `source` on the submission port, after STARTTLS and AUTH PLAIN. */
async function authenticated(source: string, u: { address: string; password: string }, port = server.ports.submit): Promise<SmtpClient> {
  const { c, greeting } = await connectGreeted(port, { localAddress: source });
  assert.equal(greeting.code, 220, greeting.raw);
  const r = await startTlsAndAuth(c, u.address, u.password);
  assert.equal(r.code, 235, r.raw);
  return c;
}

/** One message to one recipient; returns the RCPT reply. An accepted recipient's message is sent and must be queued. */
async function send(c: SmtpClient, from: string, to: string): Promise<Reply> {
  const m = await c.cmd(`MAIL FROM:<${from}>`);
  assert.equal(m.code, 250, m.raw);
  const r = await c.cmd(`RCPT TO:<${to}>`);
  if (r.code !== 250) {
    assert.equal((await c.cmd('RSET')).code, 250);
    return r;
  }
  assert.equal((await c.cmd('DATA')).code, 354);
  await c.write(`From: <${from}>\r\nTo: <${to}>\r\nSubject: tiered limits\r\n\r\nhello\r\n.\r\n`);
  const done = await c.read();
  assert.equal(done.code, 250, done.raw);
  return r;
}

/** Sends `n` messages that must all be accepted; returns the source channel they were queued from. */
async function sendAccepted(c: SmtpClient, n: number, from: (i: number) => string, to: string): Promise<string> {
  const channels = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await send(c, from(i), to);
    assert.equal(r.code, 250, `message ${i + 1} of ${n} from <${from(i)}>: ${r.raw}`);
  }
  for (const id of server.spoolIds()) {
    const env = server.envelope(id);
    if (env.recipients.some((x) => x.address === to)) channels.add(env.sourceChannel);
  }
  assert.equal(channels.size, 1, `one source channel for the messages to ${to}: ${[...channels].join(', ')}`);
  return [...channels][0] as string;
}

/** The log's record of the refusal: which table counted which key. */
async function overQuota(table: string, key: string): Promise<void> {
  await server.waitForLog('metermaid-over-quota', (r) => r.table === table && r.key === key);
}

describe('seed 003: tiered limits from examples/tiered-limits (spec §5.5, §7)', () => {
  test('the example passes `portcullis check` as shipped, with no errors and no warnings', async () => {
    const r = await portcullis(['check', '--config', EXAMPLE]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^config OK: 3 files, 5 tables/);
  });

  test(`internal unauthenticated tier: an internal host's ${QUOTA.intHost + 1}th recipient is refused, whatever the envelope sender; other hosts and AUTH from the same host are not`, async () => {
    const c = await openSession(server.ports.smtp, PRINTER);
    try {
      // Keyed by client address: a new envelope sender for every message does not help.
      const channel = await sendAccepted(c, QUOTA.intHost, (i) => `scanner${i}@${DOMAIN}`, 'archive@elsewhere.example');
      assert.equal(channel, 'tcp_intranet');
      const r = await send(c, `someone-else@${DOMAIN}`, 'archive@elsewhere.example');
      assert.equal(r.raw, refusal(TEXT.intHost, 'archive@elsewhere.example'));
      await overQuota('int_host_throttle', PRINTER);
    } finally {
      await c.quit();
    }
    // Another internal host has its own count.
    const other = await openSession(server.ports.smtp, APP_SERVER);
    try {
      assert.equal((await send(other, `app@${DOMAIN}`, 'archive@elsewhere.example')).code, 250);
    } finally {
      await other.quit();
    }
    // A user who authenticates on the printer's address (SMTP port: tcp_intranet, then tcp_auth) is
    // in the internal authenticated tier.
    const ivan = await authenticated(PRINTER, IVAN, server.ports.smtp);
    try {
      assert.equal(await sendAccepted(ivan, 1, () => IVAN.address, 'ivan-friend@elsewhere.example'), 'tcp_auth');
    } finally {
      await ivan.quit();
    }
  });

  test(`internal authenticated tier: a user's ${QUOTA.intAuth + 1}th recipient from inside is refused; other users, and the same user from outside, are not`, async () => {
    const c = await authenticated(DESKTOP, ALICE);
    try {
      assert.equal(await sendAccepted(c, QUOTA.intAuth, () => ALICE.address, 'alice-friend@elsewhere.example'), 'tcp_auth');
      const r = await send(c, ALICE.address, 'alice-friend@elsewhere.example');
      assert.equal(r.raw, refusal(TEXT.intAuth, 'alice-friend@elsewhere.example'));
      await overQuota('int_auth_throttle', ALICE.address);
      // The count is per envelope sender, so FROM_ACCESS pins that to the login: another sender
      // (or the null sender) is refused at MAIL instead of opening a fresh count.
      for (const other of [`alice.alias@${DOMAIN}`, '']) {
        const m = await c.cmd(`MAIL FROM:<${other}>`);
        assert.equal(m.raw, '550 5.7.1 Sender address rejected - authenticated users send as themselves\r\n');
      }
      // Case does not make a new key either (nocase).
      const upper = await send(c, ALICE.address.toUpperCase(), 'alice-friend@elsewhere.example');
      assert.equal(upper.raw, refusal(TEXT.intAuth, 'alice-friend@elsewhere.example'));
    } finally {
      await c.quit();
    }
    const bob = await authenticated(DESKTOP, BOB);
    try {
      assert.equal((await send(bob, BOB.address, 'bob-friend@elsewhere.example')).code, 250);
    } finally {
      await bob.quit();
    }
    // From outside, alice is in the external tier, which has its own count.
    const away = await authenticated(CAFE, ALICE);
    try {
      assert.equal((await send(away, ALICE.address, 'alice-friend@elsewhere.example')).code, 250);
    } finally {
      await away.quit();
    }
  });

  test(`external authenticated tier (swaks): a user's ${QUOTA.extAuth + 1}th recipient from outside is refused with the seed's text; other users, and the same user from inside, are not`, async () => {
    const rcpt = 'carol-friend@elsewhere.example';
    const viaSwaks = (from: string, u: { address: string; password: string }) =>
      swaks([
        '--server', `127.0.0.1:${server.ports.submit}`, '--local-interface', from, '--tls', '--tls-ca-path', server.certFile,
        '--auth', 'PLAIN', '--auth-user', u.address, '--auth-password', u.password, '--from', u.address, '--to', rcpt,
      ]);
    for (let i = 0; i < QUOTA.extAuth; i++) {
      const r = await viaSwaks(HOME, CAROL);
      assert.equal(r.code, 0, `message ${i + 1}: ${r.stdout}${r.stderr}`);
      assert.equal(server.envelope(Server.idOf(r.stdout)).sourceChannel, 'tcp_auth');
    }
    const refused = await viaSwaks(HOME, CAROL);
    assert.notEqual(refused.code, 0);
    // swaks marks a refusal received over TLS with "<~*".
    assert.ok(refused.stdout.includes(`<~* ${refusal(TEXT.extAuth, rcpt).trimEnd()}`), refused.stdout);
    await overQuota('ext_auth_throttle', CAROL.address);
    // Another outside user from the same address is not affected: the key is the sender.
    const dave = await viaSwaks(HOME, DAVE);
    assert.equal(dave.code, 0, dave.stdout);
    // Carol at her desk is in the internal tier.
    const desk = await authenticated(DESKTOP, CAROL);
    try {
      assert.equal((await send(desk, CAROL.address, rcpt)).code, 250);
    } finally {
      await desk.quit();
    }
  });

  test(`webmail tier, enabled as README.md says (uncomment, name the server, check, reload): a user's ${QUOTA.webmail + 1}th recipient through webmail is refused; other webmail users, and the same user at her desk, are not`, async () => {
    const mappingsPath = join(server.configDir, 'mappings');
    const text = readFileSync(mappingsPath, 'utf8');
    const placeholder = /^!(\s+TCP\|\*\|\*\|)192\.0\.2\.80(\|.*)$/m;
    assert.match(text, placeholder, 'the example has changed: the commented webmail entry is missing');
    writeFileSync(mappingsPath, text.replace(placeholder, `$1${WEBMAIL}$2`));
    const check = await portcullis(['check', '--config', server.configDir]);
    assert.equal(check.code, 0, check.stderr);
    const reload = await portcullis(['reload', '--config', server.configDir]);
    assert.equal(reload.code, 0, reload.stdout + reload.stderr);

    const rcpt = 'erin-friend@elsewhere.example';
    const c = await authenticated(WEBMAIL, ERIN);
    try {
      assert.equal(await sendAccepted(c, QUOTA.webmail, () => ERIN.address, rcpt), 'tcp_auth');
      // The webmail quota (4) ends it before the internal one (5) would.
      const r = await send(c, ERIN.address, rcpt);
      assert.equal(r.raw, refusal(TEXT.webmail, rcpt));
      await overQuota('webmail_throttle', ERIN.address);
    } finally {
      await c.quit();
    }
    const frank = await authenticated(WEBMAIL, FRANK);
    try {
      assert.equal((await send(frank, FRANK.address, 'frank-friend@elsewhere.example')).code, 250);
    } finally {
      await frank.quit();
    }
    const desk = await authenticated(DESKTOP, ERIN);
    try {
      assert.equal((await send(desk, ERIN.address, rcpt)).code, 250);
    } finally {
      await desk.quit();
    }
  });

  test('nothing was written into examples/tiered-limits', () => {
    assert.deepEqual(listing(EXAMPLE), shipped);
  });
});
