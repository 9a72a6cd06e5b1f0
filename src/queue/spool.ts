// The spool: where an accepted message lives until delivery. Format (docs/spool.md):
//
//   <dataDir>/queue/<id>.eml    the message as received, with our Received: (and Message-ID:)
//                               prepended; CRLF line endings
//   <dataDir>/queue/<id>.json   the envelope (EnvelopeV1), human-readable JSON
//
// Commit order: the body is written and fsynced, the envelope is written to <id>.json.tmp,
// fsynced, renamed to <id>.json, and the directory is fsynced. Only then may the session answer
// 250. A message exists when its .json exists; a .eml without one is debris from a crash before
// commit and is removed at start-up. Directory fsyncs of concurrent commits are shared.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export type RecipientStatus = 'pending' | 'delivered' | 'failed' | 'deferred';

export interface EnvelopeRecipient {
  /** As given in RCPT TO (source route kept), lower-case domain. */
  readonly address: string;
  /** RFC 3461 ORCPT, "addr-type;address", or null. */
  readonly orcpt: string | null;
  /** RFC 3461 NOTIFY, or null when not given. */
  readonly notify: readonly string[] | null;
  /** Destination channel, when known. */
  readonly channel: string | null;
  status: RecipientStatus;
}

export interface EnvelopeV1 {
  readonly version: 1;
  readonly id: string;
  /** ISO 8601, when the 250 was about to be sent. */
  readonly receivedAt: string;
  /** Envelope sender; "" for the null reverse-path. */
  readonly sender: string;
  readonly senderParams: {
    readonly size: number | null;
    readonly body: string | null;
    readonly smtputf8: boolean;
    readonly ret: string | null;
    readonly envid: string | null;
    readonly auth: string | null;
  };
  readonly recipients: EnvelopeRecipient[];
  /** The channel that enqueued the message (e.g. tcp_local, tcp_auth). */
  readonly sourceChannel: string;
  /** smtp (25), submit (587) or smtps (465). */
  readonly service: string;
  /** The authenticated login, or null. */
  readonly auth: string | null;
  readonly client: {
    readonly ip: string;
    readonly port: number;
    readonly helo: string | null;
    /** The address the connection really came from when a PROXY header or XCLIENT replaced it. */
    readonly via: string | null;
  };
  readonly tls: { readonly protocol: string; readonly cipher: string } | null;
  /** Message size in octets, as stored (with our added headers). */
  readonly size: number;
  /** Flags from the access tables: hold ($H), bitbucket ($B) and so on; filled in by later issues. */
  readonly flags: readonly string[];
}

/** Bytes kept in memory before a message spills to a file. */
const SPILL_BYTES = 1 << 20;

export function newMessageId(now = Date.now()): string {
  return `${now.toString(36)}-${randomBytes(5).toString('hex')}`;
}

/** Shares one directory fsync among commits that arrive while another is running. */
class DirSyncer {
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  /** Kept open: opening the directory for every commit costs two more thread-pool round trips. */
  private handle: Promise<FileHandle> | null = null;

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) {
      this.running = this.once().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    const after = this.running;
    this.queued = after
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.sync();
      });
    return this.queued;
  }

  private async once(): Promise<void> {
    this.handle ??= open(this.dir, 'r');
    try {
      await (await this.handle).sync();
    } catch (err) {
      this.handle = null; // reopen next time
      throw err;
    }
  }
}

async function writeFully(fh: FileHandle, bufs: readonly Buffer[]): Promise<void> {
  if (bufs.length === 0) return;
  await fh.writev(bufs as Buffer[]);
}

/**
 * The body of one message being received. It starts with the header lines we prepend; content
 * chunks follow. Past SPILL_BYTES it streams to <id>.eml.part.
 */
export class BodyWriter {
  private readonly chunks: Buffer[] = [];
  private memBytes = 0;
  /** Set once the body spills to disk; `file` is filled in when the open completes. */
  private spilling = false;
  private file: FileHandle | null = null;
  private pending: Promise<void> = Promise.resolve();
  private failed: Error | null = null;
  bytes = 0;

  constructor(
    private readonly spool: Spool,
    readonly id: string,
    private readonly prefix: Buffer[],
  ) {
    for (const p of prefix) this.bytes += p.length;
  }

  /** The first content bytes still in memory (for header checks before commit). */
  head(): Buffer {
    return Buffer.concat(this.chunks.slice(0, 16));
  }

  /** Inserts a header line right after our prefix; only possible while nothing has spilled. */
  addHeader(line: string): boolean {
    if (this.spilling) return false;
    const b = Buffer.from(line + '\r\n');
    this.prefix.push(b);
    this.bytes += b.length;
    return true;
  }

  get spilled(): boolean {
    return this.spilling;
  }

  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (!this.spilling && this.memBytes + chunk.length <= SPILL_BYTES) {
      this.chunks.push(chunk);
      this.memBytes += chunk.length;
      return;
    }
    if (!this.spilling) this.startSpill();
    const data = chunk;
    this.pending = this.pending.then(async () => {
      if (this.failed === null && this.file !== null) await writeFully(this.file, [data]);
    });
    this.pending.catch((e: unknown) => {
      this.failed = e instanceof Error ? e : new Error(String(e));
    });
  }

  private startSpill(): void {
    const first = [...this.prefix, ...this.chunks];
    this.chunks.length = 0;
    this.memBytes = 0;
    this.spilling = true; // writes chain on `pending` behind the open
    this.pending = (async () => {
      const fh = await open(this.spool.path(`${this.id}.eml.part`), 'w', 0o640);
      this.file = fh;
      await writeFully(fh, first);
    })();
    this.pending.catch((e: unknown) => {
      this.failed = e instanceof Error ? e : new Error(String(e));
    });
  }

  /** Writes and fsyncs the body as <id>.eml. */
  async finish(): Promise<void> {
    const final = this.spool.path(`${this.id}.eml`);
    if (!this.spilling) {
      const fh = await open(final, 'w', 0o640);
      try {
        await writeFully(fh, [...this.prefix, ...this.chunks]);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      return;
    }
    await this.pending;
    if (this.failed) throw this.failed;
    const fh = this.file as FileHandle;
    await fh.datasync();
    await fh.close();
    this.file = null;
    await rename(this.spool.path(`${this.id}.eml.part`), final);
  }

  /** Throws the message away (refused, or the client went away). */
  async abort(): Promise<void> {
    const wasSpilled = this.spilling;
    try {
      await this.pending;
    } catch {
      // already failing; removal below is what matters
    }
    if (this.file !== null) await this.file.close().catch(() => undefined);
    this.file = null;
    if (wasSpilled) await unlink(this.spool.path(`${this.id}.eml.part`)).catch(() => undefined);
    this.chunks.length = 0;
  }
}

export class Spool {
  readonly dir: string;
  private readonly dirSync: DirSyncer;

  private constructor(dir: string) {
    this.dir = dir;
    this.dirSync = new DirSyncer(dir);
  }

  /** Opens (creating) <dataDir>/queue and removes debris of commits a crash interrupted. */
  static open(dataDir: string): Spool {
    const dir = join(dataDir, 'queue');
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    const spool = new Spool(dir);
    spool.removeDebris();
    return spool;
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  private removeDebris(): void {
    const names = new Set(readdirSync(this.dir));
    for (const n of names) {
      const stem = n.replace(/\.(eml|eml\.part|json\.tmp)$/, '');
      const debris = n.endsWith('.part') || n.endsWith('.tmp') || (n.endsWith('.eml') && !names.has(`${stem}.json`));
      if (debris) unlinkSync(join(this.dir, n));
    }
  }

  begin(id: string, prefix: string): BodyWriter {
    return new BodyWriter(this, id, [Buffer.from(prefix)]);
  }

  /** Makes the message durable. Resolves only after body, envelope and directory are fsynced. */
  async commit(body: BodyWriter, envelope: EnvelopeV1): Promise<void> {
    // Body and envelope are written and fsynced in parallel; the envelope only becomes visible
    // (rename) once both are durable, and the directory fsync makes both names durable.
    const tmp = this.path(`${envelope.id}.json.tmp`);
    const writeEnvelope = async (): Promise<void> => {
      const fh = await open(tmp, 'w', 0o640);
      try {
        await fh.writeFile(JSON.stringify(envelope, null, 2) + '\n');
        await fh.datasync();
      } finally {
        await fh.close();
      }
    };
    const results = await Promise.allSettled([body.finish(), writeEnvelope()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await unlink(tmp).catch(() => undefined);
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
    await rename(tmp, this.path(`${envelope.id}.json`));
    await this.dirSync.sync();
  }

  /** Ids of committed messages, oldest first. */
  list(): string[] {
    return readdirSync(this.dir)
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -5))
      .sort();
  }

  readEnvelope(id: string): EnvelopeV1 {
    return JSON.parse(readFileSync(this.path(`${id}.json`), 'utf8')) as EnvelopeV1;
  }

  readBody(id: string): Buffer {
    return readFileSync(this.path(`${id}.eml`));
  }

  bodySize(id: string): number {
    return statSync(this.path(`${id}.eml`)).size;
  }
}
