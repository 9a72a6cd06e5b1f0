// A Transport with no socket, for running the real Session in memory (`portcullis test session`).
// Replies are collected as text; STARTTLS "upgrades" at once to fixed TLS facts; the idle timer
// never fires (a replay has no clock to run out). The driver sends bytes with session.receive()
// and waits with settled() until the session has handled everything it was given.
//
// How settled() knows: the session corks the transport when it starts draining its decoder and
// uncorks it when the drain ends (session.ts). STARTTLS also uncorks in the middle of a drain, just
// before the handshake, so a drop to zero only counts once the microtasks queued behind it have run
// (setImmediate): by then the handshake here has completed and the drain has either corked again or
// ended.

import type { TlsFacts } from '../../policy/session-policy.js';
import type { Transport } from './session.js';

/** What `tls yes` and a STARTTLS in memory pretend was negotiated. */
export const MEMORY_TLS: TlsFacts = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' };

export class MemoryTransport implements Transport {
  private output = '';
  private depth = 0;
  /** Counts the times the session went idle, so a waiter can tell a new idle from an old one. */
  private idles = 0;
  private waiters: (() => void)[] = [];
  private tlsActive: boolean;
  closed = false;

  constructor(
    /** Whether a certificate is configured (the server offers STARTTLS only then). */
    private readonly tlsConfigured: boolean,
    tlsActive: boolean,
    private readonly facts: TlsFacts = MEMORY_TLS,
  ) {
    this.tlsActive = tlsActive;
  }

  get canStartTls(): boolean {
    return this.tlsConfigured && !this.tlsActive;
  }

  write(text: string): void {
    if (!this.closed) this.output += text;
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  cork(): void {
    this.depth++;
  }

  uncork(): void {
    if (this.depth === 0) return;
    this.depth--;
    if (this.depth === 0) {
      setImmediate(() => {
        if (this.depth !== 0) return;
        this.idles++;
        this.wake();
      });
    }
  }

  pause(): void {}

  resume(): void {}

  startTls(): Promise<TlsFacts | null> {
    this.tlsActive = true;
    return Promise.resolve(this.facts);
  }

  setTimer(): void {}

  /** The text written since the last call. */
  take(): string {
    const out = this.output;
    this.output = '';
    return out;
  }

  /** A mark to pass to settled(): the session's idle count now. */
  mark(): number {
    return this.idles;
  }

  /** Resolves once the session went idle after `mark`, or the connection closed. */
  settled(mark: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.closed || this.idles > mark) resolve();
        else this.waiters.push(check);
      };
      check();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
