// A small scripted SMTP (or LMTP) server on a real loopback socket, for what no packaged peer can
// be told to do: smtp-sink refuses a command for every recipient alike (-f, -r), so a server that
// accepts some recipients and refuses others with 550 or 450, that announces a SIZE limit, that
// never answers a command (timeouts), or that breaks STARTTLS, is played by this one. It records
// every command and message, counts connections and how many are open at once.

import net from 'node:net';

export interface Script {
  /** The greeting (default "220 responder.test ESMTP"); null sends none. */
  readonly greeting?: string | null;
  /** EHLO keywords after the first line (default PIPELINING, 8BITMIME, DSN, SIZE, ENHANCEDSTATUSCODES). */
  readonly ehlo?: readonly string[];
  /** Speak LMTP: LHLO instead of EHLO, one reply per accepted recipient after the message. */
  readonly lmtp?: boolean;
  /** Reply to MAIL FROM (args after "MAIL FROM:"); null never replies. Default 250. */
  readonly mail?: (args: string) => string | null;
  /** Reply to RCPT TO for an address; null never replies. Default 250. */
  readonly rcpt?: (address: string, args: string) => string | null;
  /** Reply after the message ("." line); for LMTP called per accepted recipient. Default 250. */
  readonly dot?: (message: Buffer, rcpt: string) => string | null;
  /** Reply to RSET (default 250). */
  readonly rset?: () => string;
  /** STARTTLS: answer 220, then send bytes that are not TLS and close (a broken TLS stack). */
  readonly brokenTls?: boolean;
  /** Delay before each reply (ms), to hold sessions open. */
  readonly delayMs?: number;
}

export interface Received {
  readonly connection: number;
  readonly mail: string;
  readonly rcpts: readonly string[];
  readonly data: Buffer;
}

export class SmtpResponder {
  /** Every command line, "<connection>: <line>". */
  readonly commands: string[] = [];
  readonly messages: Received[] = [];
  connections = 0;
  open = 0;
  maxOpen = 0;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  /** Listens on `host` and `port` (0: a free one). */
  static async start(script: Script = {}, host = '127.0.0.1', port = 0): Promise<SmtpResponder> {
    let self: SmtpResponder | null = null;
    const server = net.createServer((sock) => self?.session(sock, script));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    self = new SmtpResponder(server, (server.address() as net.AddressInfo).port);
    return self;
  }

  /** Commands of one verb, e.g. 'RSET'. */
  count(verb: string): number {
    return this.commands.filter((c) => c.split(': ')[1]?.toUpperCase().startsWith(verb)).length;
  }

  private session(sock: net.Socket, s: Script): void {
    const id = ++this.connections;
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    this.sockets.add(sock);
    sock.on('close', () => {
      this.open--;
      this.sockets.delete(sock);
    });
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let inData = false;
    let mail = '';
    let rcpts: string[] = [];
    let chain = Promise.resolve();
    const reply = (text: string | null): void => {
      if (text === null) return;
      chain = chain.then(async () => {
        if (s.delayMs !== undefined) await new Promise((r) => setTimeout(r, s.delayMs));
        if (!sock.destroyed) sock.write(`${text}\r\n`);
      });
    };
    reply(s.greeting === undefined ? '220 responder.test ESMTP' : s.greeting);
    const command = (line: string): void => {
      this.commands.push(`${id}: ${line}`);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO' || verb === 'LHLO') {
        const kw = s.ehlo ?? ['PIPELINING', '8BITMIME', 'DSN', 'SIZE 10000000', 'ENHANCEDSTATUSCODES'];
        reply(['responder.test', ...kw].map((k, i, a) => `250${i === a.length - 1 ? ' ' : '-'}${k}`).join('\r\n'));
      } else if (verb === 'HELO') reply('250 responder.test');
      else if (verb === 'STAR' && s.brokenTls === true) {
        reply('220 2.0.0 go ahead');
        void chain.then(() => sock.end('this is not a TLS server hello\r\n'));
      } else if (verb === 'MAIL') {
        mail = line.slice(10);
        rcpts = [];
        reply(s.mail?.(mail) ?? (s.mail ? null : '250 2.1.0 OK'));
      } else if (verb === 'RCPT') {
        const m = /^RCPT TO:<([^>]*)>(.*)$/i.exec(line);
        const addr = m?.[1] ?? '';
        const r = s.rcpt ? s.rcpt(addr, (m?.[2] ?? '').trim()) : '250 2.1.5 OK';
        if (r?.startsWith('2') === true) rcpts.push(addr);
        reply(r);
      } else if (verb === 'DATA') {
        if (rcpts.length === 0) reply('554 5.5.1 no valid recipients');
        else {
          inData = true;
          reply('354 go ahead');
        }
      } else if (verb === 'RSET') {
        mail = '';
        rcpts = [];
        reply(s.rset?.() ?? '250 2.0.0 OK');
      } else if (verb === 'NOOP') reply('250 2.0.0 OK');
      else if (verb === 'QUIT') {
        reply('221 2.0.0 bye');
        void chain.then(() => sock.end());
      } else reply('502 5.5.2 not implemented');
    };
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          const atStart = buf.subarray(0, 3).toString('latin1') === '.\r\n';
          if (end === -1 && !atStart) return;
          const raw = atStart ? Buffer.alloc(0) : buf.subarray(0, end + 2);
          buf = buf.subarray(atStart ? 3 : end + 5);
          inData = false;
          // RFC 5321 §4.5.2: remove the leading dot of every line that has one.
          const data = Buffer.from(raw.toString('latin1').replace(/^\./gm, ''), 'latin1');
          this.messages.push({ connection: id, mail, rcpts: [...rcpts], data });
          if (s.lmtp === true) for (const r of rcpts) reply(s.dot ? s.dot(data, r) : '250 2.0.0 OK');
          else reply(s.dot ? s.dot(data, rcpts[0] ?? '') : '250 2.0.0 OK queued');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl === -1) return;
        const line = buf.subarray(0, nl).toString('utf8');
        buf = buf.subarray(nl + 2);
        command(line);
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
