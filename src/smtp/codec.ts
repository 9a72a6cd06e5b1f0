// The SMTP wire codec: bytes in, protocol events out, no sockets (RFC 5321 §2.3.8, §4.1.1.4,
// §4.5.2, §4.5.3.1; RFC 3030 for BDAT). The session pushes received bytes and pulls events one
// at a time, switching the decoder into DATA or BDAT mode after the command that starts them, so
// pipelined bytes that follow are read in the right mode.
//
// Anti-smuggling: in DATA a line ends only at CRLF, and the message ends only at CRLF "." CRLF
// at the start of a line. A bare LF or bare CR never starts a new line, so "\n.\n", "\n.\r\n",
// "\r\n.\n" and "\r\n.\r\r\n" are message content, not an end; the decoder reports that the
// content had bare line breaks and the session refuses such a message. Memory stays bounded:
// over-long command lines are dropped as they arrive, and message content leaves as chunks.

export interface DecoderLimits {
  /** RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF. */
  readonly maxCommandLine: number;
  /** RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF. */
  readonly maxTextLine: number;
}

export const DEFAULT_LIMITS: DecoderLimits = { maxCommandLine: 512, maxTextLine: 1000 };

/** What was wrong with message content, reported when DATA ends. */
export interface ContentIssues {
  bareLf: boolean;
  bareCr: boolean;
  longLine: boolean;
  /** Octets of content after dot-unstuffing. */
  bytes: number;
}

export type DecoderEvent =
  /** A complete command line, without its line ending. */
  | { readonly kind: 'command'; readonly line: string }
  /** A command line longer than the limit; its bytes were discarded. */
  | { readonly kind: 'command-too-long' }
  /** Message content (DATA after unstuffing, or BDAT bytes as sent). */
  | { readonly kind: 'data'; readonly chunk: Buffer }
  /** DATA ended with CRLF.CRLF. */
  | { readonly kind: 'data-end'; readonly issues: ContentIssues }
  /** The announced BDAT chunk has been read completely. */
  | { readonly kind: 'bdat-end'; readonly bytes: number };

const CR = 13;
const LF = 10;
const DOT = 46;

const enum Mode {
  Command,
  Data,
  Bdat,
}

/** Where DATA parsing stands inside a line. */
const enum DataState {
  /** At the start of a line (after CRLF). */
  LineStart,
  /** Inside a line. */
  InLine,
  /** Saw CR inside a line; a LF completes the line. */
  Cr,
  /** A line started with ".". */
  Dot,
  /** A line started with "." and then CR. */
  DotCr,
}

export class SmtpDecoder {
  private readonly limits: DecoderLimits;
  private chunks: Buffer[] = [];
  /** Bytes queued in `chunks`, from `offset` in the first one. */
  private queued = 0;
  private offset = 0;
  private mode: Mode = Mode.Command;
  /** Command mode: the partial line so far, and whether it overflowed. */
  private partial: Buffer[] = [];
  private partialLen = 0;
  private overflow = false;
  /** DATA mode state. */
  private ds: DataState = DataState.LineStart;
  private lineLen = 0;
  private issues: ContentIssues = { bareLf: false, bareCr: false, longLine: false, bytes: 0 };
  /** BDAT mode: bytes still to read. */
  private bdatLeft = 0;
  private bdatSize = 0;

  constructor(limits: DecoderLimits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  /** Queues received bytes. */
  push(data: Buffer): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.queued += data.length;
  }

  /** Bytes received but not yet turned into events. */
  get buffered(): number {
    return this.queued + this.partialLen;
  }

  get inMessage(): boolean {
    return this.mode !== Mode.Command;
  }

  /** Switch to DATA content after the session answered 354. */
  startData(): void {
    this.mode = Mode.Data;
    this.ds = DataState.LineStart;
    this.lineLen = 0;
    this.issues = { bareLf: false, bareCr: false, longLine: false, bytes: 0 };
  }

  /** Switch to reading exactly `size` octets of BDAT content (RFC 3030 §2). */
  startBdat(size: number): void {
    this.mode = Mode.Bdat;
    this.bdatLeft = size;
    this.bdatSize = size;
    if (size === 0) this.bdatLeft = 0;
  }

  /**
   * Drops everything received but not yet decoded, returning how many bytes that was. Used after
   * STARTTLS: plaintext a client pipelined behind it must not be read as if it came over TLS.
   */
  discardBuffered(): number {
    const n = this.queued + this.partialLen;
    this.chunks = [];
    this.queued = 0;
    this.offset = 0;
    this.partial = [];
    this.partialLen = 0;
    this.overflow = false;
    return n;
  }

  /** The next event, or null when more bytes are needed. */
  next(): DecoderEvent | null {
    if (this.pendingEnd !== null) {
      // The message's final chunk went out on the previous call; its end follows.
      const issues = this.pendingEnd;
      this.pendingEnd = null;
      return { kind: 'data-end', issues };
    }
    switch (this.mode) {
      case Mode.Command:
        return this.nextCommand();
      case Mode.Data:
        return this.nextData();
      case Mode.Bdat:
        return this.nextBdat();
    }
  }

  /** Removes and returns up to `max` queued bytes (or all of the first chunk). */
  private take(max: number): Buffer {
    const first = this.chunks[0] as Buffer;
    const avail = first.length - this.offset;
    const n = Math.min(avail, max);
    const out = first.subarray(this.offset, this.offset + n);
    this.offset += n;
    this.queued -= n;
    if (this.offset >= first.length) {
      this.chunks.shift();
      this.offset = 0;
    }
    return out;
  }

  private nextCommand(): DecoderEvent | null {
    while (this.queued > 0) {
      const first = this.chunks[0] as Buffer;
      const lf = first.indexOf(LF, this.offset);
      const end = lf === -1 ? first.length : lf + 1;
      const piece = this.take(end - this.offset);
      if (!this.overflow) {
        if (this.partialLen + piece.length > this.limits.maxCommandLine) {
          // Too long: stop keeping bytes; the line is reported when its LF arrives.
          this.overflow = true;
          this.partial = [];
          this.partialLen = 0;
        } else {
          this.partial.push(piece);
          this.partialLen += piece.length;
        }
      }
      if (lf === -1) continue;
      if (this.overflow) {
        this.overflow = false;
        return { kind: 'command-too-long' };
      }
      const line = this.partial.length === 1 ? (this.partial[0] as Buffer) : Buffer.concat(this.partial, this.partialLen);
      this.partial = [];
      this.partialLen = 0;
      // Commands end at LF; one CR before it is the normal CRLF ending.
      let len = line.length - 1;
      if (len > 0 && line[len - 1] === CR) len--;
      return { kind: 'command', line: line.toString('utf8', 0, len) };
    }
    return null;
  }

  private nextData(): DecoderEvent | null {
    if (this.queued === 0) return null;
    const buf = this.take(this.queued);
    // Output spans are cut from `buf`; unstuffed dots and line-ending logic decide the cuts.
    const out: Buffer[] = [];
    let spanStart = 0;
    let i = 0;
    const maxLine = this.limits.maxTextLine - 2;
    const flushTo = (end: number): void => {
      if (end > spanStart) out.push(buf.subarray(spanStart, end));
    };
    for (; i < buf.length; i++) {
      const b = buf[i] as number;
      switch (this.ds) {
        case DataState.LineStart:
          if (b === DOT) {
            // Maybe the end, maybe a stuffed dot: drop it from the output either way for now.
            flushTo(i);
            spanStart = i + 1;
            this.ds = DataState.Dot;
            continue;
          }
          this.ds = DataState.InLine;
          this.lineLen = 0;
          break;
        case DataState.Dot:
          if (b === CR) {
            // Hold the CR back: it is either part of the end marker or re-emitted below.
            spanStart = i + 1;
            this.ds = DataState.DotCr;
            continue;
          }
          // A stuffed dot (RFC 5321 §4.5.2): the dot is gone, the rest of the line follows.
          this.ds = DataState.InLine;
          this.lineLen = 0;
          break;
        case DataState.DotCr:
          if (b === LF) {
            // CRLF "." CRLF: the end. Bytes after it belong to the next command.
            const rest = buf.subarray(i + 1);
            this.requeue(rest);
            this.mode = Mode.Command;
            const chunk = out.length === 0 ? null : out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
            const issues = this.issues;
            if (chunk !== null) {
              issues.bytes += chunk.length;
              // The end event must follow the last data; queue it behind the chunk.
              this.pendingEnd = issues;
              return { kind: 'data', chunk };
            }
            return { kind: 'data-end', issues };
          }
          // "." CR then something else: a stuffed line starting with a bare CR. The CR was
          // held back (possibly in an earlier chunk), so emit it here.
          out.push(Buffer.from([CR]));
          spanStart = i;
          this.issues.bareCr = true;
          this.ds = DataState.InLine;
          this.lineLen = 1;
          i--; // re-read this byte in InLine
          continue;
        case DataState.Cr:
          if (b === LF) {
            this.ds = DataState.LineStart;
            continue;
          }
          this.issues.bareCr = true;
          this.ds = DataState.InLine;
          break;
        case DataState.InLine:
          break;
      }
      // InLine processing of byte b.
      if (b === CR) {
        this.ds = DataState.Cr;
      } else if (b === LF) {
        // A LF without CR: content, never a line end.
        this.issues.bareLf = true;
        this.lineLen++;
      } else if (++this.lineLen > maxLine) {
        this.issues.longLine = true;
      }
    }
    flushTo(buf.length);
    if (out.length === 0) return this.queued > 0 ? this.nextData() : null;
    const chunk = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
    this.issues.bytes += chunk.length;
    return { kind: 'data', chunk };
  }

  /** A data-end that must be delivered after the chunk returned with it. */
  private pendingEnd: ContentIssues | null = null;

  private requeue(rest: Buffer): void {
    if (rest.length === 0) return;
    this.chunks.unshift(rest);
    this.offset = 0;
    this.queued += rest.length;
  }

  private nextBdat(): DecoderEvent | null {
    if (this.bdatLeft === 0) {
      this.mode = Mode.Command;
      return { kind: 'bdat-end', bytes: this.bdatSize };
    }
    if (this.queued === 0) return null;
    const chunk = this.take(this.bdatLeft);
    this.bdatLeft -= chunk.length;
    return { kind: 'data', chunk };
  }
}
