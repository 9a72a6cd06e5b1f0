// SMTP service speed (issue 3, "Speed"): Portcullis against Postfix and Haraka, measured in the
// same run, on loopback, with 5 KB messages (smtp-source -l 5120: the payload after a few headers).
//
// Scenarios (each driven by Postfix's smtp-source, which speaks HELO/MAIL/RCPT/DATA/QUIT without
// pipelining and aborts on any reply other than the expected one):
//   1. 1 session,   a new connection per message
//   2. 20 sessions, a new connection per message
//   3. 1 session    reusing its connection (smtp-source -d)
//   4. 20 sessions  reusing their connections (-d)
// Targets for Portcullis, fsync before every 250: >= 450 msg/s (1), >= 900 (2), >= 2,000 (4).
//
// Servers, configured equivalently (accept the message, fsync it into a queue, answer 250; no DNS):
//   portcullis  the real executable (`portcullis init`, then domain example.test and user
//               bench@example.test), SMTP port only, smtp.maxconnectionsperip = 1000. Its commit
//               (docs/spool.md): one message file (envelope line + message) fdatasynced, rename, directory
//               fsync (shared by concurrent commits).
//   postfix     a private instance in the temp directory (own config, queue and data directories,
//               inet_interfaces = 127.0.0.1, a free high port, smtpd directly (no postscreen),
//               connection and rate limits off, smtpd_peername_lookup = no, example.test in
//               mydestination, local_recipient_maps empty, default/relay/local transport = discard).
//               cleanup(8) fsyncs the queue file before smtpd answers 250; qmgr then "delivers" to
//               discard and removes the file, in the background. Other settings keep their defaults
//               (in_flow_delay = 1s, which shows as ~1 s latency outliers when smtpd outpaces qmgr).
//               Needs root (mail_owner = postfix); stopped afterwards, also on failure or Ctrl-C.
//   haraka      Haraka 3 from HARAKA_DIR (default /tmp/haraka-bench, `npm install Haraka@3` there; it
//               is not a dependency of this project), one process (smtp.ini nodes=0: no cluster),
//               plugins rcpt_to.in_host_list (example.test) and a queue plugin generated into the
//               temp directory that writes the message to a file, fsyncs it and only then calls
//               next(OK). The same plugin answers lookup_rdns with "localhost": no PTR query.
// A peer that cannot be started is skipped with the reason; the others still run.
//
// Order: all servers are started side by side (an idle server costs nothing) and warmed up (600
// messages over new connections, 1,000 over reused ones, a 200-message latency pass). Then, per
// scenario and repetition, each server gets its smtp-source run in turn, the first place rotating,
// so that the shared disk's slow phases (its fsync rate varies several-fold over minutes here) fall
// on every server alike. After each run the benchmark waits until Postfix has discarded what it
// accepted, so its background deliveries never overlap another server's run. Spools are not
// emptied between runs (a queue that grows is what an MTA without delivery sees); the temp
// directory is removed at the end.
//
// How each number is measured:
//   msg/s    N messages / smtp-source's wall time (spawn to exit); the median of BENCH_SMTP_REPEAT
//            runs (default 3), min-max in brackets. For Portcullis and Haraka the growth of the
//            spool is checked against N.
//   latency  smtp-source reports no per-message time, so a separate pass uses the small client
//            below (raw sockets, the same dialog as smtp-source, same 5 KB body, same number of
//            parallel sessions, same connection reuse). Per message it measures, with a monotonic
//            clock: new-connection scenarios from connect() to the 250 that answers the final dot
//            (connect, greeting, HELO, MAIL, RCPT, DATA, body; QUIT comes after); reuse scenarios
//            from writing MAIL FROM to the 250 after the dot. p50/p99 are nearest-rank over all
//            messages of the pass; max is shown to expose outliers. The client is a Node process
//            on the same CPUs; with 20 sessions its event loop adds some queueing, alike for every
//            server.
//   RSS      the server's VmRSS from /proc/<pid>/status every 100 ms; the peak during the scenario
//            (throughput runs and latency pass). For Postfix the sum over master and all its
//            children at each sample, which counts shared pages once per process; the PSS sum
//            (/proc/<pid>/smaps_rollup) is shown beside it.
//   CPU      server user+system time per message during the smtp-source runs (/proc/<pid>/stat;
//            for Postfix the live tree plus what master has reaped), and the system share.
//   disk     before and after, the rate of create + write 5 KB + fdatasync + close in the temp
//            directory, 1 and 20 writers: the ceiling every number above lives under.
//
// Environment: BENCH_SMTP_SCALE (message counts x factor, default 1), BENCH_SMTP_REPEAT (default 3),
// BENCH_SMTP_ONLY (comma list of portcullis,postfix,haraka), BENCH_SMTP_SCENARIOS (e.g. 1,4),
// BENCH_SMTP_KEEP=1 (keep the temp directory and its logs), BENCH_SMTP_CPU_PROF=DIR (start
// Portcullis with --cpu-prof into DIR), HARAKA_DIR (where Haraka is installed).

import type { ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { diskLine } from './disk-probe.js';
import { startPrivatePostfix, statusCount } from './postfix-peer.js';
import { alive, exited, installHandlers, onEmergency, processTree, run, runEmergency, sleep, spawnTracked, statFields, waitForGreeting } from './processes.js';
import { freePort } from '../tests/support/free-port.js';

export const SMTP_SOURCE = '/usr/sbin/smtp-source';
const FROM = 'a@remote.test';
const TO = 'bench@example.test';
const HELO = 'bench.client.test';
const PAYLOAD_BYTES = 5120;
const PORTCULLIS_BIN = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));

export interface Scenario {
  readonly id: number;
  readonly label: string;
  readonly sessions: number;
  readonly reuse: boolean;
  /** Messages per smtp-source run. */
  readonly messages: number;
  /** Messages in the latency pass. */
  readonly latencyMessages: number;
  /** Portcullis target in msg/s, if the issue sets one. */
  readonly target: number | null;
}

const SCALE = Number(process.env.BENCH_SMTP_SCALE ?? '1') || 1;
export const REPEAT = Math.max(1, Number(process.env.BENCH_SMTP_REPEAT ?? '3') || 3);
const n = (base: number): number => Math.max(20, Math.round(base * SCALE));

const ALL_SCENARIOS: readonly Scenario[] = [
  { id: 1, label: '1 session, new connection per message', sessions: 1, reuse: false, messages: n(1000), latencyMessages: n(400), target: 450 },
  { id: 2, label: '20 sessions, new connection per message', sessions: 20, reuse: false, messages: n(2000), latencyMessages: n(1000), target: 900 },
  { id: 3, label: '1 session, reused connection (-d)', sessions: 1, reuse: true, messages: n(1500), latencyMessages: n(1000), target: null },
  { id: 4, label: '20 sessions, reused connections (-d)', sessions: 20, reuse: true, messages: n(4000), latencyMessages: n(2000), target: 2000 },
];
const wantedScenarios = process.env.BENCH_SMTP_SCENARIOS?.split(',').map((x) => Number(x.trim()));
export const SCENARIOS = wantedScenarios ? ALL_SCENARIOS.filter((x) => wantedScenarios.includes(x.id)) : ALL_SCENARIOS;

// ---------------------------------------------------------------------------------------------
// /proc: memory and CPU of a process, or of a process tree (Postfix).

function procKb(file: string, field: RegExp): number {
  try {
    const m = field.exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
const rssKb = (pid: number): number => procKb(`/proc/${pid}/status`, /^VmRSS:\s+(\d+) kB/m);
const pssKb = (pid: number): number => procKb(`/proc/${pid}/smaps_rollup`, /^Pss:\s+(\d+) kB/m);

const CLK_TCK = 100;

/** CPU seconds (user, system) of the process, or of the tree including the root's reaped children. */
function cpuSeconds(root: number, tree: boolean): { usr: number; sys: number } {
  let usr = 0;
  let sys = 0;
  for (const pid of tree ? processTree(root) : [root]) {
    const f = statFields(pid);
    if (f === null) continue;
    // After "(comm) ": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    usr += Number(f[11]);
    sys += Number(f[12]);
    if (tree && pid === root) {
      usr += Number(f[13]);
      sys += Number(f[14]);
    }
  }
  return { usr: usr / CLK_TCK, sys: sys / CLK_TCK };
}

/** Samples VmRSS (and, for a process tree, the PSS sum) every 100 ms and keeps the peaks. */
class MemorySampler {
  private timer: NodeJS.Timeout | null = null;
  peakRssKb = 0;
  peakPssKb = 0;

  constructor(
    private readonly pid: number,
    private readonly tree: boolean,
  ) {}

  sample(): number {
    const pids = this.tree ? processTree(this.pid) : [this.pid];
    const rss = pids.reduce((sum, p) => sum + rssKb(p), 0);
    if (rss > this.peakRssKb) this.peakRssKb = rss;
    if (this.tree) {
      const pss = pids.reduce((sum, p) => sum + pssKb(p), 0);
      if (pss > this.peakPssKb) this.peakPssKb = pss;
    }
    return rss;
  }

  start(): void {
    this.peakRssKb = 0;
    this.peakPssKb = 0;
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }
}

// ---------------------------------------------------------------------------------------------
// The latency client: one message at a time per session, timed per message.

class SmtpClientError extends Error {}

class ClientConn {
  private buf = '';
  private lines: string[] = [];
  private waiter: { resolve: (r: string) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new SmtpClientError('connection closed by the server')));
  }

  static open(port: number): Promise<ClientConn> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new ClientConn(sock));
      });
      sock.once('error', reject);
    });
  }

  private onData(d: Buffer): void {
    this.buf += d.toString('latin1');
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      this.lines.push(line);
      // The last line of a reply has a space (or nothing) after the code.
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply = this.lines.join('\n');
        this.lines = [];
        const w = this.waiter;
        this.waiter = null;
        if (w) w.resolve(reply);
        else this.fail(new SmtpClientError(`unexpected reply: ${reply}`));
      }
    }
  }

  private fail(e: Error): void {
    if (this.failure === null) this.failure = e;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
  }

  /** Waits for the next reply and checks its code. */
  expect(code: string): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new SmtpClientError(`no reply within 30 s (expected ${code})`)), 30_000);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          if (r.startsWith(code)) resolve();
          else reject(new SmtpClientError(`expected ${code}, got: ${r}`));
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  send(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** Sends a command and waits for its reply. */
  async command(line: string, code: string): Promise<void> {
    const r = this.expect(code);
    this.send(line + '\r\n');
    await r;
  }

  close(): void {
    this.sock.removeAllListeners('close');
    this.sock.on('error', () => undefined);
    this.sock.destroy();
  }
}

/** The message body: PAYLOAD_BYTES of 78-character lines (CRLF-terminated), like smtp-source's. */
const BODY = ((): Buffer => {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < PAYLOAD_BYTES; i++) {
    const left = PAYLOAD_BYTES - size;
    const len = Math.min(80, left);
    const text = `${i % 10}`.padEnd(len - 2, 'X');
    lines.push(text + '\r\n');
    size += len;
  }
  return Buffer.from(lines.join(''), 'latin1');
})();

let messageSeq = 0;
function message(): Buffer {
  const id = `${process.pid}.${++messageSeq}`;
  const head =
    `From: <${FROM}>\r\nTo: <${TO}>\r\nDate: ${new Date().toUTCString().replace('GMT', '+0000')}\r\n` + `Message-Id: <${id}@${HELO}>\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), BODY, Buffer.from('.\r\n', 'latin1')]);
}

async function transaction(c: ClientConn): Promise<void> {
  await c.command(`MAIL FROM:<${FROM}>`, '250');
  await c.command(`RCPT TO:<${TO}>`, '250');
  await c.command('DATA', '354');
  const accepted = c.expect('250');
  c.send(message());
  await accepted;
}

export interface LatencyResult {
  readonly samplesMs: number[];
  readonly seconds: number;
  readonly error: string | null;
}

async function latencyPass(port: number, sessions: number, reuse: boolean, total: number): Promise<LatencyResult> {
  const samples: number[] = [];
  let remaining = total;
  let error: string | null = null;
  const worker = async (): Promise<void> => {
    let conn: ClientConn | null = null;
    try {
      if (reuse) {
        conn = await ClientConn.open(port);
        await conn.expect('220');
        await conn.command(`HELO ${HELO}`, '250');
      }
      while (remaining > 0 && error === null) {
        remaining--;
        if (reuse) {
          const t0 = performance.now();
          await transaction(conn as ClientConn);
          samples.push(performance.now() - t0);
        } else {
          const t0 = performance.now();
          conn = await ClientConn.open(port);
          await conn.expect('220');
          await conn.command(`HELO ${HELO}`, '250');
          await transaction(conn);
          samples.push(performance.now() - t0);
          await conn.command('QUIT', '221');
          conn.close();
          conn = null;
        }
      }
      if (conn) await conn.command('QUIT', '221');
    } catch (e) {
      error ??= e instanceof Error ? e.message : String(e);
    } finally {
      conn?.close();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: sessions }, worker));
  return { samplesMs: samples, seconds: (performance.now() - t0) / 1000, error };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

// ---------------------------------------------------------------------------------------------
// smtp-source

async function smtpSource(port: number, sessions: number, reuse: boolean, messages: number): Promise<{ seconds: number; error: string | null }> {
  const args = [...(reuse ? ['-d'] : []), '-s', String(sessions), '-m', String(messages), '-l', String(PAYLOAD_BYTES), '-M', HELO, '-f', FROM, '-t', TO, `127.0.0.1:${port}`];
  const t0 = performance.now();
  const r = await run(SMTP_SOURCE, args, { timeoutMs: 300_000 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.code !== 0) return { seconds, error: `smtp-source exited ${String(r.code)}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')}` };
  return { seconds, error: null };
}

// ---------------------------------------------------------------------------------------------
// The servers

export interface Server {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  /** RSS and CPU are summed over the process tree (Postfix). */
  readonly tree: boolean;
  readonly dir: string;
  running(): boolean;
  /** Waits until work the server does after its replies is done (Postfix: the discard deliveries). */
  settle(): Promise<void>;
  /** Messages in the spool, or null when the server does not keep them. */
  spoolCount(): Promise<number | null>;
  /** Problems found in the server's log after the run (one line each). */
  logReport(): string[];
  stop(): Promise<void>;
}

export type Started = { readonly ok: true; readonly server: Server } | { readonly ok: false; readonly reason: string };

function setOption(text: string, key: string, value: string): string {
  const re = new RegExp(`^${key.replace(/\./g, '\\.')}\\s*=.*$`, 'm');
  return re.test(text) ? text.replace(re, `${key} = ${value}`) : `${text}\n${key} = ${value}\n`;
}

async function stopChild(child: ChildProcess, sig: NodeJS.Signals, graceMs: number): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return `had already exited (${String(child.exitCode ?? child.signalCode)})`;
  child.kill(sig);
  let timer: NodeJS.Timeout | undefined;
  const t = await Promise.race([exited(child), new Promise<null>((r) => (timer = setTimeout(() => r(null), graceMs)))]);
  clearTimeout(timer);
  if (t !== null) return t.code !== null ? `exit ${t.code}` : `signal ${String(t.signal)}`;
  child.kill('SIGKILL');
  await exited(child);
  return `did not stop within ${graceMs} ms of ${sig}; killed`;
}

/**
 * Portcullis's access tables for the benchmark. "policy": the `init` defaults plus the seed
 * FROM_ACCESS entries (spec §15.1 F4, for this SMTP port), with the benchmark client (127.0.0.1)
 * made an Internet client so every table is asked on every message. "nopolicy": no tables at all.
 */
export function benchMappings(initial: string, port: number, variant: 'policy' | 'nopolicy'): string {
  if (variant === 'nopolicy') return '! no access tables: the benchmark baseline\n';
  const internal = initial.replace(/^INTERNAL_IP\n[\s\S]*?\n\n/m, 'INTERNAL_IP\n  192.0.2.10  $Y\n  *  $N\n\n');
  return `${internal}
FROM_ACCESS
  TCP|*|${port}|*|*|SMTP*|*|tcp_local|*@*|*  $C$}$6,_canonical_name_{$N$ -$ Authentication$ required$ when$ sending$ with$ this$ envelope$ sender$ domain$E
  *|SMTP*|*|tcp_auth|*@*|*@$4*          $Y
  *|SMTP*|*|tcp_auth|*@*|*@*            $N$_Sender$ address$ rejected$ for$ $4
`;
}

/** A Portcullis configuration to measure: its name in the tables, mappings and msg.conf settings. */
export interface PortcullisVariant {
  readonly name: string;
  /** The mappings file, given the one `init` wrote and the SMTP port. */
  mappings(initial: string, port: number): string;
  /** msg.conf settings on top of the benchmark's own. */
  readonly options?: readonly (readonly [string, string])[];
}

export const POLICY: PortcullisVariant = { name: 'portcullis', mappings: (initial, port) => benchMappings(initial, port, 'policy') };
export const NOPOLICY: PortcullisVariant = { name: 'portcullis-nopolicy', mappings: (initial, port) => benchMappings(initial, port, 'nopolicy') };

export async function startPortcullis(work: string, variant: PortcullisVariant = POLICY): Promise<Started> {
  const name = variant.name;
  const dir = join(work, name);
  const cfg = join(dir, 'cfg');
  const data = join(cfg, 'data');
  mkdirSync(dir, { recursive: true });
  const node = process.execPath;
  const step = async (what: string, args: string[], input?: string): Promise<string | null> => {
    const r = await run(node, [PORTCULLIS_BIN, ...args], { input });
    return r.code === 0 ? null : `${what} failed (exit ${String(r.code)}): ${(r.stderr || r.stdout).trim()}`;
  };
  let err = await step('portcullis init', ['init', cfg, '--domain', 'example.test', '--unprivileged']);
  if (err) return { ok: false, reason: err };
  const port = await freePort();
  let conf = readFileSync(join(cfg, 'msg.conf'), 'utf8');
  for (const [k, v] of [
    ['service.listenaddr', '127.0.0.1'],
    ['service.smtp.port', String(port)],
    ['service.submit.port', '0'],
    ['service.smtps.port', '0'],
    ['smtp.maxconnectionsperip', '1000'],
    // These benchmarks measure acceptance; delivery of what was accepted is bench:delivery's.
    ['delivery.runner', 'no'],
    ...(variant.options ?? []),
  ]) {
    conf = setOption(conf, k, v);
  }
  writeFileSync(join(cfg, 'msg.conf'), conf);
  writeFileSync(join(cfg, 'mappings'), variant.mappings(readFileSync(join(cfg, 'mappings'), 'utf8'), port));
  err = await step('portcullis check', ['check', '--config', cfg]);
  if (err) return { ok: false, reason: err };
  // `init` may already host the domain it was given (newer versions do).
  const domains = await run(node, [PORTCULLIS_BIN, 'domain', 'list', '--data', data]);
  if (!domains.stdout.split(/\s+/).includes('example.test')) err = await step('portcullis domain add', ['domain', 'add', 'example.test', '--data', data]);
  err ??= await step('portcullis user add', ['user', 'add', TO, '--password-stdin', '--data', data], 'bench-password\n');
  if (err) return { ok: false, reason: err };

  const prof = process.env.BENCH_SMTP_CPU_PROF;
  const nodeArgs = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
  const out = openSync(join(dir, 'stdout-stderr.log'), 'w');
  const child = spawnTracked(node, [...nodeArgs, PORTCULLIS_BIN, 'start', '--config', cfg], { cwd: dir, stdio: ['ignore', out, out] });
  closeSync(out);
  const pid = child.pid;
  const up = pid !== undefined && (await waitForGreeting(port, 20_000, () => child.exitCode === null && child.signalCode === null));
  if (!up) {
    await stopChild(child, 'SIGKILL', 1000);
    const tail = existsSync(join(dir, 'stdout-stderr.log')) ? readFileSync(join(dir, 'stdout-stderr.log'), 'utf8').trim().split('\n').slice(-5).join('\n') : '';
    return { ok: false, reason: `portcullis start did not greet on port ${port} within 20 s${tail ? `:\n${tail}` : ''}` };
  }
  const queue = join(data, 'queue');
  const logFile = join(data, 'log', 'portcullis.log');
  return {
    ok: true,
    server: {
      name,
      port,
      pid,
      tree: false,
      dir,
      running: () => child.exitCode === null && child.signalCode === null,
      settle: () => Promise.resolve(),
      spoolCount: async () => (await readdir(queue)).filter((x) => x.endsWith('.msg')).length,
      logReport: () => {
        // Every record by level and event, and anything on stdout/stderr that is not a log record
        // (an uncaught exception would show up there).
        const counts = new Map<string, number>();
        let bad = 0;
        for (const line of readFileSync(logFile, 'utf8').split('\n')) {
          if (line === '') continue;
          try {
            const rec = JSON.parse(line) as { level?: string; event?: string; reason?: string; error?: string };
            const key = `${rec.level ?? '?'} ${rec.event ?? '?'}${rec.reason ? ` (${rec.reason})` : ''}${rec.error ? ` (${rec.error})` : ''}`;
            counts.set(key, (counts.get(key) ?? 0) + 1);
          } catch {
            bad++;
          }
        }
        const records = [...counts.values()].reduce((a, b) => a + b, 0);
        const problems = [...counts].filter(([k]) => /^(warn|error) /.test(k)).reduce((a, [, c]) => a + c, 0);
        const other = readFileSync(join(dir, 'stdout-stderr.log'), 'utf8')
          .split('\n')
          .filter((l) => l !== '' && !l.startsWith('{') && !l.startsWith('portcullis: listening'));
        return [
          `log ${logFile}: ${records} records, ${problems} warn/error${bad ? `, ${bad} unparsable lines` : ''}`,
          ...[...counts].sort((a, b) => b[1] - a[1]).map(([k, c]) => `  ${c} x ${k}`),
          `stdout/stderr: ${other.length} lines that are not log records`,
          ...other.slice(0, 5).map((l) => `  ${l}`),
        ];
      },
      stop: async () => {
        const how = await stopChild(child, 'SIGTERM', 15_000);
        if (!how.startsWith('exit 0')) console.log(`  portcullis stop: ${how}`);
      },
    },
  };
}

/**
 * Postfix accepting into its own queue and discarding (qmgr hands everything to discard(8)); the
 * rest of its configuration is bench/postfix-peer.ts's.
 */
async function startPostfix(work: string): Promise<Started> {
  const started = await startPrivatePostfix(work, {
    comment: 'Generated by bench/smtp.bench.ts: a private Postfix that accepts into its own queue and discards.',
    main: `myhostname = bench.example.test
mydomain = example.test
mydestination = example.test, localhost
default_transport = discard
relay_transport = discard
local_transport = discard`,
    smtpTransports: false,
  });
  if (!started.ok) return started;
  const postfix = started.postfix;
  return {
    ok: true,
    server: {
      name: 'postfix',
      port: postfix.port,
      pid: postfix.pid,
      tree: true,
      dir: postfix.dir,
      running: () => alive(postfix.pid),
      settle: async () => {
        const end = Date.now() + 60_000;
        while (Date.now() < end && (await postfix.queued()) > 0) await sleep(100);
      },
      spoolCount: () => Promise.resolve(null),
      logReport: () => postfix.logReport((log) => `${statusCount(log, 'sent')} messages discarded by qmgr`),
      stop: () => postfix.stop(),
    },
  };
}

const HARAKA_QUEUE_PLUGIN = `// Generated by bench/smtp.bench.ts: write the message to a file, fsync it, then accept.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const spool = path.join(process.env.HARAKA, 'bench-spool');

// No PTR query: Portcullis and the benchmark's Postfix do none either.
exports.hook_lookup_rdns = function (next) {
  next(OK, 'localhost');
};

exports.hook_queue = function (next, connection) {
  const txn = connection.transaction;
  fs.open(path.join(spool, txn.uuid + '.eml'), 'w', 0o640, (err, fd) => {
    if (err) return next(DENYSOFT, 'spool: ' + err.message);
    const fail = (e) => fs.close(fd, () => next(DENYSOFT, 'spool: ' + e.message));
    const out = fs.createWriteStream(null, { fd, autoClose: false });
    out.once('error', fail);
    out.once('finish', () => fs.fsync(fd, (e) => (e ? fail(e) : fs.close(fd, () => next(OK)))));
    txn.message_stream.pipe(out);
  });
};
`;

async function startHaraka(work: string): Promise<Started> {
  const home = process.env.HARAKA_DIR ?? '/tmp/haraka-bench';
  const bin = join(home, 'node_modules', 'Haraka', 'bin', 'haraka');
  if (!existsSync(bin)) {
    return {
      ok: false,
      reason: `Haraka is not installed at ${home} (set HARAKA_DIR, or: mkdir -p /tmp/haraka-bench && cd /tmp/haraka-bench && npm install Haraka@3)`,
    };
  }
  const dir = join(work, 'haraka');
  const init = await run(process.execPath, [bin, '-i', dir]);
  if (init.code !== 0) return { ok: false, reason: `haraka -i failed (exit ${String(init.code)}): ${init.stderr.trim()}` };
  const port = await freePort();
  const spool = join(dir, 'bench-spool');
  mkdirSync(spool, { recursive: true });
  writeFileSync(join(dir, 'config', 'smtp.ini'), `; generated by bench/smtp.bench.ts\nlisten=127.0.0.1:${port}\nnodes=0\nforce_shutdown_timeout=5\n`);
  writeFileSync(join(dir, 'config', 'plugins'), 'bench_queue\nrcpt_to.in_host_list\n');
  writeFileSync(join(dir, 'config', 'host_list'), 'example.test\n');
  writeFileSync(join(dir, 'config', 'me'), 'bench.example.test\n');
  mkdirSync(join(dir, 'plugins'), { recursive: true });
  writeFileSync(join(dir, 'plugins', 'bench_queue.js'), HARAKA_QUEUE_PLUGIN);
  const logPath = join(dir, 'haraka.log');
  const out = openSync(logPath, 'w');
  const child = spawnTracked(process.execPath, [bin, '-c', dir], { cwd: dir, stdio: ['ignore', out, out] });
  closeSync(out);
  const pid = child.pid;
  const up = pid !== undefined && (await waitForGreeting(port, 30_000, () => child.exitCode === null && child.signalCode === null));
  if (!up) {
    await stopChild(child, 'SIGKILL', 1000);
    const tail = existsSync(logPath) ? readFileSync(logPath, 'utf8').trim().split('\n').slice(-5).join('\n') : '';
    return { ok: false, reason: `Haraka did not greet on port ${port} within 30 s${tail ? `:\n${tail}` : ''}` };
  }
  return {
    ok: true,
    server: {
      name: 'haraka',
      port,
      pid,
      tree: false,
      dir,
      running: () => child.exitCode === null && child.signalCode === null,
      settle: () => Promise.resolve(),
      spoolCount: async () => (await readdir(spool)).length,
      logReport: () => {
        const lines = readFileSync(logPath, 'utf8').split('\n');
        // The missing TLS certificate is expected (no TLS in this benchmark).
        const bad = lines.filter((l) => /\[(ERROR|CRIT|WARN|EMERG|ALERT)\]/.test(l) && !/tls (key|cert) .* could not be loaded/.test(l));
        return [`log ${logPath}: ${bad.length} warn/error lines`, ...bad.slice(0, 5).map((l) => `  ${l}`)];
      },
      stop: async () => {
        const how = await stopChild(child, 'SIGTERM', 8000);
        if (!how.startsWith('exit') && !how.startsWith('signal')) console.log(`  haraka stop: ${how}`);
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Measuring

export interface Cell {
  /** msg/s of each smtp-source run. */
  rates: number[];
  latency: LatencyResult | null;
  peakRssKb: number;
  peakPssKb: number;
  cpu: { usr: number; sys: number; messages: number };
  errors: string[];
}

interface Running {
  readonly server: Server;
  readonly result: ServerResult;
  readonly memory: MemorySampler;
}

export interface ServerResult {
  readonly name: string;
  skipped: string | null;
  idleRssKb: number;
  readonly cells: Map<number, Cell>;
  notes: string[];
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** The list rotated left by k: each server takes its turn first. */
function rotate<T>(xs: readonly T[], k: number): T[] {
  if (xs.length === 0) return [];
  const r = k % xs.length;
  return [...xs.slice(r), ...xs.slice(0, r)];
}

async function warmUp(r: Running): Promise<void> {
  const { server, result } = r;
  process.stdout.write(`  ${server.name}: warm-up`);
  for (const [sessions, reuse, messages] of [
    [20, false, 600],
    [20, true, 1000],
  ] as const) {
    const w = await smtpSource(server.port, sessions, reuse, messages);
    if (w.error) result.notes.push(`warm-up: ${w.error}`);
  }
  const wl = await latencyPass(server.port, 5, false, 200);
  if (wl.error) result.notes.push(`warm-up latency pass: ${wl.error}`);
  await server.settle();
  process.stdout.write(' done\n');
}

/** One smtp-source run against one server, checked against its spool. */
async function throughputRun(r: Running, sc: Scenario, cell: Cell): Promise<void> {
  const { server } = r;
  if (!server.running()) {
    cell.errors.push('server is not running');
    return;
  }
  const before = await server.spoolCount();
  const c0 = cpuSeconds(server.pid, server.tree);
  const res = await smtpSource(server.port, sc.sessions, sc.reuse, sc.messages);
  const c1 = cpuSeconds(server.pid, server.tree);
  if (res.error) {
    cell.errors.push(res.error);
    return;
  }
  const rate = sc.messages / res.seconds;
  cell.rates.push(rate);
  cell.cpu.usr += c1.usr - c0.usr;
  cell.cpu.sys += c1.sys - c0.sys;
  cell.cpu.messages += sc.messages;
  const after = await server.spoolCount();
  if (before !== null && after !== null && after - before !== sc.messages) cell.errors.push(`${sc.messages} messages sent, ${after - before} more in the spool`);
  await server.settle();
  process.stdout.write(`${server.name} ${rate.toFixed(0)}  `);
}

async function latencyRun(r: Running, sc: Scenario, cell: Cell): Promise<void> {
  if (!r.server.running() || cell.rates.length === 0) return;
  const lat = await latencyPass(r.server.port, sc.sessions, sc.reuse, sc.latencyMessages);
  cell.latency = lat;
  if (lat.error) cell.errors.push(`latency pass: ${lat.error}`);
  await r.server.settle();
  const sorted = [...lat.samplesMs].sort((a, b) => a - b);
  process.stdout.write(`${r.server.name} ${percentile(sorted, 50).toFixed(2)}/${percentile(sorted, 99).toFixed(2)}  `);
}

/**
 * All servers run side by side (idle ones cost nothing); within a scenario, each repetition runs
 * them one after the other, rotating who goes first, so that slow phases of the shared disk fall
 * on every server alike.
 */
async function measureAll(running: readonly Running[], scenarios: readonly Scenario[], repeat: number): Promise<void> {
  for (const r of running) {
    r.result.idleRssKb = r.memory.sample();
    await warmUp(r);
  }
  for (const sc of scenarios) {
    const cells = new Map<Running, Cell>();
    for (const r of running) {
      const cell: Cell = { rates: [], latency: null, peakRssKb: 0, peakPssKb: 0, cpu: { usr: 0, sys: 0, messages: 0 }, errors: [] };
      cells.set(r, cell);
      r.result.cells.set(sc.id, cell);
      r.memory.start();
    }
    console.log(`  scenario ${sc.id} (${sc.label}), ${sc.messages} messages per run:`);
    for (let rep = 0; rep < repeat; rep++) {
      process.stdout.write(`    run ${rep + 1} msg/s: `);
      for (const r of rotate(running, rep + sc.id)) {
        const cell = cells.get(r) as Cell;
        if (cell.errors.length === 0) await throughputRun(r, sc, cell);
      }
      process.stdout.write('\n');
    }
    process.stdout.write(`    latency p50/p99 ms (${sc.latencyMessages} messages): `);
    for (const r of rotate(running, sc.id)) {
      const cell = cells.get(r) as Cell;
      if (cell.errors.length === 0) await latencyRun(r, sc, cell);
    }
    process.stdout.write('\n');
    for (const r of running) {
      r.memory.stop();
      const cell = cells.get(r) as Cell;
      cell.peakRssKb = r.memory.peakRssKb;
      cell.peakPssKb = r.memory.peakPssKb;
      for (const e of cell.errors) console.log(`    ERROR ${r.server.name}: ${e}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

export function fmtRate(c: Cell | undefined): string {
  if (!c || c.rates.length === 0) return 'failed';
  const m = median(c.rates);
  if (c.rates.length === 1) return m.toFixed(0);
  return `${m.toFixed(0)} (${Math.min(...c.rates).toFixed(0)}-${Math.max(...c.rates).toFixed(0)})`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((x, i) => (i < 2 ? x.padEnd(widths[i] as number) : x.padStart(widths[i] as number))).join('  ')).join('\n');
}

function report(results: readonly ServerResult[], elapsed: number, disk: string[]): void {
  console.log('');
  console.log(`SMTP: smtp-source -l ${PAYLOAD_BYTES} on loopback. msg/s: median of ${REPEAT} smtp-source runs (min-max). Latency: the`);
  console.log("benchmark's own client, per message (see bench/smtp.bench.ts). RSS: peak during the scenario (Postfix: sum");
  console.log('over its processes, PSS sum in brackets). CPU: server user+system time per message (system share).');
  console.log('');
  const rows: string[][] = [['scenario', 'server', 'msg/s', 'p50 ms', 'p99 ms', 'max ms', 'peak RSS MB', 'CPU us/msg']];
  for (const sc of SCENARIOS) {
    for (const r of results) {
      const label = r === results[0] ? `${sc.id}. ${sc.label}` : '';
      if (r.skipped !== null) {
        rows.push([label, r.name, 'skipped', '', '', '', '', '']);
        continue;
      }
      const c = r.cells.get(sc.id);
      const sorted = c?.latency ? [...c.latency.samplesMs].sort((a, b) => a - b) : [];
      const lat = (p: number): string => (sorted.length ? percentile(sorted, p).toFixed(2) : '-');
      const mem = c && c.peakRssKb ? `${(c.peakRssKb / 1024).toFixed(0)}${c.peakPssKb ? ` (${(c.peakPssKb / 1024).toFixed(0)})` : ''}` : '-';
      const cpu = c && c.cpu.messages > 0 ? `${(((c.cpu.usr + c.cpu.sys) / c.cpu.messages) * 1e6).toFixed(0)} (${((100 * c.cpu.sys) / Math.max(1e-9, c.cpu.usr + c.cpu.sys)).toFixed(0)}% sys)` : '-';
      rows.push([label, r.name, fmtRate(c), lat(50), lat(99), sorted.length ? (sorted[sorted.length - 1] as number).toFixed(1) : '-', mem, cpu]);
    }
  }
  console.log(table(rows));

  console.log('');
  const ratioRows: string[][] = [
    ['scenario', 'target', 'portcullis msg/s', 'policy: msg/s lost', 'policy: CPU added', 'vs postfix', 'vs haraka', 'p50 vs postfix', 'p50 vs haraka'],
  ];
  /** Server CPU per message: unlike msg/s, it does not move with the disk's fsync latency. */
  const cpuPerMsg = (name: string, id: number): number => {
    const c = cellOf(name, id);
    return c && c.cpu.messages > 0 ? (c.cpu.usr + c.cpu.sys) / c.cpu.messages : NaN;
  };
  const cellOf = (name: string, id: number): Cell | undefined => {
    const r = results.find((x) => x.name === name);
    return r && r.skipped === null ? r.cells.get(id) : undefined;
  };
  for (const sc of SCENARIOS) {
    const rate = (name: string): number => {
      const c = cellOf(name, sc.id);
      return c && c.rates.length ? median(c.rates) : NaN;
    };
    const p50 = (name: string): number => {
      const s = cellOf(name, sc.id)?.latency?.samplesMs;
      return s && s.length ? percentile([...s].sort((a, b) => a - b), 50) : NaN;
    };
    const mine = rate('portcullis');
    const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}x` : '-');
    const verdict = sc.target === null ? '-' : `>= ${sc.target} ${Number.isFinite(mine) ? (mine >= sc.target ? 'met' : 'MISSED') : '?'}`;
    ratioRows.push([
      `${sc.id}. ${sc.label}`,
      verdict,
      Number.isFinite(mine) ? mine.toFixed(0) : '-',
      // The access tables' cost: throughput lost against the same server with no tables (target ≤ 10 %).
      Number.isFinite(mine) && Number.isFinite(rate('portcullis-nopolicy')) ? `${((1 - mine / rate('portcullis-nopolicy')) * 100).toFixed(1)} %` : '-',
      Number.isFinite(cpuPerMsg('portcullis', sc.id)) && Number.isFinite(cpuPerMsg('portcullis-nopolicy', sc.id))
        ? `${((cpuPerMsg('portcullis', sc.id) / cpuPerMsg('portcullis-nopolicy', sc.id) - 1) * 100).toFixed(1)} %`
        : '-',
      ratio(mine, rate('postfix')),
      ratio(mine, rate('haraka')),
      ratio(p50('portcullis'), p50('postfix')),
      ratio(p50('portcullis'), p50('haraka')),
    ]);
  }
  console.log('Portcullis / peer (msg/s: higher is better; p50: lower is better):');
  console.log(table(ratioRows));
  console.log('');
  for (const r of results) {
    if (r.skipped !== null) console.log(`${r.name}: SKIPPED: ${r.skipped}`);
    else console.log(`${r.name}: idle RSS ${(r.idleRssKb / 1024).toFixed(1)} MB${r.name === 'postfix' ? ' (sum over master and children)' : ''}`);
    for (const note of r.notes) console.log(`  ${note}`);
  }
  for (const d of disk) console.log(d);
  console.log(`total run time ${elapsed.toFixed(1)} s`);
}

// ---------------------------------------------------------------------------------------------

/** A server the benchmark can start in its work directory. */
export interface Peer {
  readonly name: string;
  start(work: string): Promise<Started>;
  /** A server whose start fails makes the run fail (exit status 1), not just skips it. */
  readonly required?: boolean;
}

const PEERS: readonly Peer[] = [
  { name: 'portcullis', start: (w) => startPortcullis(w, POLICY), required: true },
  { name: 'portcullis-nopolicy', start: (w) => startPortcullis(w, NOPOLICY) },
  { name: 'postfix', start: startPostfix },
  { name: 'haraka', start: startHaraka },
];

export interface MeasureOptions {
  readonly scenarios?: readonly Scenario[];
  readonly repeat?: number;
  /** Names of the peers to run (the others are reported as not selected). */
  readonly only?: readonly string[];
  /** Called for each server after its measurements, before it stops (to read its state). */
  readonly beforeStop?: (server: Server, result: ServerResult) => Promise<void>;
}

/**
 * Starts the peers side by side in `work`, warms them up and measures every scenario on each (see
 * measureAll), then stops them and collects their logs. The disk's fsync rate is probed before and
 * after. A peer that cannot be started is skipped with the reason.
 */
export async function measureServers(peers: readonly Peer[], work: string, opts: MeasureOptions = {}): Promise<{ results: ServerResult[]; disk: string[] }> {
  const results: ServerResult[] = [];
  const running: Running[] = [];
  const disk: string[] = [];
  try {
    disk.push(`disk before: ${await diskLine(work)}`);
    for (const peer of peers) {
      const result: ServerResult = { name: peer.name, skipped: null, idleRssKb: 0, cells: new Map(), notes: [] };
      results.push(result);
      if (opts.only && !opts.only.includes(peer.name)) {
        result.skipped = 'not selected (BENCH_SMTP_ONLY)';
        continue;
      }
      let started: Started;
      try {
        started = await peer.start(work);
      } catch (e) {
        started = { ok: false, reason: e instanceof Error ? e.message : String(e) };
      }
      if (!started.ok) {
        result.skipped = started.reason;
        console.log(`${peer.name}: SKIPPED: ${started.reason}`);
        if (peer.required === true) process.exitCode = 1;
        continue;
      }
      console.log(`${peer.name}: pid ${started.server.pid}, port ${started.server.port}, files in ${started.server.dir}`);
      running.push({ server: started.server, result, memory: new MemorySampler(started.server.pid, started.server.tree) });
    }
    try {
      await measureAll(running, opts.scenarios ?? SCENARIOS, opts.repeat ?? REPEAT);
    } catch (e) {
      const msg = `measurement aborted: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      console.log(msg);
      for (const r of running) r.result.notes.push(msg);
      process.exitCode = 1;
    }
    for (const r of running) {
      if (opts.beforeStop && r.server.running()) {
        try {
          await opts.beforeStop(r.server, r.result);
        } catch (e) {
          r.result.notes.push(`before stop: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      await r.server.stop();
      try {
        r.result.notes.push(...r.server.logReport());
      } catch (e) {
        r.result.notes.push(`log not readable: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    running.length = 0;
    disk.push(`disk after:  ${await diskLine(work)}`);
  } finally {
    for (const r of running) await r.server.stop().catch(() => undefined);
  }
  return { results, disk };
}

export async function runSmtpBench(): Promise<void> {
  const t0 = performance.now();
  installHandlers();
  if (!existsSync(SMTP_SOURCE)) {
    console.log(`skipped: ${SMTP_SOURCE} not found (Debian package postfix provides smtp-source)`);
    return;
  }
  const only = process.env.BENCH_SMTP_ONLY?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const work = mkdtempSync(join(tmpdir(), 'portcullis-bench-smtp-'));
  chmodSync(work, 0o755); // Postfix's unprivileged daemons must reach their queue below it
  const keep = process.env.BENCH_SMTP_KEEP === '1';
  const removeWork = onEmergency(() => {
    if (!keep) rmSync(work, { recursive: true, force: true });
  });
  console.log(`work directory ${work}`);
  console.log(`scenarios: ${SCENARIOS.map((x) => `${x.id}: ${REPEAT} x ${x.messages} msgs + ${x.latencyMessages} latency`).join('; ')}`);
  let measured: { results: ServerResult[]; disk: string[] };
  try {
    measured = await measureServers(PEERS, work, { only });
  } finally {
    runEmergency(); // anything still registered: leftover processes, then the work directory
    removeWork();
  }
  report(measured.results, (performance.now() - t0) / 1000, measured.disk);
  if (keep) console.log(`kept ${work}`);
}
