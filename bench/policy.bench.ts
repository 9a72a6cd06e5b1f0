// The access tables' CPU cost per message (issue 4: at most 10 %), measured without sockets or
// disks, whose noise swamps it in the end-to-end benchmark: one message's policy work on the init
// configuration plus the seed FROM_ACCESS entries, for an Internet client — PORT_ACCESS twice,
// switchchannel (INTERNAL_IP), FROM_ACCESS, and for one local recipient the rewrite,
// ORIG_SEND_ACCESS, ORIG_MAIL_ACCESS, alias expansion, SEND_ACCESS and MAIL_ACCESS.
// Compare with the server CPU per message that `npm run bench:smtp` prints.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/load.js';
import { routerFor } from '../src/daemon/daemon.js';
import { initServer } from '../src/daemon/setup.js';
import { DirectoryStore } from '../src/directory/store.js';
import { MappingPolicy } from '../src/policy/mapping-policy.js';
import type { ConnectionFacts } from '../src/policy/session-policy.js';
import { parsePath } from '../src/smtp/commands.js';
import type { MailParams, Path } from '../src/smtp/commands.js';

const SEED_FROM_ACCESS = `
FROM_ACCESS
  TCP|*|25|*|*|SMTP*|*|tcp_local|*@*|*  $C$}$6,_canonical_name_{$N$ -$ Authentication$ required$ when$ sending$ with$ this$ envelope$ sender$ domain$E
  *|SMTP*|*|tcp_auth|*@*|*@$4*          $Y
  *|SMTP*|*|tcp_auth|*@*|*@*            $N$_Sender$ address$ rejected$ for$ $4
`;

function path(text: string, allowNull: boolean): Path {
  const p = parsePath(text, allowNull);
  if (!p.ok) throw new Error(p.text);
  return p.path;
}

export async function runPolicyBench(): Promise<void> {
  const dir = join(mkdtempSync(join(tmpdir(), 'portcullis-bench-policy-')), 'config');
  const init = await initServer(dir, { domain: 'example.test', hostname: 'mx.example.test' });
  if (!init.ok) throw new Error(init.message);
  const mappings = readFileSync(join(dir, 'mappings'), 'utf8').replace(/^INTERNAL_IP\n[\s\S]*?\n\n/m, 'INTERNAL_IP\n  192.0.2.10  $Y\n  *  $N\n\n');
  writeFileSync(join(dir, 'mappings'), mappings + SEED_FROM_ACCESS);
  const opened = await DirectoryStore.open(join(dir, 'data'));
  if (!opened.ok) throw new Error(opened.error.message);
  const directory = opened.value;
  await directory.addUser({ address: 'bench@example.test', password: 'bench-password' });
  const loaded = loadConfig(dir, { services: { libraries: [], directory } });
  if (!loaded.ok) throw new Error(loaded.problems.map((p) => p.message).join('\n'));
  const snapshot = loaded.snapshot;
  const router = routerFor(snapshot, directory);
  const policy = new MappingPolicy({ config: () => snapshot, router: () => router, directory: () => directory });
  const conn: ConnectionFacts = { service: 'smtp', localIp: '127.0.0.1', localPort: 25, clientIp: '203.0.113.7', clientPort: 40000, via: null };
  const from = path('<a@remote.test>', true);
  const to = path('<bench@example.test>', false);
  const params: MailParams = { size: null, body: null, smtputf8: false, ret: null, envid: null, auth: null };
  const once = async (): Promise<void> => {
    await policy.connect(conn);
    const channel = await policy.sourceChannel(conn);
    const facts = { ...conn, helo: 'bench.example', esmtp: true, tls: null, authUser: null, channel };
    await policy.mail(facts, from, params);
    await policy.rcpt(facts, from, to, { notify: null, orcpt: null }, { rcptCount: 1, recipientCount: 0 });
  };
  for (let i = 0; i < 20_000; i++) await once();
  const n = 50_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await once();
  const us = Number(process.hrtime.bigint() - t0) / n / 1000;
  console.log(`policy work per message (1 connection, 1 MAIL, 1 local RCPT): ${us.toFixed(1)} µs of CPU (${(1e6 / us / 1000).toFixed(1)} k messages/s on one core)`);
}
