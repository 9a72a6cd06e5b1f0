// A fixed list of hosted domains answering `$}domain,attribute{` (spec §3.6). The directory of the
// SMTP service replaces it with its own store; `test mapping --domain` and tests use this one.

import { FAIL, succeed } from '../callouts.js';
import type { CalloutAnswer, DomainDirectory } from '../callouts.js';

export interface HostedDomain {
  /** The domain's own name (for an alias domain, the domain it is an alias of is `canonical`). */
  readonly name: string;
  readonly canonical: string;
  readonly attributes?: Readonly<Record<string, string>>;
}

/** Parses "example.com" or "alias.example=example.com" (an alias of a hosted domain). */
export function parseDomainSpec(spec: string): HostedDomain | null {
  const [name = '', canonical] = spec.split('=');
  const ok = (d: string): boolean => /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(d);
  if (!ok(name) || (canonical !== undefined && !ok(canonical))) return null;
  return { name: name.toLowerCase(), canonical: (canonical ?? name).toLowerCase() };
}

export class StaticDirectory implements DomainDirectory {
  private readonly byName = new Map<string, HostedDomain>();

  constructor(domains: readonly HostedDomain[]) {
    for (const d of domains) this.byName.set(d.name.toLowerCase(), d);
  }

  domainAttribute(domain: string, attribute: string): CalloutAnswer {
    const d = this.byName.get(domain.toLowerCase());
    if (d === undefined) return FAIL;
    switch (attribute) {
      case '_domain_name_':
        // The real name, not the alias: an alias domain answers with the domain it stands for.
        return succeed(d.canonical);
      case '_canonical_name_':
        return succeed(d.canonical);
      default: {
        const v = d.attributes?.[attribute];
        return v === undefined ? FAIL : succeed(v);
      }
    }
  }
}
