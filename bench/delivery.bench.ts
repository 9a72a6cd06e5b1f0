// End-to-end delivery speed (issue 6, "Speed"): smtp-source → relay (fsync) → smtp-sink, 20
// sessions, 5 KB messages, for a fixed time; messages/s sustained, with the queue not growing
// without bound, against Postfix relaying to the same sink in the same run.
//
// Relays (bench/delivery-peers.ts), measured one after the other against one smtp-sink:
//   portcullis  the real executable as `portcullis init` configures it (127.0.0.1 is INTERNAL_IP
//               and may relay), the queue runner on, delivery.smarthost = the sink; its other
//               delivery settings at their defaults unless BENCH_DELIVERY_CONF sets them. Every
//               message is fsynced into the spool before the 250 (docs/spool.md), then delivered
//               and removed by the runner.
//   postfix     a private instance (own config_directory and queue_directory in the temp directory,
//               `postfix -c DIR start`), relayhost = [127.0.0.1]:sinkport, smtpd directly on the
//               port, no DNS, other settings at their defaults (in_flow_delay 1s: smtpd slows the
//               clients down when qmgr falls behind). Needs root; skipped with the reason otherwise.
// The sink is smtp-sink -c (a running counter, no dump files: it writes nothing to disk).
//
// Per relay: a warm-up (1,000 messages, then wait for an empty queue); then smtp-source -s 20 -l
// 5120 (new connection per message; BENCH_DELIVERY_REUSE=1 adds -d) runs for the duration and is
// stopped; then the queue is left to drain. Every second: messages accepted (smtp-source's
// counter), delivered (the sink's counter), queued (Portcullis: *.msg files in the spool; Postfix:
// files in maildrop, incoming, active, deferred and hold).
//
// Reported: accepted msg/s over the run, and the 1-second rates (min / median / max, first second
// left out); delivered msg/s during the run; queue depth max and at the end of the load, and its
// growth over the second half of the run (least-squares slope, messages per second: near 0 means
// the relay keeps up, a steady positive slope is a queue growing without bound); how long the queue
// took to drain afterwards, and delivered messages against accepted ones over the whole run.
//
// The relays are measured one after the other on a disk whose fsync rate can drift several-fold
// within minutes (shared machines): the fsync rate just before each relay's load is printed with
// its results; compare runs, not single numbers.
//
// Environment: BENCH_DELIVERY_SECONDS (default 60), BENCH_DELIVERY_SESSIONS (default 20),
// BENCH_DELIVERY_REUSE=1, BENCH_DELIVERY_ONLY (portcullis,postfix), BENCH_DELIVERY_CONF (extra
// Portcullis msg.conf settings, "key=value,key=value"), BENCH_DELIVERY_DRAIN (longest wait for the
// drain, seconds, default 300), BENCH_DELIVERY_KEEP=1 (keep the temp directory and logs).

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CountingSink, startPortcullisRelay, startPostfixRelay } from './delivery-peers.js';
import type { Relay, RelayStart } from './delivery-peers.js';
import { diskLine } from './disk-probe.js';
import { installHandlers, killQuietly, onEmergency, runEmergency } from './processes.js';
import { SMTP_SOURCE, median, table } from './smtp.bench.js';

const SECONDS = Math.max(1, Number(process.env.BENCH_DELIVERY_SECONDS ?? '60') || 60);
const SESSIONS = Math.max(1, Number(process.env.BENCH_DELIVERY_SESSIONS ?? '20') || 20);
const REUSE = process.env.BENCH_DELIVERY_REUSE === '1';
const DRAIN_SECONDS = Math.max(1, Number(process.env.BENCH_DELIVERY_DRAIN ?? '300') || 300);
const PAYLOAD_BYTES = 5120;
const WARMUP_MESSAGES = 1000;
const FROM = 'a@client.test';
const TO = 'rcpt@remote.test';
const HELO = 'bench.client.test';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Sample {
  /** Seconds since the load started. */
  readonly t: number;
  readonly accepted: number;
  readonly delivered: number;
  readonly queued: number;
}

interface Result {
  readonly name: string;
  skipped: string | null;
  settings: string;
  seconds: number;
  accepted: number;
  /** Delivered while the load ran. */
  deliveredDuringLoad: number;
  /** Delivered by the end of the drain. */
  deliveredTotal: number;
  samples: Sample[];
  /** Seconds from the end of the load until the queue was empty; null if it never was. */
  drainSeconds: number | null;
  notes: string[];
}

/** smtp-source with its running counter (-c: "N\r" after each message), for as long as it is let run. */
class Source {
  private count = 0;
  private tail = '';
  private stderr = '';
  private readonly exited: Promise<number | null>;
  private readonly child;

  constructor(port: number, messages: number) {
    const args = [...(REUSE ? ['-d'] : []), '-c', '-s', String(SESSIONS), '-m', String(messages), '-l', String(PAYLOAD_BYTES), '-M', HELO, '-f', FROM, '-t', TO, `127.0.0.1:${port}`];
    this.child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = this.child.pid;
    const forget = pid !== undefined ? onEmergency(() => killQuietly(pid, 'SIGKILL')) : () => undefined;
    this.child.stdout.setEncoding('latin1');
    this.child.stdout.on('data', (d: string) => {
      this.tail = (this.tail + d).slice(-64);
      const all = [...this.tail.matchAll(/(\d+)\r/g)];
      const last = all[all.length - 1];
      if (last) this.count = Number(last[1]);
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-2000)));
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => {
        forget();
        resolve(code);
      });
      this.child.once('error', (e) => {
        this.stderr += e.message;
        forget();
        resolve(null);
      });
    });
  }

  /** Messages the relay has answered 250 to after the data. */
  get accepted(): number {
    return this.count;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get errors(): string {
    return this.stderr.trim().split('\n').slice(-2).join(' | ');
  }

  /** Waits for it to finish by itself. */
  async done(): Promise<number | null> {
    return this.exited;
  }

  /** Stops it (the transactions in progress are abandoned). */
  async stop(): Promise<void> {
    if (this.running) this.child.kill('SIGTERM');
    await this.exited;
  }
}

async function waitEmpty(relay: Relay, seconds: number, onSecond?: () => Promise<void>): Promise<number | null> {
  const t0 = performance.now();
  let nextTick = 1000;
  while (performance.now() - t0 < seconds * 1000) {
    if ((await relay.queued()) === 0) return (performance.now() - t0) / 1000;
    await sleep(100);
    if (onSecond && performance.now() - t0 >= nextTick) {
      nextTick += 1000;
      await onSecond();
    }
  }
  return null;
}

/** Least-squares slope of queue depth over time (messages per second). */
function slope(samples: readonly Sample[]): number {
  if (samples.length < 2) return NaN;
  const mt = samples.reduce((s, x) => s + x.t, 0) / samples.length;
  const mq = samples.reduce((s, x) => s + x.queued, 0) / samples.length;
  let num = 0;
  let den = 0;
  for (const x of samples) {
    num += (x.t - mt) * (x.queued - mq);
    den += (x.t - mt) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

async function measure(relay: Relay, sink: CountingSink, result: Result, work: string): Promise<void> {
  process.stdout.write(`  ${relay.name}: warm-up (${WARMUP_MESSAGES} messages)`);
  const warm = new Source(relay.port, WARMUP_MESSAGES);
  const code = await warm.done();
  if (code !== 0) result.notes.push(`warm-up: smtp-source exited ${String(code)}: ${warm.errors}`);
  if ((await waitEmpty(relay, 120)) === null) result.notes.push('warm-up: the queue did not empty within 120 s');
  process.stdout.write(' done\n');
  // The relays run one after the other and the disk's fsync rate drifts over minutes: this says
  // what disk each one had.
  result.notes.push(`disk just before the load: ${await diskLine(work)}`);

  const base = sink.messages;
  const delivered = (): number => sink.messages - base;
  // More messages than any relay here takes in the time: the run is ended by the clock.
  const source = new Source(relay.port, 100_000_000);
  const t0 = performance.now();
  const now = (): number => (performance.now() - t0) / 1000;
  const sample = async (): Promise<Sample> => {
    const s = { t: now(), accepted: source.accepted, delivered: delivered(), queued: await relay.queued() };
    result.samples.push(s);
    return s;
  };
  for (let sec = 1; sec <= SECONDS; sec++) {
    await sleep(Math.max(0, sec * 1000 - (performance.now() - t0)));
    const s = await sample();
    if (sec % 10 === 0 || sec === SECONDS) console.log(`    ${String(sec).padStart(3)} s: accepted ${s.accepted}, delivered ${s.delivered}, queued ${s.queued}`);
    if (!source.running) {
      result.notes.push(`smtp-source ended after ${s.t.toFixed(1)} s: ${source.errors}`);
      break;
    }
  }
  result.seconds = now();
  await source.stop();
  result.accepted = source.accepted;
  result.deliveredDuringLoad = delivered();
  const drainT0 = performance.now();
  result.drainSeconds = await waitEmpty(relay, DRAIN_SECONDS, async () => void (await sample()));
  if (result.drainSeconds === null) result.notes.push(`the queue did not drain within ${DRAIN_SECONDS} s (${await relay.queued()} left)`);
  // The sink's counter moves when the last reply is read; give it a moment after the queue empties.
  const settle = performance.now() + 2000;
  let last = -1;
  while (performance.now() < settle && delivered() !== last) {
    last = delivered();
    await sleep(200);
  }
  result.deliveredTotal = delivered();
  console.log(`    drained in ${result.drainSeconds === null ? '-' : result.drainSeconds.toFixed(1)} s (${((performance.now() - drainT0) / 1000).toFixed(1)} s with the settle); delivered ${result.deliveredTotal} of ${result.accepted} accepted`);
}

// ---------------------------------------------------------------------------------------------
// Report

function perSecond(samples: readonly Sample[], field: 'accepted' | 'delivered', until: number): number[] {
  const load = samples.filter((s) => s.t <= until + 0.5);
  const rates: number[] = [];
  for (let i = 2; i < load.length; i++) {
    const a = load[i - 1] as Sample;
    const b = load[i] as Sample;
    rates.push((b[field] - a[field]) / (b.t - a.t));
  }
  return rates;
}

function report(results: readonly Result[], disk: readonly string[], elapsed: number): void {
  console.log('');
  console.log(`Delivery: smtp-source -s ${SESSIONS} -l ${PAYLOAD_BYTES}${REUSE ? ' -d' : ''} → relay (fsync) → smtp-sink, ${SECONDS} s of load per relay, then the queue drains.`);
  console.log('1-second rates: min / median / max, first second left out. Queue growth: slope over the second half of the load.');
  console.log('');
  const rows: string[][] = [
    ['relay', '', 'accepted msg/s', '1 s rates', 'delivered msg/s', '1 s rates', 'queue max', 'queue at end', 'growth msg/s', 'drain s', 'delivered/accepted'],
  ];
  const fmt = (xs: number[]): string => (xs.length ? `${Math.min(...xs).toFixed(0)}/${median(xs).toFixed(0)}/${Math.max(...xs).toFixed(0)}` : '-');
  for (const r of results) {
    if (r.skipped !== null) {
      rows.push([r.name, '', 'skipped', '', '', '', '', '', '', '', '']);
      continue;
    }
    const load = r.samples.filter((s) => s.t <= r.seconds + 0.5);
    const second = load.filter((s) => s.t >= r.seconds / 2);
    const end = load[load.length - 1];
    rows.push([
      r.name,
      '',
      (r.accepted / r.seconds).toFixed(0),
      fmt(perSecond(r.samples, 'accepted', r.seconds)),
      (r.deliveredDuringLoad / r.seconds).toFixed(0),
      fmt(perSecond(r.samples, 'delivered', r.seconds)),
      String(Math.max(0, ...load.map((s) => s.queued))),
      end ? String(end.queued) : '-',
      slope(second).toFixed(1),
      r.drainSeconds === null ? 'no' : r.drainSeconds.toFixed(1),
      `${r.deliveredTotal}/${r.accepted}`,
    ]);
  }
  console.log(table(rows));
  const p = results.find((r) => r.name === 'portcullis' && r.skipped === null);
  const q = results.find((r) => r.name === 'postfix' && r.skipped === null);
  if (p && q) {
    console.log('');
    console.log(
      `portcullis / postfix: accepted ${(p.accepted / p.seconds / (q.accepted / q.seconds)).toFixed(2)}x, delivered during the load ${(p.deliveredDuringLoad / p.seconds / (q.deliveredDuringLoad / q.seconds)).toFixed(2)}x`,
    );
  }
  console.log('');
  for (const r of results) {
    console.log(`${r.name}: ${r.skipped !== null ? `SKIPPED: ${r.skipped}` : r.settings}`);
    if (r.skipped === null) {
      const series = r.samples.filter((_, i) => (i + 1) % 5 === 0).map((s) => `${s.t.toFixed(0)}s:${s.queued}`);
      console.log(`  queue every 5 s: ${series.join(' ')}`);
    }
    for (const n of r.notes) console.log(`  ${n}`);
  }
  for (const d of disk) console.log(d);
  console.log(`total run time ${elapsed.toFixed(1)} s`);
}

// ---------------------------------------------------------------------------------------------

function extraConf(): [string, string][] {
  const text = process.env.BENCH_DELIVERY_CONF ?? '';
  return text
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((kv): [string, string] => {
      const i = kv.indexOf('=');
      if (i <= 0) throw new Error(`BENCH_DELIVERY_CONF: "${kv}" is not key=value`);
      return [kv.slice(0, i).trim(), kv.slice(i + 1).trim()];
    });
}

export async function runDeliveryBench(): Promise<void> {
  const t0 = performance.now();
  installHandlers();
  if (!existsSync(SMTP_SOURCE)) {
    console.log(`skipped: ${SMTP_SOURCE} not found (Debian package postfix provides smtp-source and smtp-sink)`);
    return;
  }
  const only = process.env.BENCH_DELIVERY_ONLY?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const extra = extraConf();
  const work = mkdtempSync(join(tmpdir(), 'portcullis-bench-delivery-'));
  chmodSync(work, 0o755); // Postfix's unprivileged daemons must reach their queue below it
  const keep = process.env.BENCH_DELIVERY_KEEP === '1';
  const removeWork = onEmergency(() => {
    if (!keep) rmSync(work, { recursive: true, force: true });
  });
  console.log(`work directory ${work}; ${SECONDS} s of load per relay (BENCH_DELIVERY_SECONDS)`);
  const relays: { name: string; start: (sinkPort: number) => Promise<RelayStart> }[] = [
    { name: 'portcullis', start: (port) => startPortcullisRelay(work, port, extra) },
    { name: 'postfix', start: (port) => startPostfixRelay(work, port) },
  ];
  const results: Result[] = [];
  const disk: string[] = [];
  let sink: CountingSink | null = null;
  try {
    disk.push(`disk before: ${await diskLine(work)}`);
    sink = await CountingSink.start();
    console.log(`smtp-sink on port ${sink.port}`);
    for (const r of relays) {
      const result: Result = { name: r.name, skipped: null, settings: '', seconds: 0, accepted: 0, deliveredDuringLoad: 0, deliveredTotal: 0, samples: [], drainSeconds: null, notes: [] };
      results.push(result);
      if (only && !only.includes(r.name)) {
        result.skipped = 'not selected (BENCH_DELIVERY_ONLY)';
        continue;
      }
      let started: RelayStart;
      try {
        started = await r.start(sink.port);
      } catch (e) {
        started = { ok: false, reason: e instanceof Error ? e.message : String(e) };
      }
      if (!started.ok) {
        result.skipped = started.reason;
        console.log(`${r.name}: SKIPPED: ${started.reason}`);
        if (r.name === 'portcullis') process.exitCode = 1;
        continue;
      }
      const relay = started.relay;
      result.settings = relay.settings;
      console.log(`${relay.name}: pid ${relay.pid}, port ${relay.port}`);
      try {
        await measure(relay, sink, result, work);
      } catch (e) {
        result.notes.push(`measurement aborted: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        process.exitCode = 1;
      } finally {
        await relay.stop();
        try {
          result.notes.push(...relay.logReport());
        } catch (e) {
          result.notes.push(`log not readable: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
    disk.push(`disk after:  ${await diskLine(work)}`);
  } finally {
    await sink?.stop();
    runEmergency(); // anything still registered: leftover processes, then the work directory
    removeWork();
  }
  report(results, disk, (performance.now() - t0) / 1000);
  if (keep) console.log(`kept ${work}`);
}
