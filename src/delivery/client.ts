// One SMTP or LMTP client session, on nodemailer's SMTPConnection (nodemailer/lib/smtp-connection):
// it speaks the protocol (greeting, EHLO/LHLO with HELO fallback, STARTTLS, pipelined RCPTs,
// dot-stuffing, LMTP's per-recipient replies). Around it this file adds what an MTA needs and the
// library leaves out, through a few of its internal methods (pinned by nodemailer ^6 and checked
// at start-up; the integration tests against smtp-sink and Dovecot fail if they drift):
//   - the connect is ours (timeout, UNIX sockets, no DNS inside the library);
//   - MAIL FROM and RCPT TO lines are ours, with per-recipient NOTIFY/ORCPT (the library has one
//     DSN setting per envelope) and only parameters the server offers (params.ts);
//   - every reply to RCPT and every LMTP reply after DATA is recorded, in order;
//   - each command gets its own time limit (RFC 5321 §4.5.3.2) instead of one idle timeout;
//   - the message is opened only once the server has said 354.
// Failures are values (client results), never exceptions: a delivery problem is not a fault.

import type { EventEmitter } from 'node:events';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import type { Readable } from 'node:stream';
import type tls from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { fromRaw, local } from './outcome.js';
import type { Result, TransactionRecord } from './outcome.js';
import { commandLine, NO_CAPABILITIES, parseCapabilities } from './params.js';
import type { Capabilities } from './params.js';

/** Time limits in milliseconds. */
export interface SessionTimeouts {
  /** TCP connect (not in RFC 5321; Postfix smtp_connect_timeout = 30 s). */
  readonly connect: number;
  /** RFC 5321 §4.5.3.2.1: initial 220 message, 5 minutes. */
  readonly greeting: number;
  /** EHLO, STARTTLS and other commands without their own limit (Postfix smtp_helo_timeout = 300 s). */
  readonly command: number;
  /** RFC 5321 §4.5.3.2.2: MAIL, 5 minutes. */
  readonly mail: number;
  /** RFC 5321 §4.5.3.2.3: RCPT, 5 minutes. */
  readonly rcpt: number;
  /** RFC 5321 §4.5.3.2.4: DATA initiation, 2 minutes. */
  readonly dataInit: number;
  /** RFC 5321 §4.5.3.2.5: each data block sent, 3 minutes. */
  readonly dataBlock: number;
  /** RFC 5321 §4.5.3.2.6: the reply after ".", 10 minutes. */
  readonly dataDone: number;
  /** RSET before reusing a connection (Postfix smtp_rset_timeout = 20 s). */
  readonly rset: number;
}

export const RFC5321_TIMEOUTS: SessionTimeouts = {
  connect: 30_000,
  greeting: 300_000,
  command: 300_000,
  mail: 300_000,
  rcpt: 300_000,
  dataInit: 120_000,
  dataBlock: 180_000,
  dataDone: 600_000,
  rset: 20_000,
};

/**
 * opportunistic: STARTTLS when offered, certificate not checked (RFC 7435: encryption without
 * authentication beats none); required: no delivery without TLS; none: never STARTTLS.
 */
export type TlsMode = 'opportunistic' | 'required' | 'none';

export interface SessionOptions {
  /** Our name in EHLO/LHLO. */
  readonly hostname: string;
  readonly lmtp: boolean;
  readonly tls: TlsMode;
  /** With tls 'required': verify the certificate against the host name (default false). */
  readonly tlsVerify?: boolean;
  /** Extra options for tls.connect (CA, ciphers, minimum version). */
  readonly tlsOptions?: tls.ConnectionOptions;
  readonly timeouts: SessionTimeouts;
  /** Source address for outgoing connections. */
  readonly localAddress?: string;
}

/** Where to connect: a host's name (for the log and SNI) and one address; an address starting with "/" is a UNIX socket. */
export interface Endpoint {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** "mx.example[192.0.2.1]", with ":port" when it is not 25; a UNIX socket is its path. */
export function describeEndpoint(ep: Endpoint): string {
  if (ep.address.startsWith('/')) return ep.address;
  return `${ep.name}[${ep.address}]${ep.port === 25 ? '' : `:${ep.port}`}`;
}

export type OpenResult =
  | { readonly ok: true; readonly session: SmtpSession }
  /** `tlsHandshake`: STARTTLS was accepted but the TLS negotiation failed (the plaintext retry of RFC 7435 applies). */
  | { readonly ok: false; readonly failure: Result; readonly tlsHandshake: boolean };

/** A recipient as it goes on the wire. */
export interface WireRecipient {
  readonly address: string;
  readonly params: readonly string[];
}

// The internals of SMTPConnection this file relies on (nodemailer 6.x).
interface NodemailerError extends Error {
  code?: string;
  response?: string;
  command?: string;
}
type Callback = (err: NodemailerError | null, info?: unknown) => void;
interface Internals extends EventEmitter {
  _socket: net.Socket | tls.TLSSocket | false;
  _ehloLines?: string[];
  secure: boolean;
  /** True from STARTTLS's 220 until the TLS handshake completes. */
  upgrading?: boolean;
  _sendCommand(str: string, logStr?: string): void;
  _actionRCPT(str: string, callback: Callback): void;
  _actionLMTPStream(recipient: string, final: boolean, str: string, callback: Callback): void;
  _createSendStream(callback: Callback): NodeJS.ReadWriteStream;
  connect(cb: (err?: NodemailerError) => void): void;
  send(envelope: { from: string; to: string[] }, message: Readable, cb: Callback): void;
  reset(cb: (err: NodemailerError | null) => void): void;
  quit(): void;
  close(): void;
}
const INTERNALS = ['_sendCommand', '_actionRCPT', '_actionLMTPStream', '_createSendStream'] as const;

function checkInternals(conn: object): void {
  for (const m of INTERNALS) {
    if (typeof (conn as Record<string, unknown>)[m] !== 'function') {
      throw new Error(`nodemailer's SMTPConnection has no ${m}(): the installed nodemailer is not the 6.x this transport was written for; install the version in package.json (npm ci)`);
    }
  }
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/** Connects a socket, or explains why not (local, temporary: RFC 3463 X.4.1 no answer from host). */
function connectSocket(ep: Endpoint, opts: SessionOptions, signal?: AbortSignal): Promise<net.Socket | Result> {
  return new Promise((resolve) => {
    // An abort that came before: its event will not fire again.
    if (signal?.aborted === true) {
      resolve(local('temporary', 421, '4.4.1', `connect to ${describeEndpoint(ep)}: interrupted`));
      return;
    }
    const target = ep.address.startsWith('/') ? { path: ep.address } : { host: ep.address, port: ep.port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) };
    const sock = net.connect(target);
    const done = (r: net.Socket | Result): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.removeAllListeners('error');
      sock.removeAllListeners('connect');
      if (!(r instanceof net.Socket)) sock.destroy();
      resolve(r);
    };
    const onAbort = (): void => done(local('temporary', 421, '4.4.1', `connect to ${describeEndpoint(ep)}: interrupted`));
    const timer = setTimeout(() => done(local('temporary', 421, '4.4.1', `connect to ${describeEndpoint(ep)}: no answer within ${duration(opts.timeouts.connect)}`)), opts.timeouts.connect);
    signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('error', (e: NodeJS.ErrnoException) => done(local('temporary', 421, '4.4.1', `connect to ${describeEndpoint(ep)}: ${e.code ?? e.message}`)));
    sock.once('connect', () => {
      sock.setNoDelay(true);
      done(sock);
    });
  });
}

export class SmtpSession {
  /** Transactions started on this connection. */
  uses = 0;
  readonly openedAt = Date.now();
  private dead = false;
  private lastCommand = 'the greeting';
  private lastTimeout = 0;
  private wire: { mail: string; rcpts: string[]; next: number } | null = null;
  private rcptReplies: string[] = [];
  private lmtpReplies: string[] = [];
  private onDataStream: ((s: NodeJS.ReadWriteStream) => void) | null = null;
  /** Settles the transaction in progress when the connection fails. */
  private onFailure: ((r: Result) => void) | null = null;
  /** Set when we end the connection ourselves; used as the failure instead of "connection lost". */
  private localFailure: Result | null = null;
  private capsCache: Capabilities | null = null;
  /** nodemailer sends RCPT TO only after a 2xx to MAIL FROM: seeing one go out means MAIL was accepted. */
  private mailAccepted = false;

  private constructor(
    private readonly conn: Internals,
    readonly endpoint: Endpoint,
    private readonly opts: SessionOptions,
  ) {}

  /** "mx.example[192.0.2.1]" */
  get remote(): string {
    return describeEndpoint(this.endpoint);
  }

  /** The session runs over TLS (after STARTTLS). */
  get secure(): boolean {
    return this.conn.secure;
  }

  /** What the server offered in its last EHLO/LHLO reply. */
  get capabilities(): Capabilities {
    this.capsCache ??= this.conn._ehloLines !== undefined ? parseCapabilities(this.conn._ehloLines) : NO_CAPABILITIES;
    return this.capsCache;
  }

  /** The connection is open and in a state to start a transaction (after RSET). */
  get usable(): boolean {
    return !this.dead;
  }

  /** Connects, reads the greeting, says EHLO (or LHLO) and does STARTTLS as `opts.tls` says. */
  static async open(ep: Endpoint, opts: SessionOptions, signal?: AbortSignal): Promise<OpenResult> {
    const sock = await connectSocket(ep, opts, signal);
    if (!(sock instanceof net.Socket)) return { ok: false, failure: sock, tlsHandshake: false };
    const servername = net.isIP(ep.name) === 0 && !ep.address.startsWith('/') ? ep.name : undefined;
    const conn = new SMTPConnection({
      connection: sock,
      host: ep.name,
      port: ep.port,
      secure: false,
      name: opts.hostname,
      lmtp: opts.lmtp,
      ignoreTLS: opts.tls === 'none',
      requireTLS: opts.tls === 'required',
      opportunisticTLS: opts.tls === 'opportunistic',
      tls: { rejectUnauthorized: opts.tls === 'required' && opts.tlsVerify === true, ...(servername !== undefined ? { servername } : {}), ...opts.tlsOptions },
      greetingTimeout: opts.timeouts.greeting,
      socketTimeout: opts.timeouts.command,
      connectionTimeout: opts.timeouts.connect,
      logger: false,
      debug: false,
    }) as unknown as Internals;
    checkInternals(conn);
    const session = new SmtpSession(conn, ep, opts);
    session.instrument();
    const failed = await new Promise<NodemailerError | null>((resolve) => {
      const onAbort = (): void => {
        session.localFailure = local('temporary', 421, '4.4.2', `session with ${session.remote} interrupted`);
        session.destroy();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      session.onFailure = () => undefined;
      conn.once('error', (e: NodemailerError) => resolve(e));
      conn.once('end', () => resolve(Object.assign(new Error('Connection closed'), { code: 'ECONNECTION' })));
      conn.connect(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(null);
      });
      if (signal?.aborted === true) onAbort(); // aborted while connecting: the event has fired already
    });
    if (failed === null && !session.dead) {
      session.onFailure = null;
      return { ok: true, session };
    }
    session.destroy();
    const err: NodemailerError = failed ?? Object.assign(new Error('Connection closed'), { code: 'ECONNECTION' });
    return { ok: false, failure: session.localFailure ?? session.connectFailure(err), tlsHandshake: session.conn.upgrading === true };
  }

  /** Our hooks into SMTPConnection (see the file comment). */
  private instrument(): void {
    const c = this.conn;
    const sendCommand = c._sendCommand.bind(c);
    c._sendCommand = (str: string, logStr?: string): void => {
      let line = str;
      const verb = str.slice(0, 4).toUpperCase();
      if (this.wire !== null && /^MAIL FROM:/i.test(str)) line = this.wire.mail;
      else if (this.wire !== null && /^RCPT TO:/i.test(str)) line = this.wire.rcpts[this.wire.next++] ?? str;
      if (verb === 'RCPT') this.mailAccepted = true;
      const t = this.opts.timeouts;
      this.setTimeout(verb === 'MAIL' ? t.mail : verb === 'RCPT' ? t.rcpt : verb === 'DATA' ? t.dataInit : verb === 'RSET' ? t.rset : t.command);
      this.lastCommand = line.replace(/^(\S+(?: (?:FROM|TO):)?).*$/i, '$1');
      sendCommand(line, line === str ? logStr : undefined);
    };
    const actionRcpt = c._actionRCPT.bind(c);
    c._actionRCPT = (str, cb) => {
      this.rcptReplies.push(str);
      actionRcpt(str, cb);
    };
    const actionLmtp = c._actionLMTPStream.bind(c);
    c._actionLMTPStream = (recipient, final, str, cb) => {
      this.lmtpReplies.push(str);
      actionLmtp(recipient, final, str, cb);
    };
    const createSendStream = c._createSendStream.bind(c);
    c._createSendStream = (cb) => {
      const stream = createSendStream(cb);
      this.onDataStream?.(stream);
      return stream;
    };
    c.on('error', (e: NodemailerError) => this.lost(e));
    c.on('end', () => this.lost(null));
  }

  private setTimeout(ms: number): void {
    const s = this.conn._socket;
    this.lastTimeout = ms;
    if (s !== false) s.setTimeout(ms);
  }

  private lost(e: NodemailerError | null): void {
    this.dead = true;
    const cb = this.onFailure;
    this.onFailure = null;
    cb?.(this.localFailure ?? this.connectFailure(e ?? Object.assign(new Error('Connection closed'), { code: 'ECONNECTION' })));
  }

  /** What a nodemailer error means for delivery. */
  private connectFailure(e: NodemailerError): Result {
    const reply = fromRaw(e.response);
    const where = this.remote;
    // A socket error while upgrading is the TLS handshake failing (nodemailer reports it as ESOCKET).
    if (e.code === 'ETLS' || this.conn.upgrading === true) {
      // RFC 3207 §4.1 / RFC 7435: with TLS required, any STARTTLS failure defers (X.7.4 / X.7.5).
      if (reply !== null && this.conn.upgrading !== true) return local('temporary', 421, '4.7.4', `TLS is required, but ${where} refused STARTTLS: ${reply.code} ${reply.text}`);
      return local('temporary', 421, '4.7.5', `TLS negotiation with ${where} failed: ${e.message}`);
    }
    // A reply at the greeting, EHLO/HELO/LHLO or a 421 anywhere is the server's answer.
    if (reply !== null && reply.code >= 400) return reply;
    if (e.code === 'ETIMEDOUT') return local('temporary', 421, '4.4.2', `${where}: no reply to ${this.lastCommand} within ${duration(this.lastTimeout || this.opts.timeouts.greeting)}`);
    return local('temporary', 421, '4.4.2', `${where}: connection lost after ${this.lastCommand} (${e.message})`);
  }

  /**
   * One mail transaction: MAIL FROM, RCPT TO for each recipient, DATA and the message. `body` is
   * called once the server has answered 354. Resolves with everything that happened; never rejects.
   */
  transaction(sender: string, rcpts: readonly WireRecipient[], mailParams: readonly string[], body: () => NodeJS.ReadableStream | Buffer, signal?: AbortSignal): Promise<TransactionRecord> {
    this.uses++;
    this.wire = { mail: commandLine('MAIL FROM', sender, mailParams), rcpts: rcpts.map((r) => commandLine('RCPT TO', r.address, r.params)), next: 0 };
    this.rcptReplies = [];
    this.lmtpReplies = [];
    this.mailAccepted = false;
    let source: NodeJS.ReadableStream | null = null;
    const proxy = new PassThrough();

    return new Promise<TransactionRecord>((resolve) => {
      let settled = false;
      const ok: Result = { kind: 'delivered', code: 250, enhanced: null, text: 'sender accepted', origin: 'remote' };
      const onAbort = (): void => {
        this.localFailure ??= local('temporary', 421, '4.4.2', `delivery to ${this.remote} interrupted`);
        this.destroy();
      };
      const finish = (mail: Result | null, data: Result | null, failure: Result | null): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        this.onFailure = null;
        this.onDataStream = null;
        this.wire = null;
        (source as { destroy?: () => void } | null)?.destroy?.();
        const rcpt = rcpts.map((_, i) => fromRaw(this.rcptReplies[i]));
        let lmtpData: (Result | null)[] | null = null;
        if (this.opts.lmtp) {
          // RFC 2033 §4.2: one reply per recipient accepted at RCPT, in RCPT order.
          const replies = [...this.lmtpReplies];
          lmtpData = rcpt.map((r) => (r?.kind === 'delivered' ? fromRaw(replies.shift()) : null));
        }
        // A 421 means the server is closing the connection (RFC 5321 §3.8).
        if ([mail, data, ...rcpt, ...(lmtpData ?? [])].some((r) => r?.code === 421)) this.dead = true;
        resolve({ mail: mail ?? (this.mailAccepted ? ok : null), rcpt, data, lmtpData, failure });
      };
      if (this.dead) {
        finish(null, null, local('temporary', 421, '4.4.2', `connection to ${this.remote} is closed`));
        return;
      }
      if (signal?.aborted === true) {
        finish(null, null, local('temporary', 421, '4.4.2', `delivery to ${this.remote} interrupted`));
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.onFailure = (r) => finish(null, null, r);
      this.onDataStream = (stream) => {
        this.setTimeout(this.opts.timeouts.dataBlock);
        this.lastCommand = 'DATA (sending the message)';
        stream.once('end', () => {
          this.lastCommand = 'the end of the message (".")';
          this.setTimeout(this.opts.timeouts.dataDone);
        });
        let opened: NodeJS.ReadableStream | Buffer;
        try {
          opened = body();
        } catch (e) {
          this.failLocally(local('temporary', 451, '4.3.0', `could not read message: ${(e as Error).message}`));
          return;
        }
        if (Buffer.isBuffer(opened)) {
          proxy.end(opened);
          return;
        }
        source = opened;
        opened.once('error', (e: Error) => this.failLocally(local('temporary', 451, '4.3.0', `could not read message: ${e.message}`)));
        opened.pipe(proxy);
      };
      this.conn.send({ from: sender, to: rcpts.map((r) => r.address) }, proxy, (err, info) => {
        // Once MAIL FROM was answered 2xx nodemailer goes on to RCPT; every failure it reports says which command.
        if (err === null) {
          // SMTP: the reply after the message. LMTP: the last per-recipient reply (recorded separately).
          finish(null, this.opts.lmtp ? null : fromRaw(typeof info === 'string' ? info : ((info as { response?: string } | undefined)?.response ?? '250 OK')), null);
          return;
        }
        if (this.localFailure !== null) {
          finish(null, null, this.localFailure);
          return;
        }
        const reply = fromRaw(err.response);
        if (err.command === 'MAIL FROM') {
          finish(reply ?? local('temporary', 451, '4.3.0', `MAIL FROM not sent: ${err.message}`), null, null);
          return;
        }
        if (err.command === 'RCPT TO') finish(null, null, null);
        else if (err.command === 'DATA') finish(null, reply ?? local('temporary', 421, '4.4.2', err.message), null);
        else finish(null, null, local('temporary', 451, '4.3.0', `${this.remote}: ${err.message}`));
      });
    });
  }

  /** Ends the connection because of a local problem during the transaction. */
  private failLocally(r: Result): void {
    this.localFailure ??= r;
    this.destroy();
  }

  /** RSET (before reusing the connection); false if the connection is no longer usable. */
  reset(): Promise<boolean> {
    if (this.dead) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.onFailure = () => resolve(false);
      this.conn.reset((err) => {
        this.onFailure = null;
        this.localFailure = null;
        if (err !== null) this.destroy();
        resolve(err === null && !this.dead);
      });
    });
  }

  /** QUIT, waiting briefly for the server to close. */
  async quit(waitMs = 2000): Promise<void> {
    if (this.dead) return;
    const closed = new Promise<void>((r) => this.conn.once('end', () => r()));
    this.setTimeout(waitMs);
    this.conn.quit();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((r) => (t = setTimeout(r, waitMs)))]);
    clearTimeout(t);
    this.destroy();
  }

  /** Closes the connection at once. */
  destroy(): void {
    this.dead = true;
    const s = this.conn._socket;
    this.conn.close();
    if (s !== false) s.destroy();
  }
}
