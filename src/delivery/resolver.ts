// The DNS resolver of outbound delivery: the system's (/etc/resolv.conf), or the servers of
// delivery.dns_servers, read at each lookup so that a reload takes effect at the next one.

import { Resolver } from 'node:dns/promises';
import type { MxResolver } from './mx.js';

/**
 * A resolver that asks `servers()` (`ip`, `ip:port`, `[ipv6]:port`; empty: the system's). A new
 * Resolver is made when the list changes, rather than calling setServers on the one in use: node
 * forbids that while a query is in flight, and queries of the old one simply finish.
 */
export function liveResolver(servers: () => readonly string[], opts: { timeoutMs?: number; tries?: number } = {}): MxResolver {
  const make = (): Resolver => new Resolver({ timeout: opts.timeoutMs ?? 5000, tries: opts.tries ?? 2 });
  let key: string | null = null;
  let current = make();
  const get = (): Resolver => {
    const list = servers();
    const k = list.join(',');
    if (k !== key) {
      current = make();
      if (list.length > 0) current.setServers([...list]);
      key = k;
    }
    return current;
  };
  return {
    resolveMx: (name) => get().resolveMx(name),
    resolve4: (name) => get().resolve4(name),
    resolve6: (name) => get().resolve6(name),
  };
}
