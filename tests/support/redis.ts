// A real Redis server for tests (Debian's redis-server, ../shared/peers.md C.4): started on a free
// loopback port in a private directory, with no persistence, optionally with a password
// (requirepass, which Portcullis sends as metermaid.config.secret). Tests may stop it, start it
// again on the same port, or pause it (SIGSTOP) to play a server that hangs.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

/** True when redis-server is installed (CI installs it; see .ci/run). */
export function haveRedis(): boolean {
  return spawnSync(REDIS_SERVER, ['--version']).status === 0;
}

function answersPing(port: number, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (v: boolean): void => {
      c.destroy();
      resolve(v);
    };
    c.setTimeout(500, () => done(false));
    c.on('error', () => done(false));
    // RESP arrays, so that any password (spaces included) is sent as one argument.
    const resp = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    c.on('connect', () => c.write(`${password ? resp('AUTH', password) : ''}${resp('PING')}`));
    c.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('+PONG')) done(true);
      else if (buf.includes('-')) done(false);
    });
  });
}

export class RedisServer {
  private child: ChildProcess | null = null;
  private readonly dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-'));

  private constructor(
    readonly port: number,
    readonly password: string,
  ) {}

  /** Starts a server on a free port; `password` sets requirepass. */
  static async start(opts: { password?: string } = {}): Promise<RedisServer> {
    const r = new RedisServer(await freePort(), opts.password ?? '');
    try {
      await r.start();
    } catch (err) {
      await r.close();
      throw err;
    }
    return r;
  }

  /** (Re)starts the server on its port and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.child !== null) return;
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'warning'];
    if (this.password) args.push('--requirepass', this.password);
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = null;
    });
    for (let i = 0; i < 100; i++) {
      if (await answersPing(this.port, this.password)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new Error(`redis-server did not come up on port ${this.port}`);
  }

  /** Stops the server (SIGTERM, then waits for it to exit); its data is gone. */
  async stop(): Promise<void> {
    const c = this.child;
    if (c === null) return;
    if (c.signalCode === null && c.exitCode === null) {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGCONT');
      c.kill('SIGTERM');
      await exited;
    }
    this.child = null;
  }

  /** Freezes the server (SIGSTOP): connections stay open but nothing is answered. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Runs redis-cli against this server and returns its output (for assertions on keys). */
  cli(...args: string[]): string {
    const auth = this.password ? ['-a', this.password, '--no-auth-warning'] : [];
    const r = spawnSync('redis-cli', ['-p', String(this.port), ...auth, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /** Stops the server and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
