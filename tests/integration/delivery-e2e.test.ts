// Delivery end to end through the running server (spec §8.3, §12.5, §13): messages go in with
// swaks (submission with STARTTLS and AUTH, or port 25 from an outside or an internal address),
// the queue runner delivers them, and the real peers show what arrived: Postfix's smtp-sink as the
// MX found through a DNS server in this process (delivery.dns_servers), the same sink as the
// smarthost, Dovecot over LMTP as the message store, the embedded Maildir store, and a scripted
// SMTP server for refusals (550 at RCPT, 554 after DATA, 451 until it changes its mind). The
// transaction log shows E, D, Q and R records; DSNs (RFC 3464) land in the sender's mailbox and
// are parsed with mailparser; access-table $H holds and $B discards; and the seed-003 recipe
// (spec §8.3) counts a compromised account's refused recipients through LOG_ACTION until
// FROM_ACCESS stops its submissions.
//
// Two servers: `mx` delivers by MX with the embedded store and carries the access tables; `smart`
// sends everything through the smarthost (the sink, then — after a reload — `mx`, so a message
// crosses both over STARTTLS) and keeps mailboxes in Dovecot. smtp-sink listens on
// 127.0.0.1:P and the scripted server on 127.0.0.2:P, so one delivery.mx_port reaches both; the
// DNS zone says which domain is served where.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import type { Attachment } from 'mailparser';
import { DnsServer } from '../support/dns.js';
import { Dovecot } from '../support/dovecot.js';
import { SmtpResponder } from '../support/smtp-responder.js';
import { SmtpSink } from '../support/smtp-sink.js';
import type { SinkMessage } from '../support/smtp-sink.js';
import { DOMAIN, portcullis, Server, swaks, waitFor } from './harness.js';
import type { JsonRecord } from '../../src/txlog/index.js';

const ALICE = { address: `alice@${DOMAIN}`, password: 'alice-secret' } as const;
const BOB = { address: `bob@${DOMAIN}`, password: 'bob-secret' } as const;
const CAROL = { address: `carol@${DOMAIN}`, password: 'carol-secret' } as const;
const DAVE = { address: `dave@${DOMAIN}`, password: 'dave-secret' } as const;
type User = { readonly address: string; readonly password: string };

/** Refused recipients (R records) a submitting user may cause per hour before FROM_ACCESS stops them. */
const QUOTA = 5;

/** The remote side played by the scripted server: who is refused, and how. */
let greylisting = true;
const refusals = (address: string): string => {
  const domain = address.slice(address.lastIndexOf('@') + 1);
  if (domain === 'refuse.test') return `550 5.1.1 <${address}>: Recipient address rejected: User unknown in virtual mailbox table`;
  if (domain === 'relayed.test') return `550 5.1.1 <${address}>: Recipient address rejected: no such user`;
  if (address === 'grey@grey.test' && greylisting) return '451 4.7.1 Greylisted, try again later';
  return '250 2.1.5 OK';
};

/** Init's access tables plus this file's entries (spec §4.2, §5.4, §5.5, §8.3). */
function mappings(text: string): string {
  const orig = [
    // A partner domain this host relays for (backup MX): Internet mail that may bounce.
    '  tcp_local|*|tcp_local|*@relayed.test  $Y',
    '  *|*|*|held@sink.test                  $H',
  ].join('\n');
  assert.ok(text.includes('ORIG_SEND_ACCESS\n\n'), 'init wrote ORIG_SEND_ACCESS as expected');
  return (
    text.replace('ORIG_SEND_ACCESS\n\n', `ORIG_SEND_ACCESS\n\n${orig}\n`) +
    [
      '',
      'MAIL_ACCESS',
      '  *|discard@sink.test  $B',
      '',
      '! Seed 003 (spec §8.3): count recipients remote servers refuse for authenticated senders;',
      '! past the quota, refuse their submissions.',
      'LOG_ACTION',
      '  R|tcp_auth|*|*|*@*|*|*  $C$[IMTA_LIB:check_metermaid.so,throttle,badrcpt,$2@$3]$E',
      '',
      '! The count is keyed by the envelope From, so an authenticated user sends as their own address only.',
      'FROM_ACCESS',
      '  *|SMTP*|*|tcp_auth|*|*    $C$[IMTA_LIB:check_metermaid.so,query,badrcpt,$4]$N$ recipients$ refused$ by$ remote$ servers$ this$ hour;$ sending$ suspended$E',
      '  *|SMTP*|*|tcp_auth|*|$3*  $Y',
      '  *|SMTP*|*|tcp_auth|*|*    $NSend$ as$ $4$ only',
      '',
    ].join('\n')
  );
}

let dns: DnsServer;
let sink: SmtpSink;
let responder: SmtpResponder;
let dovecot: Dovecot;
let mx: Server;
let smart: Server;

before(async () => {
  dns = await DnsServer.start({
    'sink.test': { MX: [{ exchange: 'mx.sink.test', priority: 10 }] },
    'mx.sink.test': { A: ['127.0.0.1'] },
    'victim.test': { MX: [{ exchange: 'mx.sink.test', priority: 10 }] },
    'refuse.test': { MX: [{ exchange: 'mx.responder.test', priority: 10 }] },
    'relayed.test': { MX: [{ exchange: 'mx.responder.test', priority: 10 }] },
    'grey.test': { MX: [{ exchange: 'mx.responder.test', priority: 10 }] },
    'trap.test': { MX: [{ exchange: 'mx.responder.test', priority: 10 }] },
    'mx.responder.test': { A: ['127.0.0.2'] },
  });
  // The scripted server takes the sink's port on 127.0.0.2; should that be taken, both move.
  for (let attempt = 1; ; attempt++) {
    sink = await SmtpSink.start();
    try {
      responder = await SmtpResponder.start(
        {
          rcpt: refusals,
          dot: (_data, rcpt) => (rcpt.endsWith('@trap.test') ? '554 5.7.1 Message rejected: spam content detected' : '250 2.0.0 Ok: queued'),
        },
        '127.0.0.2',
        sink.port,
      );
      break;
    } catch (e) {
      await sink.close();
      if (attempt === 5) throw e;
    }
  }
  dovecot = await Dovecot.start({ users: [ALICE.address] });
  const common = {
    'delivery.runner': 'yes',
    'delivery.dns_servers': `127.0.0.1:${dns.port}`,
    // Every record of every kind goes through LOG_ACTION and into both files.
    'log.transactions.format': 'both',
  };
  [mx, smart] = await Promise.all([
    Server.start({
      users: [ALICE, BOB, CAROL, DAVE],
      conf: {
        ...common,
        'delivery.mx_port': String(sink.port),
        'delivery.backoff': '1s',
        'delivery.nobounce_sources': 'tcp_local',
        'metermaid.table.badrcpt.data_type': 'string',
        'metermaid.table.badrcpt.quota': String(QUOTA),
        'metermaid.table.badrcpt.quota_time': '3600',
        // "Carol@example.test" and "carol@example.test" are one sender.
        'metermaid.table.badrcpt.options': 'nocase',
      },
      mappings: ({ text }) => mappings(text),
    }),
    Server.start({
      users: [ALICE],
      conf: { ...common, 'delivery.smarthost': `127.0.0.1:${sink.port}`, 'delivery.lmtp.server': `127.0.0.1:${dovecot.lmtpPort}` },
    }),
  ]);
});

after(async () => {
  await Promise.all([mx?.stop(), smart?.stop()]);
  await Promise.all([sink?.close(), responder?.close(), dovecot?.close(), dns?.close()]);
});

// ---------------------------------------------------------------------------------------------
// Clients and what the server wrote

/** Submission on port 587: STARTTLS, AUTH PLAIN, from the user's own address. */
function submit(server: Server, user: User, to: readonly string[], subject: string, from = user.address): ReturnType<typeof swaks> {
  return swaks([
    '--server', `127.0.0.1:${server.ports.submit}`, '--ehlo', 'laptop.example',
    '--tls', '--tls-ca-path', server.certFile,
    '--auth', 'PLAIN', '--auth-user', user.address, '--auth-password', user.password,
    '--from', from, '--to', to.join(','), '--header', `Subject: ${subject}`, '--body', `Body of "${subject}".`,
  ]);
}

/** Port 25 from `source`: 127.0.0.1 is internal (INTERNAL_IP, channel tcp_intranet), others are the Internet (tcp_local). */
function smtp(server: Server, source: string, from: string, to: readonly string[], subject: string): ReturnType<typeof swaks> {
  return swaks([
    '--server', `127.0.0.1:${server.ports.smtp}`, '--local-interface', source, '--ehlo', 'client.example',
    '--from', from, '--to', to.join(','), '--header', `Subject: ${subject}`, '--body', `Body of "${subject}".`,
  ]);
}

async function accepted(r: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<string> {
  const out = await r;
  assert.equal(out.code, 0, `${out.stdout}${out.stderr}`);
  return Server.idOf(out.stdout);
}

function textLog(server: Server): string[] {
  const path = join(server.dataDir, 'log', 'mail.log_current');
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

function jsonLog(server: Server): JsonRecord[] {
  const path = join(server.dataDir, 'log', 'mail.jsonl');
  return existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as JsonRecord)
    : [];
}

/** Waits for the text record of `code` for spool id `id` and recipient `to`, and its JSON twin. */
async function record(server: Server, code: string, id: string, to: string): Promise<{ line: string; json: JsonRecord }> {
  const re = new RegExp(` ${code} \\d+ .* ${esc(to)} spool;${esc(id)}( |$)`);
  const line = await waitFor(`a ${code} record for ${to} (${id})`, () => textLog(server).find((l) => re.test(l)));
  const json = await waitFor(`the ${code} record for ${to} in mail.jsonl`, () => jsonLog(server).find((j) => j.code === code && j.spoolId === id && j.to === to));
  return { line, json };
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The spool files of a message (docs/spool.md): .msg, .held, .state. */
function spoolFiles(server: Server, id: string): string[] {
  return existsSync(server.queueDir) ? readdirSync(server.queueDir).filter((n) => n.startsWith(`${id}.`)).sort() : [];
}

function spoolGone(server: Server, id: string): Promise<true> {
  return waitFor(`${id} to leave the spool`, () => (spoolFiles(server, id).length === 0 ? true : undefined));
}

/** Messages of the embedded store: <datadir>/mailboxes/<domain>/<local>/Maildir/new. */
function storeMailbox(server: Server, address: string): Buffer[] {
  const [local, domain] = address.split('@') as [string, string];
  const dir = join(server.dataDir, 'mailboxes', domain, local, 'Maildir', 'new');
  return existsSync(dir) ? readdirSync(dir).sort().map((n) => readFileSync(join(dir, n))) : [];
}

/** The parts of a multipart body: each part's Content-Type (lower case, without parameters) and body. */
function mimeParts(raw: Buffer, boundary: string): { type: string; body: string }[] {
  assert.notEqual(boundary, '');
  const text = raw.toString('latin1');
  const end = text.indexOf(`\r\n--${boundary}--`);
  assert.ok(end > 0, 'the closing boundary is there');
  return text
    .slice(0, end)
    .split(`\r\n--${boundary}\r\n`)
    .slice(1)
    .map((part) => {
      const split = part.indexOf('\r\n\r\n');
      const head = part.slice(0, split);
      const type = /^Content-Type:\s*([^;\r\n]+)/im.exec(head)?.[1]?.trim().toLowerCase() ?? 'text/plain';
      return { type, body: part.slice(split + 4) };
    });
}

function sinkFor(rcpt: string): SinkMessage[] {
  return sink.messages().filter((m) => m.rcptArgs.some((a) => a.toLowerCase().startsWith(`<${rcpt}>`)));
}

const DATE = String.raw`\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d\.\d\d`;

// ---------------------------------------------------------------------------------------------

describe('delivery through the running server', () => {
  test('by MX (delivery.dns_servers, delivery.mx_port) to smtp-sink: delivered as sent, the spool empties, E and D records in both logs', async () => {
    const id = await accepted(submit(mx, ALICE, ['carl@sink.test'], 'by MX'));
    const [got] = await waitFor('the message at the sink', () => (sinkFor('carl@sink.test').length > 0 ? sinkFor('carl@sink.test') : undefined));
    assert.ok(got !== undefined);
    assert.match(got.mailArgs, /^<alice@example\.test>/);
    assert.match(got.helo ?? '', /^mx\.example\.test$/);
    assert.match(got.content, /^Received: /);
    assert.match(got.content, /\nSubject: by MX\n/);
    assert.match(got.content, /\n\nBody of "by MX"\.\n*$/);
    // The MX came from our DNS server, not from the system's resolvers.
    assert.ok(dns.queries.includes('sink.test MX'), dns.queries.join(', '));
    assert.ok(dns.queries.includes('mx.sink.test A'), dns.queries.join(', '));
    await spoolGone(mx, id);

    const e = await record(mx, 'EESA', id, 'carl@sink.test');
    assert.match(e.line, new RegExp(`^${DATE} tcp_auth {5}tcp_local {4}EESA 1 alice@example\\.test rfc822;carl@sink\\.test carl@sink\\.test spool;${esc(id)} <[^ ]+> dns;laptop\\.example \\[127\\.0\\.0\\.1\\] auth;alice@example\\.test$`));
    const d = await record(mx, 'D', id, 'carl@sink.test');
    assert.match(
      d.line,
      new RegExp(`^${DATE} tcp_auth {5}tcp_local {4}D 1 alice@example\\.test rfc822;carl@sink\\.test carl@sink\\.test spool;${esc(id)} dns;mx\\.sink\\.test \\[127\\.0\\.0\\.1\\] auth;alice@example\\.test smtp;250 `),
    );
    assert.deepEqual(
      [d.json.source, d.json.destination, d.json.from, d.json.orcpt, d.json.remoteHost, d.json.clientIp, d.json.username],
      ['tcp_auth', 'tcp_local', ALICE.address, 'rfc822;carl@sink.test', 'mx.sink.test', '127.0.0.1', ALICE.address],
    );
    assert.equal(d.json.size, e.json.size);
    assert.match(d.json.diagnostic ?? '', /^smtp;250\b/);
  });

  test('through the smarthost (delivery.smarthost): no MX lookup, the sink gets it', async () => {
    const id = await accepted(smtp(smart, '127.0.0.1', 'ops@example.test', ['someone@far.invalid'], 'via the smarthost'));
    const [got] = await waitFor('the message at the smarthost', () => (sinkFor('someone@far.invalid').length > 0 ? sinkFor('someone@far.invalid') : undefined));
    assert.match(got?.content ?? '', /\nSubject: via the smarthost\n/);
    assert.match(got?.mailArgs ?? '', /^<ops@example\.test>/);
    const d = await record(smart, 'D', id, 'someone@far.invalid');
    assert.match(d.line, / tcp_intranet tcp_local {4}D 1 ops@example\.test rfc822;someone@far\.invalid someone@far\.invalid spool;\S+ dns;127\.0\.0\.1 \[127\.0\.0\.1\] smtp;250 /);
    assert.ok(!dns.queries.some((q) => q.startsWith('far.invalid')), dns.queries.join(', '));
    await spoolGone(smart, id);
  });

  test('a local user with delivery.lmtp.server: Dovecot stores it; read back from its Maildir', async () => {
    const id = await accepted(smtp(smart, '127.0.0.9', 'friend@remote.example', [ALICE.address], 'to Dovecot'));
    const [stored] = await waitFor('the message in Dovecot', () => (dovecot.maildir(ALICE.address).length > 0 ? dovecot.maildir(ALICE.address) : undefined));
    const text = stored?.toString('utf8') ?? '';
    assert.match(text, /^Return-Path: <friend@remote\.example>\r?\n/);
    assert.match(text, /\r?\nSubject: to Dovecot\r?\n/);
    assert.match(text, /\r?\nBody of "to Dovecot"\./);
    // DL: dequeued over LMTP (spec §13.2).
    const d = await record(smart, 'DL', id, ALICE.address);
    assert.match(d.line, / tcp_local {4}ims-ms {7}DL 1 friend@remote\.example rfc822;alice@example\.test alice@example\.test spool;\S+ dns;127\.0\.0\.1 \[127\.0\.0\.1\] smtp;250 2\.0\.0 /);
    await spoolGone(smart, id);
  });

  test('a reload points the smarthost at the other Portcullis: STARTTLS (a DS record), which relays by MX to the sink', async () => {
    smart.setConf({ 'delivery.smarthost': `127.0.0.1:${mx.ports.smtp}` });
    const reload = await portcullis(['reload', '--config', smart.configDir]);
    assert.equal(reload.code, 0, reload.stdout + reload.stderr);
    const id = await accepted(smtp(smart, '127.0.0.1', 'ops@example.test', ['twohops@sink.test'], 'two hops'));
    // DS: dequeued over TLS (spec §13.2); mx.example.test is the other server's name.
    const d = await record(smart, 'DS', id, 'twohops@sink.test');
    assert.match(d.line, / tcp_intranet tcp_local {4}DS 1 ops@example\.test rfc822;twohops@sink\.test twohops@sink\.test spool;\S+ dns;127\.0\.0\.1 \[127\.0\.0\.1\] smtp;250 2\.0\.0 OK id=/);
    const [got] = await waitFor('the message at the sink', () => (sinkFor('twohops@sink.test').length > 0 ? sinkFor('twohops@sink.test') : undefined));
    // Each hop added its Received: line; the second server's says the first came over TLS (RFC 3848 ESMTPS).
    assert.equal(got?.content.match(/^Received: /gm)?.length, 2, got?.content);
    assert.match(got?.content ?? '', /^Received: from mx\.example\.test \(\[127\.0\.0\.1\]\)\n\tby mx\.example\.test \(Portcullis\) with ESMTPS id /);
    assert.match(got?.content ?? '', /\nSubject: two hops\n/);
    await spoolGone(smart, id);
  });

  test('a local user without an LMTP server: the embedded Maildir store under the data directory', async () => {
    const id = await accepted(smtp(mx, '127.0.0.9', 'friend@remote.example', [BOB.address], 'to the embedded store'));
    const [stored] = await waitFor('the message in the embedded store', () => (storeMailbox(mx, BOB.address).length > 0 ? storeMailbox(mx, BOB.address) : undefined));
    const text = stored?.toString('utf8') ?? '';
    assert.match(text, /^Return-Path: <friend@remote\.example>\r\nDelivered-To: bob@example\.test\r\nReceived: /);
    assert.match(text, /\r\nSubject: to the embedded store\r\n/);
    const d = await record(mx, 'D', id, BOB.address);
    assert.match(d.line, / tcp_local {4}ims-ms {7}D 1 friend@remote\.example rfc822;bob@example\.test bob@example\.test spool;\S+ x-local;250 2\.0\.0 delivered to the embedded store$/);
    await spoolGone(mx, id);
  });

  test('550 at RCPT: an R record, and an RFC 3464 DSN in the submitting user\'s mailbox naming the recipient and the remote diagnostic', async () => {
    const id = await accepted(submit(mx, ALICE, ['nosuch@refuse.test'], 'will bounce'));
    const r = await record(mx, 'R', id, 'nosuch@refuse.test');
    assert.match(
      r.line,
      new RegExp(`^${DATE} tcp_auth {5}tcp_local {4}R 1 alice@example\\.test rfc822;nosuch@refuse\\.test nosuch@refuse\\.test spool;${esc(id)} dns;mx\\.responder\\.test \\[127\\.0\\.0\\.2\\] auth;alice@example\\.test smtp;550 5\\.1\\.1 <nosuch@refuse\\.test>: Recipient address rejected: User unknown in virtual mailbox table$`),
    );
    const [raw] = await waitFor('the DSN in alice\'s mailbox', () => (storeMailbox(mx, ALICE.address).length > 0 ? storeMailbox(mx, ALICE.address) : undefined));
    await spoolGone(mx, id);
    const dsn = await simpleParser(raw as Buffer);
    assert.match(raw?.toString('latin1') ?? '', /^Return-Path: <>\r\n/);
    assert.equal(dsn.subject, 'Undelivered Mail Returned to Sender');
    assert.equal(dsn.headers.get('auto-submitted'), 'auto-replied');
    const ct = dsn.headers.get('content-type') as { value: string; params: Record<string, string> };
    assert.equal(ct.value, 'multipart/report');
    assert.equal(ct.params['report-type'], 'delivery-status');
    assert.match(dsn.text ?? '', /<nosuch@refuse\.test>: smtp;550 5\.1\.1 <nosuch@refuse\.test>: Recipient address rejected/);
    // RFC 3464 §2 / RFC 6522: the human part, the delivery-status part, the returned message, in
    // that order. (mailparser folds message/delivery-status into .text, so the parts are also
    // read by the boundary mailparser found.)
    const parts = mimeParts(raw as Buffer, ct.params['boundary'] ?? '');
    assert.deepEqual(parts.map((p) => p.type), ['text/plain', 'message/delivery-status', 'message/rfc822']);
    const status = parts[1]?.body ?? '';
    assert.match(status, /^Reporting-MTA: dns; mx\.example\.test$/m);
    assert.match(status, new RegExp(`^X-Portcullis-Queue-ID: ${esc(id)}$`, 'm'));
    assert.match(status, /^Final-Recipient: rfc822; nosuch@refuse\.test$/m);
    assert.match(status, /^Action: failed$/m);
    assert.match(status, /^Status: 5\.1\.1$/m);
    assert.match(status, /^Remote-MTA: dns; mx\.responder\.test$/m);
    assert.match(status, /^Diagnostic-Code: smtp; 550 5\.1\.1 <nosuch@refuse\.test>: Recipient address rejected: User unknown in virtual mailbox table$/m);
    const returned = dsn.attachments.find((a: Attachment) => a.contentType === 'message/rfc822')?.content.toString('utf8') ?? '';
    assert.match(returned, /\r?\nSubject: will bounce\r?\n/);
    // The DSN was enqueued by the runner itself (E from channel l) and delivered to ims-ms (D).
    const dsnId = (await waitFor('the DSN\'s queue-dsn log record', () => mx.logs().find((l) => l.event === 'queue-dsn' && l.for === id)))['id'] as string;
    const de = await record(mx, 'E', dsnId, ALICE.address);
    assert.match(de.line, / l {12}ims-ms {7}E \d+ {2}rfc822;alice@example\.test alice@example\.test /);
    await record(mx, 'D', dsnId, ALICE.address);
  });

  test('a sender elsewhere (an internal host relaying) gets the DSN at its own MX, from the null sender', async () => {
    const id = await accepted(smtp(mx, '127.0.0.1', 'ops@sink.test', ['nobody@refuse.test'], 'from an internal host'));
    await record(mx, 'R', id, 'nobody@refuse.test');
    const [dsn] = await waitFor('the DSN at the sender\'s MX', () => (sinkFor('ops@sink.test').length > 0 ? sinkFor('ops@sink.test') : undefined));
    assert.match(dsn?.mailArgs ?? '', /^<> /);
    assert.match(dsn?.content ?? '', /^Content-Type: multipart\/report; report-type=delivery-status;/m);
    assert.match(dsn?.content ?? '', /^Final-Recipient: rfc822; nobody@refuse\.test$/m);
    await spoolGone(mx, id);
  });

  test('the null sender <> gets no DSN; relayed Internet mail (tcp_local in delivery.nobounce_sources) gets none either, but both are logged', async () => {
    const bounceOfBounce = await accepted(smtp(mx, '127.0.0.1', '<>', ['gone@refuse.test'], 'a bounce that bounces'));
    const relayed = await accepted(smtp(mx, '127.0.0.9', 'forged@victim.test', ['nobody@relayed.test'], 'relayed, forged sender'));
    const r1 = await record(mx, 'R', bounceOfBounce, 'gone@refuse.test');
    assert.match(r1.line, / tcp_intranet tcp_local {4}R 1 {2}rfc822;gone@refuse\.test gone@refuse\.test /);
    assert.equal(r1.json.from, '');
    const r2 = await record(mx, 'R', relayed, 'nobody@relayed.test');
    assert.match(r2.line, / tcp_local {4}tcp_local {4}R 1 forged@victim\.test rfc822;nobody@relayed\.test nobody@relayed\.test .* smtp;550 5\.1\.1 <nobody@relayed\.test>: Recipient address rejected: no such user$/);
    // A DSN is enqueued (and logged) before the failed message leaves the spool: once it is
    // finished, none was made.
    await spoolGone(mx, bounceOfBounce);
    await spoolGone(mx, relayed);
    for (const id of [bounceOfBounce, relayed]) {
      const done = await mx.waitForLog('queue-finished', (l) => l.id === id);
      assert.equal(done['failed'], 1);
      assert.equal(mx.logs().find((l) => l.event === 'queue-dsn' && l['for'] === id), undefined);
    }
    assert.deepEqual(sinkFor('forged@victim.test'), [], 'no backscatter to the forged sender');
  });

  test('451 at RCPT: a Q record, the message stays queued with its .state, and the retry after delivery.backoff (1s) delivers it', async () => {
    greylisting = true;
    const id = await accepted(submit(mx, ALICE, ['grey@grey.test'], 'greylisted'));
    const q = await record(mx, 'Q', id, 'grey@grey.test');
    assert.match(q.line, / tcp_auth {5}tcp_local {4}Q 1 alice@example\.test rfc822;grey@grey\.test grey@grey\.test .* smtp;451 4\.7\.1 Greylisted, try again later$/);
    const state = await waitFor('the delivery state', () => {
      if (!spoolFiles(mx, id).includes(`${id}.state`)) return undefined;
      try {
        return JSON.parse(readFileSync(join(mx.queueDir, `${id}.state`), 'utf8')) as { targets: { status: string; attempts: number; diagnostic: string; nextAttemptAt: number }[] };
      } catch {
        return undefined; // written by rename, but read while a retry replaces it
      }
    });
    assert.deepEqual(spoolFiles(mx, id), [`${id}.msg`, `${id}.state`]);
    assert.equal(state.targets[0]?.status, 'pending');
    assert.ok((state.targets[0]?.attempts ?? 0) >= 1);
    assert.match(state.targets[0]?.diagnostic ?? '', /^smtp;451 4\.7\.1 /);
    greylisting = false;
    const d = await record(mx, 'D', id, 'grey@grey.test');
    assert.match(d.line, / D 1 alice@example\.test rfc822;grey@grey\.test grey@grey\.test .* smtp;250 /);
    await spoolGone(mx, id);
    assert.ok(responder.commands.filter((c) => /RCPT TO:<grey@grey\.test>/i.test(c)).length >= 2, 'retried');
    assert.equal(responder.messages.filter((m) => m.rcpts.includes('grey@grey.test')).length, 1);
  });

  test('$H from ORIG_SEND_ACCESS holds the message (.held, never attempted); $B from MAIL_ACCESS discards it (D to bitbucket, nothing at the remote)', async () => {
    const held = await accepted(submit(mx, ALICE, ['held@sink.test'], 'to be held'));
    await mx.waitForLog('queue-held', (l) => l.id === held);
    assert.deepEqual(spoolFiles(mx, held), [`${held}.held`], 'held before anything is written');
    const envelope = JSON.parse(readFileSync(join(mx.queueDir, `${held}.held`), 'utf8').split('\n')[0] as string) as { flags: string[] };
    assert.deepEqual(envelope.flags, ['H']);
    assert.deepEqual(sinkFor('held@sink.test'), []);

    const dropped = await accepted(submit(mx, ALICE, ['discard@sink.test'], 'to be discarded'));
    const d = await record(mx, 'D', dropped, 'discard@sink.test');
    assert.match(d.line, new RegExp(` tcp_auth {5}bitbucket {4}D 1 alice@example\\.test rfc822;discard@sink\\.test discard@sink\\.test spool;${esc(dropped)} `));
    await spoolGone(mx, dropped);
    assert.match(d.line, / x-local;discarded \(\$B\)$/);
    assert.deepEqual(sinkFor('discard@sink.test'), []);
    // Nothing reached the MX for either: no transaction names them.
    assert.equal(sink.messages().filter((m) => /held@|discard@/.test(m.rcptArgs.join(' '))).length, 0);
  });

  test('seed 003 (spec §8.3): LOG_ACTION counts R records of an authenticated sender; past the quota FROM_ACCESS refuses that sender, another user goes on', async () => {
    // The count could be dodged with another envelope From: only her own address is taken.
    const other = await submit(mx, CAROL, ['x0@refuse.test'], 'as someone else', 'boss@example.test');
    assert.notEqual(other.code, 0);
    assert.match(other.stdout, /<~\* 550 5\.7\.1 Send as carol@example\.test only/, other.stdout);
    // Three recipients refused at RCPT (her address in other case: the table is nocase) and two after DATA: five R records.
    const a = await accepted(submit(mx, CAROL, ['x1@refuse.test', 'x2@refuse.test', 'x3@refuse.test'], 'spam 1', 'Carol@example.test'));
    for (const to of ['x1@refuse.test', 'x2@refuse.test', 'x3@refuse.test']) {
      const r = await record(mx, 'R', a, to);
      assert.match(r.line, new RegExp(` tcp_auth {5}tcp_local {4}R 1 Carol@example\\.test rfc822;${esc(to)} ${esc(to)} .* smtp;550 5\\.1\\.1 `));
    }
    // Three of five: still allowed.
    const b = await accepted(submit(mx, CAROL, ['y1@trap.test', 'y2@trap.test'], 'spam 2'));
    for (const to of ['y1@trap.test', 'y2@trap.test']) {
      const r = await record(mx, 'R', b, to);
      assert.match(r.line, / smtp;554 5\.7\.1 Message rejected: spam content detected$/);
    }
    const shown = await portcullis(['throttle', 'show', 'badrcpt', CAROL.address, '--json', '--config', mx.configDir]);
    assert.equal(shown.code, 0, shown.stderr);
    const view = JSON.parse(shown.stdout) as { keys: { key: string; count: number; over: boolean }[] };
    assert.equal(view.keys[0]?.key, CAROL.address, shown.stdout);
    assert.equal(view.keys[0]?.over, true, shown.stdout);
    assert.ok((view.keys[0]?.count ?? 0) >= QUOTA - 0.1, shown.stdout);

    const refused = await submit(mx, CAROL, ['friend@sink.test'], 'one more');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout, /<~\* 550 5\.7\.1 [\d.]+ recipients refused by remote servers this hour; sending suspended/, refused.stdout);
    // The refusal is itself a J record (spec §13.2).
    await waitFor('the J record of the refused MAIL FROM', () => textLog(mx).find((l) => / tcp_auth {18}J 0 carol@example\.test .*\(mapping:FROM_ACCESS\) smtp;550 5\.7\.1 /.test(l)));

    // Dave (no refusals) and alice (one, under the quota) are not affected.
    const ok = await accepted(submit(mx, DAVE, ['friend@sink.test'], 'from dave'));
    await record(mx, 'D', ok, 'friend@sink.test');
    const alsoOk = await accepted(submit(mx, ALICE, ['friend@sink.test'], 'from alice'));
    await record(mx, 'D', alsoOk, 'friend@sink.test');
    const senders = sinkFor('friend@sink.test').map((m) => /^<([^>]*)>/.exec(m.mailArgs)?.[1]);
    assert.deepEqual(senders.sort(), [ALICE.address, DAVE.address]);
  });
});
