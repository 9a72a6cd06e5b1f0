// The typed configuration every component reads. A ConfigSnapshot is built once by load.ts from a
// configuration directory (msg.conf, mappings, imta.cnf), validated completely, and never changed:
// a reload builds a new snapshot and swaps it in, or keeps the old one and reports the problems.

import type { MappingProblem } from '../mapping/errors.js';
import type { MappingSet } from '../mapping/index.js';
import type { ImtaConfig } from './imta-cnf.js';
import type { ChannelTable } from '../channels/model.js';
import type { CompiledRule } from '../channels/rewrite.js';
import type { TableSpec } from '../throttle/types.js';

/** A problem in any configuration file: file, line, column, severity, stable code, message. */
export type ConfigProblem = MappingProblem;

/** An IPv4 or IPv6 network, e.g. 10.0.0.0/8 or 2001:db8::/32; a bare address is a /32 or /128. */
export interface Cidr {
  readonly text: string;
  readonly family: 4 | 6;
  /** 16 bytes for IPv6, 4 for IPv4. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

export interface Limits {
  /** Largest message accepted, in bytes (advertised with SIZE). */
  readonly maxMessageSize: number;
  /** Recipients accepted per message; more get 452 4.5.3. */
  readonly maxRecipients: number;
  /** Connections open at once, all clients together; more are refused with 421. */
  readonly maxConnections: number;
  /** Connections open at once from one client address. */
  readonly maxConnectionsPerIp: number;
  /** Idle time allowed while waiting for a command (RFC 5321 §4.5.3.2: at least 5 minutes). */
  readonly commandTimeoutMs: number;
  /** Idle time allowed between data blocks during DATA/BDAT (RFC 5321: 3 minutes per block). */
  readonly dataTimeoutMs: number;
  /** Protocol errors (unknown commands, bad syntax) before the server hangs up with 421. */
  readonly maxErrors: number;
  /** Failed AUTH attempts per session before the server hangs up with 421. */
  readonly maxAuthFailures: number;
  /** Bytes that must stay free in the spool's file system (MAIL FROM gets 452 4.3.1 below it); 0: no check. */
  readonly spoolMinFree: number;
}

export interface Options {
  /** Name in the greeting, EHLO reply and Received headers. */
  readonly hostname: string;
  /** Addresses to listen on; empty means all addresses. */
  readonly listenAddresses: readonly string[];
  /** 0 disables a service. */
  readonly ports: { readonly smtp: number; readonly submit: number; readonly smtps: number };
  /** Absolute paths, or null when TLS is not configured (then STARTTLS is not offered and 465 is off). */
  readonly tls: { readonly certFile: string | null; readonly keyFile: string | null };
  /** Absolute path of the data directory: spool, directory store, logs, control socket. */
  readonly dataDir: string;
  readonly limits: Limits;
  /** Hosts whose connections start with a PROXY protocol header (v1 or v2). */
  readonly proxyHosts: readonly Cidr[];
  /** Hosts allowed to use XCLIENT. */
  readonly xclientHosts: readonly Cidr[];
  /** Offer AUTH on connections without TLS (default false). */
  readonly authWithoutTls: boolean;
  /** Milliseconds to wait before the greeting; a client that talks first is an early talker. */
  readonly greetingDelayMs: number;
  /** Least severe log records written. */
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Options that change access-table probes (spec §5.6). */
  readonly access: {
    /** ACCESS_ORCPT bit mask. */
    readonly orcpt: number;
    /** ACCESS_COUNTS bit mask. */
    readonly counts: number;
    /** MAPPING_PARANOIA: replaces "|" in address fields; '' = off. */
    readonly paranoia: string;
  };
  /** MeterMaid (spec §7): tables, and the shared store (null: the embedded in-process store). */
  readonly metermaid: MeterMaidOptions;
  /** The transaction log (spec §13) and LOG_ACTION (spec §8). */
  readonly transactions: TransactionLogOptions;
  readonly delivery: DeliveryOptions;
}

export interface DeliveryOptions {
  /** False: accepted mail stays queued. */
  readonly runner: boolean;
  readonly smarthost: { readonly host: string; readonly port: number } | null;
  readonly mxPort: number;
  /** DNS servers for MX and address lookups (`ip`, `ip:port`, `[ipv6]:port`); empty: the system's. */
  readonly dnsServers: readonly string[];
  /** LMTP message store; null: the embedded Maildir store. */
  readonly lmtp: { readonly host: string; readonly port: number } | null;
  readonly backoffMs: readonly number[];
  readonly maxAgeMs: number;
  readonly concurrency: number;
  readonly perDestination: number;
  /** Recipients per outbound transaction (delivery.recipientlimit). */
  readonly recipientLimit: number;
  readonly noBounceSources: readonly string[];
}

/** log.transactions.* and the mta.log_* options: the transaction log and LOG_ACTION. */
export interface TransactionLogOptions {
  readonly format: 'text' | 'json' | 'both' | 'none';
  /** Bytes; 0 rotates daily only. */
  readonly rotateSize: number;
  /** Rotated files kept per form. */
  readonly keep: number;
  /** Bytes per unit of the size field (BLOCK_SIZE). */
  readonly blockSize: number;
  readonly utc: boolean;
  /** LOG_REASON bits: 1 in the log, 2 in the LOG_ACTION probe. */
  readonly logReason: number;
  /** LOG_DIAGNOSTICS bits: 1 in the log, 2 in the LOG_ACTION probe. */
  readonly logDiagnostics: number;
  /** `$N` in LOG_ACTION keeps the record out of the log. */
  readonly logActionSuppress: boolean;
  /** Records waiting for LOG_ACTION at most. */
  readonly logActionQueue: number;
}

export interface MeterMaidOptions {
  /** Tables by lower-case name. */
  readonly tables: ReadonlyMap<string, TableSpec>;
  readonly server: { readonly host: string; readonly port: number; readonly secret: string } | null;
  readonly client: { readonly connectFrequencyMs: number; readonly connectWaitMs: number; readonly timeoutMs: number };
}

/** Channels and compiled rewrite rules from imta.cnf. */
export interface Routing {
  readonly channels: ChannelTable;
  readonly rules: ReadonlyMap<string, readonly CompiledRule[]>;
}

export interface ConfigSnapshot {
  /** Absolute path of the configuration directory. */
  readonly dir: string;
  readonly options: Options;
  readonly mappings: MappingSet;
  readonly imta: ImtaConfig;
  readonly routing: Routing;
  /** Warnings found while loading (errors prevent a snapshot). */
  readonly warnings: readonly ConfigProblem[];
  /** When the snapshot was built (ms since the epoch). */
  readonly loadedAt: number;
}
