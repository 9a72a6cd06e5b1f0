// imta.cnf, Messaging Server's channel configuration (spec §6.5). This module reads its syntax;
// channel selection and rewriting give it meaning later.
//
//   Part I   rewrite rules, one per line: `pattern template` (an optional trailing `! comment`).
//            The first blank line ends Part I.
//   Part II  channel blocks separated by blank lines. A block's first line is
//            `channel-name keyword [args] ...`; the next line is the channel's official host name
//            (the tag used after "@" in rewrite templates); further lines are more host names.
//            A block named `defaults` is a single line of keywords for the blocks after it.
//   Lines whose first non-blank character is `!` are comments anywhere (`!<file` is a commented
//   include). A line ending in `\` continues on the next, as in the mappings file.
//
// Keywords are checked against a table of known keywords and their arguments: a missing or
// malformed argument is an error, an unknown keyword a warning (it is ignored).

import type { SourcePos } from '../mapping/errors.js';
import { logicalLines } from '../mapping/file-parse.js';
import type { LogicalLine } from '../mapping/file-parse.js';
import type { ConfigProblem } from './types.js';

export interface RewriteRule {
  readonly pattern: string;
  readonly template: string;
  /** Where the pattern starts. */
  readonly pos: SourcePos;
  readonly templatePos: SourcePos;
}

export interface ChannelKeyword {
  /** Lower-cased keyword. */
  readonly name: string;
  /** Arguments as written (quotes removed from quoted ones). */
  readonly args: readonly string[];
  readonly pos: SourcePos;
}

export interface ChannelDef {
  readonly kind: 'channel';
  readonly name: string;
  readonly keywords: readonly ChannelKeyword[];
  /** The official host name first, then any further host names. */
  readonly hosts: readonly string[];
  readonly pos: SourcePos;
}

export interface DefaultsDef {
  readonly kind: 'defaults';
  readonly keywords: readonly ChannelKeyword[];
  readonly pos: SourcePos;
}

export type ChannelBlock = ChannelDef | DefaultsDef;

export interface ImtaConfig {
  readonly file: string;
  readonly rewriteRules: readonly RewriteRule[];
  /** Channel and defaults blocks in file order (a defaults block applies to the blocks after it). */
  readonly blocks: readonly ChannelBlock[];
  /** The channel blocks alone, in file order. */
  readonly channels: readonly ChannelDef[];
}

/** How many arguments a keyword takes. */
export type KeywordArity =
  | 'none'
  /** One whole number. */
  | 'integer'
  /** One word (a channel, pool, URL, template...). */
  | 'word'
  /** One word, and a second one unless the next token is a known keyword. */
  | 'word-1-2'
  /** Whole numbers up to the next token that is not one (at least one). */
  | 'integers'
  /** Double-quoted strings up to the next token that is not one (at least one). */
  | 'quoted'
  /** ISO 8601 durations ("pt5m", pt1h), quoted or not, up to the next token that is not one (at least one). */
  | 'durations';

const table = (arity: KeywordArity, names: string): [string, KeywordArity][] => names.split(/\s+/).map((n) => [n, arity]);

export const CHANNEL_KEYWORDS: ReadonlyMap<string, KeywordArity> = new Map([
  ...table(
    'none',
    `switchchannel allowswitchchannel noswitchchannel nosaslswitchchannel userswitchchannel
     maysaslserver mustsaslserver nosasl nosaslserver maysasl mustsasl
     maytlsserver musttlsserver maytlsclient musttlsclient maytls musttls
     mx single_sys single multiple remotehost inner smtp lmtp submit identnonenumeric
     dequeue_removeroute viaaliasrequired defragment copywarnpost copysendpost postheadonly
     immnonurgent routelocal mailfromdnsverify noblocklimit nolinelimit`,
  ),
  ...table(
    'integer',
    `maxjobs subdirs missingrecipientpolicy blocklimit sourceblocklimit linelimit recipientlimit
     recipientcutoff addrsperfile disconnectbadauthlimit disconnectbadcommandlimit
     disconnectrecipientlimit disconnectrejectlimit disconnecttransactionlimit`,
  ),
  ...table('word', 'saslswitchchannel tlsswitchchannel pool sourcefilter destinationfilter filter fileinto daemon'),
  ['defaulthost', 'word-1-2'],
  ['notices', 'integers'],
  ['backoff', 'durations'],
]);

interface Token {
  readonly text: string;
  readonly offset: number;
  readonly quoted: boolean;
}

const INTEGER = /^\d+$/;
/** A token that is meant as a duration (validated by isoDurationMs). */
const DURATION_SHAPE = /^p[0-9dtwhms.]*$/i;

/**
 * An ISO 8601 duration of weeks, days, hours, minutes and seconds (`P1D`, `PT5M`, `PT1H30M`,
 * `P1DT12H`, case-insensitive) in milliseconds; null when malformed, zero, or given in years or
 * months (whose length varies).
 */
export function isoDurationMs(text: string): number | null {
  const m = /^p(?:(\d+)w)?(?:(\d+)d)?(?:t(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?)?$/i.exec(text.trim());
  if (m === null || /t$/i.test(text.trim())) return null;
  const [w, d, h, mi, sec] = m.slice(1).map((v) => (v === undefined ? 0 : Number(v))) as [number, number, number, number, number];
  const ms = Math.round((((w * 7 + d) * 24 + h) * 60 + mi) * 60_000 + sec * 1000);
  return ms > 0 ? ms : null;
}
const KEYWORD_SHAPE = /^[A-Za-z][A-Za-z0-9_]*$/;
const CHANNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Splits text into whitespace-separated tokens; a token starting with `!` begins a trailing comment.
 * With `quotes`, "..." is one token (rewrite rules take quotes literally).
 */
function tokenize(text: string, quotes: boolean, onError: (offset: number, message: string) => void): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= text.length || text[i] === '!') break;
    const start = i;
    if (quotes && text[i] === '"') {
      const close = text.indexOf('"', i + 1);
      if (close === -1) {
        onError(start, 'this double quote is never closed');
        // Keep the rest of the line as the value so that one mistake gives one error.
        out.push({ text: text.slice(i + 1), offset: start, quoted: true });
        break;
      }
      out.push({ text: text.slice(i + 1, close), offset: start, quoted: true });
      i = close + 1;
      continue;
    }
    while (i < text.length && text[i] !== ' ' && text[i] !== '\t') i++;
    out.push({ text: text.slice(start, i), offset: start, quoted: false });
  }
  return out;
}

type State = 'between' | 'needHost' | 'hosts' | 'defaults' | 'skip';

/** Parses imta.cnf text. `file` is how the file is named in problems. */
export function parseImtaCnf(file: string, text: string): { config: ImtaConfig; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const rules: RewriteRule[] = [];
  const blocks: ChannelBlock[] = [];
  const byName = new Map<string, ChannelDef>();
  const push = (pos: SourcePos, code: string, message: string, severity: 'error' | 'warning' = 'error'): void => {
    problems.push({ ...pos, severity, code, message });
  };
  let part: 'rules' | 'channels' = 'rules';
  let state: State = 'between';
  let current: { name: string; keywords: ChannelKeyword[]; hosts: string[]; pos: SourcePos } | null = null;

  const closeBlock = (): void => {
    if (state === 'needHost' && current !== null) {
      push(current.pos, 'missing-host', `channel ${current.name} has no official host line — write its host name on the line after the channel line`);
    }
    state = 'between';
    current = null;
  };

  for (const ll of logicalLines(file, text, problems)) {
    const t = ll.text;
    const lead = t.length - t.trimStart().length;
    if (t.trim() === '') {
      if (part === 'rules') part = 'channels';
      else closeBlock();
      continue;
    }
    if (t[lead] === '!') continue;
    if (t[lead] === '<') {
      push(ll.pos(lead), 'include-unsupported', 'include files ("<file") are not supported in imta.cnf — copy the included lines into the file');
      continue;
    }
    const toks = tokenize(t, part === 'channels', (offset, message) => push(ll.pos(offset), 'unterminated-quote', message));
    if (toks.length === 0) continue;
    const first = toks[0] as Token;

    if (part === 'rules') {
      const tpl = toks[1];
      if (tpl === undefined) {
        push(
          ll.pos(first.offset),
          'missing-template',
          `rewrite rule "${first.text}" has no template — write "pattern template", or leave a blank line before the channel definitions`,
        );
        continue;
      }
      const extra = toks[2];
      if (extra !== undefined) {
        push(ll.pos(extra.offset), 'extra-text', `unexpected text "${extra.text}" after the rewrite template (a comment starts with "!")`);
        continue;
      }
      rules.push({ pattern: first.text, template: tpl.text, pos: ll.pos(first.offset), templatePos: ll.pos(tpl.offset) });
      continue;
    }

    if (state === 'skip') continue;
    if (state === 'defaults') {
      push(ll.pos(first.offset), 'defaults-host', 'the defaults block is a single line and takes no host name — leave a blank line before the next channel');
      state = 'skip';
      continue;
    }
    if (state === 'needHost' || state === 'hosts') {
      current?.hosts.push(first.text);
      const extra = toks[1];
      if (extra !== undefined) push(ll.pos(extra.offset), 'host-line-extra', `"${extra.text}" after host name ${first.text} is ignored (one host name per line)`, 'warning');
      state = 'hosts';
      continue;
    }

    // A new block: the channel line.
    const pos = ll.pos(first.offset);
    const keywords = parseKeywords(toks.slice(1), ll, push);
    if (first.text.toLowerCase() === 'defaults') {
      blocks.push({ kind: 'defaults', keywords, pos });
      state = 'defaults';
      continue;
    }
    if (first.quoted || !CHANNEL_NAME.test(first.text)) {
      push(pos, 'bad-channel-name', `"${first.text}" is not a channel name (letters, digits, "_", "-" and "." only)`);
      state = 'skip';
      continue;
    }
    const dup = byName.get(first.text.toLowerCase());
    if (dup !== undefined) {
      push(pos, 'duplicate-channel', `channel ${first.text} is already defined at ${dup.pos.file}:${dup.pos.line}`);
      state = 'skip';
      continue;
    }
    const hosts: string[] = [];
    const def: ChannelDef = { kind: 'channel', name: first.text, keywords, hosts, pos };
    blocks.push(def);
    byName.set(first.text.toLowerCase(), def);
    current = { name: first.text, keywords, hosts, pos };
    state = 'needHost';
  }
  if (part === 'channels') closeBlock();

  const channels = blocks.filter((b): b is ChannelDef => b.kind === 'channel');
  return { config: { file, rewriteRules: rules, blocks, channels }, problems };
}

function parseKeywords(
  toks: readonly Token[],
  ll: LogicalLine,
  push: (pos: SourcePos, code: string, message: string, severity?: 'error' | 'warning') => void,
): ChannelKeyword[] {
  const out: ChannelKeyword[] = [];
  const isKnownKeyword = (tok: Token | undefined): boolean => tok !== undefined && !tok.quoted && CHANNEL_KEYWORDS.has(tok.text.toLowerCase());
  let i = 0;
  while (i < toks.length) {
    const tok = toks[i] as Token;
    const pos = ll.pos(tok.offset);
    const name = tok.text.toLowerCase();
    const arity = tok.quoted ? undefined : CHANNEL_KEYWORDS.get(name);
    i++;
    if (arity === undefined) {
      if (tok.quoted || !KEYWORD_SHAPE.test(tok.text)) {
        push(pos, 'stray-argument', `"${tok.text}" is not a keyword, and no keyword before it takes ${tok.quoted || INTEGER.test(tok.text) ? 'another' : 'an'} argument`);
        continue;
      }
      // Take the arguments an unknown keyword seems to have, so they are not read as keywords.
      const args: string[] = [];
      while (i < toks.length && (toks[i]?.quoted || !KEYWORD_SHAPE.test((toks[i] as Token).text))) args.push((toks[i++] as Token).text);
      push(pos, 'unknown-keyword', `keyword ${tok.text} is not implemented yet and is ignored`, 'warning');
      out.push({ name, args, pos });
      continue;
    }
    const args: string[] = [];
    const missing = (what: string): void => {
      const next = toks[i];
      push(
        next ? ll.pos(next.offset) : pos,
        'missing-argument',
        `keyword ${name} needs ${what}${next ? `, found ${isKnownKeyword(next) ? 'keyword ' : ''}"${next.text}"` : ' after it'}`,
      );
    };
    switch (arity) {
      case 'none':
        break;
      case 'integer': {
        const next = toks[i];
        if (next === undefined || isKnownKeyword(next)) {
          missing('a whole number');
          break;
        }
        if (next.quoted || !INTEGER.test(next.text)) {
          push(ll.pos(next.offset), 'bad-integer', `keyword ${name} needs a whole number, not "${next.text}"`);
          i++;
          break;
        }
        args.push(next.text);
        i++;
        break;
      }
      case 'word':
      case 'word-1-2': {
        const next = toks[i];
        if (next === undefined || isKnownKeyword(next)) {
          missing('an argument');
          break;
        }
        args.push(next.text);
        i++;
        const second = toks[i];
        if (arity === 'word-1-2' && second !== undefined && !isKnownKeyword(second)) {
          args.push(second.text);
          i++;
        }
        break;
      }
      case 'integers':
        while (i < toks.length && !(toks[i] as Token).quoted && INTEGER.test((toks[i] as Token).text)) args.push((toks[i++] as Token).text);
        if (args.length === 0) missing('one or more whole numbers');
        break;
      case 'quoted':
        while (i < toks.length && (toks[i] as Token).quoted) args.push((toks[i++] as Token).text);
        if (args.length === 0) missing('one or more double-quoted values');
        break;
      case 'durations': {
        // The guides write both `backoff "pt5m" "pt10m"` and `backoff pt2m pt5m`.
        let bad = false;
        while (i < toks.length && ((toks[i] as Token).quoted || DURATION_SHAPE.test((toks[i] as Token).text))) {
          const t = toks[i++] as Token;
          if (isoDurationMs(t.text) !== null) args.push(t.text);
          else {
            bad = true;
            push(ll.pos(t.offset), 'bad-duration', `keyword ${name} needs ISO 8601 durations such as "pt5m", "pt1h" or "p1d", not "${t.text}"`);
          }
        }
        if (args.length === 0 && !bad) missing('one or more ISO 8601 durations such as "pt5m"');
        break;
      }
    }
    out.push({ name, args, pos });
  }
  return out;
}
