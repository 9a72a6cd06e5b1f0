// SMTP smuggling and hostile input, from raw sockets against the real executable. Every variant of
// a fake end-of-data (bare LF / bare CR around a dot) must be content, never an end: the client
// gets exactly one reply for the message (554 5.6.11, RFC 5321 §2.3.8 and §4.1.1.4), and no second
// message is spooled. Afterwards the server must still be running and accept normal mail.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connectGreeted, DOMAIN, Server, SmtpClient, status, waitFor } from './harness.js';

let server: Server;
const ALICE = { user: `alice@${DOMAIN}`, pass: 'alice-secret' };

before(async () => {
  server = await Server.start({
    users: [
      { address: ALICE.user, password: ALICE.pass },
      { address: `bob@${DOMAIN}`, password: 'bob-secret' },
    ],
  });
});

after(async () => {
  await server?.stop();
});

/** The fake end-of-data sequences of the 2023 SMTP smuggling research. */
const VARIANTS: readonly { name: string; end: string }[] = [
  { name: '\\n.\\r\\n', end: '\n.\r\n' },
  { name: '\\n.\\n', end: '\n.\n' },
  { name: '\\r\\n.\\n', end: '\r\n.\n' },
  { name: '\\r\\n.\\r\\r\\n', end: '\r\n.\r\r\n' },
  { name: '\\r.\\r\\n', end: '\r.\r\n' },
];

/** A message that hides a second transaction behind a fake end-of-data; ends with a real CRLF.CRLF. */
function smuggle(fakeEnd: string): string {
  return (
    `From: <sender@remote.test>\r\nSubject: innocent\r\n\r\nfirst message${fakeEnd}` +
    `MAIL FROM:<admin@${DOMAIN}>\r\nRCPT TO:<bob@${DOMAIN}>\r\nDATA\r\n` +
    `From: <admin@${DOMAIN}>\r\nSubject: smuggled\r\n\r\nsecond message\r\n.\r\n`
  );
}

/** After DATA's 354: sends the payload, expects exactly one reply before the NOOP's 250. */
async function expectOneRefusal(c: SmtpClient, payload: string, writeByByte = false): Promise<void> {
  if (writeByByte) {
    for (const ch of payload) await c.write(ch);
  } else {
    await c.write(payload);
  }
  const end = await c.read();
  assert.equal(status(end), '554 5.6.11', `message refused for its bare line break: ${end.raw}`);
  const noop = await c.cmd('NOOP');
  assert.equal(noop.code, 250, `the next reply answers NOOP, nothing was run from the content: ${c.received}`);
  assert.equal(c.pending, 0);
  // Only one reply between the 354 and the NOOP's: the message's.
  const after354 = c.received.slice(c.received.indexOf('354 '));
  assert.equal(after354.match(/^\d{3}[ -]/gm)?.length, 3, after354);
}

describe('SMTP smuggling (RFC 5321 §2.3.8, §4.1.1.4: DATA ends only at CRLF.CRLF)', () => {
  VARIANTS.forEach((v, k) => {
    test(`fake end "${v.name}" is content: one 554 5.6.11 reply, nothing spooled (client 127.0.0.${30 + k})`, async () => {
      const before = server.spoolIds();
      const { c } = await connectGreeted(server.ports.smtp, { localAddress: `127.0.0.${30 + k}` });
      try {
        await c.ehlo('smuggler.example');
        assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
        assert.equal((await c.cmd(`RCPT TO:<${ALICE.user}>`)).code, 250);
        assert.equal((await c.cmd('DATA')).code, 354);
        await expectOneRefusal(c, smuggle(v.end));
        await c.quit();
      } finally {
        c.destroy();
      }
      assert.deepEqual(server.spoolIds(), before, 'neither the message nor a smuggled one is spooled');
    });
  });

  test('every variant, written one byte at a time (the decoder keeps state across reads)', async () => {
    const before = server.spoolIds();
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.36' });
    try {
      await c.ehlo('slow-smuggler.example');
      for (const v of VARIANTS) {
        c.received = '';
        assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
        assert.equal((await c.cmd(`RCPT TO:<${ALICE.user}>`)).code, 250);
        assert.equal((await c.cmd('DATA')).code, 354);
        await expectOneRefusal(c, `Subject: x\r\n\r\na${v.end}MAIL FROM:<e@${DOMAIN}>\r\n.\r\n`, true);
      }
      await c.quit();
    } finally {
      c.destroy();
    }
    assert.deepEqual(server.spoolIds(), before);
  });

  test('an authenticated client over implicit TLS is held to the same rule', async () => {
    const before = server.spoolIds();
    const { c } = await connectGreeted(server.ports.smtps, { tls: true, localAddress: '127.0.0.37' });
    try {
      await c.ehlo('trusted.example');
      assert.equal((await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${ALICE.user}\0${ALICE.pass}`).toString('base64')}`)).code, 235);
      assert.equal((await c.cmd(`MAIL FROM:<${ALICE.user}>`)).code, 250);
      assert.equal((await c.cmd('RCPT TO:<friend@elsewhere.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      await expectOneRefusal(c, smuggle('\n.\r\n'));
      await c.quit();
    } finally {
      c.destroy();
    }
    assert.deepEqual(server.spoolIds(), before);
  });

  test('RFC 3030 §2: BDAT content with a bare LF is refused too (554 5.6.11)', async () => {
    const before = server.spoolIds();
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      await c.ehlo('bdat.example');
      assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${ALICE.user}>`)).code, 250);
      const content = 'Subject: x\r\n\r\nfirst\n.\nMAIL FROM:<e@x.test>\r\n';
      await c.write(`BDAT ${content.length} LAST\r\n${content}`);
      assert.equal(status(await c.read()), '554 5.6.11');
      assert.equal((await c.cmd('NOOP')).code, 250);
      await c.quit();
    } finally {
      c.destroy();
    }
    assert.deepEqual(server.spoolIds(), before);
  });

  test('control: the same message with proper CRLF line ends is accepted once', async () => {
    const before = server.spoolIds().length;
    const { c } = await connectGreeted(server.ports.smtp);
    try {
      await c.ehlo('honest.example');
      const r = await c.sendMail('sender@remote.test', [ALICE.user], smuggle('\r\n..\r\n'));
      assert.equal(r.code, 250, r.raw);
      assert.equal(server.spoolIds().length, before + 1);
      const eml = server.body(Server.idOf(r.text));
      assert.ok(eml.includes('first message\r\n.\r\nMAIL FROM:'), 'the stuffed dot line is content');
      await c.quit();
    } finally {
      c.destroy();
    }
  });
});

describe('hostile input: the server survives and keeps serving', () => {
  const TWO_MB = 2 * 1024 * 1024;

  /** Writes `total` bytes made by `make` in 64 KiB pieces, ignoring a connection the server ends. */
  async function blast(c: SmtpClient, total: number, make: (n: number) => Buffer): Promise<void> {
    for (let sent = 0; sent < total && !c.closed; sent += 65536) await c.write(make(Math.min(65536, total - sent)));
  }

  async function normalMessageStillAccepted(from: string): Promise<void> {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: from });
    try {
      await c.ehlo('normal.example');
      const r = await c.sendMail('sender@remote.test', [ALICE.user], 'Subject: still alive\r\n\r\nok\r\n');
      assert.equal(r.code, 250, r.raw);
      await c.quit();
    } finally {
      c.destroy();
    }
    assert.ok(server.running, 'server still running');
  }

  test('2 MB of random bytes in command mode: protocol errors, then 421 and the connection is closed', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.40' });
    try {
      await blast(c, TWO_MB, (n) => randomBytes(n));
      assert.ok(await c.waitClosed(10_000), 'the server hangs up on a client sending garbage');
      assert.match(c.received, /^421 4\.7\.0 /m, 'too many errors');
    } finally {
      c.destroy();
    }
    await normalMessageStillAccepted('127.0.0.41');
  });

  test('2 MB of NULs, then a never-ending line of 2 MB: bounded memory, and the session still answers (500 5.5.6)', async () => {
    const rssBefore = server.rssKiB();
    const nul = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.42' });
    const line = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.43' });
    try {
      await Promise.all([blast(nul.c, TWO_MB, (n) => Buffer.alloc(n, 0)), blast(line.c, TWO_MB, (n) => Buffer.alloc(n, 'A'))]);
      await normalMessageStillAccepted('127.0.0.44');
      for (const c of [nul.c, line.c]) {
        assert.equal(c.closed, false, 'an unfinished line alone is not a reason to hang up (the command timeout is)');
        await c.write('\r\n');
        assert.equal(status(await c.read(10_000)), '500 5.5.6', 'the over-long line is refused once it ends (RFC 5321 §4.5.3.1.4)');
        assert.equal((await c.cmd('NOOP')).code, 250);
      }
      const grown = server.rssKiB() - rssBefore;
      assert.ok(grown < 64 * 1024, `RSS grew by ${grown} KiB for 4 MB of unfinished lines`);
    } finally {
      nul.c.destroy();
      line.c.destroy();
    }
  });

  test('2 MB of random bytes as message content, then CRLF.CRLF: refused (554), session goes on', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.45' });
    const before = server.spoolIds();
    try {
      await c.ehlo('random.example');
      assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${ALICE.user}>`)).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      // Keep the random bytes from containing the real end marker.
      await blast(c, TWO_MB, (n) => {
        const b = randomBytes(n);
        for (let i = 0; i < b.length; i++) if (b[i] === 0x2e) b[i] = 0x2c;
        return b;
      });
      await c.write('\r\n.\r\n');
      const r = await c.read(15_000);
      assert.equal(r.code, 554, r.raw);
      assert.equal((await c.cmd('NOOP')).code, 250);
      await c.quit();
    } finally {
      c.destroy();
    }
    assert.deepEqual(server.spoolIds(), before);
    await normalMessageStillAccepted('127.0.0.46');
  });

  test('a client that vanishes in the middle of a 2 MB DATA (the body has spilled to disk) leaves nothing in the spool', async () => {
    const before = server.spoolIds();
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.49' });
    try {
      await c.ehlo('vanish.example');
      assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${ALICE.user}>`)).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      await blast(c, TWO_MB, (n) => Buffer.alloc(n, 'Lorem ipsum dolor sit amet\r\n'));
    } finally {
      c.destroy();
    }
    await waitFor('the partial body to be removed', () => (server.spoolDebris().length === 0 ? true : undefined), 5000);
    assert.deepEqual(server.spoolIds(), before);
  });

  test('random bytes instead of a TLS handshake (after STARTTLS and on the smtps port): the connection is dropped, nothing else', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.47' });
    try {
      await c.ehlo('garbage-tls.example');
      assert.equal((await c.cmd('STARTTLS')).code, 220);
      await blast(c, 256 * 1024, (n) => randomBytes(n));
      assert.ok(await c.waitClosed(10_000));
    } finally {
      c.destroy();
    }
    const raw = await SmtpClient.connect(server.ports.smtps, { localAddress: '127.0.0.47' });
    try {
      await blast(raw, 256 * 1024, (n) => randomBytes(n));
      assert.ok(await raw.waitClosed(10_000));
    } finally {
      raw.destroy();
    }
    await normalMessageStillAccepted('127.0.0.48');
  });

  test('the server reported no internal faults and left no debris in the spool', async () => {
    assert.ok(server.running, 'server still running');
    assert.deepEqual(server.faults(), []);
    assert.deepEqual(await server.settledDebris(), [], 'no partial files left in the queue');
  });
});
