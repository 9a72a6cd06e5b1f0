// Integration-test harness: runs the real `portcullis` executable (dist/src/cli/bin.js, built by
// `npm run build`) as a child process with a configuration written for the test, and drives it
// with real clients: a byte-exact raw SMTP client (net/tls), swaks, Python's smtplib and
// nodemailer. Loopback source addresses (127.0.0.2, 127.0.0.3, ...) play different hosts.
//
// Every test file starts its own server on ports picked by binding port 0, so files can run
// concurrently. Nothing here may leave a handle open: the runner waits for all of them.
//
// Run: npm run build && node --import tsx --test --test-concurrency=2 tests/integration/*.test.ts

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { freePort } from '../support/free-port.js';
export { freePort } from '../support/free-port.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'dist', 'src', 'cli', 'bin.js');
export const DOMAIN = 'example.test';
export const HOSTNAME = 'mx.example.test';

// ---------------------------------------------------------------------------------------------
// Child processes

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion (with a hard time limit), feeding `stdin` if given. */
export function run(cmd: string, args: readonly string[], opts: { stdin?: string | Buffer; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => undefined);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
    else child.stdin.end();
  });
}

/** Runs `portcullis ARGS...`. */
export function portcullis(args: readonly string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], opts);
}

/** Runs a Python 3 script (stdlib only) with arguments; the script usually prints JSON. */
export function python(script: string, args: readonly string[] = [], timeoutMs = 30_000): Promise<RunResult> {
  return run('python3', ['-c', script, ...args], { timeoutMs });
}

/** Runs swaks with a short timeout. */
export function swaks(args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return run('/usr/bin/swaks', ['--timeout', '10s', ...args], { timeoutMs });
}

// ---------------------------------------------------------------------------------------------
// Ports, files, timing

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Rewrites `key = value` lines of a msg.conf text; keys not present are appended. */
export function setConfValues(text: string, values: Readonly<Record<string, string>>): string {
  let out = text;
  for (const [key, value] of Object.entries(values)) {
    const re = new RegExp(`^${key.replace(/\./g, '\\.')}[ \\t]*=.*$`, 'mi');
    const line = `${key} = ${value}`;
    out = re.test(out) ? out.replace(re, line) : `${out.replace(/\n?$/, '\n')}${line}\n`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The server under test

export interface LogRecord {
  readonly time: string;
  readonly level: string;
  readonly event: string;
  readonly [field: string]: unknown;
}

/** The spool envelope as documented in docs/spool.md (only the fields the tests read are typed). */
export interface Envelope {
  readonly version: number;
  readonly id: string;
  readonly receivedAt: string;
  readonly sender: string;
  readonly senderParams: {
    readonly size: number | null;
    readonly body: string | null;
    readonly smtputf8: boolean;
    readonly ret: string | null;
    readonly envid: string | null;
    readonly auth: string | null;
  };
  readonly recipients: readonly {
    address: string;
    orcpt: string | null;
    notify: readonly string[] | null;
    channel: string | null;
    deliverTo?: readonly { address: string; channel: string }[];
    status: string;
  }[];
  readonly sourceChannel: string;
  readonly service: string;
  readonly auth: string | null;
  readonly client: { readonly ip: string; readonly port: number; readonly helo: string | null; readonly via: string | null };
  readonly tls: { readonly protocol: string; readonly cipher: string } | null;
  readonly size: number;
  readonly flags: readonly string[];
}

export interface UserSpec {
  readonly address: string;
  readonly password: string;
}

export interface Ports {
  readonly smtp: number;
  readonly submit: number;
  readonly smtps: number;
}

/**
 * The text of a configuration file that replaces the one `portcullis init` wrote: as is, or built
 * from the ports the server will listen on (access tables name the real port numbers) and init's text.
 */
export type ConfigText = string | ((ctx: { readonly ports: Ports; readonly text: string }) => string);

export interface ServerSpec {
  /**
   * A configuration directory to copy and run instead of the one `portcullis init` writes (a
   * shipped example). The copy gets the test's ports, store.datadir inside the copy, and `conf`;
   * its hosted domains come from `domains`.
   */
  readonly from?: string;
  /** msg.conf values to set on top of `portcullis init --unprivileged` (or of `from`'s msg.conf). */
  readonly conf?: Readonly<Record<string, string>>;
  /** Domains to host besides DOMAIN, or alias domains of hosted ones (added before the users). */
  readonly domains?: readonly (string | { readonly name: string; readonly aliasOf: string })[];
  readonly users?: readonly UserSpec[];
  /** Replaces DIR/mappings (the access tables). */
  readonly mappings?: ConfigText;
  /** Replaces DIR/imta.cnf (rewrite rules and channels). */
  readonly imta?: ConfigText;
  /** Source address of the start-up check's connection to the SMTP port (default 127.0.0.1), for tables that turn 127.0.0.1 away. */
  readonly readyFrom?: string;
}

/** Servers still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export class Server {
  private stdoutText = '';
  private stderrText = '';
  private exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;

  private constructor(
    readonly dir: string,
    readonly configDir: string,
    readonly dataDir: string,
    readonly ports: Ports,
    readonly proc: ChildProcess,
  ) {
    proc.stdout?.setEncoding('utf8');
    proc.stderr?.setEncoding('utf8');
    proc.stdout?.on('data', (d: string) => (this.stdoutText += d));
    proc.stderr?.on('data', (d: string) => (this.stderrText += d));
    live.add(proc);
    this.exited = new Promise((r) =>
      proc.once('exit', (code, signal) => {
        live.delete(proc);
        this.exit = { code, signal };
        r();
      }),
    );
  }

  get certFile(): string {
    return join(this.configDir, 'tls', 'cert.pem');
  }

  get msgConfPath(): string {
    return join(this.configDir, 'msg.conf');
  }

  get queueDir(): string {
    return join(this.dataDir, 'queue');
  }

  get logFile(): string {
    return join(this.dataDir, 'log', 'portcullis.log');
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  get stdout(): string {
    return this.stdoutText;
  }

  get stderr(): string {
    return this.stderrText;
  }

  get running(): boolean {
    return this.exit === null;
  }

  /** Starts a server with a fresh configuration; retries with new ports if one was taken meanwhile. */
  static async start(spec: ServerSpec = {}): Promise<Server> {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-it-'));
    const configDir = join(dir, 'config');
    const dataDir = join(configDir, 'data');
    if (spec.from !== undefined) {
      cpSync(spec.from, configDir, { recursive: true });
    } else {
      const init = await portcullis(['init', configDir, '--domain', DOMAIN, '--hostname', HOSTNAME, '--unprivileged']);
      if (init.code !== 0) throw new Error(`portcullis init failed (${init.code}): ${init.stderr}`);
      // init makes its domain hosted; the directory must say so.
      const dom = await portcullis(['domain', 'list', '--json', '--data', dataDir]);
      if (dom.code !== 0 || !dom.stdout.includes(`"${DOMAIN}"`)) throw new Error(`init did not host ${DOMAIN}: ${dom.stdout}${dom.stderr}`);
    }
    for (const d of spec.domains ?? []) {
      const args = typeof d === 'string' ? [d] : [d.name, '--alias-of', d.aliasOf];
      const r = await portcullis(['domain', 'add', ...args, '--data', dataDir]);
      if (r.code !== 0) throw new Error(`portcullis domain add ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    }
    for (const u of spec.users ?? []) {
      const r = await portcullis(['user', 'add', u.address, '--password-stdin', '--data', dataDir], { stdin: `${u.password}\n` });
      if (r.code !== 0) throw new Error(`portcullis user add ${u.address} failed (${r.code}): ${r.stderr}`);
    }
    const base = readFileSync(join(configDir, 'msg.conf'), 'utf8');
    const initText = (name: string): string => readFileSync(join(configDir, name), 'utf8');
    const written = { mappings: initText('mappings'), imta: initText('imta.cnf') };
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const picked = new Set<number>();
      while (picked.size < 3) picked.add(await freePort());
      const [smtp, submit, smtps] = [...picked] as [number, number, number];
      const ports = { smtp, submit, smtps };
      const conf = setConfValues(base, {
        'service.listenaddr': '127.0.0.1',
        'service.smtp.port': String(ports.smtp),
        'service.submit.port': String(ports.submit),
        'service.smtps.port': String(ports.smtps),
        // A copied configuration may name any data directory; the test's stays inside the copy.
        ...(spec.from !== undefined ? { 'store.datadir': dataDir } : {}),
        // Most tests examine what the SMTP service put in the queue: delivery tests turn the runner on.
        'delivery.runner': 'no',
        ...spec.conf,
      });
      writeFileSync(join(configDir, 'msg.conf'), conf);
      for (const [key, file] of [['mappings', 'mappings'], ['imta', 'imta.cnf']] as const) {
        const t = spec[key];
        if (t !== undefined) writeFileSync(join(configDir, file), typeof t === 'string' ? t : t({ ports, text: written[key] }));
      }
      const proc = spawn(process.execPath, [BIN, 'start', '--config', configDir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      const server = new Server(dir, configDir, dataDir, ports, proc);
      try {
        if (await server.ready(spec.readyFrom)) return server;
      } catch (e) {
        await server.stop();
        throw e;
      }
      lastError = server.stderr;
      if (!/EADDRINUSE/.test(lastError)) break;
    }
    throw new Error(`portcullis start failed: ${lastError}`);
  }

  /** Waits until the server listens and greets on its MX port: true, or false if it exited first. */
  private async ready(readyFrom: string | undefined): Promise<boolean> {
    await waitFor('the server to listen', () => (this.stdout.includes('listening on') ? true : this.running ? undefined : false), 15_000);
    if (!this.running) return false;
    const c = await SmtpClient.connect(this.ports.smtp, readyFrom !== undefined ? { localAddress: readyFrom } : {});
    const g = await c.read().finally(() => c.destroy());
    if (g.code !== 220) throw new Error(`unexpected greeting ${g.raw}`);
    return true;
  }

  /** SIGKILL, as in a crash: no shutdown code runs and the files stay (restart() runs the server on them again). */
  async kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.proc.kill('SIGKILL');
    await this.exited;
    return this.exit ?? { code: null, signal: null };
  }

  /**
   * Runs the server again, as a new process, on this one's configuration, data directory and
   * ports, once this one has exited (kill(), or stop() with keepFiles). Resolves when it greets.
   */
  async restart(opts: { readyFrom?: string } = {}): Promise<Server> {
    if (this.running) throw new Error('restart: the server is still running');
    const proc = spawn(process.execPath, [BIN, 'start', '--config', this.configDir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const server = new Server(this.dir, this.configDir, this.dataDir, this.ports, proc);
    try {
      if (await server.ready(opts.readyFrom)) return server;
    } catch (e) {
      await server.stop(3000, true);
      throw e;
    }
    throw new Error(`portcullis restart failed (${String(server.exit?.code ?? server.exit?.signal)}): ${server.stderr}`);
  }

  /** Structured log records written to standard error so far. */
  logs(): LogRecord[] {
    const out: LogRecord[] = [];
    for (const line of this.stderrText.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        // a partial last line
      }
    }
    return out;
  }

  /** Waits for a log record matching `pred` (by default any with that event). */
  waitForLog(event: string, pred: (r: LogRecord) => boolean = () => true, timeoutMs = 5000): Promise<LogRecord> {
    return waitFor(`log event ${event}`, () => this.logs().find((r) => r.event === event && pred(r)), timeoutMs);
  }

  /** Committed messages (a message exists once its .msg does), oldest first. */
  spoolIds(): string[] {
    if (!existsSync(this.queueDir)) return [];
    return readdirSync(this.queueDir)
      .filter((n) => n.endsWith('.msg'))
      .map((n) => n.slice(0, -4))
      .sort();
  }

  /**
   * Waits until the queue holds only committed messages: a refused or abandoned message's spill
   * file is removed asynchronously, just after the connection ends. Returns what is left.
   */
  async settledDebris(timeoutMs = 3000): Promise<string[]> {
    try {
      await waitFor('the queue to hold only committed messages', () => (this.spoolDebris().length === 0 ? true : undefined), timeoutMs);
    } catch {
      // fall through: report what is left
    }
    return this.spoolDebris();
  }

  /** Files in the queue that are not part of a committed message (partial bodies, temp files). */
  spoolDebris(): string[] {
    if (!existsSync(this.queueDir)) return [];
    const names = new Set(readdirSync(this.queueDir));
    return [...names].filter((n) => !n.endsWith('.msg'));
  }

  /** docs/spool.md: line 1 of <id>.msg is the envelope, the message follows. */
  private messageFile(id: string): string {
    return readFileSync(join(this.queueDir, `${id}.msg`), 'latin1');
  }

  envelope(id: string): Envelope {
    const text = this.messageFile(id);
    return JSON.parse(Buffer.from(text.slice(0, text.indexOf('\n')), 'latin1').toString('utf8')) as Envelope;
  }

  body(id: string): string {
    const text = this.messageFile(id);
    return Buffer.from(text.slice(text.indexOf('\n') + 1), 'latin1').toString('utf8');
  }

  /** Sends a small message on an open session; returns the spooled envelope. Throws unless it is accepted. */
  async deliver(c: SmtpClient, from: string, to: readonly string[], subject: string): Promise<Envelope> {
    const r = await c.sendMail(from, to, `Subject: ${subject}\r\n\r\nhello\r\n`);
    if (r.code !== 250) throw new Error(`message from <${from}> to ${to.join(', ')} not accepted: ${r.raw}`);
    return this.envelope(Server.idOf(r.text));
  }

  /** The message id in a "250 2.0.0 OK id=..." reply. */
  static idOf(reply: string): string {
    const m = /id=([A-Za-z0-9-]+)/.exec(reply);
    if (m === null) throw new Error(`no message id in reply: ${reply}`);
    return m[1] as string;
  }

  /** Rewrites msg.conf values (for reload tests). */
  setConf(values: Readonly<Record<string, string>>): void {
    writeFileSync(this.msgConfPath, setConfValues(readFileSync(this.msgConfPath, 'utf8'), values));
  }

  /** Resident memory of the server process, in KiB. */
  rssKiB(): number {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  }

  /** Session faults the server reported (a bug in our code, caught per connection). */
  faults(): LogRecord[] {
    return this.logs().filter((r) => r.level === 'error');
  }

  /** Waits for the process to exit on its own; null if it is still running after `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((r) => (t = setTimeout(r, timeoutMs)))]);
    clearTimeout(t);
    return this.exit;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; removes the files. */
  async stop(graceMs = 3000, keepFiles = false): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(t);
    }
    if (!keepFiles) rmSync(this.dir, { recursive: true, force: true });
    return this.exit ?? { code: null, signal: null };
  }
}

// ---------------------------------------------------------------------------------------------
// A byte-exact SMTP client

export interface Reply {
  readonly code: number;
  /** Text of each line after "NNN-" / "NNN ". */
  readonly lines: readonly string[];
  /** The reply as received, CRLFs included. */
  readonly raw: string;
  /** The last line's text. */
  readonly text: string;
}

export interface ConnectOptions {
  readonly host?: string;
  /** Source address, e.g. 127.0.0.5, to play another host. */
  readonly localAddress?: string;
  /** Implicit TLS (port 465 style). */
  readonly tls?: boolean;
  /** Bytes sent first, before TLS or the greeting (a PROXY header). */
  readonly prefix?: string | Buffer;
}

/**
 * A duplex over `sock` whose first write is preceded by `prefix` in the same socket write: with
 * TLS over it, a PROXY header and the ClientHello reach the server together, as from a proxy that
 * forwards what it has buffered.
 */
function prefixed(sock: net.Socket, prefix: string | Buffer): Duplex {
  let first: Buffer | null = Buffer.from(prefix);
  const d = new Duplex({
    read() {
      sock.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      const data = first !== null ? Buffer.concat([first, chunk]) : chunk;
      first = null;
      sock.write(data, (err) => cb(err ?? null));
    },
    final(cb) {
      sock.end(() => cb());
    },
    destroy(err, cb) {
      sock.destroy();
      cb(err);
    },
  });
  sock.on('data', (b: Buffer) => {
    if (!d.push(b)) sock.pause();
  });
  sock.on('end', () => d.push(null));
  sock.on('close', () => d.destroy());
  sock.on('error', () => undefined);
  return d;
}

export class SmtpClient {
  /** Everything received, as latin1 text (byte-exact). */
  received = '';
  private buf = '';
  private replies: Reply[] = [];
  private waiters: (() => void)[] = [];
  private closedFlag = false;
  private readonly closedPromise: Promise<void>;
  private resolveClosed: () => void = () => undefined;

  private constructor(private sock: net.Socket) {
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    this.attach(sock);
  }

  static async connect(port: number, opts: ConnectOptions = {}): Promise<SmtpClient> {
    const host = opts.host ?? '127.0.0.1';
    const plain = await new Promise<net.Socket>((resolvePromise, reject) => {
      const sock = net.connect({ host, port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) });
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolvePromise(sock);
      });
    });
    plain.setNoDelay(true);
    if (!opts.tls) {
      if (opts.prefix !== undefined) plain.write(opts.prefix);
      return new SmtpClient(plain);
    }
    const secure = tls.connect({ socket: opts.prefix !== undefined ? prefixed(plain, opts.prefix) : plain, rejectUnauthorized: false, servername: HOSTNAME });
    await new Promise<void>((resolvePromise, reject) => {
      secure.once('error', (e: Error) => {
        plain.destroy();
        reject(e);
      });
      secure.once('secureConnect', () => resolvePromise());
    });
    return new SmtpClient(secure);
  }

  private attach(sock: net.Socket): void {
    sock.on('data', (d: Buffer) => {
      const s = d.toString('latin1');
      this.received += s;
      this.buf += s;
      this.parse();
      this.wake();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (sock !== this.sock) return;
      this.closedFlag = true;
      this.resolveClosed();
      this.wake();
    });
  }

  private parse(): void {
    for (;;) {
      let end = -1;
      let pos = 0;
      // A reply ends with a line "NNN text" (or just "NNN"); "NNN-" lines continue it.
      for (;;) {
        const nl = this.buf.indexOf('\n', pos);
        if (nl === -1) break;
        const line = this.buf.slice(pos, nl);
        pos = nl + 1;
        if (/^\d{3}(?: |\r?$)/.test(line)) {
          end = pos;
          break;
        }
      }
      if (end === -1) return;
      const raw = this.buf.slice(0, end);
      this.buf = this.buf.slice(end);
      const lines = raw
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.replace(/\r$/, ''));
      const code = Number((lines[lines.length - 1] ?? '').slice(0, 3));
      const texts = lines.map((l) => l.slice(4));
      this.replies.push({ code, lines: texts, raw, text: texts[texts.length - 1] ?? '' });
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private waitChange(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((f) => f !== done);
        r();
      }, ms);
      const done = (): void => {
        clearTimeout(t);
        r();
      };
      this.waiters.push(done);
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Replies received and not read yet. */
  get pending(): number {
    return this.replies.length;
  }

  /** The next complete reply; throws if the connection closes or nothing comes within the time. */
  async read(timeoutMs = 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.replies.shift();
      if (r !== undefined) return r;
      if (this.closedFlag) throw new Error(`connection closed while waiting for a reply; received so far:\n${this.received}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; received so far:\n${this.received}`);
      await this.waitChange(left);
    }
  }

  /** Reads `n` replies. */
  async readN(n: number, timeoutMs = 5000): Promise<Reply[]> {
    const out: Reply[] = [];
    for (let k = 0; k < n; k++) out.push(await this.read(timeoutMs));
    return out;
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((r) => {
      if (this.sock.destroyed || !this.sock.writable) {
        r();
        return;
      }
      this.sock.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, () => r());
    });
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async cmd(line: string, timeoutMs = 5000): Promise<Reply> {
    await this.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** Resolves true when the server closes the connection within the time. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    if (this.closedFlag) return true;
    let t: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((r) => (t = setTimeout(() => r(false), timeoutMs)));
    const r = await Promise.race([this.closedPromise.then(() => true), timedOut]);
    clearTimeout(t);
    return r;
  }

  /** Upgrades to TLS after a 220 to STARTTLS. Bytes left unread on the plain connection stay in `received`. */
  async startTls(): Promise<{ protocol: string | null }> {
    const plain = this.sock;
    plain.removeAllListeners('data');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false, servername: HOSTNAME });
    await new Promise<void>((resolvePromise, reject) => {
      secure.once('secureConnect', () => resolvePromise());
      secure.once('error', reject);
    });
    this.sock = secure;
    this.attach(secure);
    plain.on('close', () => {
      this.closedFlag = true;
      this.resolveClosed();
      this.wake();
    });
    return { protocol: secure.getProtocol() };
  }

  /** EHLO and its reply lines. */
  async ehlo(name = 'client.example'): Promise<Reply> {
    return this.cmd(`EHLO ${name}`);
  }

  /** Runs MAIL, RCPT..., DATA and sends `content` (dot-stuffing is the caller's), returning the final reply. */
  async sendMail(from: string, to: readonly string[], content: string, mailParams = ''): Promise<Reply> {
    const m = await this.cmd(`MAIL FROM:<${from}>${mailParams ? ' ' + mailParams : ''}`);
    if (m.code !== 250) return m;
    let accepted = 0;
    for (const t of to) if ((await this.cmd(`RCPT TO:<${t}>`)).code === 250) accepted++;
    if (accepted === 0) return this.cmd('RSET');
    const d = await this.cmd('DATA');
    if (d.code !== 354) return d;
    await this.write(content.endsWith('\r\n') ? `${content}.\r\n` : `${content}\r\n.\r\n`);
    return this.read();
  }

  async quit(): Promise<void> {
    if (!this.closedFlag) {
      await this.write('QUIT\r\n');
      await this.waitClosed(2000);
    }
    this.destroy();
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Codes of several replies, for compact assertions. */
export function codes(replies: readonly Reply[]): number[] {
  return replies.map((r) => r.code);
}

/** "code enhanced" of a reply's last line, e.g. "550 5.7.1". */
export function status(r: Reply): string {
  const m = /^(\d\.\d{1,3}\.\d{1,3})\b/.exec(r.text);
  return m ? `${r.code} ${m[1]}` : String(r.code);
}

/** A small RFC 5322 message with CRLF line endings. */
export function message(subject: string, extraHeaders: readonly string[] = [], body = 'Hello.\r\n'): string {
  return [`From: <sender@remote.test>`, `To: <alice@${DOMAIN}>`, `Subject: ${subject}`, ...extraHeaders, '', body].join('\r\n');
}

/** Opens a client; the caller must close it. */
export async function connectGreeted(port: number, opts: ConnectOptions = {}): Promise<{ c: SmtpClient; greeting: Reply }> {
  const c = await SmtpClient.connect(port, opts);
  const greeting = await c.read();
  return { c, greeting };
}

/** Opens a client from `source`, expects the 220 greeting and says EHLO; the caller must close it. */
export async function openSession(port: number, source: string, helo = 'client.example'): Promise<SmtpClient> {
  const { c, greeting } = await connectGreeted(port, { localAddress: source });
  const ehlo = greeting.code === 220 ? await c.ehlo(helo) : null;
  if (ehlo?.code !== 250) {
    c.destroy();
    throw new Error(`no session from ${source} on port ${port}: ${greeting.raw}${ehlo?.raw ?? ''}`);
  }
  return c;
}

/** Connects from `source` and returns everything received until the server closes (a connect-time refusal). */
export async function turnedAway(port: number, source: string, timeoutMs = 5000): Promise<string> {
  const c = await SmtpClient.connect(port, { localAddress: source });
  try {
    if (!(await c.waitClosed(timeoutMs))) throw new Error(`the server did not close the connection from ${source}; received:\n${c.received}`);
    return c.received;
  } finally {
    c.destroy();
  }
}

/** STARTTLS (unless the connection is already on TLS), EHLO again, then AUTH PLAIN; returns the AUTH reply. */
export async function startTlsAndAuth(c: SmtpClient, user: string, password: string, opts: { helo?: string; implicitTls?: boolean } = {}): Promise<Reply> {
  const helo = opts.helo ?? 'client.example';
  await c.ehlo(helo);
  if (opts.implicitTls !== true) {
    const r = await c.cmd('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.raw}`);
    await c.startTls();
    await c.ehlo(helo);
  }
  return c.cmd(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64')}`);
}

/** Runs `fn` and measures how long it took, in milliseconds. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}
