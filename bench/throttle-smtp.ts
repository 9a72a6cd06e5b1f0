// Part (c) of `npm run bench:throttle`: the SMTP benchmark of issue 3 (bench/smtp.bench.ts: the
// same smtp-source scenarios, warm-up, interleaving and measurements) against three Portcullis
// servers started side by side in the same run:
//   no throttle        smtp.bench.ts's "portcullis": init's tables plus the seed FROM_ACCESS, the
//                      client (127.0.0.1) an Internet client
//   throttle embedded  the same plus the seed throttle entries, counted in the embedded store:
//                        PORT_ACCESS (before the EXTERNAL entry, where init's commented-out line is)
//                          *|*|*|*|*  $C$:A$[/opt/sun/comms/messaging64/lib/check_metermaid.so,throttle,ext_throttle,$3]$N421$ Connection$ declined$ at$ this$ time$E
//                        ORIG_SEND_ACCESS (first entry; smtp-source's sessions are tcp_local)
//                          tcp_local|*|*|*  $C$[/opt/sun/comms/messaging64/lib/check_metermaid.so,throttle,sendlim,$0]$NExcessive$ email$ sent$ -$ Please$ try$ again$ later$E
//                      so one decision per connection (client address) and one per recipient
//                      (sender address); tables ext_throttle (ipv4) and sendlim (string) with quota
//                      10,000,000 per 30 days, which nothing in the run reaches
//   throttle redis     the same entries and tables, counted in a private redis-server
//                      (metermaid.config.serverhost/port)
// After the runs each server is asked (`portcullis throttle show`) for the counts of the two keys,
// to show that the entries really counted. Target (issue 5): msg/s within 10 % of the run without
// the entries. Server CPU per message is shown too: unlike msg/s it does not move with the disk.

import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisPeer, redisMissing } from './redis-peer.js';
import { median, medianRange, percentile } from './stats.js';
import { installHandlers, onEmergency, run, runEmergency } from './processes.js';
import { POLICY, SCENARIOS, SMTP_SOURCE, fmtRate, measureServers, startPortcullis, table } from './smtp.bench.js';
import type { Cell, Peer, PortcullisVariant, ServerResult } from './smtp.bench.js';

const PORTCULLIS_BIN = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));
const LIB = '/opt/sun/comms/messaging64/lib/check_metermaid.so';
const PORT_THROTTLE = `  *|*|*|*|*   $C$:A$[${LIB},throttle,ext_throttle,$3]$N421$ Connection$ declined$ at$ this$ time$E`;
const SEND_THROTTLE = `  tcp_local|*|*|*   $C$[${LIB},throttle,sendlim,$0]$NExcessive$ email$ sent$ -$ Please$ try$ again$ later$E`;
const CLIENT_IP = '127.0.0.1';
const SENDER = 'a@remote.test';
const TARGET_RATIO = 0.9;

/**
 * The tables of the seed entries: a quota nothing in the run reaches (a run sends about 50,000
 * messages), over the longest quota_time, so counts drain by only 3.9 a second and the check after
 * the runs still finds them.
 */
const TABLES: readonly (readonly [string, string])[] = [
  ['metermaid.table.ext_throttle.data_type', 'ipv4'],
  ['metermaid.table.ext_throttle.quota', '10000000'],
  ['metermaid.table.ext_throttle.quota_time', '2592000'],
  ['metermaid.table.sendlim.quota', '10000000'],
  ['metermaid.table.sendlim.quota_time', '2592000'],
];

/** The benchmark's "policy" mappings with the seed throttle entries enabled. */
function withSeedThrottle(initial: string, port: number): string {
  const lines = POLICY.mappings(initial, port)
    .split('\n')
    .filter((l) => !/^!.*check_metermaid\.so,throttle/.test(l)); // init's commented-out copy
  const table = (name: string): number => lines.findIndex((l) => l === name);
  const portAccess = table('PORT_ACCESS');
  const external = lines.findIndex((l, i) => i > portAccess && /^\s+\*\s+\$YEXTERNAL\s*$/.test(l));
  if (portAccess === -1 || external === -1) throw new Error('init wrote no PORT_ACCESS with an EXTERNAL entry; the bench needs updating');
  lines.splice(external, 0, PORT_THROTTLE);
  const origSend = table('ORIG_SEND_ACCESS');
  if (origSend === -1) throw new Error('init wrote no ORIG_SEND_ACCESS; the bench needs updating');
  let first = origSend + 1;
  while (first < lines.length && (lines[first] as string).trim() === '') first++;
  lines.splice(first, 0, SEND_THROTTLE);
  return lines.join('\n');
}

function variants(redisPort: number | null): PortcullisVariant[] {
  const embedded: PortcullisVariant = { name: 'throttle-embedded', mappings: withSeedThrottle, options: TABLES };
  const out: PortcullisVariant[] = [{ ...POLICY, name: 'no-throttle' }, embedded];
  if (redisPort !== null) {
    out.push({
      name: 'throttle-redis',
      mappings: withSeedThrottle,
      options: [...TABLES, ['metermaid.config.serverhost', '127.0.0.1'], ['metermaid.config.port', String(redisPort)]],
    });
  }
  return out;
}

/** The count a running server holds for one key, from `portcullis throttle show --json`. */
async function countOf(configDir: string, tableName: string, key: string): Promise<string> {
  const r = await run(process.execPath, [PORTCULLIS_BIN, 'throttle', 'show', tableName, key, '--config', configDir, '--json']);
  if (r.code !== 0) return `throttle show failed (exit ${String(r.code)}): ${(r.stderr || r.stdout).trim().slice(0, 200)}`;
  try {
    const view = JSON.parse(r.stdout) as { store?: string; keys?: { count: number }[] };
    const c = view.keys?.[0]?.count;
    return `${c === undefined ? 'nothing counted' : `count ${c.toFixed(0)}`} (${view.store ?? '?'} store)`;
  } catch {
    return `throttle show printed no JSON: ${r.stdout.slice(0, 200)}`;
  }
}

function cpuPerMsg(c: Cell | undefined): number {
  return c && c.cpu.messages > 0 ? (c.cpu.usr + c.cpu.sys) / c.cpu.messages : NaN;
}

function report(results: readonly ServerResult[], repeat: number, counts: ReadonlyMap<string, string[]>, disk: readonly string[]): void {
  const base = results.find((r) => r.name === 'no-throttle');
  const rows: string[][] = [['scenario', 'server', 'msg/s', 'vs no-throttle', 'paired runs', 'CPU µs/msg', 'CPU vs no-throttle', 'p50 ms', 'p99 ms', `>= ${TARGET_RATIO * 100} %`]];
  for (const sc of SCENARIOS) {
    for (const r of results) {
      const label = r === results[0] ? `${sc.id}. ${sc.label}` : '';
      if (r.skipped !== null) {
        rows.push([label, r.name, 'skipped', '', '', '', '', '', '', '']);
        continue;
      }
      const c = r.cells.get(sc.id);
      const b = base?.skipped === null ? base.cells.get(sc.id) : undefined;
      const mine = c && c.rates.length ? median(c.rates) : NaN;
      const theirs = b && b.rates.length ? median(b.rates) : NaN;
      const ratio = mine / theirs;
      // Run k of every server happened within the same minute: the ratio per run cancels the
      // slow swings of the shared disk and CPUs that the medians of each server keep.
      const paired = c && b ? c.rates.slice(0, b.rates.length).map((x, k) => x / (b.rates[k] as number)) : [];
      const pairedMedian = paired.length ? median(paired) : NaN;
      const cpu = cpuPerMsg(c);
      const cpuRatio = cpu / cpuPerMsg(b);
      const sorted = c?.latency ? [...c.latency.samplesMs].sort((x, y) => x - y) : [];
      const isBase = r === base;
      rows.push([
        label,
        r.name,
        fmtRate(c),
        isBase || !Number.isFinite(ratio) ? '-' : `${(ratio * 100).toFixed(1)} %`,
        isBase || !paired.length ? '-' : medianRange(paired, (x) => `${(x * 100).toFixed(0)} %`),
        Number.isFinite(cpu) ? (cpu * 1e6).toFixed(0) : '-',
        isBase || !Number.isFinite(cpuRatio) ? '-' : `${cpuRatio >= 1 ? '+' : ''}${((cpuRatio - 1) * 100).toFixed(1)} %`,
        sorted.length ? percentile(sorted, 50).toFixed(2) : '-',
        sorted.length ? percentile(sorted, 99).toFixed(2) : '-',
        isBase || !Number.isFinite(pairedMedian) ? '' : pairedMedian >= TARGET_RATIO ? 'met' : 'MISSED',
      ]);
    }
  }
  console.log('');
  console.log(`(c) SMTP with the seed throttle entries (smtp-source, bench/smtp.bench.ts scenarios). msg/s: median (min-max) of ${repeat}`);
  console.log('    interleaved runs; "vs no-throttle": ratio of the medians; "paired runs": median (min-max) of the ratios of run k to');
  console.log("    no-throttle's run k, which the target is judged on. CPU: the Portcullis process only (not redis-server).");
  console.log(table(rows));
  for (const r of results) {
    if (r.skipped !== null) console.log(`${r.name}: SKIPPED: ${r.skipped}`);
    for (const line of counts.get(r.name) ?? []) console.log(`${r.name}: ${line}`);
    const problems = r.notes.filter((n) => /warn|error|ERROR|aborted|not log records/.test(n) && !/ 0 warn\/error|: 0 lines/.test(n));
    for (const n of problems) console.log(`${r.name}: ${n}`);
  }
  for (const d of disk) console.log(d);
  console.log('');
}

export async function runSmtpThrottle(repeat: number): Promise<void> {
  if (!existsSync(SMTP_SOURCE)) {
    console.log(
      `(c) SMTP: SKIPPED: ${SMTP_SOURCE} not found (Debian package postfix: echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; apt-get install -y --no-install-recommends postfix)`,
    );
    return;
  }
  installHandlers();
  const work = mkdtempSync(join(tmpdir(), 'portcullis-bench-throttle-smtp-'));
  chmodSync(work, 0o755);
  const removeWork = onEmergency(() => rmSync(work, { recursive: true, force: true }));
  const missing = redisMissing();
  let redis: RedisPeer | null = null;
  let forgetRedis = (): void => undefined;
  const counts = new Map<string, string[]>();
  try {
    if (missing === null) {
      redis = await RedisPeer.start();
      const r = redis;
      forgetRedis = onEmergency(() => r.killNow());
    }
    const peers: Peer[] = variants(redis?.port ?? null).map((v) => ({ name: v.name, start: (w: string) => startPortcullis(w, v), required: true }));
    if (redis === null) peers.push({ name: 'throttle-redis', start: () => Promise.resolve({ ok: false as const, reason: missing ?? 'no redis-server' }) });
    console.log(`(c) SMTP: work directory ${work}; ${peers.length} servers, scenarios ${SCENARIOS.map((s) => s.id).join(',')}, ${repeat} runs each`);
    const { results, disk } = await measureServers(peers, work, {
      repeat,
      beforeStop: async (server) => {
        if (server.name === 'no-throttle') return;
        const cfg = join(server.dir, 'cfg');
        counts.set(server.name, [
          `after the runs ext_throttle[${CLIENT_IP}]: ${await countOf(cfg, 'ext_throttle', CLIENT_IP)}`,
          `after the runs sendlim[${SENDER}]: ${await countOf(cfg, 'sendlim', SENDER)}`,
        ]);
      },
    });
    report(results, repeat, counts, disk);
  } finally {
    if (redis !== null) await redis.stop();
    forgetRedis();
    runEmergency();
    removeWork();
  }
}
