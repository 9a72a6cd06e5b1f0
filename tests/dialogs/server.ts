// An in-process SMTP server on real loopback sockets for dialog tests: the real listener, session,
// directory store and spool, with options built here instead of read from msg.conf.

import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Options } from '../../src/config/types.js';
import { DirectoryStore } from '../../src/directory/store.js';
import { BasicPolicy } from '../../src/policy/basic-policy.js';
import { Spool } from '../../src/queue/spool.js';
import { SmtpListeners } from '../../src/smtp/server/listener.js';
import { MemoryLogger } from '../../src/telemetry/log.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TestServer {
  readonly port: number;
  readonly spool: Spool;
  readonly log: MemoryLogger;
  readonly dataDir: string;
  close(): Promise<void>;
}

export async function startTestServer(over: Partial<Options['limits']> = {}, extra: Partial<Options> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portcullis-dialog-'));
  const port = await freePort();
  const options: Options = {
    hostname: 'mx.example.test',
    listenAddresses: ['127.0.0.1'],
    ports: { smtp: port, submit: 0, smtps: 0 },
    tls: { certFile: null, keyFile: null },
    dataDir,
    limits: {
      maxMessageSize: 1000,
      maxRecipients: 3,
      maxConnections: 50,
      maxConnectionsPerIp: 50,
      commandTimeoutMs: 10_000,
      dataTimeoutMs: 10_000,
      maxErrors: 5,
      maxAuthFailures: 3,
      ...over,
    },
    proxyHosts: [],
    xclientHosts: [],
    authWithoutTls: true,
    greetingDelayMs: 0,
    ...extra,
  };
  const opened = await DirectoryStore.open(dataDir);
  if (!opened.ok) throw new Error(opened.error.message);
  const directory = opened.value;
  for (const r of [await directory.addDomain('example.test'), await directory.addUser({ address: 'alice@example.test', password: 'alice-secret' })]) {
    if (!r.ok) throw new Error(r.error.message);
  }
  const spool = Spool.open(dataDir);
  const log = new MemoryLogger();
  const policy = new BasicPolicy(
    () => directory,
    () => options,
  );
  const listeners = new SmtpListeners(
    {
      options: () => options,
      directory: () => directory,
      policy: () => policy,
      spool,
      log,
      now: () => new Date('2026-11-24T05:41:48Z'),
      xclientAllowed: () => false,
      tlsContext: () => null,
    },
    log,
  );
  await listeners.listen(options);
  return { port, spool, log, dataDir, close: () => listeners.close(0) };
}
