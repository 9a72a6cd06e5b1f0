// Reading an access-table result (spec §4.2–§4.4): which flags were set, the arguments of the
// argument-taking flags, and the decision. Arguments are cut from the output string, split on "|",
// and handed out in a fixed order — U J K I < > D T A X, then N/F taking the remainder — no matter
// where the flag letters stood in the template.

import { flagBit, flagString } from './flags.js';
import type { MappingResult } from './evaluate.js';

export type Decision = 'allow' | 'reject' | 'none';

/** The argument-taking flags in reading order (spec §4.3). `I` takes two fields. */
const ARG_ORDER = ['U', 'J', 'K', 'I', '<', '>', 'D', 'T', 'A', 'X'] as const;

export type ArgFlag = (typeof ARG_ORDER)[number] | 'N' | 'F';

export interface AccessResult {
  readonly matched: boolean;
  readonly output: string;
  /** Output flags as upper-case letters in character-code order ("!", "<", ">", A–Z). */
  readonly flags: string;
  readonly mask: number;
  /** Arguments by flag letter; `I` holds "user|identifier"; `N`/`F` the rejection text. */
  readonly args: Readonly<Partial<Record<ArgFlag, string>>>;
  readonly decision: Decision;
}

const BIT = {
  Y: flagBit('Y'),
  N: flagBit('N'),
  F: flagBit('F'),
} as const;

/** Decodes flags and arguments from a mapping output string and flag mask. */
export function decodeAccess(matched: boolean, output: string, mask: number): AccessResult {
  const args: Partial<Record<ArgFlag, string>> = {};
  const hasArgFlag = ARG_ORDER.some((f) => mask & flagBit(f)) || (mask & (BIT.N | BIT.F)) !== 0;
  if (hasArgFlag) {
    const fields = output.split('|');
    for (const f of ARG_ORDER) {
      if ((mask & flagBit(f)) === 0) continue;
      const take = f === 'I' ? 2 : 1;
      args[f] = fields.splice(0, take).join('|');
    }
    // $N / $F take whatever is left, "|" included (spec §4.3). $N wins the key when both are set.
    if (mask & (BIT.N | BIT.F)) args[mask & BIT.N ? 'N' : 'F'] = fields.join('|');
  }
  // Spec §4.4: N/F reject (and win over Y); Y allows; neither leaves the default (permit).
  const decision: Decision = mask & (BIT.N | BIT.F) ? 'reject' : mask & BIT.Y ? 'allow' : 'none';
  return { matched, output, flags: flagString(mask), mask, args, decision };
}

export function accessResult(r: MappingResult): AccessResult {
  return decodeAccess(r.matched, r.output, r.flags);
}

/** Parses the `$D` argument: hundredths of a second, possibly negative; null when not an integer. */
export function delayArgument(args: AccessResult['args']): number | null {
  const d = args.D;
  if (d === undefined || !/^\s*[-+]?\d+\s*$/.test(d)) return null;
  return Number(d);
}
