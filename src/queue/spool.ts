// The spool: where an accepted message lives until delivery. One file per message (docs/spool.md):
//
//   <dataDir>/queue/<id>.msg    line 1: the envelope (EnvelopeV1) as one line of JSON;
//                               then the message as received, with our Received: (and
//                               Message-ID:) prepended, CRLF line endings
//
// Commit: the file is written as <id>.msg.tmp and fdatasynced, renamed to <id>.msg, and the
// directory is fsynced; only then may the session answer 250. One file and one data sync per
// message is what keeps the accept path fast (Postfix's queue file works the same way); delivery
// state, which changes after acceptance, will live in a separate small file. A message exists when
// its .msg exists; *.tmp and *.part files are debris of an interrupted commit and are removed at
// start-up. Directory fsyncs of concurrent commits are shared.

import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { SpaceGuard } from './space.js';

export type RecipientStatus = 'pending' | 'delivered' | 'failed' | 'deferred';

export interface EnvelopeRecipient {
  /** As given in RCPT TO (source route kept), lower-case domain. */
  readonly address: string;
  /** RFC 3461 ORCPT, "addr-type;address", or null. */
  readonly orcpt: string | null;
  /** RFC 3461 NOTIFY, or null when not given. */
  readonly notify: readonly string[] | null;
  /** Destination channel (before alias expansion), when known. */
  readonly channel: string | null;
  /** Where the recipient is delivered after alias expansion: mailbox and channel. */
  readonly deliverTo?: readonly { readonly address: string; readonly channel: string }[];
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
  /** Message size in octets, as stored after the envelope line (with our added headers). */
  readonly size: number;
  /** Flags from the access tables: hold ($H), bitbucket ($B) and so on; filled in by later issues. */
  readonly flags: readonly string[];
}

/** Bytes kept in memory before a message spills to a file. */
const SPILL_BYTES = 1 << 20;

/** Random bytes are fetched in batches: one system call per 200 ids. */
let pool = Buffer.alloc(0);
let poolAt = 0;

export function newMessageId(now = Date.now()): string {
  if (poolAt + 5 > pool.length) {
    pool = randomBytes(1000);
    poolAt = 0;
  }
  const rnd = pool.toString('hex', poolAt, poolAt + 5);
  poolAt += 5;
  return `${now.toString(36)}-${rnd}`;
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

/** Copies a spilled body into the message file after the envelope line. */
async function copyInto(dst: FileHandle, src: FileHandle): Promise<void> {
  const buf = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  for (;;) {
    const { bytesRead } = await src.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) return;
    await dst.write(buf, 0, bytesRead);
    pos += bytesRead;
  }
}

/**
 * The body of one message being received. It starts with the header lines we prepend; content
 * chunks follow. Past SPILL_BYTES it streams to <id>.part, copied behind the envelope at commit.
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
    this.chain(async () => {
      if (this.file !== null) await this.file.write(data);
    });
  }

  private chain(step: () => Promise<void>): void {
    this.pending = this.pending.then(async () => {
      if (this.failed === null) await step();
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
    this.chain(async () => {
      const fh = await open(this.spool.path(`${this.id}.part`), 'w+', 0o640);
      this.file = fh;
      await fh.writev(first);
    });
  }

  /** Writes the message file <id>.msg.tmp (envelope line, then the body) and fdatasyncs it. */
  async writeMessageFile(path: string, envelopeLine: Buffer): Promise<void> {
    const fh = await open(path, 'w', 0o640);
    try {
      if (!this.spilling) {
        await fh.writev([envelopeLine, ...this.prefix, ...this.chunks]);
      } else {
        await this.pending;
        if (this.failed) throw this.failed;
        await fh.write(envelopeLine);
        await copyInto(fh, this.file as FileHandle);
      }
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await this.discardSpill();
  }

  private async discardSpill(): Promise<void> {
    if (!this.spilling) return;
    try {
      await this.pending;
    } catch {
      // the removal below is what matters
    }
    if (this.file !== null) await this.file.close().catch(() => undefined);
    this.file = null;
    await unlink(this.spool.path(`${this.id}.part`)).catch(() => undefined);
    this.spilling = false;
  }

  /** Throws the message away (refused, or the client went away). */
  async abort(): Promise<void> {
    this.chunks.length = 0;
    await this.discardSpill();
  }
}

/** Message files larger than this are streamed to SMTP/LMTP servers rather than read whole. */
export const STREAM_OVER = 1 << 20;

/** A spooled message's content, for delivery. */
export interface MessageSource {
  /** The file is large: stream it (streams()) rather than hold it (buffer()). */
  readonly streamed: boolean;
  /** The whole message (read once, asynchronously, then shared). */
  buffer(): Promise<Buffer>;
  /** Resolves to a function that opens a new stream of the message (one per transmission). */
  streams(): Promise<() => NodeJS.ReadableStream>;
}

/** Bytes up to and including the LF that ends the envelope line. */
async function envelopeLength(path: string): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(16384);
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new SpoolFormatError(`${path}: the file has no envelope line`);
      const nl = buf.subarray(0, bytesRead).indexOf(10);
      if (nl !== -1) return pos + nl + 1;
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

/** A spool file that is not what docs/spool.md describes. */
export class SpoolFormatError extends Error {
  override readonly name = 'SpoolFormatError';
}

function parseEnvelope(id: string, text: string): EnvelopeV1 {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new SpoolFormatError(`${id}: the envelope line is not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const e = v as Partial<EnvelopeV1> | null;
  if (e === null || typeof e !== 'object' || e.version !== 1 || typeof e.sender !== 'string' || !Array.isArray(e.recipients) || typeof e.receivedAt !== 'string') {
    throw new SpoolFormatError(`${id}: the envelope line is not a version 1 envelope`);
  }
  return e as EnvelopeV1;
}

export class Spool {
  readonly dir: string;
  /** Free space in the spool's file system (MAIL FROM refuses while it is low). */
  readonly space: SpaceGuard;
  private readonly dirSync: DirSyncer;

  private constructor(dir: string) {
    this.dir = dir;
    this.space = new SpaceGuard(dir);
    this.dirSync = new DirSyncer(dir);
  }

  /** Opens (creating) <dataDir>/queue and removes debris of commits a crash interrupted. */
  static open(dataDir: string): Spool {
    const dir = join(dataDir, 'queue');
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    const spool = new Spool(dir);
    const names = new Set(readdirSync(dir));
    for (const n of names) {
      if (n.endsWith('.tmp') || n.endsWith('.part')) unlinkSync(join(dir, n));
      // Delivery state whose message is gone: the message was finished or deleted just before a crash.
      else if (n.endsWith('.state')) {
        const id = n.slice(0, -'.state'.length);
        if (!names.has(`${id}.msg`) && !names.has(`${id}.held`)) unlinkSync(join(dir, n));
      }
    }
    return spool;
  }


  /** Called after each commit with the new message's id (the queue runner listens). */
  onCommit: ((id: string) => void) | null = null;

  path(name: string): string {
    return join(this.dir, name);
  }

  begin(id: string, prefix: string): BodyWriter {
    return new BodyWriter(this, id, [Buffer.from(prefix)]);
  }

  /** Makes the message durable. Resolves only after the file and the directory are fsynced. */
  async commit(body: BodyWriter, envelope: EnvelopeV1): Promise<void> {
    const tmp = this.path(`${envelope.id}.msg.tmp`);
    try {
      await body.writeMessageFile(tmp, Buffer.from(JSON.stringify(envelope) + '\n'));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      await body.abort();
      throw err;
    }
    await this.publish(envelope.id, tmp);
  }

  /**
   * Renames a written message file into the queue and makes the rename durable. If the directory
   * cannot be synced the file is taken back out: the caller reports a failure (451), and a message
   * the client was told was not accepted must not be delivered later as well.
   */
  private async publish(id: string, tmp: string): Promise<void> {
    const path = this.path(`${id}.msg`);
    await rename(tmp, path);
    try {
      await this.dirSync.sync();
    } catch (err) {
      await unlink(path).catch(() => undefined);
      throw err;
    }
    this.onCommit?.(id);
  }

  /** Commits a message the server made itself (a DSN): same durability as an accepted one. */
  async commitGenerated(envelope: EnvelopeV1, message: Buffer): Promise<void> {
    const tmp = this.path(`${envelope.id}.msg.tmp`);
    const fh = await open(tmp, 'w', 0o640);
    try {
      await fh.writeFile(Buffer.concat([Buffer.from(JSON.stringify(envelope) + '\n'), message]));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await this.publish(envelope.id, tmp);
  }

  /**
   * Saves a message's delivery state: temp file, data sync, rename. Without a directory sync a
   * crash may bring back the previous state, so an attempt may be repeated (a duplicate, never a
   * loss); docs/spool.md.
   */
  async writeState(id: string, state: unknown): Promise<void> {
    const tmp = this.path(`${id}.state.tmp`);
    const fh = await open(tmp, 'w', 0o640);
    try {
      await fh.writeFile(JSON.stringify(state));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path(`${id}.state`));
  }

  /** A message's delivery state, or null when none was saved yet. */
  async readState(id: string): Promise<unknown> {
    try {
      return JSON.parse(await readFile(this.path(`${id}.state`), 'utf8')) as unknown;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Removes a message (active or held) and its state. The message file goes first: it is what makes a message exist. */
  async remove(id: string): Promise<boolean> {
    let removed = false;
    for (const suffix of ['.msg', '.held']) {
      try {
        await unlink(this.path(id + suffix));
        removed = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    await unlink(this.path(`${id}.state`)).catch(() => undefined);
    await this.dirSync.sync();
    return removed;
  }

  /** Sets a message aside (`<id>.held`, the .HELD of Messaging Server); the runner skips it. */
  async hold(id: string): Promise<boolean> {
    return this.move(`${id}.msg`, `${id}.held`);
  }

  /** Puts a held message back in the active queue. */
  async release(id: string): Promise<boolean> {
    const ok = await this.move(`${id}.held`, `${id}.msg`);
    if (ok) this.onCommit?.(id);
    return ok;
  }

  private async move(from: string, to: string): Promise<boolean> {
    try {
      await rename(this.path(from), this.path(to));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    await this.dirSync.sync();
    return true;
  }

  /** True when the message is held. */
  isHeld(id: string): boolean {
    return existsSync(this.path(`${id}.held`));
  }

  /** Ids of held messages, oldest first. */
  listHeld(): string[] {
    return readdirSync(this.dir)
      .filter((n) => n.endsWith('.held'))
      .map((n) => n.slice(0, -5))
      .sort();
  }

  /** Ids of committed messages, oldest first. */
  list(): string[] {
    return readdirSync(this.dir)
      .filter((n) => n.endsWith('.msg'))
      .map((n) => n.slice(0, -4))
      .sort();
  }

  /** Sets a damaged message aside (`<id>.corrupt`, never attempted again) with its state removed. */
  async quarantine(id: string): Promise<boolean> {
    const moved = await this.move(`${id}.msg`, `${id}.corrupt`);
    await unlink(this.path(`${id}.state`)).catch(() => undefined);
    return moved;
  }

  /**
   * The envelope line of a message file, active or held (read until the first LF).
   * Throws SpoolFormatError when the file is not a message file (no envelope line, bad JSON, not
   * version 1), an ErrnoException when it cannot be read.
   */
  readEnvelope(id: string): EnvelopeV1 {
    const active = this.path(`${id}.msg`);
    const fd = openSync(existsSync(active) ? active : this.path(`${id}.held`), 'r');
    try {
      let text = '';
      const buf = Buffer.alloc(16384);
      for (let pos = 0; ; ) {
        const n = readSync(fd, buf, 0, buf.length, pos);
        if (n === 0) throw new SpoolFormatError(`${id}: the file has no envelope line`);
        const nl = buf.subarray(0, n).indexOf(10);
        text += buf.toString('utf8', 0, nl === -1 ? n : nl);
        if (nl !== -1) return parseEnvelope(id, text);
        pos += n;
      }
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The message of a spooled file (everything after the envelope line) for delivery: small ones
   * read whole, asynchronously; large ones (over STREAM_OVER) streamed from the file, so a big
   * message is never held in memory whole nor read on the event loop.
   */
  bodySource(id: string): MessageSource {
    const active = this.path(`${id}.msg`);
    const path = existsSync(active) ? active : this.path(`${id}.held`);
    const streamed = statSync(path).size > STREAM_OVER;
    const body = (b: Buffer): Buffer => {
      const nl = b.indexOf(10);
      if (nl === -1) throw new SpoolFormatError(`${id}: the file has no envelope line`);
      return b.subarray(nl + 1);
    };
    let whole: Promise<Buffer> | null = null;
    return {
      streamed,
      // A small file is read at once: from the page cache that takes microseconds, while four
      // thread-pool hops (open, stat, read, close) would queue behind the commits' fsyncs — the
      // crash test's runner fell behind by hundreds of messages that way.
      buffer: () => (whole ??= streamed ? readFile(path).then(body) : Promise.resolve().then(() => body(readFileSync(path)))),
      streams: async () => {
        const start = await envelopeLength(path);
        return () => createReadStream(path, { start });
      },
    };
  }

  /** The message itself (everything after the envelope line). */
  readBody(id: string): Buffer {
    const active = this.path(`${id}.msg`);
    const all = readFileSync(existsSync(active) ? active : this.path(`${id}.held`));
    return all.subarray(all.indexOf(10) + 1);
  }
}
