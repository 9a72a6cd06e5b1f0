// The SMTP protocol as a client sees it, against the real executable: greeting and EHLO, the spool
// (envelope and body, Received and Message-ID), pipelining, CHUNKING, DSN, SMTPUTF8 and the
// built-in relay policy. Byte-exact checks use a raw socket; swaks is the independent client.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { codes, connectGreeted, DOMAIN, HOSTNAME, message, Server, status, swaks } from './harness.js';
import type { Reply } from './harness.js';

let server: Server;

before(async () => {
  server = await Server.start({
    users: [
      { address: `alice@${DOMAIN}`, password: 'alice-secret' },
      { address: `bob@${DOMAIN}`, password: 'bob-secret' },
    ],
  });
});

after(async () => {
  await server?.stop();
});

describe('greeting and EHLO', () => {
  test('RFC 5321 §4.3.1 / §4.1.1.1: 220 greeting, EHLO lists the extensions; AUTH only after TLS (RFC 4954 §4)', async () => {
    const { c, greeting } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.2' });
    try {
      assert.equal(greeting.code, 220);
      assert.match(greeting.text, new RegExp(`^${HOSTNAME.replace(/\./g, '\\.')} ESMTP`));
      const ehlo = await c.ehlo('client2.example');
      assert.equal(ehlo.code, 250);
      assert.match(ehlo.lines[0] ?? '', /Hello client2\.example \[127\.0\.0\.2\]/);
      const ext = ehlo.lines.slice(1);
      for (const want of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'CHUNKING', 'STARTTLS']) {
        assert.ok(ext.includes(want), `EHLO should advertise ${want}: ${ext.join(', ')}`);
      }
      assert.ok(ext.some((l) => /^SIZE \d+$/.test(l)), 'SIZE with the limit (RFC 1870)');
      assert.ok(!ext.some((l) => l.startsWith('AUTH')), 'no AUTH before TLS');
      assert.ok(!ext.some((l) => l.startsWith('XCLIENT')), 'no XCLIENT for an untrusted client');

      assert.equal((await c.cmd('STARTTLS')).code, 220);
      await c.startTls();
      const ehlo2 = await c.ehlo('client2.example');
      const ext2 = ehlo2.lines.slice(1);
      assert.ok(ext2.includes('AUTH PLAIN LOGIN'), `AUTH after TLS: ${ext2.join(', ')}`);
      assert.ok(!ext2.includes('STARTTLS'), 'STARTTLS is not offered twice (RFC 3207 §4.2)');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('RFC 5321 §4.1.1.1 / RFC 5322 §2.2: an EHLO name with control characters is refused (501), so none reach the Received header', async () => {
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      assert.equal(status(await c.cmd('EHLO bad\x00name')), '501 5.5.4');
      assert.equal(status(await c.cmd('HELO bad\x1bname')), '501 5.5.4');
      assert.equal(status(await c.cmd('MAIL FROM:<a@remote.test>')), '503 5.5.1', 'no name was recorded');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('RFC 5321 §4.1.1.1: HELO works, and MAIL before any HELO is a bad sequence (503)', async () => {
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      assert.equal(status(await c.cmd('MAIL FROM:<a@remote.test>')), '503 5.5.1');
      const helo = await c.cmd('HELO old.example');
      assert.equal(helo.code, 250);
      assert.equal(helo.lines.length, 1, 'HELO answers with one line, no extensions');
      assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('the spool', () => {
  test('RFC 5321 §4.4 + docs/spool.md: a message to a local user is spooled with its envelope, a Received header and an added Message-ID', async () => {
    const before = server.spoolIds().length;
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.3' });
    try {
      await c.ehlo('client3.example');
      const content = message('spool test', [], 'First line.\r\n..a line that starts with a dot\r\nLast line.\r\n');
      const r = await c.sendMail('sender@remote.test', [`alice@${DOMAIN}`], content);
      assert.equal(status(r), '250 2.0.0');
      const id = Server.idOf(r.text);
      assert.equal(server.spoolIds().length, before + 1, 'exactly one message committed before the 250');

      const env = server.envelope(id);
      assert.equal(env.version, 1);
      assert.equal(env.id, id);
      assert.equal(env.sender, 'sender@remote.test');
      assert.deepEqual(
        env.recipients.map((x) => [x.address, x.status]),
        [[`alice@${DOMAIN}`, 'pending']],
      );
      assert.equal(env.client.ip, '127.0.0.3');
      assert.equal(env.client.helo, 'client3.example');
      assert.equal(env.client.via, null);
      assert.equal(env.service, 'smtp');
      assert.equal(env.sourceChannel, 'tcp_local');
      assert.equal(env.auth, null);
      assert.equal(env.tls, null);
      assert.ok(!Number.isNaN(Date.parse(env.receivedAt)));

      const eml = server.body(id);
      assert.equal(env.size, Buffer.byteLength(eml), 'envelope size is the stored size');
      assert.match(eml, /^Received: from client3\.example \(\[127\.0\.0\.3\]\)\r\n\tby mx\.example\.test \(Portcullis\) with ESMTP id /);
      assert.match(eml, new RegExp(`id ${id}\\r\\n\\tfor <alice@example\\.test>; \\w{3}, \\d{1,2} \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\\r\\n`));
      const ids = eml.match(/^Message-ID:.*$/gim) ?? [];
      assert.deepEqual(ids, [`Message-ID: <${id}@${HOSTNAME}>`], 'one Message-ID, added by the server (RFC 5322 §3.6.4)');
      assert.ok(eml.includes('\r\n.a line that starts with a dot\r\n'), 'dot-unstuffed (RFC 5321 §4.5.2)');
      assert.ok(eml.endsWith('Last line.\r\n'));
      assert.ok(!/[^\r]\n/.test(eml), 'CRLF line endings only');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('RFC 5322 §3.6.4: a Message-ID is added even when the message is only a header block (no body)', async () => {
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      await c.ehlo('client.example');
      const r = await c.sendMail('sender@remote.test', [`alice@${DOMAIN}`], 'Subject: headers only\r\nFrom: <sender@remote.test>\r\n');
      assert.equal(r.code, 250);
      const eml = server.body(Server.idOf(r.text));
      assert.equal((eml.match(/^Message-ID:/gim) ?? []).length, 1, eml);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('RFC 5321 §4.4 (swaks, STARTTLS + AUTH PLAIN): Received records TLS and AUTH; a Message-ID the client sent is kept, none added', async () => {
    const r = await swaks([
      '--server', `127.0.0.1:${server.ports.smtp}`,
      '--local-interface', '127.0.0.4',
      '--ehlo', 'swaks.example',
      '--tls', '--tls-verify', '--tls-ca-path', server.certFile, '--tls-sni', HOSTNAME,
      '--auth', 'PLAIN', '--auth-user', `alice@${DOMAIN}`, '--auth-password', 'alice-secret',
      '--from', `alice@${DOMAIN}`, '--to', `bob@${DOMAIN}`,
      '--header', 'Message-Id: <client-chosen@swaks.example>',
      '--header', 'Subject: with tls and auth',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const id = Server.idOf(r.stdout);
    const env = server.envelope(id);
    assert.equal(env.auth, `alice@${DOMAIN}`);
    assert.equal(env.sourceChannel, 'tcp_auth');
    assert.equal(env.client.ip, '127.0.0.4');
    assert.equal(env.client.helo, 'swaks.example');
    assert.ok(env.tls !== null && /^TLSv1\.[23]$/.test(env.tls.protocol), JSON.stringify(env.tls));
    const eml = server.body(id);
    assert.match(eml, /^Received: from swaks\.example \(\[127\.0\.0\.4\]\)\r\n\tby mx\.example\.test \(Portcullis\) with ESMTPSA id /);
    assert.match(eml, /\r\n\t\(using TLSv1\.[23] with cipher [A-Z0-9_-]+\)\r\n/);
    assert.match(eml, /\r\n\t\(authenticated as alice@example\.test\)\r\n/);
    assert.deepEqual(eml.match(/^Message-ID:.*$/gim), ['Message-Id: <client-chosen@swaks.example>']);
  });
});

describe('extensions', () => {
  test('RFC 2920 §3.1: a whole pipelined transaction sent in one write gets every reply, in order', async () => {
    const before = server.spoolIds().length;
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.5' });
    try {
      await c.write(
        [
          'EHLO pipe.example',
          'MAIL FROM:<p@remote.test>',
          `RCPT TO:<alice@${DOMAIN}>`,
          `RCPT TO:<nobody@${DOMAIN}>`,
          `RCPT TO:<bob@${DOMAIN}>`,
          'DATA',
          'Subject: pipelined',
          '',
          'body',
          '.',
          'NOOP',
          'QUIT',
          '',
        ].join('\r\n'),
      );
      const replies = await c.readN(8);
      assert.deepEqual(codes(replies), [250, 250, 250, 550, 250, 354, 250, 250]);
      const [, , , unknown, , , accepted] = replies as [Reply, Reply, Reply, Reply, Reply, Reply, Reply, Reply];
      assert.equal(status(unknown), '550 5.1.1');
      assert.equal((await c.read()).code, 221);
      assert.ok(await c.waitClosed());
      assert.equal(server.spoolIds().length, before + 1);
      const env = server.envelope(Server.idOf(accepted.text));
      assert.deepEqual(
        env.recipients.map((x) => x.address),
        [`alice@${DOMAIN}`, `bob@${DOMAIN}`],
      );
    } finally {
      c.destroy();
    }
  });

  test('RFC 3030 §2–§3: BDAT in several chunks, LAST, and BDAT 0 LAST; content stored byte for byte', async () => {
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      await c.ehlo('chunk.example');
      assert.equal((await c.cmd('MAIL FROM:<c@remote.test> BODY=8BITMIME')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<alice@${DOMAIN}>`)).code, 250);
      const parts = ['Subject: chunked\r\nMessage-ID: <chunked@remote.test>\r\n', '\r\nline one\r\n', '.line two starts with a dot\r\n'];
      await c.write(`BDAT ${Buffer.byteLength(parts[0] as string)}\r\n${parts[0]}`);
      assert.equal(status(await c.read()), '250 2.0.0');
      await c.write(`BDAT ${Buffer.byteLength(parts[1] as string)}\r\n${parts[1]}`);
      assert.equal((await c.read()).code, 250);
      await c.write(`BDAT ${Buffer.byteLength(parts[2] as string)} LAST\r\n${parts[2]}`);
      const done = await c.read();
      assert.equal(status(done), '250 2.0.0');
      const eml = server.body(Server.idOf(done.text));
      assert.ok(eml.endsWith(parts.join('')), 'BDAT content is not dot-unstuffed');
      assert.equal((eml.match(/^Message-ID:/gim) ?? []).length, 1);

      // A message whose last chunk is empty.
      assert.equal((await c.cmd('MAIL FROM:<c@remote.test>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<alice@${DOMAIN}>`)).code, 250);
      const only = 'Subject: zero last\r\n\r\nx\r\n';
      await c.write(`BDAT ${only.length}\r\n${only}`);
      assert.equal((await c.read()).code, 250);
      const zero = await c.cmd('BDAT 0 LAST');
      assert.equal(status(zero), '250 2.0.0');
      assert.ok(server.body(Server.idOf(zero.text)).endsWith(only));
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('RFC 3461 §4: DSN parameters NOTIFY, ORCPT, RET and ENVID are recorded in the envelope', async () => {
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      await c.ehlo('dsn.example');
      assert.equal((await c.cmd('MAIL FROM:<d@remote.test> RET=HDRS ENVID=QQ314159+2Bx')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<alice@${DOMAIN}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Alice+40example.test`)).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<bob@${DOMAIN}> NOTIFY=NEVER`)).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<bob@${DOMAIN}> NOTIFY=NEVER,SUCCESS`)).code, 501, 'NEVER stands alone (RFC 3461 §4.1)');
      assert.equal((await c.cmd('DATA')).code, 354);
      await c.write('Subject: dsn\r\n\r\nx\r\n.\r\n');
      const r = await c.read();
      assert.equal(r.code, 250);
      const env = server.envelope(Server.idOf(r.text));
      assert.equal(env.senderParams.ret, 'HDRS');
      assert.equal(env.senderParams.envid, 'QQ314159+x', 'ENVID is xtext-decoded');
      assert.deepEqual(env.recipients[0], {
        address: `alice@${DOMAIN}`,
        orcpt: 'rfc822;Alice@example.test',
        notify: ['SUCCESS', 'FAILURE'],
        channel: 'l',
        deliverTo: [{ address: `alice@${DOMAIN}`, channel: 'ims-ms' }],
        status: 'pending',
      });
      assert.deepEqual(env.recipients[1]?.notify, ['NEVER']);
      assert.equal(env.recipients[1]?.orcpt, null);
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('RFC 6531 §3.4: a UTF-8 address needs the SMTPUTF8 parameter (553 5.6.7 without it)', async () => {
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      await c.ehlo('utf8.example');
      const without = await c.write(Buffer.from('MAIL FROM:<jörg@bücher.test>\r\n', 'utf8')).then(() => c.read());
      assert.equal(status(without), '553 5.6.7');
      assert.equal((await c.cmd('MAIL FROM:<plain@remote.test>')).code, 250);
      await c.write(Buffer.from('RCPT TO:<jörg@bücher.test>\r\n', 'utf8'));
      assert.equal(status(await c.read()), '553 5.6.7', 'a UTF-8 recipient in a transaction without SMTPUTF8');
      assert.equal((await c.cmd('RSET')).code, 250);

      await c.write(Buffer.from('MAIL FROM:<jörg@bücher.test> SMTPUTF8\r\n', 'utf8'));
      assert.equal((await c.read()).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<alice@${DOMAIN}>`)).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      await c.write(Buffer.from('Subject: Grüße\r\n\r\nÄÖÜ\r\n.\r\n', 'utf8'));
      const r = await c.read();
      assert.equal(r.code, 250);
      const id = Server.idOf(r.text);
      const env = server.envelope(id);
      assert.equal(env.sender, 'jörg@bücher.test');
      assert.equal(env.senderParams.smtputf8, true);
      assert.match(server.body(id), /with UTF8SMTP id /, 'RFC 6531 §3.7.3 "with" keyword');
      assert.ok(server.body(id).includes('Subject: Grüße'), 'the 8-bit header is stored as sent');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('built-in policy', () => {
  test('RFC 5321 §3.6.2 + policy: relaying for an unauthenticated outsider is refused (550 5.7.1); unknown local user 550 5.1.1; postmaster accepted', async () => {
    const before = server.spoolIds().length;
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.6' });
    try {
      await c.ehlo('outsider.example');
      assert.equal((await c.cmd('MAIL FROM:<spammer@remote.test>')).code, 250);
      const relay = await c.cmd('RCPT TO:<victim@elsewhere.test>');
      assert.equal(status(relay), '550 5.7.1');
      assert.match(relay.text, /Relaying not allowed/);
      assert.equal(status(await c.cmd(`RCPT TO:<nobody@${DOMAIN}>`)), '550 5.1.1');
      assert.equal((await c.cmd(`RCPT TO:<postmaster@${DOMAIN}>`)).code, 250, 'RFC 5321 §4.5.1');
      assert.equal((await c.cmd('RCPT TO:<Postmaster>')).code, 250, 'RFC 5321 §4.1.1.3: bare Postmaster');
      assert.equal((await c.cmd('RSET')).code, 250);
      assert.equal((await c.cmd('MAIL FROM:<spammer@remote.test>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<victim@elsewhere.test>')).code, 550);
      assert.equal(status(await c.cmd('DATA')), '503 5.5.1', 'no valid recipients: DATA is refused');
      await c.quit();
      assert.equal(server.spoolIds().length, before);
    } finally {
      c.destroy();
    }
  });

  test('swaks: relay attempt and unknown user are refused at RCPT', async () => {
    const relay = await swaks(['--server', `127.0.0.1:${server.ports.smtp}`, '--local-interface', '127.0.0.7', '--from', 'a@remote.test', '--to', 'b@elsewhere.test']);
    assert.notEqual(relay.code, 0);
    assert.match(relay.stdout, /<\*\* +550 5\.7\.1 Relaying not allowed/);
    const unknown = await swaks(['--server', `127.0.0.1:${server.ports.smtp}`, '--from', 'a@remote.test', '--to', `ghost@${DOMAIN}`]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stdout, /<\*\* +550 5\.1\.1/);
  });

  test('RFC 6409 §4.3: the submission port refuses MAIL without AUTH (530 5.7.0), also over TLS', async () => {
    const { c, greeting } = await connectGreeted(server.ports.submit);
    try {
      assert.equal(greeting.code, 220);
      await c.ehlo('submitter.example');
      assert.equal(status(await c.cmd(`MAIL FROM:<alice@${DOMAIN}>`)), '530 5.7.0');
      assert.equal((await c.cmd('STARTTLS')).code, 220);
      await c.startTls();
      await c.ehlo('submitter.example');
      assert.equal(status(await c.cmd(`MAIL FROM:<alice@${DOMAIN}>`)), '530 5.7.0');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

test('the server reported no internal faults and left no debris in the spool', async () => {
  assert.ok(server.running, 'server still running');
  assert.deepEqual(server.faults(), []);
  assert.deepEqual(await server.settledDebris(), [], 'no partial files left in the queue');
});
