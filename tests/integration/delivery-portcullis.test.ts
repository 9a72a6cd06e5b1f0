// The SMTP transport delivering to a second Portcullis (the real executable, tests/integration/
// harness.ts) found by MX through a DNS server in the process: opportunistic STARTTLS with the
// instance's self-signed certificate, every ESMTP parameter it offers (SIZE, BODY, SMTPUTF8, DSN),
// recipients it refuses, and the message as spooled compared byte for byte.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createSmtpTransport } from '../../src/delivery/smtp-transport.js';
import type { SmtpTransport } from '../../src/delivery/smtp-transport.js';
import type { OutboundMessage } from '../../src/delivery/types.js';
import { DnsServer } from '../support/dns.js';
import { DOMAIN, Server, waitFor } from './harness.js';

const BODY = Buffer.from(
  ['From: <sender@portcullis.test>', `To: <alice@${DOMAIN}>`, 'Subject: from one Portcullis to another', 'Message-ID: <p2p@portcullis.test>', '', '.', '..two', 'r\u00e9sum\u00e9', 'end', ''].join('\r\n'),
  'utf8',
);

function message(to: string[], extra: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    id: 'p2p-1',
    sender: 'sender@portcullis.test',
    recipients: to.map((address) => ({ address, orcpt: `rfc822;${address}`, notify: ['FAILURE'] })),
    size: BODY.length,
    envid: 'p2p env',
    ret: 'FULL',
    body8bit: true,
    smtputf8: false,
    open: () => BODY,
    ...extra,
  };
}

describe('to a second Portcullis over SMTP with STARTTLS', () => {
  let server: Server;
  let dns: DnsServer;
  let t: SmtpTransport;

  before(async () => {
    server = await Server.start({ users: [{ address: `alice@${DOMAIN}`, password: 'alicepw' }] });
    dns = await DnsServer.start({ [DOMAIN]: { MX: [{ exchange: 'mx.example.test', priority: 10 }] }, 'mx.example.test': { A: ['127.0.0.1'] } });
    t = createSmtpTransport({ hostname: 'out.portcullis.test', resolver: dns.resolver(500), mxPort: server.ports.smtp, families: 'ipv4' });
  });
  after(async () => {
    await t.close();
    await dns.close();
    await server.stop();
  });

  test('MX lookup, opportunistic STARTTLS with a self-signed certificate, delivered; the spooled envelope has our parameters and the body is intact', async () => {
    const a = await t.deliver({ kind: 'mx', domain: DOMAIN }, message([`alice@${DOMAIN}`]), {});
    assert.equal(a.outcomes[0]?.kind, 'delivered', a.outcomes[0]?.text);
    assert.equal(a.tls, true);
    assert.equal(a.remote, `mx.example.test[127.0.0.1]:${server.ports.smtp}`);
    const id = await waitFor('the message in the spool', () => server.spoolIds()[0]);
    const env = server.envelope(id);
    assert.equal(env.sender, 'sender@portcullis.test');
    assert.deepEqual(env.senderParams, { size: BODY.length, body: '8BITMIME', smtputf8: false, ret: 'FULL', envid: 'p2p env', auth: null });
    assert.deepEqual(
      env.recipients.map((r) => [r.address, r.orcpt, r.notify]),
      [[`alice@${DOMAIN}`, `rfc822;alice@${DOMAIN}`, ['FAILURE']]],
    );
    assert.equal(env.client.helo, 'out.portcullis.test');
    assert.ok(env.tls !== null);
    // The receiving side puts its Received: header (and nothing else: we sent a Message-ID) before our bytes.
    const spooled = Buffer.from(server.body(id), 'utf8');
    assert.ok(spooled.subarray(spooled.length - BODY.length).equals(BODY));
    assert.match(spooled.subarray(0, spooled.length - BODY.length).toString('utf8'), /^Received: from out\.portcullis\.test /);
  });

  test('an unknown recipient of the hosted domain is refused at RCPT with Portcullis\'s reply; the other is delivered on the reused connection', async () => {
    const a = await t.deliver({ kind: 'mx', domain: DOMAIN }, message([`nobody@${DOMAIN}`, `alice@${DOMAIN}`]), {});
    const [nobody, alice] = a.outcomes;
    assert.equal(nobody?.kind, 'permanent');
    assert.equal(nobody?.stage, 'rcpt');
    assert.equal(nobody?.origin, 'remote');
    assert.equal(nobody?.code, 550);
    assert.match(nobody?.enhanced ?? '', /^5\.1\.\d$/);
    assert.equal(alice?.kind, 'delivered');
    assert.equal(t.idleConnections, 1);
  });

  test('SMTPUTF8: a UTF-8 sender goes with the SMTPUTF8 keyword to a server that offers it', async () => {
    const before = new Set(server.spoolIds());
    const a = await t.deliver({ kind: 'mx', domain: DOMAIN }, message([`alice@${DOMAIN}`], { smtputf8: true, sender: 'jörg@portcullis.test' }), {});
    assert.equal(a.outcomes[0]?.kind, 'delivered', a.outcomes[0]?.text);
    const id = await waitFor('the new message', () => server.spoolIds().find((x) => !before.has(x)));
    assert.equal(server.envelope(id).senderParams.smtputf8, true);
    assert.equal(server.envelope(id).sender, 'jörg@portcullis.test');
  });
});
