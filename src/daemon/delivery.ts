// Wiring of delivery: the transports (SMTP to MX hosts or the smarthost, LMTP to the message
// store), the channel deliverer, and the queue runner over the spool. Built once at start; the
// runner reads retry and bounce settings from the current snapshot at each attempt.

import { Resolver } from 'node:dns/promises';
import { join } from 'node:path';
import type { ConfigSnapshot } from '../config/types.js';
import { createLmtpTransport, createSmtpTransport } from '../delivery/index.js';
import type { Transport } from '../delivery/index.js';
import type { Directory } from '../directory/types.js';
import type { Router } from '../channels/routing.js';
import { mapAsync, parseFlagLetters } from '../mapping/index.js';
import { ChannelDeliverer } from '../queue/channel-deliverer.js';
import { QueueRunner } from '../queue/runner.js';
import type { Spool } from '../queue/spool.js';
import type { TxSink } from '../queue/txsink.js';
import type { Logger } from '../telemetry/log.js';
import { enqueueRecords, queueRecord } from '../txlog/index.js';
import type { TransactionLog } from '../txlog/index.js';

export interface DeliveryDeps {
  readonly snapshot: () => ConfigSnapshot;
  readonly router: () => Router;
  readonly directory: () => Directory;
  readonly spool: Spool;
  readonly tx: TxSink;
  readonly log: Logger;
}

export interface Delivery {
  readonly runner: QueueRunner;
  stop(): Promise<void>;
}

/** The local channel's mailboxes go to the store channel, as alias expansion does at RCPT. */
const LOCAL_CHANNEL = 'l';
const STORE_CHANNEL = 'ims-ms';

export function startDelivery(deps: DeliveryDeps): Delivery {
  const initial = deps.snapshot().options;
  const resolver = new Resolver({ timeout: 5000, tries: 2 });
  const smtp = createSmtpTransport({
    hostname: initial.hostname,
    resolver,
    mxPort: initial.delivery.mxPort,
    perDestination: initial.delivery.perDestination,
    log: deps.log,
  });
  let lmtp: Transport | null = null;
  const deliverer = new ChannelDeliverer({
    options: () => deps.snapshot().options.delivery,
    smtp,
    lmtp: () => {
      if (deps.snapshot().options.delivery.lmtp === null) return null;
      lmtp ??= createLmtpTransport({ hostname: initial.hostname, resolver, log: deps.log });
      return lmtp;
    },
    mailboxRoot: join(initial.dataDir, 'mailboxes'),
    mailboxExists: (address) => deps.directory().userByAddress(address) !== undefined,
  });
  const yes = parseFlagLetters('Y') as number;
  const runner = new QueueRunner({
    spool: deps.spool,
    deliverer,
    tx: deps.tx,
    log: deps.log,
    hostname: () => deps.snapshot().options.hostname,
    retry: () => {
      const d = deps.snapshot().options.delivery;
      return { backoffMs: d.backoffMs.length > 0 ? d.backoffMs : [60_000], maxAgeMs: d.maxAgeMs, jitter: 0.1 };
    },
    bounces: (source) => !deps.snapshot().options.delivery.noBounceSources.includes(source.toLowerCase()),
    concurrency: initial.delivery.concurrency,
    perDestination: initial.delivery.perDestination,
    route: async (address) => {
      const mappings = deps.snapshot().mappings;
      const r = await deps.router().destination(address, async (table, arg) => {
        const m = await mapAsync(mappings, table, arg);
        return { yes: (m.flags & yes) !== 0, output: m.output };
      });
      if (r === null) return null;
      if (r.channel.name === LOCAL_CHANNEL) {
        const user = deps.directory().userByAddress(r.address);
        return user === undefined ? { channel: LOCAL_CHANNEL, address: r.address } : { channel: STORE_CHANNEL, address: user.address };
      }
      return { channel: r.channel.name, address: r.address };
    },
  });
  return {
    runner,
    async stop() {
      await runner.stop();
      await smtp.close();
      if (lmtp !== null) await lmtp.close();
    },
  };
}

/**
 * The runner's events as transaction-log records (spec §13.2): D delivered, Q deferred, R failed
 * (returned to the sender, or recorded only when the source is in nobounce_sources), E for the
 * DSNs the runner enqueues. Each record goes through LOG_ACTION like the session's E and J.
 */
export function txSinkFor(txlog: TransactionLog, now: () => Date = () => new Date()): TxSink {
  return {
    enqueued: (env) => {
      for (const r of enqueueRecords(env, { esmtp: false, chunking: false, messageId: null }, now())) txlog.record(r);
    },
    dequeued: (env, t, channel) => txlog.record(queueRecord(env, t, { action: 'D', destinationChannel: channel, time: now() })),
    deferred: (env, t, channel) => txlog.record(queueRecord(env, t, { action: 'Q', destinationChannel: channel, time: now() })),
    failed: (env, t, channel) => txlog.record(queueRecord(env, t, { action: 'R', destinationChannel: channel, time: now() })),
  };
}
