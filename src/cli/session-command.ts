// `portcullis test session`: replays a scripted SMTP dialogue against a configuration with no
// network, and prints each command, each reply, and the decisions that produced it — the
// explain tool no peer has. The dialogue runs through the real Session (src/smtp/session) over
// an in-memory transport, with the real MappingPolicy and the configuration's directory store
// (read only). Accepted messages go to a temporary spool that is deleted afterwards.
//
// Script format (also in --help):
//
//   # a comment; blank lines are ignored
//   client 203.0.113.5:4000        the client's address and port
//   server 192.0.2.10:25           the server's address and port; the port picks the service
//   tls yes                        the session starts with TLS active
//   auth alice@example.com         the session starts authenticated as this login
//   > EHLO client.example          a command line, sent with CRLF
//   > DATA                         followed by the message, line by line, up to a line "."
//   Subject: hi
//
//   hello
//   .
//
// Header lines (client, server, tls, auth) come before the first command.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { CommandSpec } from './command.js';
import { EXIT, say } from './command.js';
import { DEFAULT_CLIENT, DEFAULT_SERVER_IP, entryName, openOffline } from './rewrite-command.js';
import type { Offline } from './rewrite-command.js';
import { cidrContains } from '../config/cidr.js';
import type { Options } from '../config/types.js';
import type { DecisionEvent } from '../policy/events.js';
import type { MappingPolicy } from '../policy/mapping-policy.js';
import type { ServiceName, SessionPolicy } from '../policy/session-policy.js';
import type { Verdict } from '../policy/verdict.js';
import { Spool } from '../queue/spool.js';
import { MEMORY_TLS, MemoryTransport } from '../smtp/session/memory-transport.js';
import { Session } from '../smtp/session/session.js';
import type { SessionEnv } from '../smtp/session/session.js';
import type { Logger } from '../telemetry/log.js';

// ---- the script ---------------------------------------------------------------------------------

export interface Endpoint {
  readonly ip: string;
  /** null when the script gave the address only. */
  readonly port: number | null;
  readonly line: number;
}

export type ScriptStep =
  | { readonly kind: 'command'; readonly line: number; readonly text: string }
  /** `> DATA` and the message lines after it (without the final "."). */
  | { readonly kind: 'data'; readonly line: number; readonly text: string; readonly body: readonly string[]; readonly endLine: number };

export interface Script {
  readonly client: Endpoint | null;
  readonly server: Endpoint | null;
  readonly tls: boolean;
  readonly auth: { readonly login: string; readonly line: number } | null;
  readonly steps: readonly ScriptStep[];
}

export type ScriptResult = { readonly ok: true; readonly script: Script } | { readonly ok: false; readonly line: number; readonly message: string };

function endpoint(text: string, line: number): Endpoint | string {
  let ip = text;
  let port: string | null = null;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket !== null) {
    ip = bracket[1] as string;
    port = bracket[2] ?? null;
  } else if (isIP(text) === 0) {
    const colon = text.lastIndexOf(':');
    if (colon > 0) {
      ip = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
  }
  if (isIP(ip) === 0) return `"${ip}" is not an IP address (write 203.0.113.5:4000, or [2001:db8::5]:4000)`;
  if (port !== null && (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)) return `"${port}" is not a port number (1-65535)`;
  return { ip, port: port === null ? null : Number(port), line };
}

/** Reads a script; a problem comes back with its line number. */
export function parseScript(text: string): ScriptResult {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  let client: Endpoint | null = null;
  let server: Endpoint | null = null;
  let tls: boolean | null = null;
  let auth: Script['auth'] = null;
  const steps: ScriptStep[] = [];
  const bad = (line: number, message: string): ScriptResult => ({ ok: false, line, message });
  for (let k = 0; k < lines.length; k++) {
    const line = k + 1;
    const l = lines[k] as string;
    if (l.trim() === '' || l.trimStart().startsWith('#')) continue;
    if (l.startsWith('>')) {
      const cmd = l.slice(1).replace(/^ /, '');
      if (/^BDAT\b/i.test(cmd)) return bad(line, 'BDAT chunks cannot be written in a script: send the message with DATA');
      if (!/^DATA\s*$/i.test(cmd)) {
        steps.push({ kind: 'command', line, text: cmd });
        continue;
      }
      const body: string[] = [];
      let end = -1;
      for (let j = k + 1; j < lines.length; j++) {
        if (lines[j] === '.') {
          end = j;
          break;
        }
        body.push(lines[j] as string);
      }
      if (end === -1) return bad(line, 'the message after DATA does not end: finish it with a line holding a single "."');
      steps.push({ kind: 'data', line, text: cmd, body, endLine: end + 1 });
      k = end;
      continue;
    }
    const m = /^\s*(\S+)\s*(.*?)\s*$/.exec(l) as RegExpExecArray;
    const word = (m[1] as string).toLowerCase();
    const arg = m[2] as string;
    const header = ['client', 'server', 'tls', 'auth'].includes(word);
    if (!header) {
      return bad(line, `cannot read "${l}": a line is a command ("> EHLO name"), a header (client, server, tls, auth), a comment (#) or blank`);
    }
    if (steps.length > 0) return bad(line, `"${word}" is a header line: put it before the first command`);
    const twice = (word === 'client' && client) || (word === 'server' && server) || (word === 'tls' && tls !== null) || (word === 'auth' && auth);
    if (twice) return bad(line, `"${word}" is given twice`);
    if (word === 'client' || word === 'server') {
      const e = endpoint(arg, line);
      if (typeof e === 'string') return bad(line, `${word}: ${e}`);
      if (word === 'client') client = e;
      else server = e;
    } else if (word === 'tls') {
      const v = arg.toLowerCase();
      if (v !== 'yes' && v !== 'no') return bad(line, 'tls: write "tls yes" or "tls no"');
      tls = v === 'yes';
    } else {
      if (!/^\S+$/.test(arg)) return bad(line, 'auth: write the login, e.g. "auth alice@example.com"');
      auth = { login: arg, line };
    }
  }
  return { ok: true, script: { client, server, tls: tls ?? false, auth, steps } };
}

/** The service a server port stands for: the configured ports first, then the standard ones. */
export function serviceForPort(port: number, o: Options): ServiceName | null {
  if (o.ports.smtp !== 0 && port === o.ports.smtp) return 'smtp';
  if (o.ports.submit !== 0 && port === o.ports.submit) return 'submit';
  if (o.ports.smtps !== 0 && port === o.ports.smtps) return 'smtps';
  return port === 25 ? 'smtp' : port === 587 ? 'submit' : port === 465 ? 'smtps' : null;
}

// ---- what gets reported -------------------------------------------------------------------------

/** One thing that decided (or explains) a reply. */
export type Explained =
  | {
      readonly kind: 'table';
      readonly phase: string;
      readonly table: string;
      readonly entry: string | null;
      readonly probe: string;
      readonly inputFlags: string;
      readonly matched: boolean;
      readonly output: string;
      readonly flags: string;
      readonly decision: 'allow' | 'reject' | 'none';
      readonly reason: string | null;
    }
  | { readonly kind: 'switch'; readonly from: string; readonly to: string; readonly cause: string }
  | { readonly kind: 'route'; readonly recipient: string; readonly channel: string; readonly deliverTo: readonly { readonly address: string; readonly channel: string }[] }
  | { readonly kind: 'delay'; readonly ms: number; readonly scope: string }
  | { readonly kind: 'auth'; readonly login: string }
  | { readonly kind: 'log'; readonly event: string; readonly text: string };

interface Accepted {
  readonly id: string;
  readonly sender: string;
  readonly sourceChannel: string;
  readonly recipients: readonly { readonly address: string; readonly channel: string | null; readonly deliverTo: readonly { readonly address: string; readonly channel: string }[] }[];
  readonly flags: readonly string[];
}

interface StepRecord {
  /** end: the server closed the connection before the script's last command. */
  readonly step: 'connect' | 'command' | 'message' | 'end';
  readonly line: number | null;
  readonly command: string | null;
  /** Message lines sent (message steps). */
  readonly lines?: number;
  readonly replies: string[];
  readonly decisions: Explained[];
  accepted?: Accepted;
  note?: string;
}

function tableDecision(e: DecisionEvent, configDir: string): Explained {
  return {
    kind: 'table',
    phase: e.phase,
    table: e.table,
    entry: entryName(e.entry, configDir),
    probe: e.probe,
    inputFlags: e.inputFlags,
    matched: e.matched,
    output: e.output,
    flags: e.flags,
    decision: e.decision,
    reason: e.reason,
  };
}

function renderDecision(d: Explained): string {
  switch (d.kind) {
    case 'table': {
      if (d.phase === 'routing') return `  [${d.table} ${d.entry ?? 'no rule'}] ${d.probe} -> ${d.output}`;
      const input = d.inputFlags !== '' ? ` (input ${d.inputFlags})` : '';
      const flags = d.flags !== '' ? ` (${d.flags})` : '';
      const output = d.matched && d.output !== '' ? ` "${d.output}"` : '';
      // Built-in checks (alias expansion, rewriting, mustsaslserver) have no entry to name.
      const where = d.matched ? (d.entry ?? '') : 'no match';
      return `  [${d.table}${where !== '' ? ' ' + where : ''}] ${d.probe}${input} -> ${d.decision === 'reject' ? 'reject' : 'allow'}${flags}${output}`;
    }
    case 'switch':
      return `  [${d.cause}] channel ${d.from} -> ${d.to}`;
    case 'route':
      return `  [route] ${d.recipient} -> channel ${d.channel}; deliver to ${d.deliverTo.map((t) => `${t.address} (${t.channel})`).join(', ')}`;
    case 'delay':
      return `  [delay] ${d.ms} ms before this reply ($D${d.scope === 'transaction' ? '; and before every later reply of the transaction' : ''})`;
    case 'auth':
      return `  [auth] authenticated as ${d.login} by the script (no password asked)`;
    case 'log':
      return `  [${d.event}] ${d.text}`;
  }
}

function renderRecord(r: StepRecord): string[] {
  const out: string[] = [];
  if (r.step === 'connect') out.push('(connect)');
  else if (r.step === 'message') out.push(`> [${r.lines ?? 0} message line${r.lines === 1 ? '' : 's'}]`, '> .');
  else if (r.step === 'command') out.push(`> ${r.command ?? ''}`);
  for (const d of r.decisions) out.push(renderDecision(d));
  for (const rep of r.replies) out.push(`< ${rep}`);
  if (r.accepted !== undefined) {
    const a = r.accepted;
    const to = a.recipients.map((x) => `${x.address}${x.deliverTo.length > 0 ? ` -> ${x.deliverTo.map((t) => `${t.address} on ${t.channel}`).join(', ')}` : ''}`).join(', ');
    out.push(`  [spool] would be accepted as id ${a.id}: from <${a.sender}> on ${a.sourceChannel} to ${to}${a.flags.length > 0 ? `, flags ${a.flags.join('')}` : ''}; nothing was queued`);
  }
  if (r.note !== undefined) out.push(`  (${r.note})`);
  return out;
}

/**
 * The session's policy, asked through this wrapper: the policy reports its own DecisionEvents
 * (tables and built-in checks); the wrapper adds channel switches, where an accepted recipient
 * goes, and $D delays.
 */
function explaining(p: MappingPolicy, note: (d: Explained) => void): SessionPolicy {
  const delay = (v: Verdict): void => {
    if (v.delay !== null) note({ kind: 'delay', ms: v.delay.ms, scope: v.delay.scope });
  };
  return {
    connect: async (c) => {
      const v = await p.connect(c);
      delay(v);
      return v;
    },
    greetingDelay: () => p.greetingDelay(),
    earlyTalker: () => p.earlyTalker(),
    sourceChannel: (c) => p.sourceChannel(c),
    channelAfterTls: (ch) => {
      const next = p.channelAfterTls(ch);
      if (next !== ch) note({ kind: 'switch', from: ch, to: next, cause: 'tlsswitchchannel' });
      return next;
    },
    channelAfterAuth: (ch) => {
      const next = p.channelAfterAuth(ch);
      if (next !== ch) note({ kind: 'switch', from: ch, to: next, cause: 'saslswitchchannel' });
      return next;
    },
    authMode: (ch, service) => p.authMode(ch, service),
    tlsMode: (ch, service) => p.tlsMode(ch, service),
    mail: async (s, from, params) => {
      const v = await p.mail(s, from, params);
      delay(v);
      return v;
    },
    rcpt: async (s, from, to, params, counts) => {
      const a = await p.rcpt(s, from, to, params, counts);
      if (a.route !== null) note({ kind: 'route', recipient: to.address, channel: a.route.channel, deliverTo: a.route.deliverTo });
      delay(a.verdict);
      return a;
    },
    message: () => p.message(),
  };
}

// ---- running it ---------------------------------------------------------------------------------

function dotStuff(body: readonly string[]): string {
  // RFC 5321 §4.5.2: a line starting with "." gets one more; the server's codec takes it off.
  return body.map((l) => (l.startsWith('.') ? '.' + l : l) + '\r\n').join('') + '.\r\n';
}

function replyLines(text: string): string[] {
  return text.split('\r\n').filter((l, k, all) => l !== '' || k < all.length - 1);
}

async function readAll(input: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

interface Setup {
  readonly service: ServiceName;
  readonly server: { readonly ip: string; readonly port: number };
  readonly client: { readonly ip: string; readonly port: number };
  readonly tls: boolean;
  readonly login: string | null;
}

/** Checks the script's headers against the configuration; a problem comes back with its line. */
function setup(script: Script, off: Offline): Setup | { line: number; message: string } {
  const o = off.snapshot.options;
  const serverPort = script.server?.port ?? (o.ports.smtp || 25);
  const service = serviceForPort(serverPort, o);
  const line = script.server?.line ?? 1;
  if (service === null) {
    return { line, message: `server port ${serverPort} is none of the configured ports (smtp ${o.ports.smtp}, submit ${o.ports.submit}, smtps ${o.ports.smtps}) nor 25, 587 or 465` };
  }
  if (service === 'smtps' && o.tls.certFile === null) return { line, message: `port ${serverPort} is the smtps service, which is off: msg.conf configures no certificate` };
  let login: string | null = null;
  if (script.auth !== null) {
    const user = off.directory.userByLogin(script.auth.login);
    if (user === undefined) return { line: script.auth.line, message: `auth: the directory has no user with login ${script.auth.login} (see portcullis user list)` };
    if (user.status !== 'active') return { line: script.auth.line, message: `auth: user ${user.login} is disabled and could not authenticate` };
    login = user.login;
  }
  return {
    service,
    server: { ip: script.server?.ip ?? DEFAULT_SERVER_IP, port: serverPort },
    client: { ip: script.client?.ip ?? DEFAULT_CLIENT.ip, port: script.client?.port ?? DEFAULT_CLIENT.port },
    // Implicit TLS (465) is TLS from the first byte.
    tls: script.tls || service === 'smtps',
    login,
  };
}

/** Runs the script; each finished step is handed to `emit` at once. */
async function replay(script: Script, off: Offline, events: EventRelay, s: Setup, spool: Spool, emit: (r: StepRecord) => void): Promise<void> {
  let decisions: Explained[] = [];
  const note = (d: Explained): void => void decisions.push(d);
  const dir = off.snapshot.dir;
  // The mapping policy reports its events through `events`, given to openOffline.
  events.to = (e) => note(tableDecision(e, dir));
  const policy = explaining(off.policy, note);
  const log: Logger = {
    log(level, event, fields = {}) {
      if (event === 'mapping-syslog') note({ kind: 'log', event: 'syslog', text: String(fields.text ?? '') });
      else if (event === 'mapping-bad-replacement') note({ kind: 'log', event: 'note', text: `$J replacement is not an address: ${String(fields.value ?? '')}` });
      else if (level === 'error') note({ kind: 'log', event: 'error', text: `${event} ${String(fields.error ?? '')}` });
    },
  };
  const env: SessionEnv = {
    options: () => off.snapshot.options,
    directory: () => off.directory,
    policy: () => policy,
    spool,
    log,
    now: () => new Date(),
    xclientAllowed: (ip) => cidrContains(off.snapshot.options.xclientHosts, ip),
  };
  const transport = new MemoryTransport(off.snapshot.options.tls.certFile !== null, s.tls);
  const session = new Session(transport, env, s.service, s.server, s.client, s.client, s.tls ? MEMORY_TLS : null);
  const finish = (base: Omit<StepRecord, 'replies' | 'decisions'>): StepRecord => {
    const r: StepRecord = { ...base, replies: replyLines(transport.take()), decisions };
    decisions = [];
    return r;
  };

  await session.start();
  if (s.login !== null && !session.state.closing) {
    // As after a successful AUTH (auth.ts): the login is recorded and the channel switches.
    note({ kind: 'auth', login: s.login });
    session.state.authUser = s.login;
    session.state.channel = policy.channelAfterAuth(session.state.channel);
  }
  emit(finish({ step: 'connect', line: null, command: null }));

  const send = async (bytes: string): Promise<void> => {
    const mark = transport.mark();
    session.receive(Buffer.from(bytes, 'utf8'));
    await transport.settled(mark);
  };
  for (let k = 0; k < script.steps.length; k++) {
    const step = script.steps[k] as ScriptStep;
    if (session.state.closing) {
      const left = script.steps.length - k;
      emit({ step: 'end', line: step.line, command: null, replies: [], decisions: [], note: `the server closed the connection: ${left} command${left === 1 ? '' : 's'} from line ${step.line} on not sent` });
      return;
    }
    await send(step.text + '\r\n');
    const rec = finish({ step: 'command', line: step.line, command: step.text });
    if (step.kind === 'data' && !rec.replies.some((l) => l.startsWith('354'))) rec.note = 'DATA was not accepted: the message is not sent';
    emit(rec);
    if (step.kind !== 'data' || rec.note !== undefined || session.state.closing) continue;
    await send(dotStuff(step.body));
    const msg = finish({ step: 'message', line: step.line + 1, command: null, lines: step.body.length });
    const id = /^250 2\.0\.0 OK id=(\S+)/.exec(msg.replies[msg.replies.length - 1] ?? '')?.[1];
    if (id !== undefined) {
      const e = spool.readEnvelope(id);
      msg.accepted = {
        id,
        sender: e.sender,
        sourceChannel: e.sourceChannel,
        recipients: e.recipients.map((r) => ({ address: r.address, channel: r.channel, deliverTo: r.deliverTo ?? [] })),
        flags: e.flags,
      };
    }
    emit(msg);
  }
  if (!session.state.closing) session.closed();
}

/** Passes the policy's events on to whoever listens now (the policy is built before the replay). */
interface EventRelay {
  to: (e: DecisionEvent) => void;
}

interface SessionCliOptions {
  config: string;
  script?: string;
  json?: boolean;
}

/** The command; `tempRoot` is where the temporary spool is made (tests give their own). */
export function sessionCommand(tempRoot: () => string = tmpdir): CommandSpec {
  return {
    path: ['test', 'session'],
    summary: 'replay a scripted SMTP dialogue against a configuration, showing the decision behind each reply',
    options: [
      { flags: '--config <dir>', description: 'the configuration directory (msg.conf, mappings, imta.cnf)', required: true },
      { flags: '--script <file>', description: 'the dialogue script (default: standard input)' },
      { flags: '--json', description: 'print one JSON object per step' },
    ],
    help: [
      'The script is read line by line; blank lines and lines starting with # are ignored.',
      'Header lines, before the first command:',
      `  client 203.0.113.5:4000   the client address and port (default ${DEFAULT_CLIENT.ip}:${DEFAULT_CLIENT.port})`,
      `  server 192.0.2.10:25      the server address and port (default ${DEFAULT_SERVER_IP} on the SMTP port). The port`,
      '                            picks the service: the configured smtp, submit or smtps port, else 25, 587, 465',
      '  tls yes                   TLS is active from the start (TLSv1.3); always so on the smtps port',
      '  auth alice@example.com    the session is authenticated as this login from the start, without a',
      '                            password; the channel switches as after AUTH (saslswitchchannel). A',
      '                            STARTTLS later in the script forgets it, as RFC 3207 §4.2 requires',
      'Commands:',
      '  > EHLO client.example     one command line, sent as typed (CRLF added)',
      '  > DATA                    then the message lines, sent dot-stuffed, up to a line holding only "."',
      'Each command is sent when the reply to the one before has arrived. STARTTLS succeeds at once when a',
      'certificate is configured. Nothing touches the network, the directory store is only read, and an',
      'accepted message goes to a temporary spool that is deleted afterwards ("would be accepted as id ...").',
      'Idle timeouts never fire; $D delays and the greeting delay are waited for, as the server would.',
      'Output: "> command", then the decisions that produced the reply, e.g.',
      '  [FROM_ACCESS mappings:40] TCP|...|tcp_local|ceo@example.com| -> reject (N) "..."',
      'then "< reply". --json prints one object per step: {step, line, command, replies, decisions, ...}.',
      'Exit status: 0 when the script ran; 2 on a bad script (with its line number) or a bad configuration.',
    ].join('\n'),
    async run(io, _args, raw) {
      const o = raw as unknown as SessionCliOptions;
      const name = o.script ?? '<stdin>';
      let text: string;
      try {
        text = o.script !== undefined ? readFileSync(o.script, 'utf8') : await readAll(io.stdin);
      } catch (err) {
        say(io.stderr, `portcullis: cannot read the script ${name}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        return EXIT.usage;
      }
      const parsed = parseScript(text);
      if (!parsed.ok) {
        say(io.stderr, `${name}:${parsed.line}: ${parsed.message}`);
        return EXIT.usage;
      }
      const events: EventRelay = { to: () => undefined };
      const off = await openOffline(io, o.config, (e) => events.to(e));
      if (off === null) return EXIT.usage;
      const s = setup(parsed.script, off);
      if ('message' in s) {
        say(io.stderr, `${name}:${s.line}: ${s.message}`);
        return EXIT.usage;
      }
      const tmp = mkdtempSync(join(tempRoot(), 'portcullis-test-session-'));
      try {
        const spool = Spool.open(tmp);
        if (!o.json) {
          const how = `${s.service}${s.tls ? ', TLS' : ''}${s.login !== null ? `, authenticated as ${s.login}` : ''}`;
          say(io.stdout, `# client ${s.client.ip}:${s.client.port} -> server ${s.server.ip}:${s.server.port} (${how})`);
        }
        await replay(parsed.script, off, events, s, spool, (r) => {
          if (o.json) say(io.stdout, JSON.stringify(r));
          else for (const l of renderRecord(r)) say(io.stdout, l);
        });
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
      return EXIT.ok;
    },
  };
}

export const testSession: CommandSpec = sessionCommand();
