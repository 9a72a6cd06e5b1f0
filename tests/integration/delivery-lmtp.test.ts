// The LMTP transport (RFC 2033) against Dovecot as the message store (tests/support/dovecot.ts):
// known users get the message in their Maildir, read back and compared byte for byte; an unknown
// user is refused with Dovecot's own text. smtp-sink -L refusing after the message shows the
// per-recipient replies after DATA.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLmtpTransport } from '../../src/delivery/lmtp-transport.js';
import type { SmtpTransport } from '../../src/delivery/smtp-transport.js';
import type { OutboundMessage } from '../../src/delivery/types.js';
import { DnsServer } from '../support/dns.js';
import { Dovecot } from '../support/dovecot.js';
import { SmtpSink } from '../support/smtp-sink.js';

const BODY = Buffer.from(
  ['Return-Path: <should-stay@portcullis.test>', 'From: <sender@portcullis.test>', 'To: <alice@example.test>', 'Subject: LMTP to Dovecot', 'Message-ID: <lmtp-1@portcullis.test>', '', '.', '..two dots', 'gr\u00fc\u00dfe', 'last', ''].join('\r\n'),
  'utf8',
);

function message(to: string[]): OutboundMessage {
  return { id: 'lmtp-1', sender: 'sender@portcullis.test', recipients: to.map((address) => ({ address, orcpt: null, notify: [] })), size: BODY.length, envid: null, ret: null, body8bit: true, smtputf8: false, open: () => BODY };
}

let dns: DnsServer;
const transports: SmtpTransport[] = [];
function lmtp(): SmtpTransport {
  const t = createLmtpTransport({ hostname: 'mta.example.test', resolver: dns.resolver(500) });
  transports.push(t);
  return t;
}

before(async () => {
  dns = await DnsServer.start();
});
after(async () => {
  await Promise.all(transports.map((t) => t.close()));
  await dns.close();
});

describe('LMTP to Dovecot', () => {
  let dovecot: Dovecot;
  before(async () => {
    dovecot = await Dovecot.start({ users: ['alice@example.test', 'bob@example.test'] });
  });
  after(async () => dovecot.close());

  test('alice and bob get the message in their Maildir; an unknown user is refused permanently with Dovecot\'s text', async () => {
    const a = await lmtp().deliver({ kind: 'host', host: '127.0.0.1', port: dovecot.lmtpPort }, message(['alice@example.test', 'nobody@example.test', 'bob@example.test']), {});
    assert.equal(a.lmtp, true);
    const [alice, nobody, bob] = a.outcomes;
    assert.deepEqual([alice?.kind, alice?.code, alice?.stage, alice?.origin], ['delivered', 250, 'data', 'remote'], alice?.text);
    assert.match(alice?.text ?? '', /Saved/);
    assert.deepEqual([bob?.kind, bob?.stage], ['delivered', 'data']);
    assert.deepEqual([nobody?.kind, nobody?.code, nobody?.enhanced, nobody?.stage, nobody?.origin], ['permanent', 550, '5.1.1', 'rcpt', 'remote']);
    assert.match(nobody?.text ?? '', /User doesn't exist/);
    for (const user of ['alice@example.test', 'bob@example.test']) {
      const stored = dovecot.maildir(user);
      assert.equal(stored.length, 1, `${user}: ${dovecot.log}`);
      // Dovecot adds Return-Path/Delivered-To/Received before the message and stores LF line ends.
      const text = (stored[0] as Buffer).toString('utf8');
      const ours = BODY.toString('utf8').replace(/\r\n/g, '\n');
      assert.ok(text.endsWith(ours), `stored message does not end with ours:\n${text}`);
      assert.match(text.slice(0, text.length - ours.length), /^Return-Path: <sender@portcullis\.test>\n/);
    }
    assert.equal(dovecot.maildir('nobody@example.test').length, 0);
  });

  test('over the UNIX socket: the destination host is the socket path', async () => {
    const before = dovecot.maildir('bob@example.test').length;
    const a = await lmtp().deliver({ kind: 'host', host: dovecot.lmtpSocket, port: 0 }, message(['bob@example.test']), {});
    assert.equal(a.outcomes[0]?.kind, 'delivered', a.outcomes[0]?.text);
    assert.equal(a.remote, dovecot.lmtpSocket);
    assert.equal(dovecot.maildir('bob@example.test').length, before + 1);
  });

  test('an MX destination is a configuration error for LMTP: temporary 4.3.5, nothing sent', async () => {
    const a = await lmtp().deliver({ kind: 'mx', domain: 'example.test' }, message(['alice@example.test']), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.enhanced], ['temporary', '4.3.5']);
    assert.match(a.outcomes[0]?.text ?? '', /give the LMTP channel a host and port/);
  });
});

describe('LMTP per-recipient replies after DATA (smtp-sink -L)', () => {
  test('-f .: each accepted recipient gets its own refusal after the message', async () => {
    const sink = await SmtpSink.start({ lmtp: true, args: ['-f', '.'] });
    try {
      const a = await lmtp().deliver({ kind: 'host', host: '127.0.0.1', port: sink.port }, message(['a@example.test', 'b@example.test']), {});
      assert.deepEqual(a.outcomes.map((o) => [o.address, o.kind, o.code, o.stage]), [
        ['a@example.test', 'permanent', 500, 'data'],
        ['b@example.test', 'permanent', 500, 'data'],
      ]);
    } finally {
      await sink.close();
    }
  });

  test('an accepting LMTP sink: LHLO with our name, delivered per recipient', async () => {
    const sink = await SmtpSink.start({ lmtp: true });
    try {
      const a = await lmtp().deliver({ kind: 'host', host: '127.0.0.1', port: sink.port }, message(['a@example.test', 'b@example.test']), {});
      assert.deepEqual(a.outcomes.map((o) => o.kind), ['delivered', 'delivered']);
      const [m] = await sink.waitMessages(1);
      assert.equal(m?.proto, 'LMTP');
      assert.equal(m?.helo, 'mta.example.test');
      assert.equal(m?.content, BODY.toString('latin1').replace(/\r\n/g, '\n'));
    } finally {
      await sink.close();
    }
  });
});
