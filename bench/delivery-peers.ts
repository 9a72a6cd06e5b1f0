// The programs `npm run bench:delivery` runs (bench/delivery.bench.ts): Postfix's smtp-sink as the
// remote MTA both relays deliver to, a private Postfix instance relaying to it, and Portcullis with
// its queue runner relaying to it (through bench/smtp.bench.ts's startPortcullis). Each relay is seen
// by the benchmark through `Relay`: its SMTP port and how many messages its queue holds.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { POSTCONF, startPrivatePostfix, statusCount } from './postfix-peer.js';
import { killQuietly, onEmergency, run, waitForGreeting } from './processes.js';
import { startPortcullis } from './smtp.bench.js';
import { freePort } from '../tests/support/free-port.js';
export { freePort } from '../tests/support/free-port.js';

export const SMTP_SINK = '/usr/sbin/smtp-sink';

// ---------------------------------------------------------------------------------------------
// smtp-sink with a running counter (-c): "sess=N quit=N mesg=N\r" after every event; no dump
// files, so the sink adds no disk writes to the fsyncs being measured.

export class CountingSink {
  private tail = '';
  private count = 0;

  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly forget: () => void,
  ) {
    child.stdout?.setEncoding('latin1');
    child.stdout?.on('data', (d: string) => {
      this.tail = (this.tail + d).slice(-200);
      const all = [...this.tail.matchAll(/mesg=(\d+)/g)];
      const last = all[all.length - 1];
      if (last) this.count = Number(last[1]);
    });
  }

  static async start(): Promise<CountingSink> {
    if (!existsSync(SMTP_SINK)) throw new Error(`${SMTP_SINK} not found (Debian package postfix)`);
    const port = await freePort();
    const root = process.getuid?.() === 0;
    // -u nobody is mandatory as root; backlog 1024: two relays' connection bursts.
    const child = spawn(SMTP_SINK, [...(root ? ['-u', 'nobody'] : []), '-c', `127.0.0.1:${port}`, '1024'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid;
    const forget = pid !== undefined ? onEmergency(() => killQuietly(pid, 'SIGKILL')) : () => undefined;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const sink = new CountingSink(port, child, forget);
    if (!(await waitForGreeting(port, 10_000, () => child.exitCode === null && child.signalCode === null))) {
      await sink.stop();
      throw new Error(`smtp-sink did not start on port ${port}: ${stderr.trim()}`);
    }
    return sink;
  }

  /** Messages received so far (smtp-sink's mesg counter). */
  get messages(): number {
    return this.count;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
      this.child.kill('SIGTERM');
      await gone;
    }
    this.forget();
  }
}

// ---------------------------------------------------------------------------------------------
// The relays

export interface Relay {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  /** What the relay is configured with, for the report. */
  readonly settings: string;
  /** Messages the relay holds and has not finished with. */
  queued(): Promise<number>;
  /** Problems in its logs after the run (one line each). */
  logReport(): string[];
  stop(): Promise<void>;
}

export type RelayStart = { readonly ok: true; readonly relay: Relay } | { readonly ok: false; readonly reason: string };

/**
 * Portcullis as `init` configures it (127.0.0.1 is INTERNAL_IP, so the client may relay; mail to
 * remote.test takes channel tcp_local), with the queue runner on and delivery.smarthost the sink.
 * `extra` adds msg.conf settings (BENCH_DELIVERY_CONF).
 */
export async function startPortcullisRelay(work: string, sinkPort: number, extra: readonly (readonly [string, string])[]): Promise<RelayStart> {
  const options: [string, string][] = [
    ['delivery.runner', 'yes'],
    ['delivery.smarthost', `127.0.0.1:${sinkPort}`],
    ...extra.map(([k, v]): [string, string] => [k, v]),
  ];
  const started = await startPortcullis(work, { name: 'portcullis', mappings: (initial) => initial, options });
  if (!started.ok) return started;
  const s = started.server;
  // startPortcullis keeps the configuration in <dir>/cfg and the data directory inside it.
  const queue = join(s.dir, 'cfg', 'data', 'queue');
  const check = await run(process.execPath, [join(import.meta.dirname, '..', 'src', 'cli', 'bin.js'), 'check', '--options']);
  const defaults = (key: string): string => new RegExp(`^${key.replace(/\./g, '\\.')}\\s.*?default: ([^)]+)\\)`, 'm').exec(check.stdout)?.[1] ?? '?';
  const setting = (key: string): string => extra.find(([k]) => k === key)?.[1] ?? defaults(key);
  return {
    ok: true,
    relay: {
      name: 'portcullis',
      port: s.port,
      pid: s.pid,
      settings: `delivery.concurrency ${setting('delivery.concurrency')}, delivery.perdestination ${setting('delivery.perdestination')}${extra.length ? `; ${extra.map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}`,
      queued: async () => (await readdir(queue)).filter((n) => n.endsWith('.msg')).length,
      logReport: () => s.logReport(),
      stop: () => s.stop(),
    },
  };
}

/**
 * A private Postfix (bench/postfix-peer.ts) relaying every message to [127.0.0.1]:sinkPort with
 * smtp(8), no DNS, no TLS. Needs root.
 */
export async function startPostfixRelay(work: string, sinkPort: number): Promise<RelayStart> {
  const started = await startPrivatePostfix(work, {
    comment: 'Generated by bench/delivery-peers.ts: a private Postfix relaying everything to the sink.',
    main: `myhostname = relay.bench.test
mydomain = bench.test
mydestination =
relayhost = [127.0.0.1]:${sinkPort}
smtp_tls_security_level = none
smtp_dns_support_level = disabled`,
    smtpTransports: true,
  });
  if (!started.ok) return started;
  const postfix = started.postfix;
  const postconf = await run(POSTCONF, ['-c', postfix.etc, '-h', 'default_destination_concurrency_limit', 'in_flow_delay', 'default_process_limit']);
  const [destLimit, inFlow, procLimit] = postconf.stdout.trim().split('\n');
  return {
    ok: true,
    relay: {
      name: 'postfix',
      port: postfix.port,
      pid: postfix.pid,
      settings: `Postfix ${(await run(POSTCONF, ['-d', '-h', 'mail_version'])).stdout.trim()}: default_destination_concurrency_limit ${destLimit}, default_process_limit ${procLimit}, in_flow_delay ${inFlow}`,
      queued: () => postfix.queued(),
      logReport: () => postfix.logReport((log) => `${statusCount(log, 'sent')} status=sent, ${statusCount(log, 'deferred')} status=deferred`),
      stop: () => postfix.stop(),
    },
  };
}
