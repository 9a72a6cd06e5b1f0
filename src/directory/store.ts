// The embedded directory: hosted domains and users in one JSON file, `<dataDir>/directory.json`
// (its format is described in format.ts). Lookups are synchronous, from an immutable in-memory
// snapshot (snapshot.ts) that is swapped whole on load, reload and change.
//
// Changes come from the `portcullis domain|user` commands, possibly several at once, while a server
// reads the file. Every change therefore takes `<dataDir>/directory.lock` (lock.ts), re-reads the
// file under it, so that it builds on whatever another process wrote a moment ago, applies itself,
// and replaces the file atomically (atomic-file.ts). Password hashing happens before the lock is
// taken: it is the slow part and needs nothing from the file.

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CalloutAnswer, DomainDirectory } from '../mapping/callouts.js';
import { FAIL, succeed } from '../mapping/callouts.js';
import type { AuthResult, Directory, DomainRecord, UserRecord, UserStatus } from './types.js';
import type { DirectoryData, DomainEntry, UserEntry } from './format.js';
import { checkAddress, checkDomain, checkLogin, foldKey, parseDirectory, serializeDirectory, sortDirectory } from './format.js';
import type { DirectoryError, DirectoryResult } from './errors.js';
import { fail, ioError, ok } from './errors.js';
import { Snapshot } from './snapshot.js';
import { withFileLock } from './lock.js';
import { writeFileAtomic } from './atomic-file.js';
import { DUMMY_HASH, hashPassword, verifyPassword } from './password.js';

export const DIRECTORY_FILE = 'directory.json';
export const DIRECTORY_LOCK = 'directory.lock';

export interface OpenOptions {
  /** Create the data directory and an empty directory.json when absent (default true). */
  readonly create?: boolean;
  /** How long a change waits for another process's lock (default: lock.ts). */
  readonly lockTimeoutMs?: number;
}

export interface NewUser {
  /** Defaults to the address. */
  readonly login?: string;
  readonly address: string;
  readonly aliases?: readonly string[];
  readonly password: string;
}

/**
 * What a change does, given what the file holds now: the new data and how to find the caller's
 * answer in the snapshot built from it; or an error, and the file is left alone.
 */
type Change<T> = (current: Snapshot) => DirectoryResult<{ readonly data: DirectoryData; readonly value: (next: Snapshot) => T }>;

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

/** Passwords are typed in AUTH PLAIN (NUL-separated) and AUTH LOGIN (one line each). */
function checkPassword(password: string): DirectoryError | undefined {
  if (password === '') return { code: 'invalid-password', message: 'the password is empty' };
  if (/[\0\r\n]/.test(password)) return { code: 'invalid-password', message: 'the password contains NUL, CR or LF, which no SMTP client can send' };
  return undefined;
}

function notHosted(domain: string): DirectoryResult<never> {
  return fail('domain-not-hosted', `domain ${domain} is not hosted: add it first with \`portcullis domain add ${domain}\``);
}

function unknownUser(login: string): DirectoryResult<never> {
  return fail('unknown-user', `there is no user with login ${login} (see \`portcullis user list\`)`);
}

/** Checks that an address can be given to a user: its domain is hosted and canonical, nobody owns it. */
function checkFreeAddress(snap: Snapshot, address: string, domain: string): DirectoryResult<void> {
  const d = snap.domain(domain);
  if (d === undefined) return notHosted(domain);
  if (d.canonical !== d.name) {
    const local = address.slice(0, address.lastIndexOf('@'));
    return fail('domain-is-alias', `${domain} is an alias of ${d.canonical}: use ${local}@${d.canonical}, which also receives mail for ${address}`);
  }
  const owner = snap.userByAddress(address);
  if (owner !== undefined) return fail('address-taken', `${address} already belongs to the user with login ${owner.login}`);
  return ok(undefined);
}

export class DirectoryStore implements Directory, DomainDirectory {
  readonly path: string;
  readonly lockPath: string;
  private snap: Snapshot = Snapshot.empty;
  /** Changes from this process run one after another; the file lock orders them with other processes. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dataDir: string,
    private readonly options: OpenOptions,
  ) {
    this.path = join(dataDir, DIRECTORY_FILE);
    this.lockPath = join(dataDir, DIRECTORY_LOCK);
  }

  /** Loads `<dataDir>/directory.json`; when absent, creates an empty one (or, with create: false, starts empty). */
  static async open(dataDir: string, options: OpenOptions = {}): Promise<DirectoryResult<DirectoryStore>> {
    const store = new DirectoryStore(dataDir, options);
    const first = await store.read();
    if (first.ok) {
      store.snap = first.value;
      return ok(store);
    }
    if (first.error.code !== 'file-missing') return first;
    if (options.create === false) return ok(store);
    try {
      await mkdir(dataDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      return { ok: false, error: ioError(dataDir, err) };
    }
    const created = await store.mutate((current) => ok({ data: current.data, value: () => undefined }));
    return created.ok ? ok(store) : created;
  }

  /**
   * Re-reads the file, for a running server told that it changed. A file that is missing or broken
   * leaves the current data in place and is reported.
   */
  async reload(): Promise<DirectoryResult<{ readonly domains: number; readonly users: number }>> {
    const next = await this.read();
    if (!next.ok) return next;
    this.snap = next.value;
    return ok({ domains: next.value.data.domains.length, users: next.value.data.users.length });
  }

  // ---- Directory ------------------------------------------------------------------------------

  domain(name: string): DomainRecord | undefined {
    return this.snap.domain(name);
  }

  userByAddress(address: string): UserRecord | undefined {
    return this.snap.userByAddress(address);
  }

  userByLogin(login: string): UserRecord | undefined {
    return this.snap.userByLogin(login);
  }

  /**
   * Every outcome costs one argon2 verification, so timing tells nothing about which logins exist
   * or are disabled. An inactive user is reported as such only to someone who gave the right
   * password; a wrong password is 'bad-password' whatever the status.
   */
  async authenticate(login: string, password: string): Promise<AuthResult> {
    const user = this.snap.userByLogin(login);
    if (user === undefined) {
      await verifyPassword(DUMMY_HASH, password);
      return { ok: false, reason: 'unknown-user' };
    }
    if (!(await verifyPassword(user.passwordHash, password))) return { ok: false, reason: 'bad-password' };
    if (user.status !== 'active') return { ok: false, reason: 'inactive' };
    return { ok: true, user };
  }

  // ---- DomainDirectory (mapping callouts, `$}domain,attribute{`) ----------------------------

  domainAttribute(domain: string, attribute: string): CalloutAnswer {
    const d = this.snap.domain(domain);
    if (d === undefined) return FAIL;
    if (attribute === '_domain_name_' || attribute === '_canonical_name_') return succeed(d.canonical);
    const v = d.attributes[attribute];
    return v === undefined ? FAIL : succeed(v);
  }

  // ---- listing ----------------------------------------------------------------------------------

  listDomains(): readonly DomainRecord[] {
    return this.snap.listDomains();
  }

  listUsers(): readonly UserRecord[] {
    return this.snap.listUsers();
  }

  // ---- changes ----------------------------------------------------------------------------------

  /** Hosts a domain, or with aliasOf declares an alias of a hosted domain. */
  addDomain(name: string, options: { readonly aliasOf?: string } = {}): Promise<DirectoryResult<DomainRecord>> {
    const n = checkDomain(name);
    if ('problem' in n) return Promise.resolve(fail('invalid-name', n.problem));
    let aliasOf: string | undefined;
    if (options.aliasOf !== undefined) {
      const a = checkDomain(options.aliasOf);
      if ('problem' in a) return Promise.resolve(fail('invalid-name', a.problem));
      if (a.name === n.name) return Promise.resolve(fail('invalid-name', `${n.name} cannot be an alias of itself`));
      aliasOf = a.name;
    }
    return this.mutate((snap) => {
      const existing = snap.domain(n.name);
      if (existing !== undefined) {
        return fail('domain-exists', existing.canonical === existing.name ? `domain ${n.name} is already hosted` : `domain ${n.name} is already an alias of ${existing.canonical}`);
      }
      if (aliasOf !== undefined) {
        const target = snap.domain(aliasOf);
        if (target === undefined) return notHosted(aliasOf);
        if (target.canonical !== target.name) {
          return fail('domain-is-alias', `${aliasOf} is itself an alias of ${target.canonical}: use \`portcullis domain add ${n.name} --alias-of ${target.canonical}\``);
        }
      }
      const entry: DomainEntry = aliasOf !== undefined ? { name: n.name, aliasOf } : { name: n.name };
      return ok({ data: { ...snap.data, domains: [...snap.data.domains, entry] }, value: (s) => s.domain(n.name) as DomainRecord });
    });
  }

  /** Removes a domain that no user address and no alias domain refers to. */
  removeDomain(name: string): Promise<DirectoryResult<void>> {
    return this.mutate((snap) => {
      const data = snap.data;
      const d = snap.domain(name);
      if (d === undefined) return notHosted(name);
      const aliases = data.domains.filter((x) => x.aliasOf === d.name).map((x) => x.name);
      if (aliases.length > 0) return fail('domain-in-use', `${d.name} has alias domains (${aliases.join(', ')}): remove them first`);
      const users = data.users.filter((u) => [u.address, ...u.aliases].some((a) => a.endsWith(`@${d.name}`))).map((u) => u.login);
      if (users.length > 0) {
        const shown = users.slice(0, 5).join(', ') + (users.length > 5 ? `, and ${users.length - 5} more` : '');
        return fail('domain-in-use', `${d.name} still has addresses of ${users.length} user(s) (${shown}): remove them first`);
      }
      return ok({ data: { ...data, domains: data.domains.filter((x) => x.name !== d.name) }, value: () => undefined });
    });
  }

  /** Adds an active user; the address's domain must be hosted (not an alias); login defaults to the address. */
  async addUser(u: NewUser): Promise<DirectoryResult<UserRecord>> {
    const addr = checkAddress(u.address);
    if ('problem' in addr) return fail('invalid-name', addr.problem);
    const login = u.login ?? addr.address;
    const loginProblem = checkLogin(login);
    if (loginProblem !== undefined) return fail('invalid-name', loginProblem);
    const all = [addr];
    for (const a of u.aliases ?? []) {
      const c = checkAddress(a);
      if ('problem' in c) return fail('invalid-name', c.problem);
      if (all.some((x) => foldKey(x.address) === foldKey(c.address))) return fail('address-taken', `${c.address} is given twice`);
      all.push(c);
    }
    const pwProblem = checkPassword(u.password);
    if (pwProblem !== undefined) return { ok: false, error: pwProblem };
    const passwordHash = await hashPassword(u.password);
    return this.mutate((snap) => {
      const other = snap.userByLogin(login);
      if (other !== undefined) return fail('login-taken', `login ${login} is already used by the user with address ${other.address}`);
      for (const a of all) {
        const free = checkFreeAddress(snap, a.address, a.domain);
        if (!free.ok) return free;
      }
      const entry: UserEntry = { login, address: addr.address, aliases: all.slice(1).map((a) => a.address), passwordHash, status: 'active' };
      return ok({ data: { ...snap.data, users: [...snap.data.users, entry] }, value: (s) => s.userByLogin(login) as UserRecord });
    });
  }

  /** Removes a user (all their addresses stop being local). */
  removeUser(login: string): Promise<DirectoryResult<void>> {
    return this.mutate((snap) => {
      const user = snap.userByLogin(login);
      if (user === undefined) return unknownUser(login);
      return ok({ data: { ...snap.data, users: snap.data.users.filter((x) => x.login !== user.login) }, value: () => undefined });
    });
  }

  async setPassword(login: string, password: string): Promise<DirectoryResult<UserRecord>> {
    const pwProblem = checkPassword(password);
    if (pwProblem !== undefined) return { ok: false, error: pwProblem };
    const passwordHash = await hashPassword(password);
    return this.updateUser(login, () => ok({ passwordHash }));
  }

  setStatus(login: string, status: UserStatus): Promise<DirectoryResult<UserRecord>> {
    if (status !== 'active' && status !== 'inactive') return Promise.resolve(fail('invalid-name', `status must be active or inactive, not ${String(status)}`));
    return this.updateUser(login, () => ok({ status }));
  }

  /** Gives a user one more address, in a hosted (not alias) domain. */
  addAlias(login: string, address: string): Promise<DirectoryResult<UserRecord>> {
    const c = checkAddress(address);
    if ('problem' in c) return Promise.resolve(fail('invalid-name', c.problem));
    return this.updateUser(login, (user, snap) => {
      const free = checkFreeAddress(snap, c.address, c.domain);
      if (!free.ok) return free;
      return ok({ aliases: [...user.aliases, c.address] });
    });
  }

  // ---- machinery --------------------------------------------------------------------------------

  private updateUser(login: string, patch: (user: UserEntry, current: Snapshot) => DirectoryResult<Partial<UserEntry>>): Promise<DirectoryResult<UserRecord>> {
    return this.mutate((snap) => {
      const user = snap.userByLogin(login);
      if (user === undefined) return unknownUser(login);
      const p = patch(user, snap);
      if (!p.ok) return p;
      const users = snap.data.users.map((x) => (x.login === user.login ? { ...x, ...p.value } : x));
      return ok({ data: { ...snap.data, users }, value: (s) => s.userByLogin(user.login) as UserRecord });
    });
  }

  /** Reads and indexes the file; a missing file is 'file-missing'. */
  private async read(): Promise<DirectoryResult<Snapshot>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return fail('file-missing', `${this.path} does not exist`);
      return { ok: false, error: ioError(this.path, err) };
    }
    const data = parseDirectory(text, this.path);
    return data.ok ? Snapshot.build(data.value, this.path) : data;
  }

  /**
   * Runs a change under the lock: re-read the file, so that the change builds on what other
   * processes wrote; apply; index; write; swap the new snapshot in.
   */
  private mutate<T>(change: Change<T>): Promise<DirectoryResult<T>> {
    const run = this.queue.then(async (): Promise<DirectoryResult<T>> => {
      const locked = await withFileLock(
        this.lockPath,
        async (): Promise<DirectoryResult<T>> => {
          const current = await this.read();
          if (!current.ok && current.error.code !== 'file-missing') return current;
          const snap = current.ok ? current.value : Snapshot.empty;
          this.snap = snap;
          const changed = change(snap);
          if (!changed.ok) return changed;
          // Index the data in the order it is written, so that listings follow the file.
          const next = Snapshot.build(sortDirectory(changed.value.data), this.path);
          if (!next.ok) return next;
          try {
            await writeFileAtomic(this.path, serializeDirectory(next.value.data));
          } catch (err) {
            return { ok: false, error: ioError(this.path, err) };
          }
          this.snap = next.value;
          return ok(changed.value.value(next.value));
        },
        this.options.lockTimeoutMs !== undefined ? { timeoutMs: this.options.lockTimeoutMs } : {},
      );
      return locked.ok ? locked.value : locked;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}
