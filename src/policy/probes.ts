// The probe strings the access tables see (spec §5), built from session facts. Pure functions:
// the formats here are the contract with every existing Messaging Server mappings file.
//
//   PORT_ACCESS       TCP|server-ip|server-port|client-ip|client-port                     (§5.1)
//   FROM_ACCESS       <port-access-info>|app-info|MAIL|src-channel|from|auth-from         (§5.3)
//   ORIG_SEND_ACCESS  src-channel|from|dst-channel|to[|ORCPT][|counts]                    (§5.4)
//   SEND_ACCESS       (same, after alias expansion)
//   ORIG_MAIL_ACCESS  <port-access-info>|app-info|MAIL|src|from|dst|to[|ORCPT][|counts]  (§5.5)
//   MAIL_ACCESS       (same, after alias expansion)

import type { TlsFacts } from './session-policy.js';

export type RecipientTable = 'ORIG_SEND_ACCESS' | 'SEND_ACCESS' | 'ORIG_MAIL_ACCESS' | 'MAIL_ACCESS';

/** The ACCESS_ORCPT / ACCESS_COUNTS bit for each recipient table (bit 0 means all four; §5.6). */
const TABLE_BIT: Readonly<Record<RecipientTable, number>> = {
  ORIG_SEND_ACCESS: 2,
  SEND_ACCESS: 4,
  ORIG_MAIL_ACCESS: 8,
  MAIL_ACCESS: 16,
};

export function appliesTo(mask: number, table: RecipientTable): boolean {
  return (mask & 1) !== 0 || (mask & TABLE_BIT[table]) !== 0;
}

/** MAPPING_PARANOIA: a "|" inside an address must not look like a field boundary. */
export function guard(value: string, paranoia: string): string {
  return paranoia === '' ? value : value.replaceAll('|', paranoia);
}

export function portAccessProbe(serverIp: string, serverPort: number, clientIp: string, clientPort: number): string {
  return `TCP|${serverIp}|${serverPort}|${clientIp}|${clientPort}`;
}

/**
 * app-info: "SMTP/<helo>", plus "/<protocol>:<cipher>" over TLS (§5.3). A "|" in a HELO name is
 * replaced by "?": the name is the client's to choose and must not shift the fields after it.
 */
export function appInfo(helo: string | null, tls: TlsFacts | null): string {
  const name = (helo ?? '').replaceAll('|', '?');
  return tls === null ? `SMTP/${name}` : `SMTP/${name}/${tls.protocol}:${tls.cipher}`;
}

export function fromAccessProbe(portInfo: string, app: string, channel: string, from: string, authFrom: string, paranoia: string): string {
  return `${portInfo}|${app}|MAIL|${channel}|${guard(from, paranoia)}|${guard(authFrom, paranoia)}`;
}

export interface RecipientProbeFacts {
  readonly portInfo: string;
  readonly app: string;
  readonly source: string;
  readonly from: string;
  readonly dest: string;
  readonly to: string;
  /** ORCPT as "addr-type;address"; null when the client sent none (then rfc822;<RCPT TO> is used). */
  readonly orcpt: string | null;
  /** The RCPT TO address as given, for the default ORCPT. */
  readonly rcptTo: string;
  /** This RCPT's number in the transaction (1-based) and recipients accepted before it. */
  readonly rcptCount: number;
  readonly recipientCount: number;
}

export interface ProbeOptions {
  readonly orcpt: number;
  readonly counts: number;
  readonly paranoia: string;
}

export function recipientProbe(table: RecipientTable, f: RecipientProbeFacts, o: ProbeOptions): string {
  const g = (v: string): string => guard(v, o.paranoia);
  let probe =
    table === 'ORIG_SEND_ACCESS' || table === 'SEND_ACCESS'
      ? `${f.source}|${g(f.from)}|${f.dest}|${g(f.to)}`
      : `${f.portInfo}|${f.app}|MAIL|${f.source}|${g(f.from)}|${f.dest}|${g(f.to)}`;
  // Optional trailing fields, in this order: ORCPT, then counts (§5.6).
  if (appliesTo(o.orcpt, table)) probe += `|${g(f.orcpt ?? `rfc822;${f.rcptTo}`)}`;
  if (appliesTo(o.counts, table)) probe += `|${f.rcptCount}/${f.recipientCount}/`;
  return probe;
}
