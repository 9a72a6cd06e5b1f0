// A real DNS server in the test process (dns2, ../shared/peers.md C.10) on a free loopback UDP
// port, answering from a zone the test writes: MX, A and AAAA records per name; a name can also be
// made to fail (SERVFAIL, REFUSED) or to never answer. Names not in the zone are NXDOMAIN; a name
// in the zone without records of the asked type gets an empty answer (NODATA). resolver() gives a
// node dns.promises.Resolver pointed at it, which is what the code under test takes.

import { promises as dnsPromises } from 'node:dns';
import dns2 from 'dns2';

export interface ZoneEntry {
  readonly MX?: readonly { readonly exchange: string; readonly priority: number }[];
  readonly A?: readonly string[];
  readonly AAAA?: readonly string[];
}

/** A name that does not answer normally. */
export type Trouble = 'servfail' | 'refused' | 'timeout';

export type Zone = Record<string, ZoneEntry | Trouble>;

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

export class DnsServer {
  /** Every question received, "name TYPE", in order. */
  readonly queries: string[] = [];
  private readonly zone = new Map<string, ZoneEntry | Trouble>();

  private constructor(
    private readonly server: dns2.UDPServer,
    readonly port: number,
    zone: Zone,
  ) {
    this.set(zone);
  }

  /** Starts a server on 127.0.0.1 and a free UDP port. */
  static async start(zone: Zone = {}): Promise<DnsServer> {
    let self: DnsServer | null = null;
    const server = dns2.createUDPServer((request, send) => {
      if (self !== null) void self.answer(request, send);
    });
    await server.listen(0, '127.0.0.1');
    const port = server.address().port;
    self = new DnsServer(server, port, zone);
    return self;
  }

  /** Adds or replaces names (lower-cased, without the final dot). */
  set(zone: Zone): void {
    for (const [name, entry] of Object.entries(zone)) this.zone.set(name.toLowerCase().replace(/\.$/, ''), entry);
  }

  /** A resolver that asks only this server; `timeoutMs` per try, one try. */
  resolver(timeoutMs = 1000): dnsPromises.Resolver {
    const r = new dnsPromises.Resolver({ timeout: timeoutMs, tries: 1 });
    r.setServers([`127.0.0.1:${this.port}`]);
    return r;
  }

  private async answer(request: dns2.Packet, send: (response: dns2.Packet) => Promise<Buffer>): Promise<void> {
    const { Packet } = dns2;
    const response = Packet.createResponseFromRequest(request);
    const [q] = request.questions;
    if (q === undefined) return;
    const name = q.name.toLowerCase().replace(/\.$/, '');
    const typeName = Object.entries(Packet.TYPE).find(([, v]) => v === q.type)?.[0] ?? String(q.type);
    this.queries.push(`${name} ${typeName}`);
    const entry = this.zone.get(name);
    if (entry === 'timeout') return;
    if (entry === 'servfail' || entry === 'refused') {
      response.header.rcode = entry === 'servfail' ? RCODE.SERVFAIL : RCODE.REFUSED;
    } else if (entry === undefined) {
      response.header.rcode = RCODE.NXDOMAIN;
    } else {
      const base = { name: q.name, class: Packet.CLASS.IN, ttl: 60 };
      if (q.type === Packet.TYPE.MX) for (const mx of entry.MX ?? []) response.answers.push({ ...base, type: Packet.TYPE.MX, exchange: mx.exchange, priority: mx.priority } as dns2.Packet.Resource);
      if (q.type === Packet.TYPE.A) for (const address of entry.A ?? []) response.answers.push({ ...base, type: Packet.TYPE.A, address } as dns2.Packet.Resource);
      if (q.type === Packet.TYPE.AAAA) for (const address of entry.AAAA ?? []) response.answers.push({ ...base, type: Packet.TYPE.AAAA, address } as dns2.Packet.Resource);
    }
    try {
      await send(response);
    } catch {
      // the client went away
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
