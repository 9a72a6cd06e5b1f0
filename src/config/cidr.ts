// IP networks in configuration values ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1") and
// membership tests for client addresses. An IPv4 client reached over an IPv6 socket arrives as
// "::ffff:a.b.c.d"; it matches IPv4 entries, and an IPv4 address matches an IPv6 entry that covers
// its mapped form, so administrators never have to list both spellings.

import { parseIPv4, parseIPv6 } from '../mapping/ip.js';
import type { Cidr } from './types.js';

export interface IpAddress {
  readonly family: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6. */
  readonly bytes: Uint8Array;
}

export type CidrParse =
  | { readonly ok: true; readonly cidr: Cidr; /** Bits below the prefix were set (and have been cleared). */ readonly hostBits: boolean }
  | { readonly ok: false; readonly message: string };

/** Parses an IPv4 or IPv6 address; an IPv6 zone ("%eth0") and surrounding brackets are ignored. */
export function parseIp(text: string): IpAddress | null {
  let s = text.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone !== -1) s = s.slice(0, zone);
  if (s.includes(':')) {
    const groups = parseIPv6(s);
    if (groups === null) return null;
    const bytes = new Uint8Array(16);
    groups.forEach((g, k) => {
      bytes[2 * k] = g >> 8;
      bytes[2 * k + 1] = g & 0xff;
    });
    return { family: 6, bytes };
  }
  const v4 = parseIPv4(s);
  if (v4 < 0) return null;
  return { family: 4, bytes: Uint8Array.of(v4 >>> 24, (v4 >>> 16) & 0xff, (v4 >>> 8) & 0xff, v4 & 0xff) };
}

/** Parses "address" or "address/prefix" into a network with the host bits cleared. */
export function parseCidr(text: string): CidrParse {
  const t = text.trim();
  const slash = t.indexOf('/');
  const addrText = slash === -1 ? t : t.slice(0, slash);
  const ip = parseIp(addrText);
  if (ip === null || addrText.includes('%') || addrText.startsWith('[')) {
    return { ok: false, message: `"${addrText}" is not an IPv4 or IPv6 address` };
  }
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      return { ok: false, message: `prefix length "/${p}" must be a number from 0 to ${max} for an IPv${ip.family} network` };
    }
    prefix = Number(p);
  }
  const bytes = ip.bytes.slice();
  let hostBits = false;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    const mask = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    if (((bytes[i] as number) & ~mask & 0xff) !== 0) hostBits = true;
    bytes[i] = (bytes[i] as number) & mask;
  }
  return { ok: true, cidr: { text: t, family: ip.family, bytes, prefix }, hostBits };
}

function prefixEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (((a[whole] as number) ^ (b[whole] as number)) & mask) === 0;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), or null. */
function unmapped(bytes: Uint8Array): Uint8Array | null {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return null;
  return bytes[10] === 0xff && bytes[11] === 0xff ? bytes.subarray(12) : null;
}

function mapped(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

/** True when the address is inside the network. */
export function inCidr(c: Cidr, ip: IpAddress): boolean {
  if (c.family === ip.family) return prefixEqual(c.bytes, ip.bytes, c.prefix);
  if (c.family === 4) {
    const v4 = unmapped(ip.bytes);
    return v4 !== null && prefixEqual(c.bytes, v4, c.prefix);
  }
  return prefixEqual(c.bytes, mapped(ip.bytes), c.prefix);
}

/** True when the address text (IPv4, IPv6 or IPv4-mapped IPv6) is inside any of the networks. */
export function cidrContains(list: readonly Cidr[], address: string): boolean {
  if (list.length === 0) return false;
  const ip = parseIp(address);
  if (ip === null) return false;
  return list.some((c) => inCidr(c, ip));
}
