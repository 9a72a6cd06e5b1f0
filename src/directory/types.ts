// The directory: hosted domains and users. The embedded store (store.ts) implements it; an LDAP
// directory can later implement the same interface. Reads are synchronous and in memory: the SMTP
// session consults it on every RCPT and AUTH.

export type UserStatus = 'active' | 'inactive';

export interface DomainRecord {
  /** Lower-case domain name. */
  readonly name: string;
  /** For an alias domain, the hosted domain it stands for; for a hosted domain, its own name. */
  readonly canonical: string;
  /** Further attributes, answered by `$}domain,attribute{` lookups. */
  readonly attributes: Readonly<Record<string, string>>;
}

export interface UserRecord {
  /** Login name used with AUTH (often the primary address). */
  readonly login: string;
  /** Primary address, lower-case domain part. */
  readonly address: string;
  /** Further addresses delivered to this user. */
  readonly aliases: readonly string[];
  /** argon2id PHC string. */
  readonly passwordHash: string;
  readonly status: UserStatus;
}

export type AuthResult =
  | { readonly ok: true; readonly user: UserRecord }
  | { readonly ok: false; readonly reason: 'unknown-user' | 'bad-password' | 'inactive' };

export interface Directory {
  /** The domain record for a hosted or alias domain (case-insensitive), or undefined. */
  domain(name: string): DomainRecord | undefined;
  /**
   * The user owning this address (primary or alias; case-insensitive, local part included), or
   * undefined. An address in an alias domain is looked up as the same local part in its canonical domain.
   */
  userByAddress(address: string): UserRecord | undefined;
  userByLogin(login: string): UserRecord | undefined;
  /** Checks a password (argon2id verify runs off the main thread). */
  authenticate(login: string, password: string): Promise<AuthResult>;
}
