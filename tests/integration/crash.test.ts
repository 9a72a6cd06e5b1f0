// Crash safety (issue 6): "a message acknowledged with 250 is delivered after any crash (kill -9 at
// any moment); duplicates are possible but must be rare and measured."
//
// The real server (runner on, smarthost = a recording SMTP server on a loopback socket) takes load
// from LOAD_CLIENTS concurrent SMTP sessions, each message with a unique Message-ID. While the load
// runs the server is killed with SIGKILL at random moments of two kinds and restarted on the same
// configuration and data directory each time:
//   load      0.8-2.5 s after it came up: sessions are in every phase (MAIL, DATA, the commit),
//             the runner is delivering;
//   recovery  0-150 ms after it came up: the runner is re-reading the spool the last crash left and
//             redelivering it while the clients reconnect.
// Then the load stops, the spool must empty (docs/spool.md: no file left in queue/), and:
//   - every Message-ID that got the 250 after DATA arrived at the recorder at least once, intact
//     (the recorder's copy ends with exactly the bytes the client sent);
//   - nothing arrived that no client sent; no message was refused;
//   - extra copies (duplicates) stay within what the runner's design allows: a crash repeats at
//     most the attempts in flight at that moment (src/queue/runner.ts, "Order of durable steps"),
//     and at most delivery.concurrency attempts are in flight, so copies beyond the first are at
//     most kills x delivery.concurrency. A runner that recorded deliveries lazily (state or removal
//     in batches, after the slot is freed) would exceed it.
// The counts are printed as diagnostics. Randomness is seeded (CRASH_SEED=n reruns a schedule).
// Checked against deliberately broken copies of the server: a 250 sent before the rename and
// directory fsync (a window of milliseconds) lost 1-2 acknowledged messages in 4 of 4 runs (2 of 3
// with five kills); a runner that removed the message before delivering it lost about 40 every run.
//
// What SIGKILL can and cannot show: the kernel keeps the page cache of a killed process, so this
// catches a 250 sent before the message file was written and renamed, and a runner that removes a
// message before its delivery is confirmed; it cannot tell a missing fsync from a present one (only
// a power cut would: docs/spool.md and the spool's unit tests cover the order of fsyncs).

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, test } from 'node:test';
import { SmtpResponder } from '../support/smtp-responder.js';
import { Server, SmtpClient, sleep, waitFor } from './harness.js';
import { seededRandom } from '../support/random.js';

const LOAD_CLIENTS = 8;
/** Messages per connection before a client says QUIT and connects again (connects are a phase too). */
const PER_CONNECTION = 20;
/** Eight kills: a window of a few milliseconds (e.g. a 250 sent before the rename) is hit in most runs. */
const PHASES = ['load', 'recovery', 'load', 'recovery', 'load', 'recovery', 'load', 'recovery'] as const;
const CONCURRENCY = 8;
const PER_DESTINATION = 4;
const FROM = 'load@client.test';
const TO = 'rcpt@remote.test';

/**
 * The message a client sends for `mid`: headers and `lines` body lines of 70 letters (no line
 * starts with a dot, so nothing needs stuffing), CRLF line ends. Rebuilt to check what arrived.
 */
function content(mid: string, lines: number): string {
  const body: string[] = [];
  for (let i = 0; i < lines; i++) body.push(String.fromCharCode(97 + (i % 26)).repeat(70));
  return [`From: <${FROM}>`, `To: <${TO}>`, `Subject: crash test ${mid}`, `Message-ID: <${mid}>`, '', ...body, `end of ${mid}`, ''].join('\r\n');
}

interface Sent {
  readonly lines: number;
  /** The 250 after DATA arrived. */
  acked: boolean;
}

class Load {
  readonly sent = new Map<string, Sent>();
  readonly refused: string[] = [];
  /** Transactions between MAIL and the final reply right now. */
  inTransaction = 0;
  /** Sessions that broke (the server died under them) or could not connect (it was not back yet). */
  sessionsBroken = 0;
  stopped = false;
  private seq = 0;

  constructor(
    private readonly port: () => number,
    private readonly random: () => number,
  ) {}

  run(): Promise<void[]> {
    return Promise.all(Array.from({ length: LOAD_CLIENTS }, (_, k) => this.client(k)));
  }

  private next(k: number): { mid: string; lines: number } {
    // Mostly small; about 1 in 150 over 1 MiB, which the session streams to a .part file first.
    const r = this.random();
    const lines = r < 0.007 ? 15_500 : 3 + Math.floor(this.random() * 150);
    return { mid: `crash-${k}-${++this.seq}@client.test`, lines };
  }

  private async client(k: number): Promise<void> {
    while (!this.stopped) {
      let c: SmtpClient | null = null;
      try {
        c = await SmtpClient.connect(this.port());
        const greeting = await c.read();
        if (greeting.code !== 220) throw new Error(`greeting ${greeting.raw}`);
        if ((await c.ehlo('load.client.test')).code !== 250) throw new Error('EHLO refused');
        for (let i = 0; i < PER_CONNECTION && !this.stopped; i++) {
          const { mid, lines } = this.next(k);
          const s: Sent = { lines, acked: false };
          this.sent.set(mid, s);
          this.inTransaction++;
          try {
            const r = await c.sendMail(FROM, [TO], content(mid, lines));
            if (r.code === 250) s.acked = true;
            else this.refused.push(`${mid}: ${r.raw.trim()}`);
          } finally {
            this.inTransaction--;
          }
        }
        await c.quit();
      } catch {
        // The server died under this session (or is not back yet): whatever was in progress is
        // unacknowledged. Connect again shortly.
        this.sessionsBroken++;
        c?.destroy();
        await sleep(20 + this.random() * 30);
      }
    }
  }
}

/** Files in the queue directory: messages, states, held messages, debris. */
function queueFiles(server: Server): string[] {
  try {
    return readdirSync(server.queueDir);
  } catch {
    return [];
  }
}

const servers: Server[] = [];
let recorder: SmtpResponder | null = null;
after(async () => {
  const last = servers[servers.length - 1];
  for (const s of servers) if (s !== last) await s.kill();
  await last?.stop();
  await recorder?.close();
});

test('kill -9 under load: every acknowledged message is delivered; duplicates are counted and bounded', { timeout: 90_000 }, async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = seededRandom(seed);
  recorder = await SmtpResponder.start();
  let server = await Server.start({
    conf: {
      'delivery.runner': 'yes',
      'delivery.smarthost': `127.0.0.1:${recorder.port}`,
      'delivery.concurrency': String(CONCURRENCY),
      'delivery.perdestination': String(PER_DESTINATION),
      // A temporary failure would otherwise wait 5 minutes; none is expected, but the drain must not hang on one.
      'delivery.backoff': '1s',
      'smtp.maxconnectionsperip': '100',
    },
  });
  servers.push(server);
  const load = new Load(() => server.ports.smtp, random);
  const loadDone = load.run();

  const kills: { phase: string; afterMs: number; queued: number; inTransaction: number }[] = [];
  try {
    for (const phase of PHASES) {
      const afterMs = Math.round(phase === 'load' ? 800 + random() * 1700 : random() * 150);
      await sleep(afterMs);
      const queued = queueFiles(server).filter((n) => n.endsWith('.msg')).length;
      const inTransaction = load.inTransaction;
      const exit = await server.kill();
      assert.equal(exit.signal, 'SIGKILL', `the server exited on its own before the kill: ${server.stderr.slice(-2000)}`);
      kills.push({ phase, afterMs, queued, inTransaction });
      server = await server.restart();
      servers.push(server);
    }
    await sleep(1000);
  } finally {
    load.stopped = true;
    await loadDone;
  }

  // The spool empties: every message delivered and removed, with its state (docs/spool.md).
  const queuedAtLoadEnd = queueFiles(server).filter((n) => n.endsWith('.msg')).length;
  const drainStart = Date.now();
  await waitFor('the queue to empty', () => (queueFiles(server).length === 0 ? true : undefined), 30_000, 100).catch((e: unknown) => {
    throw new Error(`${String(e)}; left: ${queueFiles(server).slice(0, 20).join(' ')}`);
  });
  const drainMs = Date.now() - drainStart;

  const copies = new Map<string, Buffer[]>();
  for (const m of recorder.messages) {
    const mid = /^Message-ID: <([^>]+)>\r?$/im.exec(m.data.toString('latin1'))?.[1] ?? '(no Message-ID)';
    const list = copies.get(mid);
    if (list) list.push(m.data);
    else copies.set(mid, [m.data]);
  }
  const acked = [...load.sent].filter(([, s]) => s.acked).map(([mid]) => mid);
  const lost = acked.filter((mid) => !copies.has(mid));
  const strangers = [...copies.keys()].filter((mid) => !load.sent.has(mid));
  const corrupt: string[] = [];
  for (const [mid, list] of copies) {
    const s = load.sent.get(mid);
    if (s === undefined) continue;
    const expected = Buffer.from(content(mid, s.lines), 'latin1');
    for (const data of list) if (data.length < expected.length || !data.subarray(data.length - expected.length).equals(expected)) corrupt.push(mid);
  }
  const duplicated = [...copies.values()].filter((l) => l.length > 1);
  const extraCopies = duplicated.reduce((sum, l) => sum + l.length - 1, 0);
  const unackedDelivered = [...copies.keys()].filter((mid) => load.sent.get(mid)?.acked === false).length;
  const faults = servers.flatMap((s) => s.faults().map((r) => `${r.event}: ${JSON.stringify(r)}`));

  const numbers = {
    seed,
    kills: kills.length,
    sent: load.sent.size,
    acknowledged: acked.length,
    delivered: copies.size,
    deliveries: recorder.messages.length,
    duplicatedMessages: duplicated.length,
    extraCopies,
    unacknowledgedDelivered: unackedDelivered,
    unacknowledged: load.sent.size - acked.length,
    sessionsBroken: load.sessionsBroken,
    queuedAtLoadEnd,
    drainMs,
  };
  t.diagnostic(`crash test: ${JSON.stringify(numbers)}`);
  for (const k of kills) t.diagnostic(`kill (${k.phase}, ${k.afterMs} ms after start): ${k.queued} messages queued, ${k.inTransaction} client transactions open`);

  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged messages never delivered (seed ${seed})`);
  assert.deepEqual(corrupt.slice(0, 10), [], `${corrupt.length} delivered copies differ from what the client sent (seed ${seed})`);
  assert.deepEqual(strangers.slice(0, 10), [], 'messages no client sent');
  assert.deepEqual(load.refused.slice(0, 10), [], 'messages refused');
  assert.deepEqual(faults.slice(0, 5), [], 'faults in the server logs');
  // The load was real and the kills hit work in progress.
  assert.ok(acked.length >= 300, `only ${acked.length} messages acknowledged: the load did not run`);
  assert.ok(
    kills.some((k) => k.queued > 0),
    'no kill found a message in the queue: the runner was never interrupted with work to do',
  );
  assert.ok(
    kills.some((k) => k.inTransaction > 0),
    'no kill found a client transaction open',
  );
  // See the top of the file: a crash repeats at most the attempts in flight, at most delivery.concurrency.
  assert.ok(extraCopies <= kills.length * CONCURRENCY, `${extraCopies} duplicate deliveries after ${kills.length} crashes (bound ${kills.length * CONCURRENCY}; seed ${seed})`);
});
