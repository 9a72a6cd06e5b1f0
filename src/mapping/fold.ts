// ASCII case folding. Messaging Server compares case-blind over ASCII only (spec §2.1); folding with
// String.prototype.toLowerCase would also fold non-ASCII letters and could change string lengths
// (e.g. U+0130), which would break the offsets captures are cut from.

const UPPER_A = 65;
const UPPER_Z = 90;

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
const HAS_UPPER = /[A-Z]/;

/** Lower-cases A–Z only; returns the same string when there is nothing to fold. */
export function foldAscii(s: string): string {
  if (!HAS_UPPER.test(s)) return s;
  // For pure ASCII the native lower-casing is exactly A–Z folding, and much faster.
  if (!NON_ASCII.test(s)) return s.toLowerCase();
  const n = s.length;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= UPPER_A && c <= UPPER_Z) break;
  }
  if (i === n) return s;
  let out = s.slice(0, i);
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    out += c >= UPPER_A && c <= UPPER_Z ? String.fromCharCode(c + 32) : s[i];
  }
  return out;
}

/** Folds one code unit. */
export function foldCode(c: number): number {
  return c >= UPPER_A && c <= UPPER_Z ? c + 32 : c;
}

/** Upper-cases a–z only (template case control `$^`). */
export function upperAscii(s: string): string {
  let out = '';
  let changed = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 97 && c <= 122) {
      out += String.fromCharCode(c - 32);
      changed = true;
    } else {
      out += s[i];
    }
  }
  return changed ? out : s;
}
