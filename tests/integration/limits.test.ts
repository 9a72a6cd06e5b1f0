// Protocol limits against the real executable, with small limits set in msg.conf: command and text
// line lengths (RFC 5321 §4.5.3.1), message size (RFC 1870, RFC 3030), recipients per message
// (RFC 5321 §4.5.3.1.8) and protocol errors per session.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectGreeted, DOMAIN, portcullis, python, Server, status, swaks } from './harness.js';

const MAX_SIZE = 20_000;
let server: Server;

before(async () => {
  server = await Server.start({
    conf: { 'smtp.maxmessagesize': String(MAX_SIZE), 'smtp.maxrecipients': '3', 'smtp.maxerrors': '5' },
    users: ['alice', 'bob', 'carol', 'dave'].map((n) => ({ address: `${n}@${DOMAIN}`, password: `${n}-secret` })),
  });
});

after(async () => {
  await server?.stop();
});

test('RFC 5321 §4.5.3.1.4: a command line of 512 octets (with CRLF) is read; 513 gets 500 5.5.6 and the session goes on', async () => {
  const { c } = await connectGreeted(server.ports.smtp);
  try {
    await c.ehlo('lines.example');
    const pad = (n: number): string => 'NOOP ' + 'x'.repeat(n - 'NOOP '.length - 2);
    assert.equal(pad(512).length + 2, 512);
    assert.equal((await c.cmd(pad(512))).code, 250);
    assert.equal(status(await c.cmd(pad(513))), '500 5.5.6');
    assert.equal(status(await c.cmd(pad(100_000))), '500 5.5.6');
    // A long RCPT is refused as a whole: nothing of it is taken as an address.
    assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal(status(await c.cmd(`RCPT TO:<alice@${DOMAIN}> ${'X'.repeat(600)}`)), '500 5.5.6');
    assert.equal(status(await c.cmd('DATA')), '503 5.5.1', 'the over-long RCPT added no recipient');
    await c.quit();
  } finally {
    c.destroy();
  }
});

test('RFC 5321 §4.5.3.1.6: a text line of 1000 octets (with CRLF) is accepted; 1001 gets 554 5.6.0 at the end of DATA', async () => {
  const { c } = await connectGreeted(server.ports.smtp);
  try {
    await c.ehlo('text.example');
    const ok = await c.sendMail('a@remote.test', [`alice@${DOMAIN}`], `Subject: long\r\n\r\n${'y'.repeat(998)}\r\n`);
    assert.equal(ok.code, 250, ok.raw);
    const before = server.spoolIds();
    const bad = await c.sendMail('a@remote.test', [`alice@${DOMAIN}`], `Subject: too long\r\n\r\n${'y'.repeat(999)}\r\n`);
    assert.equal(status(bad), '554 5.6.0');
    assert.deepEqual(server.spoolIds(), before);
    assert.equal((await c.cmd('NOOP')).code, 250, 'the session goes on');
    await c.quit();
  } finally {
    c.destroy();
  }
});

test('RFC 1870 §6.1: SIZE= over the limit at MAIL gets 552 5.3.4; SIZE within it is accepted', async () => {
  const { c } = await connectGreeted(server.ports.smtp);
  try {
    const ehlo = await c.ehlo('size.example');
    assert.ok(ehlo.lines.includes(`SIZE ${MAX_SIZE}`), 'the limit is advertised');
    assert.equal(status(await c.cmd(`MAIL FROM:<a@remote.test> SIZE=${MAX_SIZE + 1}`)), '552 5.3.4');
    assert.equal((await c.cmd(`MAIL FROM:<a@remote.test> SIZE=${MAX_SIZE}`)).code, 250);
    await c.quit();
  } finally {
    c.destroy();
  }
  // smtplib sends SIZE= itself when the server advertises it.
  const r = await python(
    String.raw`
import json, smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=10)
try:
    s.sendmail('a@remote.test', ['alice@example.test'], 'Subject: big\r\n\r\n' + ('z' * 70 + '\r\n') * 400)
    print(json.dumps({'sent': True}))
except smtplib.SMTPSenderRefused as e:
    print(json.dumps({'code': e.smtp_code, 'text': e.smtp_error.decode()}))
s.quit()
`,
    [String(server.ports.smtp)],
  );
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { code?: number; text?: string };
  assert.equal(out.code, 552);
  assert.match(out.text ?? '', /^5\.3\.4 /);
});

test('RFC 1870 §6.2: content over the limit (without SIZE=) is read to the end, then refused with 552 5.3.4', async () => {
  const before = server.spoolIds();
  const { c } = await connectGreeted(server.ports.smtp);
  try {
    await c.ehlo('big.example');
    const body = ('z'.repeat(98) + '\r\n').repeat(Math.ceil(MAX_SIZE / 100) + 10);
    const r = await c.sendMail('a@remote.test', [`alice@${DOMAIN}`], `Subject: big\r\n\r\n${body}`);
    assert.equal(status(r), '552 5.3.4');
    assert.equal((await c.cmd('NOOP')).code, 250, 'the session goes on');
    await c.quit();
  } finally {
    c.destroy();
  }
  assert.deepEqual(server.spoolIds(), before);
  const swaksRun = await swaks(['--server', `127.0.0.1:${server.ports.smtp}`, '--from', 'a@remote.test', '--to', `alice@${DOMAIN}`, '--body', ('q'.repeat(60) + '\n').repeat(400)]);
  assert.notEqual(swaksRun.code, 0);
  assert.match(swaksRun.stdout, /<\*\* +552 5\.3\.4/);
});

test('RFC 3030 §3 + RFC 1870: an oversize BDAT message gets 552 5.3.4; later chunks of that transaction get 503', async () => {
  const before = server.spoolIds();
  const { c } = await connectGreeted(server.ports.smtp);
  try {
    await c.ehlo('bigchunk.example');
    assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<alice@${DOMAIN}>`)).code, 250);
    const half = 'Subject: chunks\r\n\r\n' + ('w'.repeat(98) + '\r\n').repeat(Math.ceil(MAX_SIZE / 200));
    await c.write(`BDAT ${half.length}\r\n${half}`);
    assert.equal((await c.read()).code, 250, 'half the limit is fine');
    await c.write(`BDAT ${half.length}\r\n${half}`);
    assert.equal(status(await c.read()), '552 5.3.4', 'the chunk that crosses the limit');
    await c.write('BDAT 5 LAST\r\nend\r\n');
    assert.equal(status(await c.read()), '503 5.5.1', 'the transaction is over');
    assert.equal((await c.cmd('RSET')).code, 250);
    // One huge chunk, announced and sent in full.
    assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<alice@${DOMAIN}>`)).code, 250);
    const huge = ('h'.repeat(98) + '\r\n').repeat(MAX_SIZE / 50);
    await c.write(`BDAT ${huge.length} LAST\r\n${huge}`);
    assert.equal(status(await c.read()), '552 5.3.4');
    assert.equal((await c.cmd('NOOP')).code, 250);
    await c.quit();
  } finally {
    c.destroy();
  }
  assert.deepEqual(server.spoolIds(), before);
});

test('RFC 5321 §4.5.3.1.10: recipients past smtp.maxrecipients get 452 4.5.3; the message goes to the accepted ones', async () => {
  const { c } = await connectGreeted(server.ports.smtp);
  try {
    await c.ehlo('many.example');
    assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
    for (const n of ['alice', 'bob', 'carol']) assert.equal((await c.cmd(`RCPT TO:<${n}@${DOMAIN}>`)).code, 250);
    assert.equal(status(await c.cmd(`RCPT TO:<dave@${DOMAIN}>`)), '452 4.5.3');
    assert.equal((await c.cmd('DATA')).code, 354);
    await c.write('Subject: many\r\n\r\nx\r\n.\r\n');
    const r = await c.read();
    assert.equal(r.code, 250);
    assert.deepEqual(
      server.envelope(Server.idOf(r.text)).recipients.map((x) => x.address),
      ['alice', 'bob', 'carol'].map((n) => `${n}@${DOMAIN}`),
    );
    await c.quit();
  } finally {
    c.destroy();
  }
});

test('too many protocol errors (smtp.maxerrors = 5): the fifth gets 421 4.7.0 and the connection is closed', async () => {
  const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.50' });
  try {
    await c.ehlo('errors.example');
    for (let k = 0; k < 4; k++) assert.equal(status(await c.cmd(`BOGUS${k}`)), '500 5.5.2');
    assert.equal(status(await c.cmd('BOGUS4')), '421 4.7.0');
    assert.ok(await c.waitClosed(), 'closed after the 421');
  } finally {
    c.destroy();
  }
});

test('the server reported no internal faults and left no debris in the spool', async () => {
  assert.ok(server.running, 'server still running');
  assert.deepEqual(server.faults(), []);
  assert.deepEqual(await server.settledDebris(), [], 'no partial files left in the queue');
});

test('store.minfree: while the spool disk has less free space, MAIL FROM gets 452 4.3.1 (logged once); a reload lifts it', async () => {
  // More than any disk has: every MAIL FROM is refused, before any policy work.
  server.setConf({ 'store.minfree': String(2 ** 50) });
  assert.equal((await portcullis(['reload', '--config', server.configDir])).code, 0);
  await server.waitForLog('config-reloaded');
  const { c } = await connectGreeted(server.ports.smtp);
  try {
    await c.ehlo('disk.example');
    const r = await c.cmd('MAIL FROM:<someone@remote.test>');
    assert.equal(status(r), '452 4.3.1');
    assert.match(r.raw, /Insufficient system storage/);
    assert.equal(status(await c.cmd('MAIL FROM:<someone@remote.test>')), '452 4.3.1', 'the session goes on; the client may retry later');
    const warn = await server.waitForLog('spool-low-space');
    assert.ok(typeof warn.free === 'number' && warn.free > 0, JSON.stringify(warn));
    assert.equal(server.logs().filter((l) => l.event === 'spool-low-space').length, 1, 'one warning, not one per refusal');
  } finally {
    c.destroy();
  }
  const reloads = server.logs().filter((l) => l.event === 'config-reloaded').length;
  server.setConf({ 'store.minfree': '0' });
  assert.equal((await portcullis(['reload', '--config', server.configDir])).code, 0);
  await server.waitForLog('config-reloaded', () => server.logs().filter((l) => l.event === 'config-reloaded').length > reloads);
  const again = await connectGreeted(server.ports.smtp);
  try {
    await again.c.ehlo('disk.example');
    assert.equal((await again.c.cmd('MAIL FROM:<someone@remote.test>')).code, 250);
  } finally {
    again.c.destroy();
  }
});
