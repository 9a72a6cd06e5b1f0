// Table keys as MeterMaid compares them: `ipv4` tables take IP addresses in one canonical spelling
// (so "::ffff:192.0.2.7" and "192.0.2.7" are one client), `nocase` tables fold case. A key that
// does not fit its table is a type mismatch, which the routines treat like a store error (on_error).

import { parseIp } from '../config/cidr.js';
import type { TableSpec } from './types.js';

/** Longer keys are refused: no probe field is this long, and it bounds memory per entry. */
export const MAX_KEY_LENGTH = 1024;

export type KeyCheck = { readonly ok: true; readonly key: string } | { readonly ok: false; readonly message: string };

function formatV6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  // RFC 5952: compress the longest run (≥ 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best === -1) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/**
 * True when `s` is a dotted quad in its canonical spelling already (four decimal numbers 0-255,
 * no leading zeros, nothing around them) — what a client address probe field always holds. Such
 * a key is its own canonical form, so the common case of every ipv4-table decision skips parsing
 * the address into bytes and printing it back.
 */
function isCanonicalIPv4(s: string): boolean {
  const n = s.length;
  if (n < 7 || n > 15) return false;
  let parts = 0;
  let digits = 0;
  let value = 0;
  let first = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || value > 255 || (digits > 1 && first === 48)) return false;
      parts++;
      digits = 0;
      value = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 0) first = c;
      if (++digits > 3) return false;
      value = value * 10 + (c - 48);
    } else {
      return false;
    }
  }
  return parts === 4;
}

/** The canonical key for `raw` in `spec`'s table, or why it does not fit. */
export function tableKey(spec: TableSpec, raw: string): KeyCheck {
  if (raw.length > MAX_KEY_LENGTH) return { ok: false, message: `key is longer than ${MAX_KEY_LENGTH} characters` };
  if (spec.dataType === 'ipv4') {
    if (isCanonicalIPv4(raw)) return { ok: true, key: raw };
    const ip = parseIp(raw);
    if (ip === null) return { ok: false, message: `"${raw}" is not an IP address (table ${spec.name} has data_type ipv4)` };
    const b = ip.bytes;
    if (ip.family === 4) return { ok: true, key: `${b[0]}.${b[1]}.${b[2]}.${b[3]}` };
    const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
    if (mapped) return { ok: true, key: `${b[12]}.${b[13]}.${b[14]}.${b[15]}` };
    return { ok: true, key: formatV6(b) };
  }
  return { ok: true, key: spec.nocase ? raw.toLowerCase() : raw };
}
