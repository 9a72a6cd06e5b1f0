// Room in the spool's file system. Accepting a message the disk cannot hold would end in a 451
// after the client sent it all; refusing MAIL FROM with 452 4.3.1 (RFC 5321 §4.2.2, RFC 3463 "mail
// system full") while space is low tells the client at once, and keeps the room that remains for
// the queue runner's state files and DSNs. Postfix does the same with queue_minfree.
//
// statfs is asked at most once a second (a cached answer is used meanwhile), so a flood of MAIL
// commands costs one system call a second.

import { statfs } from 'node:fs/promises';

export type FreeBytes = (path: string) => Promise<number>;

const statfsFree: FreeBytes = async (path) => {
  const s = await statfs(path);
  return s.bavail * s.bsize;
};

export class SpaceGuard {
  private free: number | null = null;
  private checkedAt = -Infinity;
  private pending: Promise<void> | null = null;

  constructor(
    private readonly path: string,
    private readonly freeBytes: FreeBytes = statfsFree,
    private readonly now: () => number = Date.now,
    private readonly maxAgeMs = 1000,
  ) {}

  /**
   * Whether `size` more bytes fit while keeping `minFree` bytes free. With minFree 0 the check is
   * off. When the file system cannot be asked, mail is accepted (the commit reports a real failure).
   */
  async hasRoom(minFree: number, size: number): Promise<boolean> {
    if (minFree <= 0) return true;
    if (this.now() - this.checkedAt >= this.maxAgeMs) {
      this.pending ??= this.refresh().finally(() => (this.pending = null));
      await this.pending;
    }
    return this.free === null || this.free - size >= minFree;
  }

  private warnedAt = -Infinity;

  /** True at most once every 10 s: whether a refusal for lack of space should be logged. */
  shouldWarn(): boolean {
    if (this.now() - this.warnedAt < 10_000) return false;
    this.warnedAt = this.now();
    return true;
  }

  /** The last answer (bytes free), or null when none was had. */
  get lastFree(): number | null {
    return this.free;
  }

  private async refresh(): Promise<void> {
    try {
      this.free = await this.freeBytes(this.path);
    } catch {
      this.free = null;
    }
    this.checkedAt = this.now();
  }
}
