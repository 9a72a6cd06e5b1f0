// A peer program a test runs in the foreground (dovecot -F, smtp-sink): its stderr kept for error
// messages, ready once a probe of its port succeeds, stopped with SIGTERM. Shared by
// tests/support/dovecot.ts and tests/support/smtp-sink.ts.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

export class Daemon {
  private stderrText = '';

  private constructor(private child: ChildProcess | null) {}

  static spawn(cmd: string, args: readonly string[]): Daemon {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const d = new Daemon(child);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => (d.stderrText += s));
    child.once('exit', () => (d.child = null));
    return d;
  }

  /** What the program has written to stderr so far. */
  get stderr(): string {
    return this.stderrText;
  }

  /** Asks `ready` up to `tries` times, 30 ms apart; false as soon as the program has exited. */
  async waitReady(ready: () => Promise<boolean>, tries: number): Promise<boolean> {
    for (let i = 0; i < tries; i++) {
      if (this.child === null) return false;
      if (await ready()) return true;
      await new Promise((r) => setTimeout(r, 30));
    }
    return false;
  }

  /** SIGTERM, and waits for the exit; with `killAfterMs`, SIGKILL if it has not exited by then. */
  async stop(killAfterMs?: number): Promise<void> {
    const c = this.child;
    if (c === null) return;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const t = killAfterMs === undefined ? undefined : setTimeout(() => c.kill('SIGKILL'), killAfterMs);
      await exited;
      clearTimeout(t);
    }
    this.child = null;
  }
}
