// Address parsing for the IP globs of patterns (spec §2.5): `$(a.b.c.d/n)` prefix match,
// `$<a.b.c.d/n>` ignore-the-low-n-bits match and `${ipv6/n}` prefix match.

/** Parses dotted-quad IPv4 text; returns the address as an unsigned 32-bit number, or -1. */
export function parseIPv4(s: string, start = 0, end = s.length): number {
  let value = 0;
  let parts = 0;
  let i = start;
  while (parts < 4) {
    let n = 0;
    let digits = 0;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      n = n * 10 + (c - 48);
      digits++;
      i++;
      if (digits > 3) return -1;
    }
    if (digits === 0 || n > 255) return -1;
    value = value * 256 + n;
    parts++;
    if (parts < 4) {
      if (i >= end || s.charCodeAt(i) !== 46) return -1;
      i++;
    }
  }
  return i === end ? value : -1;
}

/** Parses IPv6 text (with `::` compression and an optional dotted IPv4 tail) into 8 groups, or null. */
export function parseIPv6(s: string, start = 0, end = s.length): Uint16Array | null {
  const text = s.slice(start, end);
  if (text.length < 2 || text.length > 45) return null;
  const dbl = text.indexOf('::');
  if (dbl !== -1 && text.indexOf('::', dbl + 1) !== -1) return null;
  const head = dbl === -1 ? text : text.slice(0, dbl);
  const tail = dbl === -1 ? '' : text.slice(dbl + 2);
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  const groups: number[] = [];
  const pushGroups = (list: string[], allowV4Last: boolean): boolean => {
    for (let k = 0; k < list.length; k++) {
      const g = list[k] as string;
      if (allowV4Last && k === list.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 < 0) return false;
        groups.push(Math.floor(v4 / 65536), v4 % 65536);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      groups.push(parseInt(g, 16));
    }
    return true;
  };
  if (dbl === -1) {
    if (!pushGroups(headGroups, true) || groups.length !== 8) return null;
    return Uint16Array.from(groups);
  }
  if (!pushGroups(headGroups, false)) return null;
  const headLen = groups.length;
  if (!pushGroups(tailGroups, true)) return null;
  const tailPart = groups.splice(headLen);
  if (headLen + tailPart.length > 7) return null;
  const out = new Uint16Array(8);
  out.set(groups, 0);
  out.set(tailPart, 8 - tailPart.length);
  return out;
}

/** True when the top `bits` bits of a and b are equal. */
export function ipv6PrefixEqual(a: Uint16Array, b: Uint16Array, bits: number): boolean {
  let left = bits;
  for (let g = 0; g < 8 && left > 0; g++) {
    const take = Math.min(16, left);
    const mask = (0xffff << (16 - take)) & 0xffff;
    if (((a[g] as number) & mask) !== ((b[g] as number) & mask)) return false;
    left -= take;
  }
  return true;
}

/** Mask with the top `bits` bits of 32 set, as an unsigned number. */
export function ipv4PrefixMask(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
}
