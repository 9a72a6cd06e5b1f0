// One SMTP session: it owns the decoder, the session state and the reply stream. Received bytes go
// in; events come out of the decoder one at a time and are dispatched to the phase handlers (one
// file per phase: greeting, ehlo, starttls, auth, mail, rcpt, data, misc). Handlers ask policy for
// verdicts and call `send`; nothing else writes to the client. Commands are handled strictly in
// order, so pipelined commands (RFC 2920) get their replies in order, flushed together.

import type { Directory } from '../../directory/types.js';
import type { ConnectionFacts, RecipientRoute, ServiceName, SessionFacts, SessionPolicy, TlsFacts } from '../../policy/session-policy.js';
import { SERVICE_CHANNELS } from '../../channels/routing.js';
import type { AccessActions, SmtpReply, Verdict } from '../../policy/verdict.js';
import type { Options } from '../../config/types.js';
import type { Spool } from '../../queue/spool.js';
import type { Logger } from '../../telemetry/log.js';
import type { TransactionLog } from '../../txlog/index.js';
import { SmtpDecoder } from '../codec.js';
import type { DecoderEvent } from '../codec.js';
import { encodeReply, REPLY } from '../codes.js';
import { splitCommand } from '../commands.js';
import type { MailParams, Path, RcptParams } from '../commands.js';
import type { BodyWriter } from '../../queue/spool.js';
import { formatReply } from '../../policy/access-reply.js';
import { handleEhlo, handleHelo } from './ehlo.js';
import { handleStartTls } from './starttls.js';
import { handleAuth, continueAuth } from './auth.js';
import type { AuthExchange } from './auth.js';
import { handleMail } from './mail.js';
import { handleRcpt } from './rcpt.js';
import { handleBdat, handleData, onBdatEnd, onData, onDataEnd } from './data.js';
import { handleMisc } from './misc.js';
import { greet } from './greeting.js';

/** What the session needs from the connection; the server implements it over a socket. */
export interface Transport {
  write(text: string): void;
  /** Flush and close. */
  close(): void;
  /** Hold writes back until uncork (pipelined replies go out together). */
  cork(): void;
  uncork(): void;
  pause(): void;
  resume(): void;
  /** Whether STARTTLS can be offered (a certificate is configured and TLS is not active). */
  readonly canStartTls: boolean;
  /** Upgrades the connection; resolves with the negotiated facts, or null when the handshake failed. */
  startTls(): Promise<TlsFacts | null>;
  /** Arms (or re-arms) the idle timer; 0 disarms it. */
  setTimer(ms: number, onTimeout: () => void): void;
}

/** Everything a session reads from its surroundings. Functions return the current snapshot. */
export interface SessionEnv {
  readonly options: () => Options;
  readonly directory: () => Directory;
  readonly policy: () => SessionPolicy;
  readonly spool: Spool;
  readonly log: Logger;
  readonly now: () => Date;
  /** Whether this client address (the real peer) may use XCLIENT. */
  readonly xclientAllowed: (peerIp: string) => boolean;
  /** The transaction log (spec §13): E and J records; absent in tools that keep none. */
  readonly txlog?: TransactionLog;
}

export interface Recipient {
  readonly path: Path;
  readonly params: RcptParams;
  /** Destination channel and mailboxes after alias expansion (policy's answer). */
  readonly route: RecipientRoute;
}

/** The mail transaction: from MAIL to the end of DATA/BDAT (RFC 5321 §3.3). */
export interface Transaction {
  /** The envelope sender; FROM_ACCESS's $J may replace it. */
  from: Path;
  /** Side effects asked for by the access tables so far ($H, $B, $A, ...). */
  actions: AccessActions;
  /** RCPT TO commands seen, accepted or not (ACCESS_COUNTS). */
  rcptCommands: number;
  readonly params: MailParams;
  readonly recipients: Recipient[];
  /** Set once message content starts. */
  body: BodyWriter | null;
  /** BDAT: the transaction failed part way; later chunks are read and refused. */
  failed: boolean;
  /** How the content is arriving. */
  mode: 'none' | 'data' | 'bdat';
  /** Content octets received so far. */
  received: number;
  /** Content problems seen so far (oversize, bare line breaks, long lines). */
  oversize: boolean;
  bareLineBreak: boolean;
  longLine: boolean;
  /** BDAT: this chunk carried LAST. */
  last: boolean;
  /** Header check state for Message-ID insertion. */
  headerSeen: Buffer[];
  headerDone: boolean;
  /** The header Message-ID (found, or the one we added), for the transaction log. */
  messageId: string | null;
  /** BDAT line checker state: previous byte was CR; current line length. */
  prevCr: boolean;
  lineLen: number;
}

export interface SessionState {
  helo: string | null;
  esmtp: boolean;
  tls: TlsFacts | null;
  authUser: string | null;
  /** The channel the session is on (spec §6.3: switched at connect, by STARTTLS, by AUTH). */
  channel: string;
  authFailures: number;
  errors: number;
  /** The client address the session reports (replaced by PROXY or XCLIENT). */
  clientIp: string;
  clientPort: number;
  /** The real peer when PROXY/XCLIENT replaced the address. */
  via: string | null;
  tx: Transaction | null;
  auth: AuthExchange | null;
  /** A BDAT chunk being read only to be refused with this reply. */
  bdatRefusal: SmtpReply | null;
  /** A `$D`-style delay applied to every later reply of the transaction (ms). */
  replyDelayMs: number;
  closing: boolean;
}

export class Session {
  readonly decoder: SmtpDecoder;
  readonly state: SessionState;
  private pumping = false;
  private greeted = false;
  /** The client spoke before the greeting. */
  private talkedEarly = false;

  constructor(
    readonly transport: Transport,
    readonly env: SessionEnv,
    readonly service: ServiceName,
    readonly local: { readonly ip: string; readonly port: number },
    /** The peer that really connected (the proxy, when a PROXY header named another client). */
    readonly peer: { readonly ip: string; readonly port: number },
    client: { readonly ip: string; readonly port: number },
    tls: TlsFacts | null,
  ) {
    this.decoder = new SmtpDecoder();
    this.state = {
      helo: null,
      esmtp: false,
      tls,
      authUser: null,
      channel: SERVICE_CHANNELS[service],
      authFailures: 0,
      errors: 0,
      clientIp: client.ip,
      clientPort: client.port,
      via: client.ip === peer.ip && client.port === peer.port ? null : peer.ip,
      tx: null,
      auth: null,
      bdatRefusal: null,
      replyDelayMs: 0,
      closing: false,
    };
  }

  get options(): Options {
    return this.env.options();
  }

  connectionFacts(): ConnectionFacts {
    return {
      service: this.service,
      localIp: this.local.ip,
      localPort: this.local.port,
      clientIp: this.state.clientIp,
      clientPort: this.state.clientPort,
      via: this.state.via,
    };
  }

  channel(): string {
    return this.state.channel;
  }

  facts(): SessionFacts {
    return {
      ...this.connectionFacts(),
      helo: this.state.helo,
      esmtp: this.state.esmtp,
      tls: this.state.tls,
      authUser: this.state.authUser,
      channel: this.channel(),
    };
  }

  /** Starts the session: policy at connect, optional greeting delay, greeting. */
  async start(): Promise<void> {
    this.armCommandTimer();
    await greet(this);
    this.greeted = true;
    if (!this.state.closing) this.pump();
  }

  /** Marks the greeting as sent (greeting.ts) and reports whether the client talked first. */
  get clientTalkedEarly(): boolean {
    return this.talkedEarly;
  }

  /** Bytes from the client. */
  receive(data: Buffer): void {
    if (this.state.closing) return;
    if (!this.greeted) this.talkedEarly = true;
    this.decoder.push(data);
    if (this.decoder.inMessage) this.armDataTimer();
    // Bound what a client can queue ahead of us with pipelining.
    if (this.decoder.buffered > 1 << 20) this.transport.pause();
    if (this.greeted) this.pump();
  }

  /** The connection went away. */
  closed(): void {
    this.state.closing = true;
    this.transport.setTimer(0, () => undefined);
    const body = this.state.tx?.body;
    if (body) void body.abort();
  }

  armCommandTimer(): void {
    this.dataDeadline = null;
    this.transport.setTimer(this.options.limits.commandTimeoutMs, () => this.timeout(REPLY.commandTimeout));
  }

  /**
   * While content arrives, each block re-arms the data timer (RFC 5321 §4.5.3.2.6), but the whole
   * DATA/BDAT phase of a message must end within ten data timeouts, so a client dribbling a byte
   * per interval cannot hold a connection forever.
   */
  armDataTimer(): void {
    const limit = this.options.limits.dataTimeoutMs;
    const now = Date.now();
    this.dataDeadline ??= now + 10 * limit;
    const ms = Math.max(1, Math.min(limit, this.dataDeadline - now));
    this.transport.setTimer(ms, () => this.timeout(REPLY.dataTimeout));
  }

  /** Set when message content starts; cleared when the session is back to commands. */
  private dataDeadline: number | null = null;

  /** Counts a refused recipient or sender: a client probing for addresses runs into the error limit. */
  noteRefusal(): void {
    this.state.errors++;
    if (this.state.errors >= this.options.limits.maxErrors) {
      this.send(REPLY.tooManyErrors);
      this.close();
    }
  }

  private timeout(rep: SmtpReply): void {
    if (this.state.closing) return;
    this.env.log.log('info', 'smtp-timeout', { client: this.state.clientIp, inMessage: this.decoder.inMessage });
    this.send(rep);
    this.close();
  }

  /** Writes a reply (after any delay policy asked for). */
  send(rep: SmtpReply): void {
    if (this.state.closing) return;
    this.transport.write(encodeReply(rep));
  }

  sendRaw(text: string): void {
    if (!this.state.closing) this.transport.write(text);
  }

  close(): void {
    if (this.state.closing) return;
    this.state.closing = true;
    this.transport.setTimer(0, () => undefined);
    this.transport.close();
  }

  /** Waits `ms` without holding up other sessions. */
  delay(ms: number): Promise<void> {
    return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
  }

  /**
   * Applies a rejecting verdict: waits the delay it asks for, sends its reply, closes when asked.
   * Returns true when the verdict rejected. Accepting verdicts with a transaction-wide delay
   * set it for later replies.
   */
  async refuse(v: Verdict): Promise<boolean> {
    if (v.delay !== null) {
      if (v.delay.scope === 'transaction') this.state.replyDelayMs = v.delay.ms;
      await this.delay(v.delay.ms);
    } else if (this.state.replyDelayMs > 0) {
      await this.delay(this.state.replyDelayMs);
    }
    if (v.actions.syslogOnMatch !== null) this.env.log.log('warn', 'mapping-syslog', { client: this.state.clientIp, text: v.actions.syslogOnMatch });
    if (v.kind === 'accept') return false;
    if (v.actions.syslogOnReject !== null) this.env.log.log('warn', 'mapping-syslog', { client: this.state.clientIp, text: v.actions.syslogOnReject });
    this.sendRaw(formatReply(v.reply, v.raw));
    if (v.close) this.close();
    return true;
  }

  /** Counts a protocol error; past the limit the session ends with 421. */
  protocolError(rep: SmtpReply): void {
    this.state.errors++;
    if (this.state.errors >= this.options.limits.maxErrors) {
      this.send(REPLY.tooManyErrors);
      this.close();
      return;
    }
    this.send(rep);
  }

  resetTransaction(): void {
    const body = this.state.tx?.body;
    if (body) void body.abort();
    this.state.tx = null;
    this.state.replyDelayMs = 0;
  }

  /** Runs queued events through the handlers, one at a time, in order. */
  pump(): void {
    if (this.pumping || this.state.closing) return;
    this.pumping = true;
    // Bytes that arrive while a handler awaits are picked up by the same drain loop.
    void this.drain().finally(() => {
      this.pumping = false;
    });
  }

  private async drain(): Promise<void> {
    this.transport.cork();
    try {
      for (;;) {
        if (this.state.closing) return;
        const ev = this.decoder.next();
        if (ev === null) break;
        await this.handle(ev);
      }
    } catch (err) {
      // A fault in our own code: report it, tell the client to retry, and end this session only.
      this.env.log.log('error', 'smtp-session-fault', { client: this.state.clientIp, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      this.send(REPLY.localError);
      this.close();
    } finally {
      this.transport.uncork();
      if (!this.state.closing && this.decoder.buffered < 1 << 19) this.transport.resume();
    }
  }

  private async handle(ev: DecoderEvent): Promise<void> {
    switch (ev.kind) {
      case 'data':
        onData(this, ev.chunk);
        return;
      case 'data-end':
        this.armCommandTimer();
        await onDataEnd(this, ev.issues);
        return;
      case 'bdat-end':
        this.armCommandTimer();
        await onBdatEnd(this);
        return;
      case 'command-too-long':
        this.armCommandTimer();
        this.protocolError(REPLY.lineTooLong);
        return;
      case 'command':
        this.armCommandTimer();
        if (this.state.auth !== null) {
          await continueAuth(this, ev.line);
          return;
        }
        await this.command(ev.line);
        return;
    }
  }

  private async command(line: string): Promise<void> {
    const { verb, rest } = splitCommand(line);
    switch (verb) {
      case 'EHLO':
        handleEhlo(this, rest);
        return;
      case 'HELO':
        handleHelo(this, rest);
        return;
      case 'STARTTLS':
        await handleStartTls(this, rest);
        return;
      case 'AUTH':
        await handleAuth(this, rest);
        return;
      case 'MAIL':
        await handleMail(this, rest);
        return;
      case 'RCPT':
        await handleRcpt(this, rest);
        return;
      case 'DATA':
        await handleData(this, rest);
        return;
      case 'BDAT':
        handleBdat(this, rest);
        return;
      default:
        await handleMisc(this, verb, rest);
    }
  }
}
