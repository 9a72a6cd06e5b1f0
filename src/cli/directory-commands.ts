// `portcullis domain add|list` and `portcullis user add|passwd|disable|enable|list`: the embedded
// directory (src/directory/store.ts). Passwords are read from standard input only — an argument
// would be visible to every local user in `ps` and kept in shell history. After a change, a running
// server is told to re-read the directory (src/directory/notify.ts), so no restart is needed.

import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { CliIO, CommandSpec } from './command.js';
import { EXIT, say } from './command.js';
import { DirectoryStore } from '../directory/store.js';
import type { DirectoryError, DirectoryResult } from '../directory/errors.js';
import { isUsageError } from '../directory/errors.js';
import { notifyServer } from '../directory/notify.js';
import type { DomainRecord, UserRecord, UserStatus } from '../directory/types.js';

/** A password line longer than this is a mistake (a file piped in by accident), not a password. */
const MAX_PASSWORD_BYTES = 4096;

/**
 * The first line of a stream, without its CR LF or LF; stops reading at the newline, so an
 * interactive terminal does not have to send end-of-file.
 */
export function readFirstLine(input: Readable, maxBytes = MAX_PASSWORD_BYTES): Promise<{ line: string } | { problem: string }> {
  return new Promise((resolve) => {
    if (input.readableEnded) {
      resolve({ problem: 'standard input is empty: write the password as its first line' });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (r: { line: string } | { problem: string }): void => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      input.pause();
      resolve(r);
    };
    const line = (): { line: string } => ({ line: Buffer.concat(chunks).toString('utf8').replace(/\r$/, '') });
    const onData = (chunk: Buffer | string): void => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const nl = b.indexOf(0x0a);
      chunks.push(nl >= 0 ? b.subarray(0, nl) : b);
      size += nl >= 0 ? nl : b.length;
      if (size > maxBytes) done({ problem: `the first line of standard input is longer than ${maxBytes} bytes` });
      else if (nl >= 0) done(line());
    };
    const onEnd = (): void => {
      done(size === 0 && chunks.length === 0 ? { problem: 'standard input is empty: write the password as its first line' } : line());
    };
    const onError = (err: Error): void => done({ problem: `cannot read standard input: ${err.message}` });
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('error', onError);
    input.resume();
  });
}

async function readPassword(io: CliIO, o: { passwordStdin?: boolean }): Promise<string | undefined> {
  if (o.passwordStdin !== true) {
    say(io.stderr, 'portcullis: give the password on standard input and say so with --password-stdin');
    return undefined;
  }
  if ((io.stdin as { isTTY?: boolean }).isTTY === true) io.stderr.write('Password: ');
  const r = await readFirstLine(io.stdin);
  if ('problem' in r) {
    say(io.stderr, `portcullis: ${r.problem}`);
    return undefined;
  }
  if (r.line === '') {
    say(io.stderr, 'portcullis: the password is empty');
    return undefined;
  }
  return r.line;
}

function report(io: CliIO, e: DirectoryError): number {
  say(io.stderr, `portcullis: ${e.message}`);
  return isUsageError(e) ? EXIT.usage : EXIT.failure;
}

async function openStore(io: CliIO, dataDir: string, create: boolean): Promise<DirectoryStore | number> {
  if (!create) {
    const st = await stat(dataDir).catch(() => undefined);
    if (st === undefined || !st.isDirectory()) {
      say(io.stderr, `portcullis: ${dataDir} is not a directory: give the server's data directory with --data`);
      return EXIT.usage;
    }
  }
  const r = await DirectoryStore.open(dataDir, { create });
  return r.ok ? r.value : report(io, r.error);
}

/** Reports a change's outcome, then tells a running server about a successful one. */
async function finish<T>(io: CliIO, store: DirectoryStore, r: DirectoryResult<T>, done: (value: T) => string): Promise<number> {
  if (!r.ok) return report(io, r.error);
  say(io.stdout, done(r.value));
  const n = await notifyServer(store.dataDir);
  switch (n.kind) {
    case 'not-running':
      return EXIT.ok;
    case 'reloaded':
      say(io.stdout, 'the running server has reloaded the directory');
      return EXIT.ok;
    case 'failed':
      say(io.stderr, `portcullis: the change is saved in ${store.path}, but the running server did not reload it: ${n.error}`);
      return EXIT.failure;
  }
}

const DATA = { flags: '--data <dir>', description: "the server's data directory (holds directory.json)", required: true } as const;
const JSON_OPTION = { flags: '--json', description: 'print one JSON object per line' } as const;
const PASSWORD_STDIN = {
  flags: '--password-stdin',
  description: 'read the password from the first line of standard input (there is no option to give it as an argument)',
  required: true,
} as const;
const PASSWORD_HELP = [
  'The password is the first line of standard input, without its line ending, e.g.',
  "  printf '%s\\n' \"$PASSWORD\" | portcullis ... --password-stdin",
].join('\n');

interface DataOptions {
  data: string;
  json?: boolean;
}

const domainAdd: CommandSpec = {
  path: ['domain', 'add'],
  summary: 'host a domain, or declare an alias of a hosted domain',
  args: '<name>',
  options: [{ flags: '--alias-of <domain>', description: 'make NAME an alias domain: user@NAME is user@DOMAIN' }, DATA],
  help: 'A running server picks the change up at once.',
  async run(io, [name], raw) {
    const o = raw as unknown as DataOptions & { aliasOf?: string };
    const store = await openStore(io, o.data, true);
    if (typeof store === 'number') return store;
    const r = await store.addDomain(name ?? '', o.aliasOf !== undefined ? { aliasOf: o.aliasOf } : {});
    return finish(io, store, r, (d) => (d.canonical === d.name ? `hosted domain ${d.name}` : `${d.name} is an alias of ${d.canonical}`));
  },
};

function domainJson(d: DomainRecord): string {
  return JSON.stringify({ name: d.name, canonical: d.canonical, attributes: d.attributes });
}

const domainList: CommandSpec = {
  path: ['domain', 'list'],
  summary: 'list hosted and alias domains',
  options: [DATA, JSON_OPTION],
  help: 'JSON fields: name, canonical (the name itself, or the domain it is an alias of), attributes.',
  async run(io, _args, raw) {
    const o = raw as unknown as DataOptions;
    const store = await openStore(io, o.data, false);
    if (typeof store === 'number') return store;
    for (const d of store.listDomains()) {
      say(io.stdout, o.json ? domainJson(d) : d.canonical === d.name ? d.name : `${d.name}  (alias of ${d.canonical})`);
    }
    return EXIT.ok;
  },
};

const userAdd: CommandSpec = {
  path: ['user', 'add'],
  summary: 'add an active user with a primary address, optional aliases and a password',
  args: '<address>',
  options: [
    { flags: '--login <login>', description: 'the AUTH login (default: the address)' },
    { flags: '--alias <address>', description: 'another address of the user (repeatable)', repeatable: true },
    PASSWORD_STDIN,
    DATA,
  ],
  help: `Every address must be in a hosted domain that is not an alias domain.\n${PASSWORD_HELP}`,
  async run(io, [address], raw) {
    const o = raw as unknown as DataOptions & { login?: string; alias?: string[]; passwordStdin?: boolean };
    const password = await readPassword(io, o);
    if (password === undefined) return EXIT.usage;
    const store = await openStore(io, o.data, true);
    if (typeof store === 'number') return store;
    const r = await store.addUser({ address: address ?? '', password, aliases: o.alias ?? [], ...(o.login !== undefined ? { login: o.login } : {}) });
    return finish(io, store, r, (u) => `added user ${u.login}${u.login === u.address ? '' : ` (${u.address})`}`);
  },
};

const userPasswd: CommandSpec = {
  path: ['user', 'passwd'],
  summary: "set a user's password",
  args: '<login>',
  options: [PASSWORD_STDIN, DATA],
  help: PASSWORD_HELP,
  async run(io, [login], raw) {
    const o = raw as unknown as DataOptions & { passwordStdin?: boolean };
    const password = await readPassword(io, o);
    if (password === undefined) return EXIT.usage;
    const store = await openStore(io, o.data, true);
    if (typeof store === 'number') return store;
    return finish(io, store, await store.setPassword(login ?? '', password), (u) => `changed the password of ${u.login}`);
  },
};

function statusCommand(word: 'disable' | 'enable', status: UserStatus): CommandSpec {
  return {
    path: ['user', word],
    summary: word === 'disable' ? 'stop a user from authenticating (mail to their addresses is still accepted)' : 'let a disabled user authenticate again',
    args: '<login>',
    options: [DATA],
    async run(io, [login], raw) {
      const o = raw as unknown as DataOptions;
      const store = await openStore(io, o.data, true);
      if (typeof store === 'number') return store;
      return finish(io, store, await store.setStatus(login ?? '', status), (u) => `${u.login} is ${u.status}`);
    },
  };
}

function userJson(u: UserRecord): string {
  // Never the password hash: listings end up in terminals, tickets and logs.
  return JSON.stringify({ login: u.login, address: u.address, aliases: u.aliases, status: u.status });
}

function userLine(u: UserRecord): string {
  const parts = [u.address, u.status];
  if (u.login !== u.address) parts.push(`login ${u.login}`);
  if (u.aliases.length > 0) parts.push(`aliases ${u.aliases.join(', ')}`);
  return parts.join('  ');
}

const userList: CommandSpec = {
  path: ['user', 'list'],
  summary: 'list users with their status, login and aliases',
  options: [DATA, JSON_OPTION],
  help: 'JSON fields: login, address, aliases, status (active|inactive). Password hashes are never shown.',
  async run(io, _args, raw) {
    const o = raw as unknown as DataOptions;
    const store = await openStore(io, o.data, false);
    if (typeof store === 'number') return store;
    for (const u of store.listUsers()) say(io.stdout, o.json ? userJson(u) : userLine(u));
    return EXIT.ok;
  },
};

export const DIRECTORY_COMMANDS: readonly CommandSpec[] = [
  domainAdd,
  domainList,
  userAdd,
  userPasswd,
  statusCommand('disable', 'inactive'),
  statusCommand('enable', 'active'),
  userList,
];
