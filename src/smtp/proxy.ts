// The PROXY protocol header (HAProxy, versions 1 and 2) that a trusted load balancer or firewall
// sends before anything else, naming the real client. Pure parsing over bytes; the listener
// decides which peers must send one (spec seed 002: behind a firewall the MTA must still see the
// real client address).

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Version 1 headers are at most 107 octets (HAProxy's spec §2.1). */
const V1_MAX = 107;

export interface ProxyEndpoint {
  readonly ip: string;
  readonly port: number;
}

export type ProxyParse =
  | { readonly status: 'incomplete' }
  | { readonly status: 'error'; readonly message: string }
  /** `source` is null for v1 UNKNOWN and v2 LOCAL: keep the connection's own addresses. */
  | { readonly status: 'ok'; readonly consumed: number; readonly source: ProxyEndpoint | null; readonly dest: ProxyEndpoint | null };

function ipv6(b: Buffer, at: number): string {
  const parts: string[] = [];
  for (let k = 0; k < 8; k++) parts.push(b.readUInt16BE(at + 2 * k).toString(16));
  return parts.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

function parseV1(buf: Buffer): ProxyParse {
  const end = buf.indexOf('\r\n');
  if (end === -1) return buf.length >= V1_MAX ? { status: 'error', message: 'PROXY v1 header too long' } : { status: 'incomplete' };
  const line = buf.toString('latin1', 0, end);
  const f = line.split(' ');
  if (f[1] === 'UNKNOWN') return { status: 'ok', consumed: end + 2, source: null, dest: null };
  if (f.length !== 6 || (f[1] !== 'TCP4' && f[1] !== 'TCP6')) return { status: 'error', message: `bad PROXY v1 header: ${line.slice(0, 60)}` };
  const [, fam, src = '', dst = '', sport = '', dport = ''] = f;
  const v4 = (a: string): boolean => /^\d{1,3}(\.\d{1,3}){3}$/.test(a) && a.split('.').every((o) => Number(o) <= 255);
  const okAddr = (a: string): boolean => (fam === 'TCP4' ? v4(a) : /^[0-9a-fA-F:.]+$/.test(a) && a.includes(':'));
  const okPort = (p: string): boolean => /^\d{1,5}$/.test(p) && Number(p) <= 65535;
  if (!okAddr(src) || !okAddr(dst) || !okPort(sport) || !okPort(dport)) return { status: 'error', message: `bad PROXY v1 addresses: ${line.slice(0, 60)}` };
  return { status: 'ok', consumed: end + 2, source: { ip: src.toLowerCase(), port: Number(sport) }, dest: { ip: dst.toLowerCase(), port: Number(dport) } };
}

function parseV2(buf: Buffer): ProxyParse {
  if (buf.length < 16) return { status: 'incomplete' };
  const verCmd = buf[12] as number;
  if (verCmd >> 4 !== 2) return { status: 'error', message: 'PROXY v2: bad version' };
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return { status: 'incomplete' };
  const consumed = 16 + len;
  const cmd = verCmd & 0x0f;
  if (cmd === 0) return { status: 'ok', consumed, source: null, dest: null }; // LOCAL (health check)
  if (cmd !== 1) return { status: 'error', message: 'PROXY v2: bad command' };
  const fam = buf[13] as number;
  if (fam === 0x11 && len >= 12) {
    const ip = (at: number): string => `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
    return { status: 'ok', consumed, source: { ip: ip(16), port: buf.readUInt16BE(24) }, dest: { ip: ip(20), port: buf.readUInt16BE(26) } };
  }
  if (fam === 0x21 && len >= 36) {
    return { status: 'ok', consumed, source: { ip: ipv6(buf, 16), port: buf.readUInt16BE(48) }, dest: { ip: ipv6(buf, 32), port: buf.readUInt16BE(50) } };
  }
  // UNSPEC or unix sockets: keep the connection's own addresses.
  return { status: 'ok', consumed, source: null, dest: null };
}

/** Parses a PROXY header at the start of `buf`. */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return { status: 'incomplete' };
  if (buf[0] === 0x0d) {
    const n = Math.min(buf.length, V2_SIG.length);
    if (!buf.subarray(0, n).equals(V2_SIG.subarray(0, n))) return { status: 'error', message: 'not a PROXY header' };
    return n < V2_SIG.length ? { status: 'incomplete' } : parseV2(buf);
  }
  const prefix = 'PROXY ';
  const n = Math.min(buf.length, prefix.length);
  if (buf.toString('latin1', 0, n) !== prefix.slice(0, n)) return { status: 'error', message: 'not a PROXY header' };
  return n < prefix.length ? { status: 'incomplete' } : parseV1(buf);
}

/** Builds a v2 header (tests, and any future outbound use). */
export function proxyV2(source: ProxyEndpoint, dest: ProxyEndpoint): Buffer {
  const b = Buffer.alloc(28);
  V2_SIG.copy(b, 0);
  b[12] = 0x21;
  b[13] = 0x11;
  b.writeUInt16BE(12, 14);
  source.ip.split('.').forEach((o, k) => (b[16 + k] = Number(o)));
  dest.ip.split('.').forEach((o, k) => (b[20 + k] = Number(o)));
  b.writeUInt16BE(source.port, 24);
  b.writeUInt16BE(dest.port, 26);
  return b;
}
