// The programs `npm run bench:delivery` runs (bench/delivery.bench.ts): Postfix's smtp-sink as the
// remote MTA both relays deliver to, a private Postfix instance relaying to it, and Portcullis with
// its queue runner relaying to it (through bench/smtp.bench.ts's startPortcullis). Each relay is seen
// by the benchmark through `Relay`: its SMTP port and how many messages its queue holds.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { onEmergency, run, startPortcullis } from './smtp.bench.js';
import { freePort } from '../tests/support/free-port.js';
export { freePort } from '../tests/support/free-port.js';

export const SMTP_SINK = '/usr/sbin/smtp-sink';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when something on the port answers with a 220 greeting within 2 s. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      if (ok) sock.end('QUIT\r\n');
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 2000);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (/^220[ -].*\r\n/m.test(buf)) done(true);
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

export async function waitForGreeting(port: number, ms: number, alive: () => boolean): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await greets(port)) return true;
    if (!alive()) return false;
    await sleep(100);
  }
  return false;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); // a zombie holds nothing
  } catch {
    return false;
  }
}

/** The root and all its descendants (Postfix's master and the daemons it runs). */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(name));
    else children.set(ppid, [Number(name)]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const p = todo.pop() as number;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Files below a directory, recursively (Postfix hashes its queues into subdirectories). */
async function countFiles(dir: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let n = 0;
  for (const e of entries) n += e.isDirectory() ? await countFiles(join(dir, e.name)) : 1;
  return n;
}

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

function postfixMainCf(dir: string, sinkPort: number): string {
  return `# Generated by bench/delivery-peers.ts: a private Postfix relaying everything to the sink.
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:${sinkPort}
local_recipient_maps =
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_rate_limit = 0
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtp_dns_support_level = disabled
maillog_file_prefixes = ${dir}
maillog_file = ${dir}/maillog
biff = no
`;
}

function postfixMasterCf(port: number): string {
  // service type private unpriv chroot wakeup maxproc command; no chroot (the queue is in /tmp),
  // smtpd directly on the port (no postscreen), smtp(8) for relay and default transports.
  return `# Generated by bench/delivery-peers.ts
${port}      inet  n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`;
}

/**
 * A private Postfix (own config, queue and data directories below `work`), started with
 * `postfix -c DIR start` and relaying every message to [127.0.0.1]:sinkPort. Needs root.
 */
export async function startPostfixRelay(work: string, sinkPort: number): Promise<RelayStart> {
  if (!existsSync('/usr/sbin/postfix')) return { ok: false, reason: 'Postfix is not installed (/usr/sbin/postfix; Debian package postfix)' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'Postfix needs root here (master runs as root, mail_owner = postfix)' };
  const ids = await run('id', ['-u', 'postfix']);
  const group = await run('getent', ['group', 'postdrop']);
  if (ids.code !== 0 || group.code !== 0) return { ok: false, reason: 'user postfix or group postdrop is missing (the postfix package creates them)' };
  const dir = join(work, 'postfix');
  const etc = join(dir, 'etc');
  for (const d of [etc, join(dir, 'queue'), join(dir, 'data')]) mkdirSync(d, { recursive: true, mode: 0o755 });
  chownSync(join(dir, 'data'), Number(ids.stdout.trim()), 0);
  const port = await freePort();
  writeFileSync(join(etc, 'main.cf'), postfixMainCf(dir, sinkPort));
  writeFileSync(join(etc, 'master.cf'), postfixMasterCf(port));
  const maillog = join(dir, 'maillog');
  const logTail = (): string => (existsSync(maillog) ? readFileSync(maillog, 'utf8').trim().split('\n').slice(-4).join('\n') : '');
  const pidFile = join(dir, 'queue', 'pid', 'master.pid');
  const masterPid = (): number | null => {
    try {
      const p = Number(readFileSync(pidFile, 'utf8').trim());
      return p > 0 ? p : null;
    } catch {
      return null;
    }
  };
  // Master daemonizes, so it is not our child: stop it by command, then its tree by signal.
  const stopNow = (): void => {
    const p = masterPid();
    const tree = p !== null && alive(p) ? processTree(p) : [];
    // Synchronous: on Ctrl-C this runs inside the process's 'exit' handler.
    spawnSync('/usr/sbin/postfix', ['-c', etc, 'stop'], { stdio: 'ignore', timeout: 10_000 });
    for (const q of tree) killQuietly(q, 'SIGKILL');
  };
  const forget = onEmergency(stopNow);
  const started = await run('/usr/sbin/postfix', ['-c', etc, 'start']);
  const pid = masterPid();
  const up = started.code === 0 && pid !== null && (await waitForGreeting(port, 20_000, () => alive(pid)));
  if (!up || pid === null) {
    stopNow();
    forget();
    return { ok: false, reason: `postfix -c ${etc} start failed (exit ${String(started.code)}) ${started.stderr.trim()}\n${logTail()}` };
  }
  const postconf = await run('/usr/sbin/postconf', ['-c', etc, '-h', 'default_destination_concurrency_limit', 'in_flow_delay', 'default_process_limit']);
  const [destLimit, inFlow, procLimit] = postconf.stdout.trim().split('\n');
  return {
    ok: true,
    relay: {
      name: 'postfix',
      port,
      pid,
      settings: `Postfix ${(await run('/usr/sbin/postconf', ['-d', '-h', 'mail_version'])).stdout.trim()}: default_destination_concurrency_limit ${destLimit}, default_process_limit ${procLimit}, in_flow_delay ${inFlow}`,
      queued: async () => {
        let n = 0;
        for (const q of ['maildrop', 'incoming', 'active', 'deferred', 'hold']) n += await countFiles(join(dir, 'queue', q));
        return n;
      },
      logReport: () => {
        const text = existsSync(maillog) ? readFileSync(maillog, 'utf8') : '';
        const bad = text.split('\n').filter((l) => /(warning|error|fatal|panic):/.test(l));
        const sent = (text.match(/status=sent/g) ?? []).length;
        const deferred = (text.match(/status=deferred/g) ?? []).length;
        return [`log ${maillog}: ${sent} status=sent, ${deferred} status=deferred, ${bad.length} warning/fatal lines`, ...bad.slice(0, 5).map((l) => `  ${l}`)];
      },
      stop: async () => {
        const procs = processTree(pid);
        const r = await run('/usr/sbin/postfix', ['-c', etc, 'stop']);
        if (r.code !== 0) console.log(`  postfix stop: exit ${String(r.code)} ${r.stderr.trim()}`);
        const end = Date.now() + 10_000;
        while (Date.now() < end && procs.some(alive)) await sleep(50);
        for (const q of procs) if (alive(q)) killQuietly(q, 'SIGKILL');
        forget();
      },
    },
  };
}
