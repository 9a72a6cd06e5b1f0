// The SMTP transport (src/delivery) against real peers on real sockets: Postfix's smtp-sink as
// the remote MTA (accepting, or refusing whole commands with -f/-r/-Q), MX answers from a DNS
// server in the process (dns2), and a scripted responder (tests/support/smtp-responder.ts) for what
// smtp-sink cannot be told to do: refuse some recipients and not others, announce a SIZE limit,
// stay silent, break STARTTLS, hold sessions open.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createSmtpTransport } from '../../src/delivery/smtp-transport.js';
import type { SmtpTransport, SmtpTransportOptions } from '../../src/delivery/smtp-transport.js';
import type { OutboundMessage, OutboundRecipient } from '../../src/delivery/types.js';
import { DnsServer } from '../support/dns.js';
import { SmtpResponder } from '../support/smtp-responder.js';
import type { Script } from '../support/smtp-responder.js';
import { SmtpSink } from '../support/smtp-sink.js';

const HOSTNAME = 'out.portcullis.test';

// Lines that need dot-stuffing on the wire, an 8-bit line, and CRLF everywhere.
const BODY = Buffer.from(
  ['From: <sender@portcullis.test>', 'To: <alice@remote.test>', 'Subject: delivery test', 'Message-ID: <t1@portcullis.test>', '', '.', '..two dots', '.leading dot', 'caf\u00e9 8-bit', 'last line', ''].join('\r\n'),
  'utf8',
);

function rcpt(address: string, notify: string[] = [], orcpt: string | null = null): OutboundRecipient {
  return { address, orcpt, notify };
}

function message(recipients: OutboundRecipient[], extra: Partial<OutboundMessage> = {}): OutboundMessage {
  return { id: 'msg-1', sender: 'sender@portcullis.test', recipients, size: BODY.length, envid: 'env+id 1', ret: 'HDRS', body8bit: true, smtputf8: false, open: () => BODY, ...extra };
}

let dns: DnsServer;
const transports: SmtpTransport[] = [];

function transport(extra: Partial<SmtpTransportOptions> = {}): SmtpTransport {
  const t = createSmtpTransport({ hostname: HOSTNAME, resolver: dns.resolver(500), families: 'ipv4', random: () => 0.5, ...extra });
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

describe('to Postfix smtp-sink', () => {
  let sink: SmtpSink;
  before(async () => {
    sink = await SmtpSink.start();
  });
  after(async () => sink.close());

  test('delivers: EHLO with our name, MAIL/RCPT parameters the sink offers, per-recipient NOTIFY/ORCPT, the body byte for byte', async () => {
    const t = transport();
    const msg = message([rcpt('alice@remote.test', ['FAILURE', 'DELAY'], 'rfc822;alice+x@remote.test'), rcpt('bob@remote.test', ['NEVER'])]);
    const a = await t.deliver({ kind: 'host', host: '127.0.0.1', port: sink.port }, msg, {});
    assert.equal(a.remote, `127.0.0.1[127.0.0.1]:${sink.port}`);
    assert.deepEqual(
      a.outcomes.map((o) => [o.address, o.kind, o.code, o.enhanced, o.stage, o.origin]),
      [
        ['alice@remote.test', 'delivered', 250, '2.0.0', 'data', 'remote'],
        ['bob@remote.test', 'delivered', 250, '2.0.0', 'data', 'remote'],
      ],
    );
    assert.equal(a.tls, false);
    assert.equal(a.lmtp, false);
    const [m] = await sink.waitMessages(1);
    assert.ok(m !== undefined);
    assert.equal(m.helo, HOSTNAME);
    // smtp-sink offers 8BITMIME and DSN, not SIZE or SMTPUTF8 (RFC 1870, RFC 6531: nothing unoffered is sent).
    assert.equal(m.mailArgs, '<sender@portcullis.test> BODY=8BITMIME RET=HDRS ENVID=env+2Bid+201');
    assert.deepEqual(m.rcptArgs, ['<alice@remote.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;alice+2Bx@remote.test', '<bob@remote.test> NOTIFY=NEVER']);
    assert.equal(m.content, BODY.toString('latin1').replace(/\r\n/g, '\n'));
  });

  test('the null sender is MAIL FROM:<>', async () => {
    const before = sink.messages().length;
    const a = await transport().deliver({ kind: 'host', host: '127.0.0.1', port: sink.port }, message([rcpt('alice@remote.test')], { sender: '', envid: null, ret: null, body8bit: false }), {});
    assert.equal(a.outcomes[0]?.kind, 'delivered');
    const all = await sink.waitMessages(before + 1);
    assert.deepEqual(all.filter((m) => m.mailArgs.startsWith('<>')).map((m) => m.mailArgs), ['<>']);
  });

  test('MX lookup through DNS: the port of MX hosts is configurable; a refused connection moves on to the next MX', async () => {
    // mx1 is 127.0.0.2, where nothing listens on the sink's port: connection refused.
    dns.set({ 'sink.test': { MX: [{ exchange: 'mx1.sink.test', priority: 10 }, { exchange: 'mx2.sink.test', priority: 20 }] }, 'mx1.sink.test': { A: ['127.0.0.2'] }, 'mx2.sink.test': { A: ['127.0.0.1'] } });
    const before = sink.messages().length;
    const a = await transport({ mxPort: sink.port }).deliver({ kind: 'mx', domain: 'sink.test' }, message([rcpt('carol@sink.test')]), {});
    assert.equal(a.outcomes[0]?.kind, 'delivered');
    assert.equal(a.remote, `mx2.sink.test[127.0.0.1]:${sink.port}`);
    assert.equal(sink.messages().length, before + 1);
  });

  test('every MX refuses the connection: temporary, no remote, the reason named', async () => {
    dns.set({ 'down.test': { MX: [{ exchange: 'mx.down.test', priority: 10 }] }, 'mx.down.test': { A: ['127.0.0.2', '127.0.0.3'] } });
    const a = await transport({ mxPort: sink.port }).deliver({ kind: 'mx', domain: 'down.test' }, message([rcpt('x@down.test'), rcpt('y@down.test')]), {});
    assert.deepEqual(a.outcomes.map((o) => [o.kind, o.stage, o.origin, o.enhanced, o.remote]), [
      ['temporary', 'connect', 'local', '4.4.1', null],
      ['temporary', 'connect', 'local', '4.4.1', null],
    ]);
    assert.match(a.outcomes[0]?.text ?? '', /connect to mx\.down\.test\[127\.0\.0\.3\]:\d+: ECONNREFUSED/);
  });

  test('a null MX and a missing domain fail permanently without a connection; SERVFAIL is temporary', async () => {
    dns.set({ 'nullmx.test': { MX: [{ exchange: '', priority: 0 }] }, 'broken.test': 'servfail' });
    const t = transport({ mxPort: sink.port });
    const nul = await t.deliver({ kind: 'mx', domain: 'nullmx.test' }, message([rcpt('a@nullmx.test')]), {});
    assert.deepEqual([nul.outcomes[0]?.kind, nul.outcomes[0]?.code, nul.outcomes[0]?.enhanced], ['permanent', 556, '5.1.10']);
    const nx = await t.deliver({ kind: 'mx', domain: 'nosuch.test' }, message([rcpt('a@nosuch.test')]), {});
    assert.deepEqual([nx.outcomes[0]?.kind, nx.outcomes[0]?.enhanced], ['permanent', '5.1.2']);
    const sf = await t.deliver({ kind: 'mx', domain: 'broken.test' }, message([rcpt('a@broken.test')]), {});
    assert.deepEqual([sf.outcomes[0]?.kind, sf.outcomes[0]?.enhanced], ['temporary', '4.4.3']);
  });

  test('SMTPUTF8 needed, not offered by smtp-sink: permanent 5.6.7 before MAIL (RFC 6531)', async () => {
    const before = sink.messages().length;
    const a = await transport().deliver({ kind: 'host', host: '127.0.0.1', port: sink.port }, message([rcpt('jörg@remote.test')], { smtputf8: true }), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.enhanced, a.outcomes[0]?.stage, a.outcomes[0]?.origin], ['permanent', '5.6.7', 'mail', 'local']);
    assert.equal(sink.messages().length, before);
  });
});

describe('smtp-sink refusing commands', () => {
  const sinks: SmtpSink[] = [];
  after(async () => Promise.all(sinks.map((s) => s.close())));
  async function refusing(...args: string[]): Promise<SmtpSink> {
    const s = await SmtpSink.start({ args });
    sinks.push(s);
    return s;
  }

  test('-f RCPT: every recipient refused permanently at RCPT with the sink\'s reply', async () => {
    const s = await refusing('-f', 'RCPT');
    const a = await transport().deliver({ kind: 'host', host: '127.0.0.1', port: s.port }, message([rcpt('a@remote.test'), rcpt('b@remote.test')]), {});
    assert.deepEqual(a.outcomes.map((o) => [o.kind, o.code, o.enhanced, o.text, o.stage, o.origin]), [
      ['permanent', 500, '5.3.0', 'Error: command failed', 'rcpt', 'remote'],
      ['permanent', 500, '5.3.0', 'Error: command failed', 'rcpt', 'remote'],
    ]);
  });

  test('-r MAIL: a 4xx at MAIL makes every recipient temporary', async () => {
    const s = await refusing('-r', 'MAIL');
    const a = await transport().deliver({ kind: 'host', host: '127.0.0.1', port: s.port }, message([rcpt('a@remote.test'), rcpt('b@remote.test')]), {});
    assert.deepEqual(a.outcomes.map((o) => [o.kind, o.code, o.enhanced, o.stage]), [
      ['temporary', 450, '4.3.0', 'mail'],
      ['temporary', 450, '4.3.0', 'mail'],
    ]);
  });

  test('-f .: refused after the message, permanent at DATA for every accepted recipient', async () => {
    const s = await refusing('-f', '.');
    const a = await transport().deliver({ kind: 'host', host: '127.0.0.1', port: s.port }, message([rcpt('a@remote.test'), rcpt('b@remote.test')]), {});
    assert.deepEqual(a.outcomes.map((o) => [o.kind, o.code, o.stage]), [
      ['permanent', 500, 'data'],
      ['permanent', 500, 'data'],
    ]);
  });

  test('-Q RCPT: 421 and disconnect; temporary, and the connection is not kept', async () => {
    const s = await refusing('-Q', 'RCPT');
    const t = transport();
    const a = await t.deliver({ kind: 'host', host: '127.0.0.1', port: s.port }, message([rcpt('a@remote.test')]), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.code, a.outcomes[0]?.stage, a.outcomes[0]?.origin], ['temporary', 421, 'rcpt', 'remote']);
    assert.equal(t.idleConnections, 0);
  });

  test('-q .: the sink hangs up after the message without a reply; temporary at DATA (a duplicate is possible, a loss is not)', async () => {
    const s = await refusing('-q', '.');
    const a = await transport().deliver({ kind: 'host', host: '127.0.0.1', port: s.port }, message([rcpt('a@remote.test')]), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.stage, a.outcomes[0]?.origin], ['temporary', 'data', 'local']);
    assert.match(a.outcomes[0]?.text ?? '', /connection lost/);
  });
});

describe('to a scripted responder', () => {
  const responders: SmtpResponder[] = [];
  after(async () => Promise.all(responders.map((r) => r.close())));
  async function responder(script: Script, host?: string, port?: number): Promise<SmtpResponder> {
    const r = await SmtpResponder.start(script, host, port);
    responders.push(r);
    return r;
  }
  const at = (r: SmtpResponder) => ({ kind: 'host' as const, host: '127.0.0.1', port: r.port });

  test('per-recipient results: 250, 550 and 450 in one transaction; the message goes to the accepted one only', async () => {
    const r = await responder({ rcpt: (a) => (a.startsWith('bob') ? '550 5.1.1 <bob@remote.test>: no such user' : a.startsWith('carol') ? '450 4.2.1 mailbox busy' : '250 2.1.5 OK') });
    const a = await transport().deliver(at(r), message([rcpt('alice@remote.test', ['SUCCESS']), rcpt('bob@remote.test'), rcpt('carol@remote.test')]), {});
    assert.deepEqual(a.outcomes.map((o) => [o.address, o.kind, o.code, o.enhanced, o.text, o.stage]), [
      ['alice@remote.test', 'delivered', 250, '2.0.0', 'OK queued', 'data'],
      ['bob@remote.test', 'permanent', 550, '5.1.1', '<bob@remote.test>: no such user', 'rcpt'],
      ['carol@remote.test', 'temporary', 450, '4.2.1', 'mailbox busy', 'rcpt'],
    ]);
    assert.deepEqual(r.messages.map((m) => m.rcpts), [['alice@remote.test']]);
    // The responder offers SIZE: it is declared (RFC 1870).
    assert.match(r.messages[0]?.mail ?? '', /^<sender@portcullis\.test> SIZE=\d+ BODY=8BITMIME RET=HDRS ENVID=env\+2Bid\+201$/);
    assert.ok(r.messages[0]?.data.equals(BODY));
  });

  test('an address that cannot be written into RCPT TO fails alone (553 5.1.3); the others are delivered', async () => {
    const r = await responder({});
    const a = await transport().deliver(at(r), message([rcpt('ok1@remote.test'), rcpt('bad>x@remote.test'), rcpt('ok2@remote.test')]), {});
    assert.deepEqual(a.outcomes.map((o) => [o.address, o.kind, o.enhanced, o.origin]), [
      ['ok1@remote.test', 'delivered', '2.0.0', 'remote'],
      ['bad>x@remote.test', 'permanent', '5.1.3', 'local'],
      ['ok2@remote.test', 'delivered', '2.0.0', 'remote'],
    ]);
    assert.deepEqual(r.messages.map((m) => m.rcpts), [['ok1@remote.test', 'ok2@remote.test']]);
  });

  test('a SIZE limit the message exceeds: permanent 552 5.3.4, nothing sent (RFC 1870 §4)', async () => {
    const r = await responder({ ehlo: ['SIZE 100', 'PIPELINING'] });
    const a = await transport().deliver(at(r), message([rcpt('a@remote.test')]), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.code, a.outcomes[0]?.enhanced, a.outcomes[0]?.stage], ['permanent', 552, '5.3.4', 'mail']);
    assert.equal(r.count('MAIL'), 0);
  });

  test('connection reuse: the next message to the same host goes on the same connection after RSET; idle connections close', async () => {
    const r = await responder({});
    const t = transport({ pool: { idleMs: 300 } });
    for (let i = 0; i < 3; i++) assert.equal((await t.deliver(at(r), message([rcpt(`u${i}@remote.test`)]), {})).outcomes[0]?.kind, 'delivered');
    assert.equal(r.connections, 1);
    assert.equal(r.count('RSET'), 2);
    assert.equal(r.count('EHLO'), 1);
    assert.equal(t.idleConnections, 1);
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(t.idleConnections, 0);
    assert.equal(r.count('QUIT'), 1);
  });

  test('an idle connection the server has closed, or that fails RSET, is replaced, not reported as a failure', async () => {
    const r = await responder({});
    const t = transport({ pool: { idleMs: 5000 } });
    await t.deliver(at(r), message([rcpt('a@remote.test')]), {});
    assert.equal(t.idleConnections, 1);
    await r.close();
    const r2 = await responder({ rset: () => '421 4.3.2 shutting down' }, '127.0.0.1', r.port);
    assert.equal((await t.deliver(at(r2), message([rcpt('b@remote.test')]), {})).outcomes[0]?.kind, 'delivered');
    assert.equal(r2.connections, 1);
    // The connection kept after that answers RSET with 421: a third connection carries the next message.
    assert.equal((await t.deliver(at(r2), message([rcpt('c@remote.test')]), {})).outcomes[0]?.kind, 'delivered');
    assert.equal(r2.connections, 2);
    assert.equal(r2.count('RSET'), 1);
  });

  test('per-destination concurrency: at most N sessions at once, the rest wait their turn', async () => {
    const r = await responder({ delayMs: 30 });
    const t = transport({ perDestination: 2 });
    const all = await Promise.all(Array.from({ length: 6 }, (_, i) => t.deliver(at(r), message([rcpt(`c${i}@remote.test`)]), {})));
    assert.ok(all.every((a) => a.outcomes[0]?.kind === 'delivered'));
    assert.equal(r.maxOpen, 2);
    assert.equal(r.messages.length, 6);
  });

  test('a command that gets no reply times out: temporary, the command named', async () => {
    const r = await responder({ mail: () => null });
    const t0 = Date.now();
    const a = await transport({ timeouts: { mail: 300 } }).deliver(at(r), message([rcpt('a@remote.test')]), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.stage, a.outcomes[0]?.origin], ['temporary', 'mail', 'local']);
    assert.match(a.outcomes[0]?.text ?? '', /no reply to MAIL FROM: within 300 ms/);
    assert.ok(Date.now() - t0 < 3000);
  });

  test('a greeting that never comes times out', async () => {
    const r = await responder({ greeting: null });
    const a = await transport({ timeouts: { greeting: 300 } }).deliver(at(r), message([rcpt('a@remote.test')]), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.stage, a.outcomes[0]?.origin], ['temporary', 'connect', 'local']);
    assert.match(a.outcomes[0]?.text ?? '', /no reply to the greeting within 300 ms/);
  });

  test('opportunistic STARTTLS whose handshake fails: delivered on a new plaintext connection (RFC 7435)', async () => {
    const r = await responder({ ehlo: ['STARTTLS', 'PIPELINING'], brokenTls: true });
    const a = await transport().deliver(at(r), message([rcpt('a@remote.test')]), {});
    assert.equal(a.outcomes[0]?.kind, 'delivered', a.outcomes[0]?.text);
    assert.equal(a.tls, false);
    assert.equal(r.connections, 2);
    assert.equal(r.count('STARTTLS'), 1);
  });

  test('TLS required and the handshake fails: temporary 4.7.5, no plaintext delivery', async () => {
    const r = await responder({ ehlo: ['STARTTLS'], brokenTls: true });
    const a = await transport({ tls: 'required' }).deliver(at(r), message([rcpt('a@remote.test')]), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.enhanced], ['temporary', '4.7.5']);
    assert.equal(r.messages.length, 0);
  });

  test('TLS required and not offered: temporary 4.7.4', async () => {
    const r = await responder({ ehlo: ['PIPELINING'] });
    const a = await transport({ tls: 'required' }).deliver(at(r), message([rcpt('a@remote.test')]), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.enhanced], ['temporary', '4.7.4']);
  });

  test('a 4xx or 5xx greeting moves on to the next MX (Postfix smtp_skip_5xx_greeting); a 5xx greeting from the only MX is retried later, not bounced', async () => {
    // Three MX hosts on one port (the MX port is one number): 127.0.0.4 is busy, .5 refuses service, .6 accepts.
    const busy = await responder({ greeting: '421 4.3.2 too busy' }, '127.0.0.4');
    const refusing = await responder({ greeting: '554 5.7.1 no service for you' }, '127.0.0.5', busy.port);
    const good = await responder({}, '127.0.0.6', busy.port);
    dns.set({
      'busy.test': { MX: [{ exchange: 'mx1.busy.test', priority: 1 }, { exchange: 'mx3.busy.test', priority: 3 }] },
      'refusing.test': { MX: [{ exchange: 'mx2.busy.test', priority: 1 }, { exchange: 'mx3.busy.test', priority: 3 }] },
      'mx1.busy.test': { A: ['127.0.0.4'] },
      'mx2.busy.test': { A: ['127.0.0.5'] },
      'mx3.busy.test': { A: ['127.0.0.6'] },
    });
    const t = transport({ mxPort: busy.port });
    const a = await t.deliver({ kind: 'mx', domain: 'busy.test' }, message([rcpt('a@busy.test')]), {});
    assert.equal(a.outcomes[0]?.kind, 'delivered');
    assert.equal(a.remote, `mx3.busy.test[127.0.0.6]:${busy.port}`);
    const b = await t.deliver({ kind: 'mx', domain: 'refusing.test' }, message([rcpt('a@refusing.test')]), {});
    assert.equal(b.outcomes[0]?.kind, 'delivered', 'the refusing MX is skipped');
    assert.equal(b.remote, `mx3.busy.test[127.0.0.6]:${busy.port}`);
    assert.equal(good.messages.length, 2);
    assert.equal(refusing.connections, 1);
    dns.set({ 'only-refusing.test': { MX: [{ exchange: 'mx2.busy.test', priority: 1 }] }, 'mx2.busy.test': { A: ['127.0.0.5'] } });
    const c = await t.deliver({ kind: 'mx', domain: 'only-refusing.test' }, message([rcpt('a@only-refusing.test')]), {});
    assert.deepEqual([c.outcomes[0]?.kind, c.outcomes[0]?.code, c.outcomes[0]?.enhanced, c.outcomes[0]?.stage, c.outcomes[0]?.origin, c.remote], ['temporary', 554, '5.7.1', 'connect', 'remote', `mx2.busy.test[127.0.0.5]:${busy.port}`]);
  });

  test('when every MX fails temporarily, a server\'s reply is reported rather than a connection error', async () => {
    const busy = await responder({ mail: () => '451 4.7.1 greylisted, try later' }, '127.0.0.7');
    dns.set({ 'grey.test': { MX: [{ exchange: 'mx1.grey.test', priority: 1 }, { exchange: 'mx2.grey.test', priority: 2 }] }, 'mx1.grey.test': { A: ['127.0.0.7'] }, 'mx2.grey.test': { A: ['127.0.0.8'] } });
    const a = await transport({ mxPort: busy.port }).deliver({ kind: 'mx', domain: 'grey.test' }, message([rcpt('a@grey.test')]), {});
    assert.deepEqual([a.outcomes[0]?.kind, a.outcomes[0]?.code, a.outcomes[0]?.text, a.outcomes[0]?.stage, a.remote], ['temporary', 451, 'greylisted, try later', 'mail', `mx1.grey.test[127.0.0.7]:${busy.port}`]);
  });

  test('a delivery started with a signal that is already aborted (shutdown came first) ends at once, without waiting for timeouts', async () => {
    const r = await responder({ mail: () => null });
    const ac = new AbortController();
    ac.abort();
    const t0 = Date.now();
    const a = await transport().deliver(at(r), message([rcpt('a@remote.test')]), { signal: ac.signal });
    assert.equal(a.outcomes[0]?.kind, 'temporary');
    assert.ok(Date.now() - t0 < 2000);
  });

  test('aborting a delivery gives temporary outcomes at once', async () => {
    const r = await responder({ mail: () => null });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const a = await transport().deliver(at(r), message([rcpt('a@remote.test')]), { signal: ac.signal });
    assert.equal(a.outcomes[0]?.kind, 'temporary');
    assert.match(a.outcomes[0]?.text ?? '', /interrupted/);
    assert.ok(Date.now() - t0 < 2000);
  });
});
