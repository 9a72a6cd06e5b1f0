// One append-only log file with rotation: `<dir>/<current>` is written; it is renamed to
// `<dir>/<base>.<YYYY-MM-DD>.<n>` (the day of the records it holds, n counting from 1 within the
// day) before a line of a later day, before a line that would take it past the size limit, or at
// the midnight tick; only the newest `keep` archives stay.
//
// Lines wait in an in-memory queue and leave it only once written, so a failed write or rename is
// retried with nothing lost or repeated (a write that fails half-way may leave a partial line). A
// file is driven by one caller at a time (writer.ts serialises every operation).

import { appendFileSync } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { logDay } from './format.js';

export interface RotationPolicy {
  /** Rotate before a line would take the file past this many bytes; 0: only daily. */
  readonly rotateSize: number;
  /** Archives kept; older ones are deleted. */
  readonly keep: number;
  /** Days are UTC days (else local). */
  readonly utc: boolean;
}

export interface QueuedLine {
  readonly line: string;
  /** logDay of the record's time. */
  readonly day: string;
}

const ARCHIVE_RE = /^(\d{4}-\d{2}-\d{2})\.(\d+)$/;

export class RotatingFile {
  private readonly queue: QueuedLine[] = [];
  private fh: FileHandle | null = null;
  private size = 0;
  /** The day of the newest line in the current file; null when it is empty or new. */
  private day: string | null = null;
  /** Lines refused because the queue was full (the disk has been failing for a long time). */
  dropped = 0;
  written = 0;

  constructor(
    readonly dir: string,
    readonly current: string,
    readonly base: string,
    private readonly maxQueued: number,
    private readonly onRotate?: (archive: string) => void,
  ) {}

  get path(): string {
    return join(this.dir, this.current);
  }

  get pending(): number {
    return this.queue.length;
  }

  enqueue(line: QueuedLine): void {
    if (this.queue.length >= this.maxQueued) {
      this.dropped++;
      return;
    }
    this.queue.push(line);
  }

  private async ensureOpen(policy: RotationPolicy): Promise<FileHandle> {
    if (this.fh !== null) return this.fh;
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    try {
      const st = await stat(this.path);
      this.size = st.size;
      // A file left by an earlier run holds the records of the day it was last written.
      this.day = st.size > 0 ? logDay(st.mtime, policy.utc) : null;
    } catch {
      this.size = 0;
      this.day = null;
    }
    this.fh = await open(this.path, 'a', 0o640);
    return this.fh;
  }

  private dueBefore(line: QueuedLine, bytes: number, size: number, day: string | null, policy: RotationPolicy): boolean {
    if (size === 0) return false;
    if (day !== null && line.day > day) return true;
    return policy.rotateSize > 0 && size + bytes > policy.rotateSize;
  }

  /** Writes every queued line, rotating where due. Throws on an I/O error; the lines not written stay queued. */
  async drain(policy: RotationPolicy): Promise<void> {
    while (this.queue.length > 0) {
      const fh = await this.ensureOpen(policy);
      const first = this.queue[0] as QueuedLine;
      if (this.dueBefore(first, Buffer.byteLength(first.line), this.size, this.day, policy)) {
        await this.rotate(policy);
        continue;
      }
      // The longest run of lines that goes into the current file without a rotation.
      let chunk = '';
      let bytes = 0;
      let day = this.day;
      let k = 0;
      for (; k < this.queue.length; k++) {
        const q = this.queue[k] as QueuedLine;
        const b = Buffer.byteLength(q.line);
        if (k > 0 && this.dueBefore(q, b, this.size + bytes, day, policy)) break;
        chunk += q.line;
        bytes += b;
        if (day === null || q.day > day) day = q.day;
      }
      await fh.write(chunk);
      this.size += bytes;
      this.day = day;
      this.queue.splice(0, k);
      this.written += k;
    }
  }

  /** The midnight tick: a non-empty file holding an earlier day's lines is rotated. */
  async rotateIfBefore(today: string, policy: RotationPolicy): Promise<void> {
    if (this.fh === null) {
      // Not written by this run: rotate a file left behind, but never create one.
      try {
        if ((await stat(this.path)).size === 0) return;
      } catch {
        return;
      }
      await this.ensureOpen(policy);
    }
    if (this.size > 0 && this.day !== null && this.day < today) await this.rotate(policy);
  }

  private async rotate(policy: RotationPolicy): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    if (fh !== null) await fh.close();
    const day = this.day ?? logDay(new Date(), policy.utc);
    const names = await readdir(this.dir);
    const archives = this.archives(names);
    const seq = 1 + Math.max(0, ...archives.filter((a) => a.day === day).map((a) => a.seq));
    const archive = `${this.base}.${day}.${seq}`;
    await rename(this.path, join(this.dir, archive));
    this.size = 0;
    this.day = null;
    this.onRotate?.(archive);
    await this.prune(policy.keep);
  }

  private archives(names: readonly string[]): { name: string; day: string; seq: number }[] {
    const out: { name: string; day: string; seq: number }[] = [];
    const prefix = `${this.base}.`;
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const m = ARCHIVE_RE.exec(name.slice(prefix.length));
      if (m !== null) out.push({ name, day: m[1] as string, seq: Number(m[2]) });
    }
    return out.sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : a.seq - b.seq));
  }

  /** Deletes all but the newest `keep` archives. */
  async prune(keep: number): Promise<void> {
    const all = this.archives(await readdir(this.dir));
    for (const a of all.slice(0, Math.max(0, all.length - keep))) {
      await unlink(join(this.dir, a.name)).catch(() => undefined);
    }
  }

  /** Closes the file; queued lines stay queued. */
  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    if (fh !== null) await fh.close();
  }

  /** After close: appends synchronously, without rotation (records written during shutdown). */
  appendNow(line: string): void {
    appendFileSync(this.path, line, { mode: 0o640 });
    this.written++;
  }

  /** Forgets the queue (closing after the disk kept failing); returns how many lines were lost. */
  discard(): number {
    const n = this.queue.length;
    this.queue.length = 0;
    this.dropped += n;
    return n;
  }
}
