// One immutable, indexed view of the directory file. The store builds a new snapshot on every load,
// reload and change and swaps it in whole, so a lookup never sees half a change, and a broken file
// never replaces a good snapshot.

import type { DomainRecord, UserRecord } from './types.js';
import type { DirectoryData } from './format.js';
import { foldKey } from './format.js';
import type { DirectoryResult } from './errors.js';
import { fail, ok } from './errors.js';

export class Snapshot {
  private constructor(
    readonly data: DirectoryData,
    private readonly domains: ReadonlyMap<string, DomainRecord>,
    private readonly byLogin: ReadonlyMap<string, UserRecord>,
    private readonly byAddress: ReadonlyMap<string, UserRecord>,
  ) {}

  static readonly empty: Snapshot = new Snapshot({ domains: [], users: [] }, new Map(), new Map(), new Map());

  /**
   * Indexes the data and checks what no single entry can: duplicates, aliases of unknown or alias
   * domains, users in domains that are not hosted. `where` prefixes messages (the file's path).
   */
  static build(data: DirectoryData, where: string): DirectoryResult<Snapshot> {
    const bad = (at: string, message: string): DirectoryResult<Snapshot> => fail('file-invalid', `${where}: ${at}: ${message}`);
    const entries = new Map<string, { index: number; aliasOf: string | undefined }>();
    for (const [i, d] of data.domains.entries()) {
      const seen = entries.get(d.name);
      if (seen) return bad(`domains[${i}].name`, `${d.name} is also domains[${seen.index}]`);
      entries.set(d.name, { index: i, aliasOf: d.aliasOf });
    }
    const domains = new Map<string, DomainRecord>();
    for (const [i, d] of data.domains.entries()) {
      let attributes = d.attributes ?? {};
      if (d.aliasOf !== undefined) {
        const target = entries.get(d.aliasOf);
        if (d.aliasOf === d.name) return bad(`domains[${i}].aliasOf`, `${d.name} cannot be an alias of itself`);
        if (target === undefined) return bad(`domains[${i}].aliasOf`, `${d.aliasOf} is not a hosted domain in this file`);
        if (target.aliasOf !== undefined) {
          return bad(`domains[${i}].aliasOf`, `${d.aliasOf} is itself an alias (of ${target.aliasOf}): point ${d.name} at ${target.aliasOf}`);
        }
        // An alias domain answers attribute lookups for its canonical domain, unless it sets its own.
        attributes = { ...(data.domains[target.index]?.attributes ?? {}), ...attributes };
      }
      domains.set(d.name, Object.freeze({ name: d.name, canonical: d.aliasOf ?? d.name, attributes: Object.freeze({ ...attributes }) }));
    }

    const byLogin = new Map<string, { index: number; user: UserRecord }>();
    const byAddress = new Map<string, { index: number; user: UserRecord }>();
    for (const [i, u] of data.users.entries()) {
      const user: UserRecord = Object.freeze({ ...u, aliases: Object.freeze([...u.aliases]) });
      const login = foldKey(u.login);
      const other = byLogin.get(login);
      if (other) return bad(`users[${i}].login`, `${u.login} is also the login of users[${other.index}]`);
      byLogin.set(login, { index: i, user });
      for (const [j, address] of [u.address, ...u.aliases].entries()) {
        const at = j === 0 ? `users[${i}].address` : `users[${i}].aliases[${j - 1}]`;
        const domain = address.slice(address.lastIndexOf('@') + 1);
        const d = entries.get(domain);
        if (d === undefined) return bad(at, `${domain} is not a hosted domain in this file`);
        if (d.aliasOf !== undefined) return bad(at, `${domain} is an alias of ${d.aliasOf}: write the address in ${d.aliasOf}`);
        const key = foldKey(address);
        const owner = byAddress.get(key);
        if (owner) return bad(at, `${address} also belongs to users[${owner.index}] (${owner.user.login})`);
        byAddress.set(key, { index: i, user });
      }
    }
    const strip = (m: Map<string, { user: UserRecord }>): Map<string, UserRecord> => new Map([...m].map(([k, v]) => [k, v.user]));
    return ok(new Snapshot(data, domains, strip(byLogin), strip(byAddress)));
  }

  domain(name: string): DomainRecord | undefined {
    return this.domains.get(foldKey(name));
  }

  userByLogin(login: string): UserRecord | undefined {
    return this.byLogin.get(foldKey(login));
  }

  /** An address of an alias domain is the same local part in the domain it stands for. */
  userByAddress(address: string): UserRecord | undefined {
    const key = foldKey(address);
    const direct = this.byAddress.get(key);
    if (direct !== undefined) return direct;
    const at = key.lastIndexOf('@');
    if (at <= 0) return undefined;
    const d = this.domains.get(key.slice(at + 1));
    if (d === undefined || d.canonical === d.name) return undefined;
    return this.byAddress.get(`${key.slice(0, at)}@${d.canonical}`);
  }

  listDomains(): readonly DomainRecord[] {
    return [...this.domains.values()];
  }

  listUsers(): readonly UserRecord[] {
    return [...this.byLogin.values()];
  }
}
