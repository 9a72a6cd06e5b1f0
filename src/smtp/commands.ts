// Parsing of SMTP command lines: the verb, and for MAIL/RCPT the path and ESMTP parameters
// (RFC 5321 §4.1.1–§4.1.2, §4.1.3 address literals, RFC 6531 SMTPUTF8, RFC 1870 SIZE, RFC 6152
// 8BITMIME, RFC 3461 DSN, RFC 4954 AUTH=). Pure functions returning values; the session turns a
// parse failure into the reply it names.

export interface CommandLine {
  /** Upper-cased verb, e.g. "MAIL". */
  readonly verb: string;
  /** Everything after the verb and one space, as sent. */
  readonly rest: string;
}

export function splitCommand(line: string): CommandLine {
  const sp = line.indexOf(' ');
  const verb = (sp === -1 ? line : line.slice(0, sp)).toUpperCase();
  return { verb, rest: sp === -1 ? '' : line.slice(sp + 1) };
}

export type ParseError = { readonly ok: false; readonly code: number; readonly enhanced: string; readonly text: string };
type Ok<T> = { readonly ok: true } & T;

function fail(code: number, enhanced: string, text: string): ParseError {
  return { ok: false, code, enhanced, text };
}

/** A reverse- or forward-path: the address without angle brackets ("" for the null path). */
export interface Path {
  /** As it will appear in probes and envelopes: source route kept, e.g. "@a.example:u@b.example". */
  readonly address: string;
  /** The mailbox without any source route. */
  readonly mailbox: string;
  readonly local: string;
  /** Domain as written (lower-cased), or an address literal like "[192.0.2.1]". */
  readonly domain: string;
  /** True when the mailbox contains non-ASCII characters (needs SMTPUTF8). */
  readonly utf8: boolean;
}

export const NULL_PATH: Path = { address: '', mailbox: '', local: '', domain: '', utf8: false };

const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\uffff]+$/;
const LABEL = /^(?:[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\-\u0080-\uffff]*[A-Za-z0-9\u0080-\uffff])?)$/;

function validDomain(d: string): boolean {
  if (d.startsWith('[') && d.endsWith(']')) {
    const lit = d.slice(1, -1);
    if (/^IPv6:/i.test(lit)) return /^[0-9A-Fa-f:.]+$/.test(lit.slice(5));
    return /^\d{1,3}(\.\d{1,3}){3}$/.test(lit) && lit.split('.').every((o) => Number(o) <= 255);
  }
  if (d.length === 0 || d.length > 255) return false;
  return d.split('.').every((l) => l.length > 0 && l.length <= 63 && LABEL.test(l));
}

function validLocal(l: string): boolean {
  if (l.length === 0 || l.length > 64 * 4) return false;
  if (l.startsWith('"')) {
    if (!l.endsWith('"') || l.length < 2) return false;
    // Quoted-string: printable characters, with backslash quoting (RFC 5321 §4.1.2).
    return /^"(?:[^"\\\r\n]|\\[\x20-\x7e])*"$/.test(l);
  }
  return l.split('.').every((atom) => atom.length > 0 && ATEXT.test(atom));
}

/** Splits "local@domain", honouring a quoted local part. */
function splitMailbox(m: string): { local: string; domain: string } | null {
  const at = m.startsWith('"') ? m.indexOf('@', m.lastIndexOf('"')) : m.lastIndexOf('@');
  if (at <= 0) return null;
  return { local: m.slice(0, at), domain: m.slice(at + 1) };
}

/**
 * Parses `<path>` at the start of `text` (after "FROM:" or "TO:", optional spaces tolerated as
 * many clients send them). Returns the path and what follows it.
 */
export function parsePath(text: string, allowNull: boolean): Ok<{ path: Path; rest: string }> | ParseError {
  const t = text.trimStart();
  if (!t.startsWith('<')) return fail(501, '5.5.4', 'Syntax error: the address must be written in angle brackets, e.g. <user@example.com>');
  const close = t.indexOf('>');
  if (close === -1) return fail(501, '5.5.4', 'Syntax error: missing ">" after the address');
  const inner = t.slice(1, close);
  const rest = t.slice(close + 1);
  if (rest !== '' && !rest.startsWith(' ')) return fail(501, '5.5.4', 'Syntax error: unexpected text after the address');
  if (inner === '') {
    if (!allowNull) return fail(501, '5.1.3', 'Syntax error: an empty recipient address is not allowed');
    return { ok: true, path: NULL_PATH, rest: rest.trim() };
  }
  // An obsolete source route "@a,@b:mailbox" is accepted and kept (RFC 5321 §4.1.2 / §C).
  let mailbox = inner;
  if (inner.startsWith('@')) {
    const colon = inner.indexOf(':');
    if (colon === -1) return fail(501, '5.1.3', 'Syntax error: source route without ":"');
    const hops = inner.slice(0, colon).split(',');
    if (!hops.every((h) => h.startsWith('@') && validDomain(h.slice(1)))) return fail(501, '5.1.3', 'Syntax error: bad source route');
    mailbox = inner.slice(colon + 1);
  }
  const parts = splitMailbox(mailbox);
  if (parts === null) {
    // RFC 5321 §4.1.1.3: "Postmaster" without a domain is a valid recipient.
    if (!allowNull && mailbox.toLowerCase() === 'postmaster') {
      return { ok: true, path: { address: inner, mailbox, local: mailbox, domain: '', utf8: false }, rest: rest.trim() };
    }
    return fail(501, '5.1.3', `Syntax error: "${mailbox}" is not an address (local@domain)`);
  }
  if (!validLocal(parts.local)) return fail(501, '5.1.3', `Syntax error: bad local part in "${mailbox}"`);
  if (!validDomain(parts.domain)) return fail(501, '5.1.2', `Syntax error: bad domain in "${mailbox}"`);
  // eslint-disable-next-line no-control-regex
  const utf8 = /[^\x00-\x7f]/.test(mailbox);
  const domain = parts.domain.toLowerCase();
  const norm = `${parts.local}@${domain}`;
  const address = inner === mailbox ? norm : `${inner.slice(0, inner.length - mailbox.length)}${norm}`;
  return { ok: true, path: { address, mailbox: norm, local: parts.local, domain, utf8 }, rest: rest.trim() };
}

/** ESMTP parameters, upper-cased keys; a value-less keyword maps to "". */
export type Params = ReadonlyMap<string, string>;

export function parseParams(text: string): Ok<{ params: Params }> | ParseError {
  const params = new Map<string, string>();
  for (const word of text.split(' ')) {
    if (word === '') continue;
    const eq = word.indexOf('=');
    const key = (eq === -1 ? word : word.slice(0, eq)).toUpperCase();
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key)) return fail(501, '5.5.4', `Syntax error in parameter "${word}"`);
    if (params.has(key)) return fail(501, '5.5.4', `Parameter ${key} given twice`);
    params.set(key, eq === -1 ? '' : word.slice(eq + 1));
  }
  return { ok: true, params };
}

/** RFC 3461 §4: xtext decoding ("+XX" hex escapes). Null when malformed. */
export function decodeXtext(s: string): string | null {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c === '+') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return null;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (c === '=' || c.charCodeAt(0) < 33 || c.charCodeAt(0) > 126) {
      return null;
    } else {
      out += c;
    }
  }
  return out;
}

/** MAIL FROM parameters we understand, after validation. */
export interface MailParams {
  readonly size: number | null;
  readonly body: '7BIT' | '8BITMIME' | null;
  readonly smtputf8: boolean;
  readonly ret: 'FULL' | 'HDRS' | null;
  readonly envid: string | null;
  /** RFC 4954 AUTH= (the submitter's identity as claimed by a relaying client), decoded. */
  readonly auth: string | null;
}

export function mailParams(params: Params, maxSize: number): Ok<{ mail: MailParams }> | ParseError {
  let size: number | null = null;
  let body: MailParams['body'] = null;
  let smtputf8 = false;
  let ret: MailParams['ret'] = null;
  let envid: string | null = null;
  let auth: string | null = null;
  for (const [k, v] of params) {
    switch (k) {
      case 'SIZE':
        if (!/^\d{1,15}$/.test(v)) return fail(501, '5.5.4', 'Syntax error: SIZE needs a number');
        size = Number(v);
        // RFC 1870 §6.1: refuse at MAIL when the declared size is over the limit.
        if (size > maxSize) return fail(552, '5.3.4', `Message size exceeds fixed maximum message size (${maxSize} bytes)`);
        break;
      case 'BODY': {
        const b = v.toUpperCase();
        if (b !== '7BIT' && b !== '8BITMIME') return fail(555, '5.5.4', `BODY=${v} is not supported (use 7BIT or 8BITMIME)`);
        body = b;
        break;
      }
      case 'SMTPUTF8':
        if (v !== '') return fail(501, '5.5.4', 'SMTPUTF8 takes no value');
        smtputf8 = true;
        break;
      case 'RET': {
        const r = v.toUpperCase();
        if (r !== 'FULL' && r !== 'HDRS') return fail(501, '5.5.4', 'RET must be FULL or HDRS');
        ret = r;
        break;
      }
      case 'ENVID': {
        const d = decodeXtext(v);
        if (d === null || v.length > 100) return fail(501, '5.5.4', 'Syntax error in ENVID');
        envid = d;
        break;
      }
      case 'AUTH': {
        const d = v === '<>' ? '' : decodeXtext(v);
        if (d === null) return fail(501, '5.5.4', 'Syntax error in AUTH=');
        auth = d;
        break;
      }
      default:
        return fail(555, '5.5.4', `MAIL FROM parameter ${k} is not supported`);
    }
  }
  return { ok: true, mail: { size, body, smtputf8, ret, envid, auth } };
}

export type Notify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

export interface RcptParams {
  readonly notify: readonly Notify[] | null;
  /** RFC 3461 ORCPT: "addr-type;address", decoded. */
  readonly orcpt: string | null;
}

export function rcptParams(params: Params): Ok<{ rcpt: RcptParams }> | ParseError {
  let notify: Notify[] | null = null;
  let orcpt: string | null = null;
  for (const [k, v] of params) {
    switch (k) {
      case 'NOTIFY': {
        const list = v.toUpperCase().split(',');
        if (!list.every((x): x is Notify => x === 'NEVER' || x === 'SUCCESS' || x === 'FAILURE' || x === 'DELAY')) {
          return fail(501, '5.5.4', 'NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY');
        }
        if (list.includes('NEVER') && list.length > 1) return fail(501, '5.5.4', 'NOTIFY=NEVER cannot be combined');
        notify = list;
        break;
      }
      case 'ORCPT': {
        const semi = v.indexOf(';');
        const decoded = semi === -1 ? null : decodeXtext(v.slice(semi + 1));
        if (semi <= 0 || decoded === null) return fail(501, '5.5.4', 'Syntax error in ORCPT (addr-type;xtext)');
        orcpt = `${v.slice(0, semi).toLowerCase()};${decoded}`;
        break;
      }
      default:
        return fail(555, '5.5.4', `RCPT TO parameter ${k} is not supported`);
    }
  }
  return { ok: true, rcpt: { notify, orcpt } };
}

/**
 * The argument of MAIL FROM:/RCPT TO:: the keyword, the path, then parameters. Returns the path and
 * raw parameters, or the error reply to give.
 */
export function parsePathCommand(rest: string, keyword: 'FROM:' | 'TO:', allowNull: boolean): Ok<{ path: Path; params: Params }> | ParseError {
  if (rest.slice(0, keyword.length).toUpperCase() !== keyword) {
    return fail(501, '5.5.4', keyword === 'FROM:' ? 'Syntax: MAIL FROM:<address>' : 'Syntax: RCPT TO:<address>');
  }
  const p = parsePath(rest.slice(keyword.length), allowNull);
  if (!p.ok) return p;
  const pp = parseParams(p.rest);
  if (!pp.ok) return pp;
  return { ok: true, path: p.path, params: pp.params };
}
