// Flag sets as bit masks: A–Z are bits 0–25, then "!", "<", ">" (spec §4.2–4.3). Both the input
// flags a caller sets on a probe (§4.1) and the output flags a template sets use this form.
// Lower-case y, n and f are synonyms of Y, N and F (spec §3.7); the template compiler folds them.

const EXTRA = '!<>';

export function flagBit(letter: string): number {
  const c = letter.charCodeAt(0);
  if (c >= 65 && c <= 90) return 1 << (c - 65);
  if (c >= 97 && c <= 122) return 1 << (c - 97);
  const k = EXTRA.indexOf(letter);
  if (k < 0) throw new RangeError(`not a flag letter: ${JSON.stringify(letter)}`);
  return 1 << (26 + k);
}

export function hasFlag(mask: number, letter: string): boolean {
  return (mask & flagBit(letter)) !== 0;
}

/** Parses a string of flag letters such as "ATE" (case-insensitive); returns null on a bad letter. */
export function parseFlagLetters(s: string): number | null {
  let mask = 0;
  for (const ch of s) {
    if (!/^[A-Za-z!<>]$/.test(ch)) return null;
    mask |= flagBit(ch);
  }
  return mask;
}

/** The letters of a mask in character-code order ("!", "<", ">", then A–Z). */
export function flagLetters(mask: number): string[] {
  const out: string[] = [];
  for (let k = 0; k < EXTRA.length; k++) if (mask & (1 << (26 + k))) out.push(EXTRA[k] as string);
  for (let k = 0; k < 26; k++) if (mask & (1 << k)) out.push(String.fromCharCode(65 + k));
  return out;
}

export function flagString(mask: number): string {
  return flagLetters(mask).join('');
}

/**
 * The flag display of `imsimta test -mapping`, e.g. `[0, 'N' (78), 'X' (88)]`: each flag as the
 * quoted letter and its character code, in code order, after a leading 0.
 */
export function flagDisplay(mask: number): string {
  const parts = ['0', ...flagLetters(mask).map((l) => `'${l}' (${l.charCodeAt(0)})`)];
  return `[${parts.join(', ')}]`;
}
