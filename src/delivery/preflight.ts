// Decisions taken after EHLO and before MAIL FROM, from what the server offers: a message it has
// announced it will refuse is not sent, and a message that needs an extension it lacks is either
// refused here or sent without the parameter, as each RFC allows.

import { isAscii } from './params.js';
import type { Capabilities } from './params.js';
import type { OutboundMessage } from './types.js';

/** A locally decided failure for every recipient of the transaction. */
export interface LocalFailure {
  readonly kind: 'temporary' | 'permanent';
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

/** What to do with 8-bit content for a server without 8BITMIME (RFC 6152 §3). */
export type EightBitPolicy = 'send' | 'refuse';

export interface Plan {
  /** Send the SMTPUTF8 keyword on MAIL FROM. */
  readonly smtputf8: boolean;
}

/**
 * Whether the message can go to a server with `caps`, and how. `headerHasUtf8` is asked only when
 * the answer depends on it (a message flagged SMTPUTF8, ASCII envelope, server without SMTPUTF8).
 */
export async function preflight(msg: OutboundMessage, caps: Capabilities, eightBit: EightBitPolicy, headerHasUtf8: () => Promise<boolean>): Promise<Plan | LocalFailure> {
  // RFC 1870 §4: a message larger than the announced fixed maximum is refused with 552.
  if (caps.size !== null && caps.size > 0 && msg.size > caps.size) {
    return { kind: 'permanent', code: 552, enhanced: '5.3.4', text: `message size ${msg.size} exceeds the fixed maximum message size of ${caps.size} announced by the server (RFC 1870)` };
  }
  let smtputf8 = false;
  if (msg.smtputf8) {
    if (caps.smtputf8) {
      smtputf8 = true;
    } else {
      // RFC 6531 §3.2 / RFC 6532 §3.2: a message with UTF-8 addresses or header fields cannot go
      // to a server without SMTPUTF8 (we do not downgrade, RFC 6857). One flagged SMTPUTF8 with an
      // all-ASCII envelope and header goes without the keyword, as Postfix does.
      const envelopeUtf8 = !isAscii(msg.sender) || msg.recipients.some((r) => !isAscii(r.address));
      if (envelopeUtf8 || (await headerHasUtf8())) {
        return { kind: 'permanent', code: 554, enhanced: '5.6.7', text: 'SMTPUTF8 is required (UTF-8 addresses or header fields), but the server does not offer it' };
      }
    }
  }
  // RFC 6152 §3 asks to convert to 7 bit or refuse; conversion is not implemented, so by default
  // 8-bit content goes as is (as sendmail's EightBitMode=pass8 and Postfix without MIME conversion).
  if (msg.body8bit && !caps.eightBitMime && eightBit === 'refuse') {
    return { kind: 'permanent', code: 554, enhanced: '5.6.3', text: '8-bit content, but the server does not offer 8BITMIME and conversion to 7 bit is not available' };
  }
  return { smtputf8 };
}

/** Why an envelope address cannot go into MAIL FROM/RCPT TO (RFC 5321 §4.1.2), or null. */
export function addressProblem(address: string): string | null {
  if (address === '') return 'the address is empty';
  if (/[\r\n<>\0]/.test(address)) return 'the address contains CR, LF, NUL, "<" or ">"';
  return null;
}

export function isLocalFailure(p: Plan | LocalFailure): p is LocalFailure {
  return 'kind' in p;
}

/** The header section of a message (up to the first empty line) has an octet above 127. */
export async function headerHasNonAscii(source: NodeJS.ReadableStream | Buffer, limit = 1 << 20): Promise<boolean> {
  if (Buffer.isBuffer(source)) return scanHeader(source).nonAscii;
  let acc = Buffer.alloc(0);
  try {
    for await (const chunk of source as AsyncIterable<Buffer | string>) {
      acc = Buffer.concat([acc, typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk]);
      const scan = scanHeader(acc);
      if (scan.nonAscii) return true;
      if (scan.ended || acc.length > limit) return false;
    }
    return false;
  } finally {
    const d = source as { destroy?: () => void };
    d.destroy?.();
  }
}

function scanHeader(b: Buffer): { nonAscii: boolean; ended: boolean } {
  const end = b.indexOf('\r\n\r\n');
  const header = end === -1 ? b : b.subarray(0, end);
  // A message that starts with an empty line has an empty header section.
  if (b.subarray(0, 2).toString('latin1') === '\r\n') return { nonAscii: false, ended: true };
  return { nonAscii: header.some((c) => c > 0x7f), ended: end !== -1 };
}
