// The contract between the queue runner and the outbound transports: what a message to deliver
// looks like, where it goes, and what happened to each recipient. A transport never throws for a
// delivery problem: every failure, local or remote, is a RecipientOutcome whose `kind` says
// whether trying again later can help (shared/conventions.md: permanent vs temporary is a type).

/** One envelope recipient of an outbound message (RFC 3461 parameters as spooled, decoded). */
export interface OutboundRecipient {
  readonly address: string;
  /** ORCPT as `addr-type;address`, decoded from xtext (docs/spool.md); null when absent. */
  readonly orcpt: string | null;
  /** NOTIFY keywords (NEVER, SUCCESS, FAILURE, DELAY); empty when the client gave none. */
  readonly notify: readonly string[];
}

/** A spooled message on its way out. */
export interface OutboundMessage {
  readonly id: string;
  /** Envelope sender; '' is the null reverse-path (MAIL FROM:<>). */
  readonly sender: string;
  readonly recipients: readonly OutboundRecipient[];
  /** Size of the message in octets, as returned by open(). */
  readonly size: number;
  /** RFC 3461 ENVID, decoded from xtext; null when absent. */
  readonly envid: string | null;
  /** RFC 3461 RET; null when absent. */
  readonly ret: 'FULL' | 'HDRS' | null;
  /** The message has octets above 127 (it came with BODY=8BITMIME). */
  readonly body8bit: boolean;
  /** It came with SMTPUTF8 (RFC 6531): addresses or header fields may be UTF-8. */
  readonly smtputf8: boolean;
  /**
   * The message: CRLF-terminated lines, already dot-unstuffed. Called once per transmission (and
   * possibly once more to read the header section), never before the server has accepted DATA.
   */
  open(): NodeJS.ReadableStream | Buffer;
}

export type OutcomeKind = 'delivered' | 'temporary' | 'permanent';

/** Where in the conversation an outcome was decided. */
export type OutcomeStage = 'connect' | 'mail' | 'rcpt' | 'data';

/** What happened to one recipient in one delivery attempt. */
export interface RecipientOutcome {
  readonly address: string;
  readonly kind: OutcomeKind;
  /** The reply code: the remote server's when `origin` is 'remote', else one chosen locally. */
  readonly code: number;
  /** RFC 3463 enhanced status code (e.g. "5.1.1"), when known. */
  readonly enhanced: string | null;
  /** The reply text without code and enhanced code (lines joined by a space), or a local diagnostic. */
  readonly text: string;
  /** The host that answered, "mx.example[192.0.2.1]" (":port" added when it is not 25); null if none did. */
  readonly remote: string | null;
  readonly stage: OutcomeStage;
  /**
   * 'remote': code, enhanced and text are a reply the remote server sent (a DSN Diagnostic-Code of
   * type smtp). 'local': Portcullis decided (DNS, connection failure, timeout, TLS, a limit the
   * server announced), and the text explains it.
   */
  readonly origin: 'remote' | 'local';
}

/** Where a transport delivers: a recipient domain's MX hosts, or one host (smarthost, message store). */
export type Destination =
  | { readonly kind: 'mx'; readonly domain: string }
  /** `host` is an IP address, [IP], a host name (A/AAAA, no MX), or an absolute path (a UNIX socket; `port` is then ignored). */
  | { readonly kind: 'host'; readonly host: string; readonly port: number };

export interface DeliverOptions {
  /** Aborting (e.g. at shutdown) ends the attempt at once; recipients not yet answered get temporary outcomes. */
  readonly signal?: AbortSignal;
}

/** The result of one deliver() call. */
export interface DeliveryAttempt {
  /** One per message recipient, in the same order. */
  readonly outcomes: RecipientOutcome[];
  /** The host whose answers the outcomes carry (the last one tried), or null when none answered. */
  readonly remote: string | null;
  /** The session with `remote` ran over TLS. */
  readonly tls: boolean;
  /** The session spoke LMTP (RFC 2033). */
  readonly lmtp: boolean;
}

export interface Transport {
  /** Delivers `msg` to `dest`. Resolves with one outcome per recipient; never rejects for delivery failures. */
  deliver(dest: Destination, msg: OutboundMessage, opts: DeliverOptions): Promise<DeliveryAttempt>;
  /** Closes idle connections (QUIT); later deliveries get temporary outcomes. */
  close(): Promise<void>;
}
