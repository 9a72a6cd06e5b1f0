// Postfix's smtp-sink as the remote MTA in tests (Debian's postfix package, ../shared/peers.md
// C.2): started on a free loopback port with its own dump directory, run as nobody (required when
// the tests run as root), optionally with options that make it refuse commands (-f hard, -r soft,
// -Q 421 and disconnect, -q disconnect) or speak LMTP (-L). Each transaction is dumped to a file
// that messages() reads back: X-Helo-Args, X-Mail-Args, one X-Rcpt-Args per RCPT, the message.
// Missing smtp-sink is an error, not a skip: CI installs postfix (.ci/run).

import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Daemon } from './daemon.js';
import { freePort } from './free-port.js';
export { freePort } from './free-port.js';

export const SMTP_SINK = '/usr/sbin/smtp-sink';

export interface SinkMessage {
  readonly file: string;
  readonly clientAddr: string;
  readonly proto: string;
  readonly helo: string | null;
  /** The MAIL FROM arguments: "<a@b> SIZE=1 BODY=8BITMIME". */
  readonly mailArgs: string;
  /** The arguments of each RCPT TO, in order. */
  readonly rcptArgs: readonly string[];
  /** The message as received, dot-unstuffed, with LF line ends (smtp-sink writes lines with LF). */
  readonly content: string;
}

/** Resolves with the first reply line, or null if nothing answers on the port. */
function greeting(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const c = net.connect(port, host);
    let buf = '';
    const done = (v: string | null): void => {
      c.destroy();
      resolve(v);
    };
    c.setTimeout(1000, () => done(null));
    c.on('error', () => done(null));
    c.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl).trim());
    });
  });
}

/** Parses one dump file (smtp-sink(1), DUMP FILE FORMAT). */
export function parseDump(file: string): SinkMessage {
  const text = readFileSync(file, 'latin1');
  const lines = text.split('\n');
  const fields: { name: string; value: string }[] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const m = /^(X-[A-Za-z-]+): ?(.*)$/.exec(lines[i] ?? '');
    if (m === null) break;
    fields.push({ name: m[1] as string, value: m[2] as string });
  }
  // The three-line Received: header smtp-sink adds ends its own headers.
  if (!(lines[i] ?? '').startsWith('Received: ')) throw new Error(`${file}: no Received: line after the X- headers`);
  i++;
  while ((lines[i] ?? '').startsWith('\t')) i++;
  // smtp-sink ends the dump with an empty line of its own.
  const content = lines.slice(i).join('\n').replace(/\n$/, '');
  const get = (n: string): string | null => fields.find((f) => f.name === n)?.value ?? null;
  return {
    file,
    clientAddr: get('X-Client-Addr') ?? '',
    proto: get('X-Client-Proto') ?? '',
    helo: get('X-Helo-Args'),
    mailArgs: get('X-Mail-Args') ?? '',
    rcptArgs: fields.filter((f) => f.name === 'X-Rcpt-Args').map((f) => f.value),
    content,
  };
}

export class SmtpSink {
  private daemon: Daemon | null = null;

  private constructor(
    readonly dir: string,
    readonly host: string,
    readonly port: number,
    private readonly args: readonly string[],
  ) {}

  /**
   * Starts smtp-sink on `host` (default 127.0.0.1) and a free port. `args` are extra options
   * (e.g. ['-f', 'RCPT'] to refuse every RCPT with 5xx); `lmtp` adds -L.
   */
  static async start(opts: { args?: readonly string[]; lmtp?: boolean; host?: string } = {}): Promise<SmtpSink> {
    if (!existsSync(SMTP_SINK)) throw new Error(`${SMTP_SINK} not found: install Debian's postfix package (see .ci/run: apt-get install postfix)`);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-sink-'));
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'dump'));
    const root = userInfo().uid === 0;
    if (root) chownSync(join(dir, 'dump'), 65534, 65534);
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const sink = new SmtpSink(dir, opts.host ?? '127.0.0.1', await freePort(), [...(opts.lmtp === true ? ['-L'] : []), ...(opts.args ?? [])]);
      try {
        if (await sink.spawn(root)) return sink;
        lastError = sink.stderr;
      } catch (e) {
        await sink.close();
        throw e;
      }
      await sink.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`smtp-sink did not start: ${lastError}`);
  }

  private async spawn(root: boolean): Promise<boolean> {
    const args = [...(root ? ['-u', 'nobody'] : []), '-d', join(this.dir, 'dump', 'msg.'), ...this.args, `${this.host}:${this.port}`, '64'];
    this.daemon = Daemon.spawn(SMTP_SINK, args);
    return this.daemon.waitReady(async () => (await greeting(this.host, this.port)) !== null, 100);
  }

  /** Complete transactions dumped so far, oldest first (dump names are random: by modification time). */
  messages(): SinkMessage[] {
    const d = join(this.dir, 'dump');
    return readdirSync(d)
      .map((n) => join(d, n))
      .map((f) => ({ f, t: statSync(f).mtimeMs }))
      .sort((a, b) => a.t - b.t || a.f.localeCompare(b.f))
      .flatMap((x) => {
        // A transaction in progress has a dump file that is not complete yet.
        try {
          return [parseDump(x.f)];
        } catch {
          return [];
        }
      });
  }

  /** Waits until `n` transactions have been dumped. */
  async waitMessages(n: number, timeoutMs = 5000): Promise<SinkMessage[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.messages();
      if (m.length >= n) return m;
      if (Date.now() > deadline) throw new Error(`smtp-sink has ${m.length} messages, expected ${n}; stderr: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  get stderr(): string {
    return this.daemon?.stderr ?? '';
  }

  private async stop(): Promise<void> {
    await this.daemon?.stop();
  }

  /** Stops smtp-sink and removes its files. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
