// The network side of the SMTP service: one TCP listener per service (25 smtp, 587 submit,
// 465 smtps with implicit TLS), connection limits (all clients and per address), PROXY headers
// from trusted hosts, and the socket transport sessions write through. Sessions never see a
// socket; the listener never decides policy.

import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Options } from '../../config/types.js';
import { cidrContains } from '../../config/cidr.js';
import type { ServiceName, TlsFacts } from '../../policy/session-policy.js';
import type { SmtpReply } from '../../policy/verdict.js';
import type { Logger } from '../../telemetry/log.js';
import { encodeReply, REPLY } from '../codes.js';
import { parseProxyHeader } from '../proxy.js';
import { Session } from '../session/session.js';
import type { SessionEnv, Transport } from '../session/session.js';

/** Time a trusted proxy has to send its PROXY header. */
const PROXY_HEADER_TIMEOUT_MS = 10_000;
/** How long a closing connection may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 5_000;

export interface ListenerEnv extends SessionEnv {
  /** The TLS context for the current configuration, or null when no certificate is configured. */
  readonly tlsContext: () => tls.SecureContext | null;
}

function normalizeIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

function tlsFacts(sock: tls.TLSSocket): TlsFacts {
  const c = sock.getCipher();
  return { protocol: sock.getProtocol() ?? 'TLS', cipher: c.standardName ?? c.name };
}

class SocketTransport implements Transport {
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  session: Session | null = null;

  constructor(
    private socket: net.Socket,
    private readonly env: ListenerEnv,
  ) {}

  get canStartTls(): boolean {
    return this.env.tlsContext() !== null && !(this.socket instanceof tls.TLSSocket);
  }

  attach(session: Session): void {
    this.session = session;
    this.socket.on('data', (d: Buffer) => session.receive(d));
  }

  write(text: string): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(text);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.setTimer(0, () => undefined);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  setTimer(ms: number, onTimeout: () => void): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = ms > 0 ? setTimeout(onTimeout, ms) : null;
    this.timer?.unref();
  }

  startTls(): Promise<TlsFacts | null> {
    const ctx = this.env.tlsContext();
    if (ctx === null) return Promise.resolve(null);
    const raw = this.socket;
    raw.removeAllListeners('data');
    return new Promise((resolve) => {
      const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx });
      let done = false;
      const finish = (facts: TlsFacts | null): void => {
        if (done) return;
        done = true;
        resolve(facts);
      };
      secure.once('secure', () => {
        this.socket = secure;
        const session = this.session;
        if (session) secure.on('data', (d: Buffer) => session.receive(d));
        finish(tlsFacts(secure));
      });
      secure.on('error', () => finish(null));
      secure.on('close', () => {
        finish(null);
        this.session?.closed();
      });
      setTimeout(() => finish(null), 30_000).unref();
    });
  }
}

/** A duplex over `sock` that first yields `prefix` (bytes already read from it). */
function withPrefix(sock: net.Socket, prefix: Buffer): Duplex {
  const d = new Duplex({
    read() {
      sock.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end(cb);
    },
    destroy(err, cb) {
      sock.destroy(err ?? undefined);
      cb(err);
    },
  });
  d.push(prefix);
  sock.on('data', (b: Buffer) => {
    if (!d.push(b)) sock.pause();
  });
  sock.on('end', () => d.push(null));
  sock.on('close', () => d.destroy());
  return d;
}

interface Counters {
  total: number;
  perIp: Map<string, number>;
}

export class SmtpListeners {
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  /** Sessions in progress, so that shutdown can tell each over its own transport (TLS or not). */
  private readonly sessions = new Set<Session>();
  private readonly counters: Counters = { total: 0, perIp: new Map() };
  private draining = false;

  constructor(
    private readonly env: ListenerEnv,
    private readonly log: Logger,
  ) {}

  /** Starts listening on every configured service; resolves with the bound addresses. */
  async listen(options: Options): Promise<{ service: ServiceName; address: string; port: number }[]> {
    const wanted: [ServiceName, number][] = [
      ['smtp', options.ports.smtp],
      ['submit', options.ports.submit],
      ['smtps', options.tls.certFile !== null ? options.ports.smtps : 0],
    ];
    const hosts = options.listenAddresses.length > 0 ? options.listenAddresses : [undefined];
    const bound: { service: ServiceName; address: string; port: number }[] = [];
    for (const [service, port] of wanted) {
      if (port === 0) continue;
      for (const host of hosts) {
        const server = net.createServer({ pauseOnConnect: false }, (sock) => this.accept(service, sock));
        server.maxConnections = Number.MAX_SAFE_INTEGER; // limits are enforced with a 421 below
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port, host, backlog: 511 }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        server.on('error', (err) => this.log.log('error', 'smtp-listener-error', { service, error: err.message }));
        this.servers.push(server);
        const a = server.address() as net.AddressInfo;
        bound.push({ service, address: a.address, port: a.port });
      }
    }
    return bound;
  }

  get connections(): number {
    return this.counters.total;
  }

  /** Stops accepting; sessions in progress get `graceMs` to finish, then are told 421 and closed. */
  async close(graceMs: number): Promise<void> {
    this.draining = true;
    // Stop accepting. (The callback of net.Server#close only runs once every connection has
    // ended, so waiting for it here would hold shutdown until the last client leaves.)
    for (const s of this.servers) s.close();
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // The 421 goes through the session so that a TLS session gets it inside TLS.
    for (const session of this.sessions) {
      session.send(REPLY.shuttingDown);
      session.close();
    }
    for (const s of this.sockets) setTimeout(() => s.destroy(), 1000).unref();
  }

  private accept(service: ServiceName, sock: net.Socket): void {
    const peerIp = normalizeIp(sock.remoteAddress);
    const peerPort = sock.remotePort ?? 0;
    const localIp = normalizeIp(sock.localAddress);
    const localPort = sock.localPort ?? 0;
    sock.setNoDelay(true);
    sock.on('error', () => undefined); // reset by peer etc.: 'close' follows
    const o = this.env.options();
    const c = this.counters;
    // Behind a trusted proxy every client arrives from the proxy's address: the per-address limit
    // applies to the client its PROXY header names (checked once the header is read).
    const viaProxy = cidrContains(o.proxyHosts, peerIp);
    const perIpFull = (ip: string): boolean => (c.perIp.get(ip) ?? 0) + 1 > o.limits.maxConnectionsPerIp;
    const refuse = (client: string, rep: SmtpReply): void => {
      this.log.log('warn', 'smtp-connection-refused', { client, service, reason: rep.lines[0] ?? '' });
      sock.end(encodeReply(rep));
      setTimeout(() => sock.destroy(), 2000).unref();
    };
    if (this.draining || c.total >= o.limits.maxConnections || (!viaProxy && perIpFull(peerIp))) {
      refuse(peerIp, this.draining ? REPLY.shuttingDown : c.total >= o.limits.maxConnections ? REPLY.tooManyConnections : REPLY.tooManyFromYou);
      return;
    }
    c.total++;
    this.sockets.add(sock);
    /** The address counted against the per-address limit, once known. */
    let counted: string | null = null;
    const count = (ip: string): void => {
      counted = ip;
      c.perIp.set(ip, (c.perIp.get(ip) ?? 0) + 1);
    };
    let released = false;
    sock.once('close', () => {
      if (released) return;
      released = true;
      c.total--;
      if (counted !== null) {
        const n = (c.perIp.get(counted) ?? 1) - 1;
        if (n <= 0) c.perIp.delete(counted);
        else c.perIp.set(counted, n);
      }
      this.sockets.delete(sock);
    });
    const start = (raw: net.Socket, client: { ip: string; port: number }, leftover: Buffer | null): void => {
      if (service === 'smtps') this.startImplicitTls(raw, service, { ip: localIp, port: localPort }, { ip: peerIp, port: peerPort }, client, leftover);
      else this.startSession(raw, service, { ip: localIp, port: localPort }, { ip: peerIp, port: peerPort }, client, null, leftover);
    };
    if (!viaProxy) {
      count(peerIp);
      start(sock, { ip: peerIp, port: peerPort }, null);
      return;
    }
    this.readProxyHeader(sock, (named, leftover) => {
      const client = named ?? { ip: peerIp, port: peerPort };
      if (perIpFull(client.ip)) {
        refuse(client.ip, REPLY.tooManyFromYou);
        return;
      }
      count(client.ip);
      start(sock, client, leftover);
    });
  }

  /** A trusted proxy must start with a PROXY header; anything else ends the connection. */
  private readProxyHeader(sock: net.Socket, then: (client: { ip: string; port: number } | null, leftover: Buffer | null) => void): void {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      this.log.log('warn', 'smtp-proxy-timeout', { peer: sock.remoteAddress ?? '' });
      sock.destroy();
    }, PROXY_HEADER_TIMEOUT_MS);
    timer.unref();
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const r = parseProxyHeader(buf);
      if (r.status === 'incomplete') return;
      sock.off('data', onData);
      clearTimeout(timer);
      if (r.status === 'error') {
        this.log.log('warn', 'smtp-proxy-bad-header', { peer: sock.remoteAddress ?? '', error: r.message });
        sock.destroy();
        return;
      }
      const rest = buf.subarray(r.consumed);
      then(r.source === null ? null : { ip: normalizeIp(r.source.ip), port: r.source.port }, rest.length > 0 ? rest : null);
    };
    sock.on('data', onData);
  }

  private startImplicitTls(
    raw: net.Socket,
    service: ServiceName,
    local: { ip: string; port: number },
    peer: { ip: string; port: number },
    client: { ip: string; port: number },
    leftover: Buffer | null,
  ): void {
    const ctx = this.env.tlsContext();
    if (ctx === null) {
      raw.destroy();
      return;
    }
    // Bytes read together with the PROXY header (often the ClientHello) must reach TLS first; a
    // TLSSocket over a plain net.Socket reads its handle directly, so give it a stream instead.
    const secure = new tls.TLSSocket(leftover ? withPrefix(raw, leftover) : raw, { isServer: true, secureContext: ctx });
    secure.on('error', () => raw.destroy());
    const timer = setTimeout(() => raw.destroy(), 30_000);
    timer.unref();
    secure.once('secure', () => {
      clearTimeout(timer);
      this.startSession(secure, service, local, peer, client, tlsFacts(secure), null);
    });
  }

  private startSession(
    sock: net.Socket,
    service: ServiceName,
    local: { ip: string; port: number },
    peer: { ip: string; port: number },
    client: { ip: string; port: number },
    tlsInfo: TlsFacts | null,
    leftover: Buffer | null,
  ): void {
    const transport = new SocketTransport(sock, this.env);
    const session = new Session(transport, this.env, service, local, peer, client, tlsInfo);
    transport.attach(session);
    this.sessions.add(session);
    sock.once('close', () => {
      this.sessions.delete(session);
      session.closed();
    });
    if (leftover) session.receive(leftover);
    void session.start();
  }
}
