// Wiring only: build the components from a configuration directory, start the listeners and the
// control socket, and swap configurations on reload. A reload builds a complete new snapshot and
// swaps it in at once, or keeps the running one and reports every problem; sessions in progress
// are never dropped (each reads the current snapshot at its next decision).

import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { loadConfig } from '../config/load.js';
import type { ConfigProblem, ConfigSnapshot, Options } from '../config/types.js';
import { cidrContains } from '../config/cidr.js';
import { DirectoryStore } from '../directory/store.js';
import type { Directory } from '../directory/types.js';
import type { Channel } from '../channels/model.js';
import type { CalloutServices } from '../mapping/index.js';
import { formatProblem } from '../mapping/index.js';
import { MappingPolicy } from '../policy/mapping-policy.js';
import { Router } from '../channels/routing.js';
import { Rewriter } from '../channels/rewrite.js';
import type { SessionPolicy } from '../policy/session-policy.js';
import { Spool } from '../queue/spool.js';
import { SmtpListeners } from '../smtp/server/listener.js';
import type { ListenerEnv } from '../smtp/server/listener.js';
import { jsonLogger } from '../telemetry/log.js';
import type { Logger } from '../telemetry/log.js';
import { serveControl } from './control.js';
import { throttleControl } from './throttle-control.js';
import { qmControl, runnerQueue, spoolQueue } from './qm-control.js';
import { serverCallouts } from './setup.js';
import { MeterMaid } from '../throttle/service.js';
import type { MeterEvent } from '../throttle/library.js';
import { TxLog } from '../txlog/index.js';
import type { DecisionSink } from '../policy/events.js';
import { startDelivery, txSinkFor } from './delivery.js';
import type { Delivery } from './delivery.js';
import type { ControlReply, ControlRequest } from './control.js';

export interface DaemonOptions {
  readonly configDir: string;
  /** Extra log sink (the CLI passes standard error). */
  readonly logSink?: { write(s: string): unknown };
}

export type StartResult =
  | { readonly ok: true; readonly daemon: Daemon }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[]; readonly error?: string };

function secureContext(o: Options): tls.SecureContext | null {
  if (o.tls.certFile === null || o.tls.keyFile === null) return null;
  return tls.createSecureContext({ cert: readFileSync(o.tls.certFile), key: readFileSync(o.tls.keyFile), minVersion: 'TLSv1.2' });
}

/** Settings that only take effect at start-up; a reload that changes them says so. */
function restartOnly(a: Options, b: Options): string[] {
  const out: string[] = [];
  if (a.ports.smtp !== b.ports.smtp || a.ports.submit !== b.ports.submit || a.ports.smtps !== b.ports.smtps) out.push('service ports');
  if (a.listenAddresses.join(',') !== b.listenAddresses.join(',')) out.push('service.listenaddr');
  if (a.dataDir !== b.dataDir) out.push('store.datadir');
  if (a.logLevel !== b.logLevel) out.push('log.level');
  if (a.delivery.runner !== b.delivery.runner) out.push('delivery.runner');
  if (a.delivery.concurrency !== b.delivery.concurrency || a.delivery.perDestination !== b.delivery.perDestination) out.push('delivery concurrency');
  if (a.delivery.mxPort !== b.delivery.mxPort) out.push('delivery.mx_port');
  if ((a.tls.certFile === null) !== (b.tls.certFile === null) && a.ports.smtps !== 0) out.push('TLS on port 465');
  return out;
}

/** Channels and rewrite rules of a snapshot, with hosted domains from the directory routed to `l`. */
export function routerFor(snapshot: ConfigSnapshot, directory: Directory): Router {
  const { channels, rules } = snapshot.routing;
  const local = channels.get('l');
  const hosted = (domain: string): { channel: Channel; canonical: string } | undefined => {
    const d = directory.domain(domain);
    return d !== undefined && local !== undefined ? { channel: local, canonical: d.canonical } : undefined;
  };
  return new Router(channels, new Rewriter(rules, channels, hosted));
}

export class Daemon {
  private snapshot: ConfigSnapshot;
  private tlsCtx: tls.SecureContext | null;
  private control: Server | null = null;
  private stopping = false;
  /** The queue runner and its transports; null with delivery.runner = no. */
  delivery: Delivery | null = null;
  readonly bound: { service: string; address: string; port: number }[] = [];

  private constructor(
    readonly configDir: string,
    snapshot: ConfigSnapshot,
    readonly directory: DirectoryStore,
    readonly spool: Spool,
    readonly log: Logger,
    private readonly services: (options: Options | null) => CalloutServices,
    readonly meter: MeterMaid,
    private readonly listeners: SmtpListeners,
    private readonly policy: SessionPolicy,
    /** The transaction log (spec §13): E and J from sessions; the queue runner adds D, R, Q. */
    readonly txlog: TxLog,
  ) {
    this.snapshot = snapshot;
    this.tlsCtx = secureContext(snapshot.options);
  }

  get config(): ConfigSnapshot {
    return this.snapshot;
  }

  private routerOf: { snapshot: ConfigSnapshot; router: Router } | null = null;

  /** The router for the current snapshot (rebuilt when a reload swaps the snapshot). */
  router(): Router {
    if (this.routerOf?.snapshot !== this.snapshot) this.routerOf = { snapshot: this.snapshot, router: routerFor(this.snapshot, this.directory) };
    return this.routerOf.router;
  }

  static async start(opts: DaemonOptions): Promise<StartResult> {
    // Mapping callouts see the directory through this indirection: the store opens after the
    // options (which name the data directory) are known.
    let dirRef: DirectoryStore | null = null;
    // MeterMaid reports through the log, which opens after the options are read.
    let logRef: Logger | null = null;
    const meter = new MeterMaid({
      onEvent: meterEventLogger(() => logRef),
      onStoreState: (state, detail) =>
        logRef?.log(state === 'ready' ? 'info' : 'warn', state === 'ready' ? 'metermaid-store-connected' : 'metermaid-store-lost', { detail }),
    });
    const services = serverCallouts(() => dirRef, meter);
    const loaded = loadConfig(opts.configDir, { services });
    if (!loaded.ok) return { ok: false, problems: loaded.problems };
    const snapshot = loaded.snapshot;
    const o = snapshot.options;
    mkdirSync(join(o.dataDir, 'log'), { recursive: true, mode: 0o750 });
    const sinks: { write(s: string): unknown }[] = [createWriteStream(join(o.dataDir, 'log', 'portcullis.log'), { flags: 'a', mode: 0o640 })];
    if (opts.logSink) sinks.push(opts.logSink);
    const log = jsonLogger(sinks, o.logLevel);
    logRef = log;
    meter.reconfigure(o.metermaid);
    if (o.metermaid.server !== null && !(await meter.ready())) {
      log.log('warn', 'metermaid-store-unavailable', {
        server: `${o.metermaid.server.host}:${o.metermaid.server.port}`,
        detail: 'starting anyway; MeterMaid tables answer per their on_error until the store is reachable',
      });
    }
    const opened = await DirectoryStore.open(o.dataDir);
    if (!opened.ok) return { ok: false, problems: [], error: opened.error.message };
    const directory = opened.value;
    dirRef = directory;
    const spool = Spool.open(o.dataDir);
    let daemon: Daemon | null = null;
    const current = (): Daemon => daemon as Daemon;
    const onDecision: DecisionSink = (e) =>
      log.log('debug', 'policy-decision', {
        phase: e.phase,
        table: e.table,
        probe: e.probe,
        flags: e.flags,
        decision: e.decision,
        entry: e.entry ? `${e.entry.file}:${e.entry.line}` : null,
      });
    const policy = new MappingPolicy({
      config: () => current().snapshot,
      router: () => current().router(),
      directory: () => current().directory,
      onDecision,
    });
    // The transaction log follows reloads (format, rotation, LOG_ACTION options and table); its
    // directory is <datadir>/log, which only a restart changes.
    const live = (): ConfigSnapshot => daemon?.snapshot ?? snapshot;
    const txlog = new TxLog({
      dir: join(o.dataDir, 'log'),
      options: () => live().options.transactions,
      paranoia: () => live().options.access.paranoia,
      mappings: () => live().mappings,
      log,
      onDecision,
      midnightTimer: true,
    });
    const env: ListenerEnv = {
      options: () => current().snapshot.options,
      directory: (): Directory => current().directory,
      policy: () => policy,
      spool,
      log,
      now: () => new Date(),
      xclientAllowed: (ip) => cidrContains(current().snapshot.options.xclientHosts, ip),
      tlsContext: () => current().tlsCtx,
      txlog,
    };
    const listeners = new SmtpListeners(env, log);
    daemon = new Daemon(opts.configDir, snapshot, directory, spool, log, services, meter, listeners, policy, txlog);
    for (const w of snapshot.warnings) log.log('warn', 'config-warning', { problem: formatProblem(w) });
    try {
      daemon.control = await serveControl(o.dataDir, (req) => current().handleControl(req));
      // The runner starts before the listeners: a message committed by the first session is
      // scheduled by the spool's commit hook; those queued before a restart are picked up here.
      if (o.delivery.runner) {
        daemon.delivery = startDelivery({
          snapshot: () => current().snapshot,
          router: () => current().router(),
          directory: () => current().directory,
          spool,
          tx: txSinkFor(txlog),
          log,
        });
        await daemon.delivery.runner.start();
      }
      daemon.bound.push(...(await listeners.listen(o)));
    } catch (err) {
      await daemon.stop(0);
      return { ok: false, problems: [], error: err instanceof Error ? err.message : String(err) };
    }
    log.log('info', 'server-started', { pid: process.pid, config: opts.configDir, listening: daemon.bound.map((b) => `${b.service}@${b.address}:${b.port}`) });
    return { ok: true, daemon };
  }

  /** Builds a new snapshot and swaps it in; on any error keeps the current one. */
  reload(): { ok: true; warnings: string[] } | { ok: false; problems: string[] } {
    const loaded = loadConfig(this.configDir, { services: this.services });
    if (!loaded.ok) {
      const problems = loaded.problems.map(formatProblem);
      this.log.log('warn', 'config-reload-refused', { problems });
      return { ok: false, problems };
    }
    let ctx: tls.SecureContext | null;
    try {
      ctx = secureContext(loaded.snapshot.options);
    } catch (err) {
      const problems = [`${loaded.snapshot.options.tls.certFile ?? 'TLS'}: ${err instanceof Error ? err.message : String(err)}`];
      this.log.log('warn', 'config-reload-refused', { problems });
      return { ok: false, problems };
    }
    const warnings = loaded.snapshot.warnings.map(formatProblem);
    for (const what of restartOnly(this.snapshot.options, loaded.snapshot.options)) {
      warnings.push(`${what} changed: takes effect after a restart`);
    }
    const storeNote = this.meter.reconfigure(loaded.snapshot.options.metermaid);
    if (storeNote !== undefined) warnings.push(storeNote);
    this.snapshot = loaded.snapshot;
    this.tlsCtx = ctx;
    this.txlog.reconfigure();
    this.log.log('info', 'config-reloaded', { warnings });
    return { ok: true, warnings };
  }

  private async handleControl(req: ControlRequest): Promise<ControlReply> {
    switch (req.cmd) {
      case 'reload': {
        const r = this.reload();
        if (!r.ok) return { ok: false, problems: r.problems };
        // `portcullis reload` also picks up hand edits of the directory file.
        const d = await this.directory.reload();
        const warnings = d.ok ? r.warnings : [...r.warnings, `directory not reloaded: ${d.error.message}`];
        return { ok: true, warnings };
      }
      case 'directory-reload': {
        const r = await this.directory.reload();
        if (!r.ok) {
          this.log.log('warn', 'directory-reload-failed', { error: r.error.message });
          return { ok: false, error: r.error.message };
        }
        this.log.log('info', 'directory-reloaded', { domains: r.value.domains, users: r.value.users });
        return { ok: true };
      }
      case 'throttle-show':
      case 'throttle-reset':
        return throttleControl(this.meter, req, this.log);
      case 'qm-list':
      case 'qm-show':
      case 'qm-delete':
      case 'qm-hold':
      case 'qm-release':
      case 'qm-counts':
        // With the runner, changes wait for an attempt in flight; without one nothing else moves messages.
        return qmControl(this.delivery !== null ? runnerQueue(this.spool, this.delivery.runner) : spoolQueue(this.spool), req, Date.now(), this.log);
      case 'status':
        return {
          ok: true,
          pid: process.pid,
          metermaid: this.meter.store.kind,
          connections: this.listeners.connections,
          // Queue size at a glance (seed 001's monitoring); `portcullis qm counts` has it per channel.
          queue: this.delivery?.runner.counts() ?? { messages: this.spool.list().length, held: this.spool.listHeld().length, inFlight: 0 },
          delivering: this.delivery !== null,
          configLoadedAt: new Date(this.snapshot.loadedAt).toISOString(),
          listening: this.bound.map((b) => `${b.service}@${b.address}:${b.port}`),
        };
    }
  }

  /** Stops accepting, lets sessions finish for up to `graceMs`, closes the control socket. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.log('info', 'server-stopping', { graceMs });
    // Sessions and delivery attempts get the same grace, side by side; what is left waits in the
    // spool (a message a session commits meanwhile is picked up at the next start).
    await Promise.all([this.listeners.close(graceMs), this.delivery?.stop(graceMs)]);
    await new Promise<void>((r) => (this.control ? this.control.close(() => r()) : r()));
    // After everything that writes records has stopped; LOG_ACTION still needs MeterMaid.
    await this.txlog.close();
    await this.meter.close();
    this.log.log('info', 'server-stopped', {});
  }
}

/**
 * Logs MeterMaid events: each over-quota decision at info; store errors at warn, at most one
 * record per table every 10 s (with the number suppressed), so an outage does not flood the log.
 */
function meterEventLogger(log: () => Logger | null): (e: MeterEvent) => void {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (e) => {
    const l = log();
    if (l === null) return;
    if (e.kind === 'over') {
      l.log('info', 'metermaid-over-quota', { table: e.table, key: e.key, count: Math.round(e.count * 100) / 100, routine: e.routine });
      return;
    }
    const now = Date.now();
    const seen = last.get(e.table);
    if (seen !== undefined && now - seen.at < 10_000) {
      seen.suppressed++;
      return;
    }
    last.set(e.table, { at: now, suppressed: 0 });
    l.log('warn', 'metermaid-error', { table: e.table, routine: e.routine, error: e.message, answer: e.answer, suppressed: seen?.suppressed ?? 0 });
  };
}
