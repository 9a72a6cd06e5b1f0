// An in-process server for dialog tests: the real daemon (listeners, sessions, access-table policy,
// directory store, spool) on a real loopback port, with a configuration written by `init` and
// adjusted here. The client (127.0.0.1) is made external by the INTERNAL_IP table below, so the
// default access tables treat it as an Internet client.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../src/daemon/daemon.js';
import { initServer } from '../../src/daemon/setup.js';
import type { Spool } from '../../src/queue/spool.js';
import { freePort } from '../support/free-port.js';
export { freePort } from '../support/free-port.js';

export interface TestServer {
  readonly port: number;
  readonly spool: Spool;
  readonly dataDir: string;
  close(): Promise<void>;
}

/** msg.conf values for the dialogs: small limits so each can be reached in a few lines. */
const SETTINGS: Record<string, string> = {
  'service.listenaddr': '127.0.0.1',
  'service.submit.port': '0',
  'service.smtps.port': '0',
  'smtp.maxmessagesize': '1000',
  'smtp.maxrecipients': '3',
  'smtp.maxerrors': '5',
  'smtp.authwithouttls': 'yes',
  // The dialogs count what the SMTP service put in the queue: nothing may deliver it meanwhile.
  'delivery.runner': 'no',
};

export async function startTestServer(): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-dialog-'));
  const config = join(dir, 'config');
  const init = await initServer(config, { domain: 'example.test', hostname: 'mx.example.test' });
  if (!init.ok) throw new Error(init.message);
  const port = await freePort();
  let conf = readFileSync(join(config, 'msg.conf'), 'utf8');
  for (const [k, v] of Object.entries({ ...SETTINGS, 'service.smtp.port': String(port) })) {
    const line = new RegExp(`^!?\\s*${k.replaceAll('.', '\\.')}\\s*=.*$`, 'm');
    conf = line.test(conf) ? conf.replace(line, `${k} = ${v}`) : `${conf}\n${k} = ${v}\n`;
  }
  writeFileSync(join(config, 'msg.conf'), conf);
  const mappings = readFileSync(join(config, 'mappings'), 'utf8').replace(/^INTERNAL_IP\n[\s\S]*?\n\n/m, 'INTERNAL_IP\n  192.0.2.10  $Y\n  *  $N\n\n');
  writeFileSync(join(config, 'mappings'), mappings);
  const r = await Daemon.start({ configDir: config });
  if (!r.ok) throw new Error(r.error ?? r.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`).join('\n'));
  const daemon = r.daemon;
  const added = await daemon.directory.addUser({ address: 'alice@example.test', password: 'alice-secret' });
  if (!added.ok) throw new Error(added.error.message);
  return { port, spool: daemon.spool, dataDir: daemon.config.options.dataDir, close: () => daemon.stop(0) };
}
