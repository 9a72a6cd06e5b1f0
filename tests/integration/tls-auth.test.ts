// TLS and AUTH against the real executable: STARTTLS (swaks, smtplib, raw), implicit TLS on the
// smtps port (smtplib, swaks, nodemailer), STARTTLS command injection, AUTH PLAIN and LOGIN,
// failures (logged with the client address), a disabled account, too many failures, and AUTH
// refused without TLS.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { connectGreeted, DOMAIN, HOSTNAME, portcullis, python, Server, status, swaks } from './harness.js';
import type { LogRecord } from './harness.js';

let server: Server;
const ALICE = { user: `alice@${DOMAIN}`, pass: 'alice-secret' };
const CAROL = { user: `carol@${DOMAIN}`, pass: 'carol-secret' };

before(async () => {
  server = await Server.start({
    users: [
      { address: ALICE.user, password: ALICE.pass },
      { address: `bob@${DOMAIN}`, password: 'bob-secret' },
      { address: CAROL.user, password: CAROL.pass },
    ],
  });
});

after(async () => {
  await server?.stop();
});

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** smtplib: STARTTLS (or SMTP_SSL), optional login with a chosen mechanism, one message; prints JSON. */
const SMTPLIB = String.raw`
import json, smtplib, ssl, sys
port, mode, source, cafile, mech, user, password, rcpt = sys.argv[1:9]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # the certificate names mx.example.test; we connect to 127.0.0.1
out = {}
try:
    if mode == 'ssl':
        s = smtplib.SMTP_SSL('127.0.0.1', int(port), source_address=(source, 0), context=ctx, timeout=10)
        s.ehlo('smtplib.example')
    else:
        s = smtplib.SMTP('127.0.0.1', int(port), source_address=(source, 0), timeout=10)
        s.ehlo('smtplib.example')
        out['before_tls'] = s.esmtp_features.get('auth')
        code, _ = s.starttls(context=ctx)
        out['starttls'] = code
        s.ehlo('smtplib.example')
    out['auth_ext'] = (s.esmtp_features.get('auth') or '').strip() or None
    out['cipher'] = s.sock.cipher()[1]
    if mech != '-':
        s.user, s.password = user, password
        code, resp = s.auth(mech, getattr(s, 'auth_' + mech.lower().replace('-', '_')), initial_response_ok=(mech == 'PLAIN'))
        out['auth'] = code
    msg = 'From: <%s>\r\nTo: <%s>\r\nSubject: smtplib %s\r\n\r\nhello\r\n' % (user, rcpt, mode)
    out['refused'] = s.sendmail(user, [rcpt], msg)
    s.quit()
except smtplib.SMTPResponseException as e:
    out['error'] = [e.smtp_code, e.smtp_error.decode()]
print(json.dumps(out))
`;

interface SmtplibResult {
  before_tls?: string | null;
  starttls?: number;
  auth_ext?: string | null;
  cipher?: string;
  auth?: number;
  refused?: Record<string, unknown>;
  error?: [number, string];
}

async function smtplib(port: number, mode: 'starttls' | 'ssl', source: string, mech: string, user: string, password: string, rcpt: string): Promise<SmtplibResult> {
  const r = await python(SMTPLIB, [String(port), mode, source, server.certFile, mech, user, password, rcpt]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SmtplibResult;
}

function newestFrom(ip: string): string {
  const ids = server.spoolIds().filter((id) => server.envelope(id).client.ip === ip);
  const last = ids[ids.length - 1];
  assert.ok(last !== undefined, `a message from ${ip} in the spool`);
  return last;
}

describe('STARTTLS and implicit TLS', () => {
  test('RFC 3207 (swaks): STARTTLS with certificate verification, then a message', async () => {
    const r = await swaks([
      '--server', `127.0.0.1:${server.ports.smtp}`, '--local-interface', '127.0.0.10',
      '--tls', '--tls-verify', '--tls-ca-path', server.certFile, '--tls-sni', HOSTNAME,
      '--from', 'someone@remote.test', '--to', ALICE.user,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /<- {2}220 2\.0\.0 Ready to start TLS/);
    assert.match(r.stdout, /=== TLS started with cipher TLSv1\.[23]/);
    const env = server.envelope(Server.idOf(r.stdout));
    assert.equal(env.client.ip, '127.0.0.10');
    assert.ok(env.tls !== null);
    assert.equal(env.auth, null);
  });

  test('RFC 3207 (smtplib): STARTTLS, AUTH offered only after it, then a message', async () => {
    const out = await smtplib(server.ports.smtp, 'starttls', '127.0.0.11', '-', 'x@remote.test', '', ALICE.user);
    assert.equal(out.error, undefined, JSON.stringify(out));
    assert.equal(out.before_tls, null, 'no AUTH before TLS');
    assert.equal(out.starttls, 220);
    assert.equal(out.auth_ext, 'PLAIN LOGIN');
    assert.deepEqual(out.refused, {});
    const env = server.envelope(newestFrom('127.0.0.11'));
    assert.equal(env.tls?.protocol, out.cipher);
  });

  test('RFC 8314 §3.3 (smtplib SMTP_SSL): implicit TLS on the smtps port, AUTH LOGIN, submission', async () => {
    const out = await smtplib(server.ports.smtps, 'ssl', '127.0.0.12', 'LOGIN', ALICE.user, ALICE.pass, `bob@${DOMAIN}`);
    assert.equal(out.error, undefined, JSON.stringify(out));
    assert.equal(out.auth_ext, 'PLAIN LOGIN', 'AUTH offered at once on implicit TLS');
    assert.equal(out.auth, 235);
    assert.deepEqual(out.refused, {});
    const env = server.envelope(newestFrom('127.0.0.12'));
    assert.equal(env.service, 'smtps');
    assert.equal(env.sourceChannel, 'tcp_auth', 'tcp_submit saslswitchchannel tcp_auth (init default)');
    assert.equal(env.auth, ALICE.user);
    assert.ok(env.tls !== null);
  });

  test('RFC 8314 (swaks --tlsc): implicit TLS with AUTH PLAIN, relaying to another domain allowed after AUTH', async () => {
    const r = await swaks([
      '--server', `127.0.0.1:${server.ports.smtps}`, '--local-interface', '127.0.0.13',
      '--tlsc', '--tls-verify', '--tls-ca-path', server.certFile, '--tls-sni', HOSTNAME,
      '--auth', 'PLAIN', '--auth-user', ALICE.user, '--auth-password', ALICE.pass,
      '--from', ALICE.user, '--to', 'friend@elsewhere.test',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const env = server.envelope(Server.idOf(r.stdout));
    assert.deepEqual(env.recipients.map((x) => x.address), ['friend@elsewhere.test']);
    assert.equal(env.auth, ALICE.user);
    assert.equal(env.service, 'smtps');
  });

  test('RFC 8314 (nodemailer): implicit TLS, AUTH LOGIN, DSN options', async () => {
    const conn = new SMTPConnection({
      host: '127.0.0.1',
      port: server.ports.smtps,
      secure: true,
      localAddress: '127.0.0.14',
      name: 'nodemailer.example',
      authMethod: 'LOGIN',
      tls: { ca: readFileSync(server.certFile), servername: HOSTNAME },
      connectionTimeout: 5000,
      greetingTimeout: 5000,
      socketTimeout: 5000,
    });
    try {
      await new Promise<void>((res, rej) => conn.connect((e) => (e ? rej(e) : res())));
      await new Promise<void>((res, rej) => conn.login({ user: ALICE.user, pass: ALICE.pass }, (e) => (e ? rej(e) : res())));
      assert.equal(conn.authenticated, true);
      const info = await new Promise<SMTPConnection.SentMessageInfo>((res, rej) =>
        conn.send(
          { from: ALICE.user, to: [`bob@${DOMAIN}`], dsn: { ret: 'HDRS', envid: 'nm-1', notify: ['FAILURE', 'DELAY'], orcpt: `rfc822;bob@${DOMAIN}` } },
          'Subject: nodemailer\r\n\r\nhi\r\n',
          (e, i) => (e ? rej(e) : res(i)),
        ),
      );
      assert.deepEqual(info.accepted, [`bob@${DOMAIN}`]);
      const env = server.envelope(Server.idOf(info.response));
      assert.equal(env.client.ip, '127.0.0.14');
      assert.equal(env.auth, ALICE.user);
      assert.equal(env.senderParams.envid, 'nm-1');
      assert.deepEqual(env.recipients[0]?.notify, ['FAILURE', 'DELAY']);
      conn.quit();
    } finally {
      conn.close();
    }
  });

  test('RFC 3207 §4.2 (STARTTLS command injection): plaintext pipelined behind STARTTLS is discarded, not run after the handshake', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.15' });
    try {
      await c.ehlo('inject.example');
      await c.write('STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRSET\r\n');
      assert.equal(status(await c.read()), '220 2.0.0');
      await c.startTls();
      // The first thing over TLS must be the answer to our EHLO, not replies to MAIL/RSET.
      const ehlo = await c.ehlo('inject.example');
      assert.equal(ehlo.code, 250);
      assert.match(ehlo.lines[0] ?? '', /Hello inject\.example/);
      assert.equal(c.pending, 0, 'no replies to the injected commands');
      // And no transaction was started by the injected MAIL.
      assert.equal((await c.cmd(`MAIL FROM:<real@remote.test>`)).code, 250);
      assert.equal((await c.cmd('NOOP')).code, 250);
      assert.equal(c.pending, 0);
      await c.quit();
      await server.waitForLog('smtp-starttls-pipelined', (r) => r.client === '127.0.0.15');
    } finally {
      c.destroy();
    }
  });

  test('RFC 3207 §4.2: after STARTTLS the client must EHLO again; the earlier state is forgotten', async () => {
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      await c.ehlo('forget.example');
      assert.equal((await c.cmd('STARTTLS')).code, 220);
      await c.startTls();
      assert.equal(status(await c.cmd('MAIL FROM:<a@remote.test>')), '503 5.5.1');
      assert.equal(status(await c.cmd('STARTTLS')), '503 5.5.1', 'TLS is already active');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('AUTH', () => {
  test('RFC 4954 §4 / RFC 4616: AUTH PLAIN (initial response and after a 334) succeeds over TLS', async () => {
    const { c } = await connectGreeted(server.ports.submit, { localAddress: '127.0.0.16' });
    try {
      await c.ehlo('plain.example');
      assert.equal((await c.cmd('STARTTLS')).code, 220);
      await c.startTls();
      await c.ehlo('plain.example');
      assert.equal(status(await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE.user}\0${ALICE.pass}`)}`)), '235 2.7.0');
      assert.equal(status(await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE.user}\0${ALICE.pass}`)}`)), '503 5.5.1', 'already authenticated');
      const r = await c.sendMail(ALICE.user, ['someone@elsewhere.test'], 'Subject: submitted\r\n\r\nx\r\n');
      assert.equal(r.code, 250);
      const env = server.envelope(Server.idOf(r.text));
      assert.equal(env.service, 'submit');
      assert.equal(env.auth, ALICE.user);
      assert.equal(env.sourceChannel, 'tcp_auth', 'tcp_submit saslswitchchannel tcp_auth (init default)');
      await c.quit();
    } finally {
      c.destroy();
    }
    const { c: c2 } = await connectGreeted(server.ports.smtps, { tls: true });
    try {
      await c2.ehlo('plain2.example');
      assert.equal((await c2.cmd('AUTH PLAIN')).code, 334);
      assert.equal(status(await c2.cmd(b64(`${ALICE.user}\0${ALICE.user}\0${ALICE.pass}`))), '235 2.7.0', 'authzid equal to authcid is fine');
      await c2.quit();
    } finally {
      c2.destroy();
    }
  });

  test('RFC 4954 §4 (AUTH LOGIN, raw): Username:/Password: challenges, success', async () => {
    const { c } = await connectGreeted(server.ports.smtps, { tls: true, localAddress: '127.0.0.17' });
    try {
      await c.ehlo('login.example');
      const u = await c.cmd('AUTH LOGIN');
      assert.equal(u.code, 334);
      assert.equal(Buffer.from(u.text, 'base64').toString(), 'Username:');
      const p = await c.cmd(b64(ALICE.user));
      assert.equal(p.code, 334);
      assert.equal(Buffer.from(p.text, 'base64').toString(), 'Password:');
      assert.equal(status(await c.cmd(b64(ALICE.pass))), '235 2.7.0');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('RFC 4954 §6: a wrong password gets 535 5.7.8 and is logged with the client address (stderr and the log file)', async () => {
    const { c } = await connectGreeted(server.ports.smtps, { tls: true, localAddress: '127.0.0.18' });
    try {
      await c.ehlo('bad.example');
      assert.equal(status(await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE.user}\0wrong-password`)}`)), '535 5.7.8');
      assert.equal(status(await c.cmd('AUTH LOGIN')), '334');
      await c.cmd(b64('nobody@example.test'));
      assert.equal(status(await c.cmd(b64('whatever'))), '535 5.7.8', 'an unknown user looks the same');
      await c.quit();
    } finally {
      c.destroy();
    }
    const rec = await server.waitForLog('smtp-auth-failed', (r) => r.client === '127.0.0.18' && r.login === ALICE.user);
    assert.equal(rec.level, 'warn');
    assert.equal(rec.mechanism, 'PLAIN');
    assert.ok(!JSON.stringify(server.logs()).includes('wrong-password'), 'the password is never logged');
    const file = readFileSync(server.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogRecord);
    assert.ok(
      file.some((r) => r.event === 'smtp-auth-failed' && r.client === '127.0.0.18' && r.login === 'nobody@example.test'),
      'the failure is in <datadir>/log/portcullis.log too',
    );
  });

  test('seed 003: a disabled user cannot AUTH; `portcullis user disable/enable` act on the running server without restart', async () => {
    const tryAuth = async (): Promise<string> => {
      const { c } = await connectGreeted(server.ports.smtps, { tls: true, localAddress: '127.0.0.19' });
      try {
        await c.ehlo('carol.example');
        return status(await c.cmd(`AUTH PLAIN ${b64(`\0${CAROL.user}\0${CAROL.pass}`)}`));
      } finally {
        await c.quit();
      }
    };
    assert.equal(await tryAuth(), '235 2.7.0');
    const dis = await portcullis(['user', 'disable', CAROL.user, '--data', server.dataDir]);
    assert.equal(dis.code, 0, dis.stderr);
    assert.match(dis.stdout, /reloaded/);
    assert.equal(await tryAuth(), '535 5.7.8', 'refused like a wrong password');
    await server.waitForLog('smtp-auth-failed', (r) => r.client === '127.0.0.19' && r.login === CAROL.user);
    // Mail to the disabled user is still accepted.
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      await c.ehlo('x.example');
      assert.equal((await c.sendMail('a@remote.test', [CAROL.user], 'Subject: still delivered\r\n\r\nx\r\n')).code, 250);
    } finally {
      await c.quit();
    }
    const en = await portcullis(['user', 'enable', CAROL.user, '--data', server.dataDir]);
    assert.equal(en.code, 0, en.stderr);
    assert.equal(await tryAuth(), '235 2.7.0');
  });

  test('RFC 4954 §4: too many failed AUTH attempts end the session with 421', async () => {
    const { c } = await connectGreeted(server.ports.smtps, { tls: true, localAddress: '127.0.0.20' });
    try {
      await c.ehlo('guess.example');
      // smtp.maxauthfailures defaults to 3.
      assert.equal((await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE.user}\0guess1`)}`)).code, 535);
      assert.equal((await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE.user}\0guess2`)}`)).code, 535);
      assert.equal(status(await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE.user}\0guess3`)}`)), '421 4.7.0');
      assert.ok(await c.waitClosed(), 'the server closes the connection');
    } finally {
      c.destroy();
    }
  });

  test('RFC 4954 §4: AUTH is refused without TLS (538 5.7.11) on both the MX and the submission port', async () => {
    for (const port of [server.ports.smtp, server.ports.submit]) {
      const { c } = await connectGreeted(port, { localAddress: '127.0.0.21' });
      try {
        const ehlo = await c.ehlo('cleartext.example');
        assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')));
        assert.equal(status(await c.cmd(`AUTH PLAIN ${b64(`\0${ALICE.user}\0${ALICE.pass}`)}`)), '538 5.7.11');
        assert.equal(status(await c.cmd('AUTH LOGIN')), '538 5.7.11');
        await c.quit();
      } finally {
        c.destroy();
      }
    }
  });

  test('RFC 4954 §5: MAIL FROM AUTH= is kept from an authenticated client, and recorded as AUTH=<> from one that is not', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.22' });
    try {
      await c.ehlo('claims.example');
      const r = await c.sendMail('ceo@remote.test', [ALICE.user], 'Subject: claim\r\n\r\nx\r\n', 'AUTH=ceo@example.test');
      assert.equal(r.code, 250);
      assert.equal(server.envelope(Server.idOf(r.text)).senderParams.auth, '', 'an unauthenticated claim counts as AUTH=<>');
      await c.quit();
    } finally {
      c.destroy();
    }
    const { c: a } = await connectGreeted(server.ports.smtps, { tls: true, localAddress: '127.0.0.22' });
    try {
      await a.ehlo('claims.example');
      assert.equal((await a.cmd(`AUTH PLAIN ${b64(`\0${ALICE.user}\0${ALICE.pass}`)}`)).code, 235);
      const r = await a.sendMail(ALICE.user, ['x@elsewhere.test'], 'Subject: claim\r\n\r\nx\r\n', `AUTH=${ALICE.user.replace('@', '+40')}`);
      assert.equal(r.code, 250);
      assert.equal(server.envelope(Server.idOf(r.text)).senderParams.auth, ALICE.user);
      await a.quit();
    } finally {
      a.destroy();
    }
  });

  test('swaks: AUTH LOGIN on the submission port after STARTTLS; wrong password makes swaks fail with 535', async () => {
    const base = ['--server', `127.0.0.1:${server.ports.submit}`, '--tls', '--tls-ca-path', server.certFile, '--from', ALICE.user, '--to', 'x@elsewhere.test', '--auth', 'LOGIN', '--auth-user', ALICE.user];
    const ok = await swaks([...base, '--auth-password', ALICE.pass]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /<~ {2}235 2\.7\.0/);
    const bad = await swaks([...base, '--auth-password', 'nope']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout, /<~\* 535 5\.7\.8/);
  });
});

test('the server reported no internal faults and left no debris in the spool', async () => {
  assert.ok(server.running, 'server still running');
  assert.deepEqual(server.faults(), []);
  assert.deepEqual(await server.settledDebris(), [], 'no partial files left in the queue');
});
