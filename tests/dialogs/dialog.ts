// Dialog scripts: an SMTP conversation written as lines, run over a real socket.
//
//   # comment
//   > EHLO client.example          send a command (CRLF added)
//   >> DATA\r\nline\r\n.\r\n       send raw bytes (\r \n \t \\ \xNN escapes; nothing added)
//   < 250                          expect a reply whose code is 250 (last line of a multi-line one)
//   < 550 5.1.1 User unknown       ... and whose last line starts with this text
//   < *250-PIPELINING              expect some line of the reply to start with this
//   < CLOSED                       expect the server to close the connection
//   = queue 1                      expect that many committed messages in the spool
//
// A blank line or "---" starts a new connection.

import type net from 'node:net';

export type Step =
  | { kind: 'send'; data: string; line: number }
  | { kind: 'expect'; code: string; text: string; anyLine: boolean; line: number }
  | { kind: 'closed'; line: number }
  | { kind: 'queue'; count: number; line: number }
  | { kind: 'reconnect'; line: number };

export function unescape(s: string): string {
  return s.replace(/\\(r|n|t|\\|x[0-9a-fA-F]{2})/g, (_m, e: string) =>
    e === 'r' ? '\r' : e === 'n' ? '\n' : e === 't' ? '\t' : e === '\\' ? '\\' : String.fromCharCode(parseInt(e.slice(1), 16)),
  );
}

export function parseDialog(text: string): Step[] {
  const steps: Step[] = [];
  text.split('\n').forEach((raw, k) => {
    const line = k + 1;
    const l = raw.replace(/\r$/, '');
    if (l.startsWith('#')) return;
    if (l.trim() === '' || l.trim() === '---') {
      if (steps.length > 0 && steps[steps.length - 1]?.kind !== 'reconnect') steps.push({ kind: 'reconnect', line });
      return;
    }
    if (l.startsWith('>> ')) steps.push({ kind: 'send', data: unescape(l.slice(3)), line });
    else if (l.startsWith('> ')) steps.push({ kind: 'send', data: l.slice(2) + '\r\n', line });
    else if (l === '< CLOSED') steps.push({ kind: 'closed', line });
    else if (l.startsWith('< ')) {
      const body = l.slice(2);
      const anyLine = body.startsWith('*');
      const rest = anyLine ? body.slice(1) : body;
      steps.push({ kind: 'expect', code: rest.slice(0, 3), text: rest.slice(3).trimStart(), anyLine, line });
    } else if (l.startsWith('= queue ')) steps.push({ kind: 'queue', count: Number(l.slice(8)), line });
    else throw new Error(`line ${line}: cannot read "${l}"`);
  });
  return steps;
}

/** Reads replies from a socket, one complete (possibly multi-line) reply at a time. */
export class ReplyReader {
  private buf = '';
  private waiters: (() => void)[] = [];
  closed = false;

  constructor(sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next reply's lines, or null if the connection closed first. */
  async next(timeoutMs = 5000): Promise<string[] | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines: string[] = [];
      let pos = 0;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', pos);
        if (nl === -1) break;
        const l = this.buf.slice(pos, nl);
        lines.push(l);
        pos = nl + 2;
        if (l[3] !== '-') {
          this.buf = this.buf.slice(pos);
          return lines;
        }
      }
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms (buffered: ${JSON.stringify(this.buf)})`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
}
