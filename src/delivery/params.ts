// ESMTP on the client side: what a server's EHLO/LHLO reply offers, and the MAIL FROM and RCPT TO
// parameters we send for a message when (and only when) the server offers their extension:
// SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), RET/ENVID and NOTIFY/ORCPT
// (RFC 3461 DSN). Parameter values that may hold any octet are xtext (RFC 3461 §4).

import type { OutboundMessage, OutboundRecipient } from './types.js';

export interface Capabilities {
  /** SIZE: null when not offered, 0 when offered without a fixed maximum (RFC 1870 §4). */
  readonly size: number | null;
  readonly dsn: boolean;
  readonly eightBitMime: boolean;
  readonly smtputf8: boolean;
  readonly pipelining: boolean;
  readonly startTls: boolean;
}

/** Reads the keyword lines of an EHLO/LHLO reply (without the reply code and the greeting line). */
export function parseCapabilities(lines: readonly string[]): Capabilities {
  const caps = new Map<string, string>();
  for (const line of lines) {
    const [kw = '', ...rest] = line.trim().split(/\s+/);
    if (kw !== '') caps.set(kw.toUpperCase(), rest.join(' '));
  }
  const size = caps.get('SIZE');
  const limit = size !== undefined && /^\d+$/.test(size) ? Number(size) : 0;
  return {
    size: size === undefined ? null : limit,
    dsn: caps.has('DSN'),
    eightBitMime: caps.has('8BITMIME'),
    smtputf8: caps.has('SMTPUTF8'),
    pipelining: caps.has('PIPELINING'),
    startTls: caps.has('STARTTLS'),
  };
}

/** A server that offers nothing (HELO, or an EHLO reply we could not read). */
export const NO_CAPABILITIES: Capabilities = { size: null, dsn: false, eightBitMime: false, smtputf8: false, pipelining: false, startTls: false };

export function isAscii(s: string): boolean {
  return !/[\u0080-\u{10FFFF}]/u.test(s);
}

/** RFC 3461 §4: xtext; "+", "=" and octets outside 33..126 become "+HH" (of the UTF-8 bytes). */
export function xtext(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b < 0x21 || b > 0x7e || b === 0x2b || b === 0x3d ? `+${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  }
  return out;
}

/** RFC 6533 §3: utf-8-addr-xtext; "+", "=", "\" and characters outside 33..126 become "\x{HEX}". */
export function utf8AddrXtext(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    out += cp < 0x21 || cp > 0x7e || ch === '+' || ch === '=' || ch === '\\' ? `\\x{${cp.toString(16).toUpperCase()}}` : ch;
  }
  return out;
}

/**
 * The ORCPT value for an `addr-type;address` as spooled. RFC 3461 §4.2 xtext-encodes the address
 * part only; a non-ASCII rfc822 address is sent as addr-type utf-8 (RFC 6533 §3).
 */
export function orcptParam(orcpt: string): string {
  const semi = orcpt.indexOf(';');
  const type = semi > 0 ? orcpt.slice(0, semi) : 'rfc822';
  const address = semi > 0 ? orcpt.slice(semi + 1) : orcpt;
  if (!isAscii(address) && type.toLowerCase() === 'rfc822') return `utf-8;${utf8AddrXtext(address)}`;
  if (type.toLowerCase() === 'utf-8') return `utf-8;${utf8AddrXtext(address)}`;
  return `${type};${xtext(address)}`;
}

/** MAIL FROM parameters for `msg` on a server with `caps`. `smtputf8`: send the SMTPUTF8 keyword. */
export function mailParams(msg: OutboundMessage, caps: Capabilities, smtputf8: boolean): string[] {
  const out: string[] = [];
  if (caps.size !== null) out.push(`SIZE=${msg.size}`);
  // RFC 6152 §2: BODY=8BITMIME only to a server that offers it (see preflight for the other case).
  if (msg.body8bit && caps.eightBitMime) out.push('BODY=8BITMIME');
  if (smtputf8 && caps.smtputf8) out.push('SMTPUTF8');
  if (caps.dsn) {
    if (msg.ret !== null) out.push(`RET=${msg.ret}`);
    if (msg.envid !== null) out.push(`ENVID=${xtext(msg.envid)}`);
  }
  return out;
}

/** RCPT TO parameters for one recipient (RFC 3461 §4.1, §4.2). */
export function rcptParams(r: OutboundRecipient, caps: Capabilities): string[] {
  if (!caps.dsn) return [];
  const out: string[] = [];
  if (r.notify.length > 0) out.push(`NOTIFY=${r.notify.map((n) => n.toUpperCase()).join(',')}`);
  if (r.orcpt !== null && r.orcpt !== '') out.push(`ORCPT=${orcptParam(r.orcpt)}`);
  return out;
}

/** "MAIL FROM:<a@b> P1 P2" */
export function commandLine(verb: 'MAIL FROM' | 'RCPT TO', address: string, params: readonly string[]): string {
  return `${verb}:<${address}>${params.length > 0 ? ` ${params.join(' ')}` : ''}`;
}
