// The embedded directory's file, `<dataDir>/directory.json`: JSON, UTF-8, meant to be read and, with
// care, edited by hand. The `portcullis domain|user` commands are the safe way to change it: they
// lock it, validate, write atomically and tell a running server to re-read it (notify.ts); a hand
// edit takes effect when a running server is next told to reload. Example:
//
//   {
//     "version": 1,
//     "domains": [
//       { "name": "example.com", "attributes": { "mailRoutingHosts": "mx.example.com" } },
//       { "name": "example.net", "aliasOf": "example.com" }
//     ],
//     "users": [
//       {
//         "login": "alice@example.com",
//         "address": "alice@example.com",
//         "aliases": ["postmaster@example.com"],
//         "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$...",
//         "status": "active"
//       }
//     ]
//   }
//
// - version: always 1; a later format gets a new number and this code refuses what it cannot read.
// - domains[].name: a hosted domain, lower-case ASCII (internationalised names as A-labels,
//   "xn--..."). aliasOf (optional) makes it an alias domain: mail for user@example.net is mail for
//   user@example.com. An alias must point at a domain that is not itself an alias. attributes
//   (optional, string values) answer `$}domain,attribute{` in mapping tables.
// - users[].login: the AUTH name, unique. address: the primary address, in a hosted domain that is
//   not an alias. aliases: more addresses for the same user, same rule. passwordHash: an argon2id
//   PHC string (password.ts). status: "active" or "inactive" (an inactive user cannot AUTH).
// - Addresses and logins are compared case-insensitively over ASCII letters (the local part too, as
//   practically every MTA does, and as Messaging Server compares everything: spec §2.1); they are
//   stored as first written, except that the domain part is lower-cased.
// - Any other field is an error, so that a misspelt field is never silently ignored.
// - The commands write the file sorted (domains by name, users by address), indented by two
//   spaces, with mode 0600: it holds password hashes.

import { foldAscii } from '../mapping/fold.js';
import type { UserStatus } from './types.js';
import type { DirectoryResult } from './errors.js';
import { fail, ok } from './errors.js';
import { locateJsonError } from './json-locate.js';

export const FORMAT_VERSION = 1;

export interface DomainEntry {
  readonly name: string;
  readonly aliasOf?: string;
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface UserEntry {
  readonly login: string;
  readonly address: string;
  readonly aliases: readonly string[];
  readonly passwordHash: string;
  readonly status: UserStatus;
}

export interface DirectoryData {
  readonly domains: readonly DomainEntry[];
  readonly users: readonly UserEntry[];
}

/** The key addresses and logins are compared by. */
export function foldKey(s: string): string {
  return foldAscii(s);
}

// ---- names ------------------------------------------------------------------------------------

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A domain name, lower-cased, or a message saying what is wrong with it. */
export function checkDomain(raw: string): { readonly name: string } | { readonly problem: string } {
  const name = foldAscii(raw);
  if (name === '') return { problem: 'a domain name is empty' };
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(name)) return { problem: `${raw}: write an internationalised domain name as an A-label (xn--...)` };
  if (name.endsWith('.')) return { problem: `${raw}: write the domain without the final dot` };
  if (name.length > 253 || !name.split('.').every((l) => LABEL.test(l))) {
    return { problem: `${raw} is not a domain name (letters, digits and hyphens, in dot-separated labels of at most 63)` };
  }
  return { name };
}

// RFC 5322 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii); quoted local parts are
// not accepted: they are rare, and every program that reads the file would have to unquote them.
const ATOM = /^(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[\u0080-\u{10ffff}])+$/u;

/** An address with its domain lower-cased, or a message saying what is wrong with it. */
export function checkAddress(raw: string): { readonly address: string; readonly local: string; readonly domain: string } | { readonly problem: string } {
  const at = raw.lastIndexOf('@');
  if (at <= 0 || at === raw.length - 1) return { problem: `${raw} is not an address: write local-part@domain` };
  const local = raw.slice(0, at);
  if (Buffer.byteLength(local) > 64) return { problem: `${raw}: the local part is longer than 64 octets (RFC 5321 4.5.3.1.1)` };
  if (!local.split('.').every((atom) => ATOM.test(atom))) {
    return { problem: `${raw}: the local part may hold letters, digits and !#$%&'*+/=?^_\`{|}~- in dot-separated words (no quotes, spaces or @)` };
  }
  const d = checkDomain(raw.slice(at + 1));
  if ('problem' in d) return { problem: `${raw}: ${d.problem}` };
  return { address: `${local}@${d.name}`, local, domain: d.name };
}

/** Logins are what clients type in AUTH: printable, no spaces, at most 255 characters. */
export function checkLogin(raw: string): string | undefined {
  if (raw === '') return 'a login is empty';
  if (raw.length > 255) return `login ${raw.slice(0, 40)}... is longer than 255 characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(raw)) return `login ${JSON.stringify(raw)} contains spaces or control characters`;
  return undefined;
}

// ---- reading ----------------------------------------------------------------------------------

type Shape = DirectoryResult<DirectoryData>;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses the file's text and checks its shape: fields, types, well-formed names. Consistency
 * across entries (duplicates, hosted domains) is checked when the indexes are built (snapshot.ts).
 */
export function parseDirectory(text: string, path: string): Shape {
  const bad = (where: string, message: string): Shape => fail('file-invalid', `${path}: ${where}: ${message}`);
  let json: unknown;
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch {
    const at = locateJsonError(text.replace(/^\uFEFF/, ''));
    return fail('file-invalid', at ? `${path}:${at.line}:${at.column}: not valid JSON: ${at.message}` : `${path}: not valid JSON`);
  }
  if (!isObject(json)) return bad('top level', 'must be an object {"version": 1, "domains": [...], "users": [...]}');
  for (const k of Object.keys(json)) if (!['version', 'domains', 'users'].includes(k)) return bad(k, 'unknown field');
  if (json.version !== FORMAT_VERSION) return bad('version', `must be ${FORMAT_VERSION}; this file was written by another version of Portcullis`);
  if (!Array.isArray(json.domains)) return bad('domains', 'must be an array');
  if (!Array.isArray(json.users)) return bad('users', 'must be an array');

  const domains: DomainEntry[] = [];
  for (const [i, d] of (json.domains as unknown[]).entries()) {
    const where = `domains[${i}]`;
    if (!isObject(d)) return bad(where, 'must be an object {"name": ...}');
    for (const k of Object.keys(d)) if (!['name', 'aliasOf', 'attributes'].includes(k)) return bad(`${where}.${k}`, 'unknown field');
    if (typeof d.name !== 'string') return bad(`${where}.name`, 'must be a string');
    const name = checkDomain(d.name);
    if ('problem' in name) return bad(`${where}.name`, name.problem);
    let aliasOf: string | undefined;
    if (d.aliasOf !== undefined) {
      if (typeof d.aliasOf !== 'string') return bad(`${where}.aliasOf`, 'must be a string');
      const a = checkDomain(d.aliasOf);
      if ('problem' in a) return bad(`${where}.aliasOf`, a.problem);
      aliasOf = a.name;
    }
    let attributes: Record<string, string> | undefined;
    if (d.attributes !== undefined) {
      if (!isObject(d.attributes)) return bad(`${where}.attributes`, 'must be an object of strings');
      attributes = {};
      for (const [k, v] of Object.entries(d.attributes)) {
        if (typeof v !== 'string') return bad(`${where}.attributes.${k}`, 'must be a string');
        attributes[k] = v;
      }
    }
    domains.push({ name: name.name, ...(aliasOf !== undefined ? { aliasOf } : {}), ...(attributes ? { attributes } : {}) });
  }

  const users: UserEntry[] = [];
  for (const [i, u] of (json.users as unknown[]).entries()) {
    const where = `users[${i}]`;
    if (!isObject(u)) return bad(where, 'must be an object {"login": ..., "address": ...}');
    for (const k of Object.keys(u)) {
      if (!['login', 'address', 'aliases', 'passwordHash', 'status'].includes(k)) return bad(`${where}.${k}`, 'unknown field');
    }
    if (typeof u.login !== 'string') return bad(`${where}.login`, 'must be a string');
    const loginProblem = checkLogin(u.login);
    if (loginProblem !== undefined) return bad(`${where}.login`, loginProblem);
    if (typeof u.address !== 'string') return bad(`${where}.address`, 'must be a string');
    const address = checkAddress(u.address);
    if ('problem' in address) return bad(`${where}.address`, address.problem);
    const aliases: string[] = [];
    if (u.aliases !== undefined) {
      if (!Array.isArray(u.aliases)) return bad(`${where}.aliases`, 'must be an array of addresses');
      for (const [j, a] of (u.aliases as unknown[]).entries()) {
        if (typeof a !== 'string') return bad(`${where}.aliases[${j}]`, 'must be a string');
        const alias = checkAddress(a);
        if ('problem' in alias) return bad(`${where}.aliases[${j}]`, alias.problem);
        aliases.push(alias.address);
      }
    }
    if (typeof u.passwordHash !== 'string') return bad(`${where}.passwordHash`, 'must be a string (set it with `portcullis user passwd`)');
    if (u.status !== 'active' && u.status !== 'inactive') return bad(`${where}.status`, 'must be "active" or "inactive"');
    users.push({ login: u.login, address: address.address, aliases, passwordHash: u.passwordHash, status: u.status });
  }
  return ok({ domains, users });
}

// ---- writing ----------------------------------------------------------------------------------

function byKey<T>(key: (x: T) => string): (a: T, b: T) => number {
  return (a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
}

/** The order the file is written in: domains by name, users by address. */
export function sortDirectory(data: DirectoryData): DirectoryData {
  return {
    domains: [...data.domains].sort(byKey((d) => d.name)),
    users: [...data.users].sort(byKey((u) => foldKey(u.address))),
  };
}

/** The file's text: sorted, two-space indented, one final newline. */
export function serializeDirectory(data: DirectoryData): string {
  const sorted = sortDirectory(data);
  const domains = sorted.domains.map((d) => ({
    name: d.name,
    ...(d.aliasOf !== undefined ? { aliasOf: d.aliasOf } : {}),
    ...(d.attributes !== undefined && Object.keys(d.attributes).length > 0 ? { attributes: d.attributes } : {}),
  }));
  const users = sorted.users.map((u) => ({
    login: u.login,
    address: u.address,
    aliases: u.aliases,
    passwordHash: u.passwordHash,
    status: u.status,
  }));
  return JSON.stringify({ version: FORMAT_VERSION, domains, users }, null, 2) + '\n';
}
