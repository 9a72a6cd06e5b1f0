// A private Postfix instance for the benchmarks: its own config, queue and data directories below
// the benchmark's work directory, started with `postfix -c DIR start`, smtpd directly on a free
// loopback port (no postscreen), no chroot (the queue is in /tmp), log to DIR/maillog. What it does
// with the mail is the caller's main.cf settings: discard it (bench/smtp.bench.ts) or relay it
// with smtp(8) (bench/delivery-peers.ts). Needs root (master runs as root, mail_owner = postfix);
// stopped afterwards, also on failure or Ctrl-C.

import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { alive, killQuietly, onEmergency, processTree, run, waitForGreeting, waitGone } from './processes.js';
import { freePort } from '../tests/support/free-port.js';

export const POSTFIX = '/usr/sbin/postfix';
export const POSTCONF = '/usr/sbin/postconf';

export interface PostfixOptions {
  /** Who generates the configuration and what for: the first line of main.cf and master.cf. */
  readonly comment: string;
  /** main.cf lines of this benchmark's own (host names, destinations, transports). */
  readonly main: string;
  /** Adds smtp(8) as the smtp and relay transports to master.cf (needed to deliver anywhere). */
  readonly smtpTransports: boolean;
}

export interface PrivatePostfix {
  /** The instance's directory: etc/ (config_directory), queue/, data/, maillog. */
  readonly dir: string;
  readonly etc: string;
  readonly port: number;
  /** The master process; its descendants are Postfix's daemons. */
  readonly pid: number;
  readonly maillog: string;
  /** Messages Postfix holds and has not finished with (maildrop, incoming, active, deferred, hold). */
  queued(): Promise<number>;
  /** A first line from `summary` of the maillog, then up to five of its warning/error/fatal/panic lines. */
  logReport(summary: (log: string) => string): string[];
  stop(): Promise<void>;
}

export type PostfixStart = { readonly ok: true; readonly postfix: PrivatePostfix } | { readonly ok: false; readonly reason: string };

/** How many log lines carry status=<status> (sent, deferred, ...). */
export function statusCount(log: string, status: string): number {
  return log.split(`status=${status}`).length - 1;
}

function mainCf(dir: string, opts: PostfixOptions): string {
  return `# ${opts.comment}
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_rate_limit = 0
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_peername_lookup = no
maillog_file_prefixes = ${dir}
maillog_file = ${dir}/maillog
biff = no
${opts.main.trim()}
`;
}

function masterCf(port: number, opts: PostfixOptions): string {
  // service type private unpriv chroot wakeup maxproc command
  return `# ${opts.comment}
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
${opts.smtpTransports ? 'smtp      unix  - - n - - smtp\nrelay     unix  - - n - - smtp\n' : ''}anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`;
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

/** Starts a private Postfix in `work`/postfix, or says why it cannot. */
export async function startPrivatePostfix(work: string, opts: PostfixOptions): Promise<PostfixStart> {
  if (!existsSync(POSTFIX) || !existsSync(POSTCONF)) return { ok: false, reason: 'Postfix is not installed (/usr/sbin/postfix; Debian package postfix)' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'Postfix needs root here (master runs as root, mail_owner = postfix)' };
  const ids = await run('id', ['-u', 'postfix']);
  const group = await run('getent', ['group', 'postdrop']);
  if (ids.code !== 0 || group.code !== 0) return { ok: false, reason: 'user postfix or group postdrop is missing (the postfix package creates them)' };
  const dir = join(work, 'postfix');
  const etc = join(dir, 'etc');
  for (const d of [etc, join(dir, 'queue'), join(dir, 'data')]) mkdirSync(d, { recursive: true, mode: 0o755 });
  chownSync(join(dir, 'data'), Number(ids.stdout.trim()), 0);
  const port = await freePort();
  writeFileSync(join(etc, 'main.cf'), mainCf(dir, opts));
  writeFileSync(join(etc, 'master.cf'), masterCf(port, opts));
  const maillog = join(dir, 'maillog');
  const log = (): string => (existsSync(maillog) ? readFileSync(maillog, 'utf8') : '');
  const pidFile = join(dir, 'queue', 'pid', 'master.pid');
  const masterPid = (): number | null => {
    try {
      const p = Number(readFileSync(pidFile, 'utf8').trim());
      return p > 0 ? p : null;
    } catch {
      return null;
    }
  };
  // Master daemonizes, so it is not our child: stop it by command, then by signal, even on failure.
  let tree: number[] = [];
  const stopSync = (): void => {
    const p = masterPid();
    if (p !== null && alive(p)) tree = processTree(p);
    try {
      // Synchronous: the emergency path runs inside the process's 'exit' handler.
      spawnSync(POSTFIX, ['-c', etc, 'stop'], { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // fall through to signals
    }
    for (const q of tree) killQuietly(q, 'SIGKILL');
  };
  const forget = onEmergency(stopSync);
  const started = await run(POSTFIX, ['-c', etc, 'start']);
  const pid = masterPid();
  const up = started.code === 0 && pid !== null && (await waitForGreeting(port, 20_000, () => alive(pid)));
  if (!up || pid === null) {
    stopSync();
    forget();
    const logTail = log().trim().split('\n').slice(-4).join('\n');
    return { ok: false, reason: `postfix -c ${etc} start failed (exit ${String(started.code)}) ${started.stderr.trim()}\n${logTail}` };
  }
  return {
    ok: true,
    postfix: {
      dir,
      etc,
      port,
      pid,
      maillog,
      queued: async () => {
        let n = 0;
        for (const q of ['maildrop', 'incoming', 'active', 'deferred', 'hold']) n += await countFiles(join(dir, 'queue', q));
        return n;
      },
      logReport: (summary) => {
        const text = log();
        const bad = text.split('\n').filter((l) => /(warning|error|fatal|panic):/.test(l));
        return [`log ${maillog}: ${summary(text)}, ${bad.length} warning/fatal lines`, ...bad.slice(0, 5).map((l) => `  ${l}`)];
      },
      stop: async () => {
        const procs = processTree(pid);
        const r = await run(POSTFIX, ['-c', etc, 'stop']);
        if (r.code !== 0) console.log(`  postfix stop: exit ${String(r.code)} ${r.stderr.trim()}`);
        if (!(await waitGone(() => procs, 10_000))) {
          console.log('  postfix: processes left after stop; killing them');
          for (const q of procs) killQuietly(q, 'SIGKILL');
        }
        forget();
      },
    },
  };
}
