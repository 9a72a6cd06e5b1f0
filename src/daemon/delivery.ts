// Wiring of delivery: the transports (SMTP to MX hosts or the smarthost, LMTP to the message
// store), the channel deliverer, and the queue runner over the spool. Built once at start; the
// runner reads retry and bounce settings from the current snapshot at each attempt.

import { join } from 'node:path';
import type { ConfigSnapshot, DeliveryOptions } from '../config/types.js';
import type { ChannelDelivery } from '../channels/model.js';
import type { RetryPolicy } from '../queue/state.js';
import { createLmtpTransport, createSmtpTransport, liveResolver } from '../delivery/index.js';
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
import type { Modifier, TransactionLog } from '../txlog/index.js';

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
  /** Stops the runner (attempts in flight get `graceMs`, then are aborted) and closes connections. */
  stop(graceMs?: number): Promise<void>;
}

/** The local channel's mailboxes go to the store channel, as alias expansion does at RCPT. */
const LOCAL_CHANNEL = 'l';
const STORE_CHANNEL = 'ims-ms';

export function startDelivery(deps: DeliveryDeps): Delivery {
  const initial = deps.snapshot().options;
  const resolver = liveResolver(() => deps.snapshot().options.delivery.dnsServers);
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
      lmtp ??= createLmtpTransport({ hostname: initial.hostname, resolver, perDestination: initial.delivery.perDestination, log: deps.log });
      return lmtp;
    },
    mailboxRoot: join(initial.dataDir, 'mailboxes'),
    mailboxExists: (address) => deps.directory().userByAddress(address) !== undefined,
    protocolOf: (channel) => deps.router().channel(channel)?.delivery.protocol ?? null,
  });
  const yes = parseFlagLetters('Y') as number;
  const runner = new QueueRunner({
    spool: deps.spool,
    deliverer,
    tx: deps.tx,
    log: deps.log,
    hostname: () => deps.snapshot().options.hostname,
    retry: (channel) => channelRetry(deps.snapshot().options.delivery, channel === null ? null : (deps.router().channel(channel)?.delivery ?? null)),
    maxJobs: (channel) => deps.router().channel(channel)?.delivery.maxJobs ?? null,
    bounces: (source) => !deps.snapshot().options.delivery.noBounceSources.includes(source.toLowerCase()),
    concurrency: initial.delivery.concurrency,
    perDestination: initial.delivery.perDestination,
    recipientLimit: () => deps.snapshot().options.delivery.recipientLimit,
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
    async stop(graceMs?: number) {
      await runner.stop(graceMs);
      await smtp.close();
      if (lmtp !== null) await lmtp.close();
    },
  };
}

/**
 * The runner's events as transaction-log records (spec §13.2): D delivered (DL over LMTP, DS over
 * TLS, DLS both; E for ESMTP is not written: PMDF's D forms have none), Q deferred, R failed
 * (returned to the sender, or recorded only when the source is in nobounce_sources), E for the
 * DSNs the runner enqueues. Each record goes through LOG_ACTION like the session's E and J.
 */
export function txSinkFor(txlog: TransactionLog, now: () => Date = () => new Date()): TxSink {
  return {
    enqueued: (env) => {
      for (const r of enqueueRecords(env, { esmtp: false, chunking: false, messageId: null }, now())) txlog.record(r);
    },
    dequeued: (env, t, channel, via) => {
      const modifiers: Modifier[] = [...(via?.lmtp === true ? (['L'] as const) : []), ...(via?.tls === true ? (['S'] as const) : [])];
      txlog.record(queueRecord(env, t, { action: 'D', destinationChannel: channel, modifiers, time: now() }));
    },
    deferred: (env, t, channel) => txlog.record(queueRecord(env, t, { action: 'Q', destinationChannel: channel, time: now() })),
    failed: (env, t, channel) => txlog.record(queueRecord(env, t, { action: 'R', destinationChannel: channel, time: now() })),
  };
}

const DAY_MS = 86_400_000;

/**
 * The retry policy of a destination channel: its imta.cnf `backoff` waits, the last of its
 * `notices` days as the maximum age and the others as delay warnings; what the channel does not
 * say comes from msg.conf (delivery.backoff, delivery.maxage; no warnings). Each wait is spread
 * by ±10 %.
 */
export function channelRetry(d: Pick<DeliveryOptions, 'backoffMs' | 'maxAgeMs'>, channel: ChannelDelivery | null): RetryPolicy {
  const backoffMs = channel?.backoffMs ?? (d.backoffMs.length > 0 ? d.backoffMs : [60_000]);
  const notices = channel?.noticesDays ?? null;
  if (notices === null || notices.length === 0) return { backoffMs, maxAgeMs: d.maxAgeMs, jitter: 0.1 };
  // notices 1 2 4 7: the sender is warned after 1, 2 and 4 days, the message returned after 7.
  const maxAgeMs = (notices[notices.length - 1] as number) * DAY_MS;
  const warnAtMs = notices.slice(0, -1).map((n) => n * DAY_MS).filter((ms) => ms < maxAgeMs);
  return { backoffMs, maxAgeMs, jitter: 0.1, warnAtMs };
}
