// The transaction log and LOG_ACTION end to end (issue 6, spec §8.3, §13): the real executable,
// swaks over STARTTLS with AUTH on the submission port. An authenticated user who sends to unknown
// local recipients gets 550 5.1.1 for each (J records in mail.log_current and mail.jsonl);
// LOG_ACTION counts them in the MeterMaid table badrcpt (the §8.3 recipe for J records), and once
// over quota FROM_ACCESS refuses that user's MAIL FROM with "Too many rejected recipients" while
// other users go on sending. The accepted message has an E record per recipient with the
// session's modifiers; stopping the server flushes the log.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DOMAIN, portcullis, Server, swaks, waitFor } from './harness.js';

const ALICE = { address: `alice@${DOMAIN}`, password: 'alice-secret' } as const;
const BOB = { address: `bob@${DOMAIN}`, password: 'bob-secret' } as const;
const QUOTA = 5;

/** The §8.3 recipe, for J records (rejected at RCPT) of authenticated senders, appended to init's tables. */
const RECIPE = [
  '',
  '! Spec §8.3: count rejected recipients of authenticated senders, refuse their mail past the quota.',
  'LOG_ACTION',
  '  J|tcp_auth|*|*|*@*|*|*  $C$[IMTA_LIB:check_metermaid.so,throttle,badrcpt,$2@$3]$E',
  '',
  'FROM_ACCESS',
  '  *|SMTP*|*|tcp_auth|*|*  $C$[IMTA_LIB:check_metermaid.so,query,badrcpt,$4]$NToo$ many$ rejected$ recipients$E',
  '',
].join('\n');

let server: Server;

before(async () => {
  server = await Server.start({
    users: [ALICE, BOB],
    conf: {
      'metermaid.table.badrcpt.data_type': 'string',
      'metermaid.table.badrcpt.quota': String(QUOTA),
      'metermaid.table.badrcpt.quota_time': '3600',
    },
    mappings: ({ text }) => text + RECIPE,
  });
});

after(async () => {
  await server?.stop();
});

const logDir = (): string => join(server.dataDir, 'log');

function textLines(): string[] {
  const path = join(logDir(), 'mail.log_current');
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

interface JsonRec {
  code: string;
  source: string;
  destination: string;
  size: number;
  from: string;
  orcpt: string;
  to: string;
  spoolId: string | null;
  username: string | null;
  reason: string | null;
  diagnostic: string | null;
}

function jsonLines(): JsonRec[] {
  const path = join(logDir(), 'mail.jsonl');
  return existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as JsonRec)
    : [];
}

/** Waits until mail.log_current has a line matching `re` (records are written in the background). */
function waitLine(re: RegExp): Promise<string> {
  return waitFor(`a mail.log_current line matching ${re}`, () => textLines().find((l) => re.test(l)));
}

function submit(user: { address: string; password: string }, to: readonly string[], source: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return swaks([
    '--server', `127.0.0.1:${server.ports.submit}`, '--local-interface', source, '--ehlo', 'laptop.example',
    '--tls', '--tls-ca-path', server.certFile,
    '--auth', 'PLAIN', '--auth-user', user.address, '--auth-password', user.password,
    '--from', user.address, '--to', to.join(','),
  ]);
}

const nobody = (n: number): string => `nobody${n}@${DOMAIN}`;
const ESC = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('transaction log and LOG_ACTION (spec §8.3, §13)', () => {
  test('a message to one user and three unknown ones: one E record (ESMTP, TLS, SASL), three J records with the 550 5.1.1 reply', async () => {
    const r = await submit(ALICE, [`bob@${DOMAIN}`, nobody(1), nobody(2), nobody(3)], '127.0.0.51');
    assert.match(r.stdout, /<~\* 550 5\.1\.1 unknown or illegal alias: nobody1@example\.test/, r.stdout);
    const id = Server.idOf(r.stdout);
    const e = await waitLine(/ EESA /);
    assert.match(
      e,
      new RegExp(
        `^\\d\\d-[A-Z][a-z]{2}-\\d{4} \\d\\d:\\d\\d:\\d\\d\\.\\d\\d tcp_auth {5}ims-ms {7}EESA 1 ${ESC(ALICE.address)} rfc822;bob@example\\.test bob@example\\.test ` +
          `spool;${ESC(id)} <[^<> ]+@[^<> ]+> dns;laptop\\.example \\[127\\.0\\.0\\.51\\] auth;${ESC(ALICE.address)}$`,
      ),
    );
    for (const n of [1, 2, 3]) {
      const j = await waitLine(new RegExp(` rfc822;nobody${n}@`));
      assert.match(
        j,
        new RegExp(
          ` tcp_auth {5}l {12}J 0 ${ESC(ALICE.address)} rfc822;nobody${n}@example\\.test nobody${n}@example\\.test dns;laptop\\.example \\[127\\.0\\.0\\.51\\] ` +
            `auth;${ESC(ALICE.address)} \\(builtin:unknown-recipient\\) smtp;550 5\\.1\\.1 unknown or illegal alias: nobody${n}@example\\.test$`,
        ),
      );
    }
    // The same records for machines, sizes in bytes.
    const json = jsonLines();
    const enq = json.find((x) => x.code === 'EESA');
    assert.ok(enq !== undefined);
    assert.equal(enq.spoolId, id);
    assert.equal(enq.size, server.envelope(id).size);
    assert.deepEqual(
      json.filter((x) => x.code === 'J').map((x) => [x.to, x.destination, x.reason, x.diagnostic]),
      [1, 2, 3].map((n) => [nobody(n), 'l', 'builtin:unknown-recipient', `smtp;550 5.1.1 unknown or illegal alias: ${nobody(n)}`]),
    );
  });

  test('LOG_ACTION counted each J record in badrcpt; past the quota Alice is refused at MAIL FROM, Bob is not', async () => {
    // Three more unknown recipients: 6 rejections, over the quota of 5.
    const more = await submit(ALICE, [nobody(4), nobody(5), nobody(6)], '127.0.0.51');
    assert.notEqual(more.code, 0);
    assert.match(more.stdout, /<~\* 550 5\.1\.1 unknown or illegal alias: nobody6@example\.test/);
    await waitLine(/ rfc822;nobody6@/);
    const shown = await portcullis(['throttle', 'show', 'badrcpt', ALICE.address, '--json', '--config', server.configDir]);
    assert.equal(shown.code, 0, shown.stderr);
    const view = JSON.parse(shown.stdout) as { keys: { key: string; count: number; over: boolean }[] };
    assert.equal(view.keys[0]?.key, ALICE.address);
    assert.ok((view.keys[0]?.count ?? 0) >= QUOTA - 0.1, JSON.stringify(view));
    assert.equal(view.keys[0]?.over, true);

    const refused = await submit(ALICE, [`bob@${DOMAIN}`], '127.0.0.52');
    assert.notEqual(refused.code, 0);
    // query's result (the count) comes before the entry's text: spec §15.7 row 85, docs/compatibility.md.
    assert.match(refused.stdout, /<~\* 550 5\.7\.1 [\d.]*Too many rejected recipients/, refused.stdout);
    const j = await waitLine(/\(mapping:FROM_ACCESS\)/);
    assert.match(j, new RegExp(` tcp_auth {18}J 0 ${ESC(ALICE.address)} {3}dns;laptop\\.example \\[127\\.0\\.0\\.52\\] auth;${ESC(ALICE.address)} \\(mapping:FROM_ACCESS\\) smtp;550 5\\.7\\.1 [\\d.]*Too many rejected recipients$`));

    const bob = await submit(BOB, [ALICE.address], '127.0.0.53');
    assert.equal(bob.code, 0, bob.stdout + bob.stderr);
    await waitLine(new RegExp(`EESA 1 ${ESC(BOB.address)} rfc822;${ESC(ALICE.address)}`));
  });

  test('log.transactions.format is reloadable: after `reload` with json, new records go to mail.jsonl only', async () => {
    server.setConf({ 'log.transactions.format': 'json' });
    const reload = await portcullis(['reload', '--config', server.configDir]);
    assert.equal(reload.code, 0, reload.stdout + reload.stderr);
    const r = await submit(BOB, [ALICE.address], '127.0.0.55');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const id = Server.idOf(r.stdout);
    await waitFor('the JSON record', () => (jsonLines().some((x) => x.spoolId === id) ? true : undefined));
    assert.ok(!textLines().some((l) => l.includes(id)));
    server.setConf({ 'log.transactions.format': 'both' });
    assert.equal((await portcullis(['reload', '--config', server.configDir])).code, 0);
  });

  test('stopping the server flushes the log: the record of the last message is on disk', async () => {
    const r = await submit(BOB, [ALICE.address], '127.0.0.54');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const id = Server.idOf(r.stdout);
    const exit = await server.stop(10_000, true);
    assert.equal(exit.code, 0);
    try {
      assert.ok(textLines().some((l) => l.includes(`spool;${id}`)));
      assert.ok(jsonLines().some((x) => x.spoolId === id));
      assert.deepEqual(server.faults(), []);
    } finally {
      rmSync(server.dir, { recursive: true, force: true });
    }
  });
});
