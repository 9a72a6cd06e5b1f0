// Outbound delivery: SMTP to MX hosts or a smarthost, LMTP to a message store, and MX lookup.
// The queue runner needs only what this file exports.

export type { DeliverOptions, DeliveryAttempt, Destination, OutboundMessage, OutboundRecipient, OutcomeKind, OutcomeStage, RecipientOutcome, Transport } from './types.js';
export { createSmtpTransport, SmtpTransport, DEFAULT_POOL } from './smtp-transport.js';
export type { SmtpTransportOptions } from './smtp-transport.js';
export { createLmtpTransport } from './lmtp-transport.js';
export type { LmtpTransportOptions } from './lmtp-transport.js';
export { RFC5321_TIMEOUTS } from './client.js';
export type { SessionTimeouts, TlsMode } from './client.js';
export { resolveNextHops, resolveHost, parseDomainLiteral, DEFAULT_MAX_HOPS } from './mx.js';
export { liveResolver } from './resolver.js';
export type { DomainLiteral, Hop, HopLookup, MxOptions, MxResolver, RouteFailure } from './mx.js';
export type { EightBitPolicy } from './preflight.js';
export type { PoolOptions } from './pool.js';
