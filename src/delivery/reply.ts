// SMTP replies as the client sees them (RFC 5321 §4.2): one or more lines "NNN-text" ... "NNN text",
// optionally starting with an RFC 3463 enhanced status code whose class digit repeats the reply's
// (RFC 2034 §4). nodemailer hands a reply over as its lines joined by "\n".

export interface Reply {
  readonly code: number;
  readonly enhanced: string | null;
  /** The text of every line without code and enhanced code, joined by a space. */
  readonly text: string;
}

const LINE = /^(\d{3})(?:[ -](.*))?$/;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: +|$)/;

/** Parses a reply; null when the first line does not start with a three-digit code. */
export function parseReply(raw: string): Reply | null {
  const lines = raw.split(/\r?\n/).filter((l) => l !== '');
  const first = LINE.exec(lines[0] ?? '');
  if (first === null) return null;
  const code = Number(first[1]);
  let enhanced: string | null = null;
  const texts: string[] = [];
  for (const line of lines) {
    const m = LINE.exec(line);
    let text = (m !== null ? (m[2] ?? '') : line).trim();
    const e = ENHANCED.exec(text);
    // RFC 2034 §4: the enhanced code's class must match the reply's first digit.
    if (e !== null && e[1] === String(code)[0]) {
      enhanced ??= `${e[1]}.${e[2]}.${e[3]}`;
      text = text.slice(e[0].length);
    }
    if (text !== '') texts.push(text);
  }
  return { code, enhanced, text: texts.join(' ') };
}

/** RFC 5321 §4.2.1: 2yz and 3yz succeed, 4yz is a transient, 5yz a permanent negative completion. */
export function replyKind(code: number): 'delivered' | 'temporary' | 'permanent' {
  if (code >= 500) return 'permanent';
  if (code >= 400) return 'temporary';
  return 'delivered';
}

/** "550 5.1.1 text", for logs and error messages. */
export function formatReply(r: Reply): string {
  return [String(r.code), r.enhanced, r.text].filter((s) => s !== null && s !== '').join(' ');
}
