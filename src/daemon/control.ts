// The local control socket: how administrator commands reach a running server (shared/
// conventions.md: never by editing its files behind its back). A unix socket in the data
// directory, mode 0600; one JSON object per line each way.
//
//   {"cmd":"reload"}            → {"ok":true,"warnings":[...]} | {"ok":false,"problems":[...]}
//   {"cmd":"directory-reload"}  → {"ok":true} | {"ok":false,"error":"..."}
//   {"cmd":"status"}            → {"ok":true,"pid":…,"connections":…,"configLoadedAt":"…"}
//   {"cmd":"throttle-show","table":"t","key"?:"k","limit"?:n} → {"ok":true,"view":{…}}
//   {"cmd":"throttle-reset","table":"t","key"?:"k"}           → {"ok":true,"removed":n}
//   (throttle errors: {"ok":false,"error":"…","code":"bad-request"|"failed"}, throttle-control.ts)
//   {"cmd":"qm-list","filter":{…}}                      → {"ok":true,"messages":[QmSummary…],"problems":[…]}
//   {"cmd":"qm-show","id":"…"}                          → {"ok":true,"message":QmDetail}
//   {"cmd":"qm-delete"|"qm-hold"|"qm-release","ids"?:[…],"filter"?:{…}} → {"ok":true,"result":QmActionResult}
//   {"cmd":"qm-counts"}                                 → {"ok":true,"counts":QmCounts,"problems":[…]}
//   (filter: {"channel"?,"sender"?,"authUser"?,"held"?}; qm errors carry "code":"bad-request"|
//   "not-found"|"failed", qm-control.ts)

import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { QmFilter } from '../queue/qm.js';

export const CONTROL_SOCKET = 'control.sock';

export function controlSocketPath(dataDir: string): string {
  return join(dataDir, CONTROL_SOCKET);
}

export type ControlRequest =
  | { readonly cmd: 'reload' }
  | { readonly cmd: 'directory-reload' }
  | { readonly cmd: 'status' }
  | { readonly cmd: 'throttle-show'; readonly table: string; readonly key?: string; readonly limit?: number }
  | { readonly cmd: 'throttle-reset'; readonly table: string; readonly key?: string }
  | { readonly cmd: 'qm-list'; readonly filter: QmFilter }
  | { readonly cmd: 'qm-show'; readonly id: string }
  | { readonly cmd: 'qm-delete' | 'qm-hold' | 'qm-release'; readonly ids: readonly string[]; readonly filter: QmFilter }
  | { readonly cmd: 'qm-counts' };
export type ControlReply = { readonly ok: boolean } & Readonly<Record<string, unknown>>;

export type ControlHandler = (req: ControlRequest) => Promise<ControlReply>;

const MAX_REQUEST = 64 * 1024;

/** A qm filter from a request: fields of the wrong type make the request unknown. */
function parseQmFilter(v: unknown): QmFilter | null {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null) return null;
  const f = v as Record<string, unknown>;
  const out: { channel?: string; sender?: string; authUser?: string; held?: boolean } = {};
  for (const k of ['channel', 'sender', 'authUser'] as const) {
    const x = f[k];
    if (x === undefined) continue;
    if (typeof x !== 'string') return null;
    out[k] = x;
  }
  if (f.held !== undefined) {
    if (typeof f.held !== 'boolean') return null;
    out.held = f.held;
  }
  return out;
}

function parseQmRequest(v: { cmd?: unknown; id?: unknown; ids?: unknown; filter?: unknown }): ControlRequest | null {
  if (v.cmd === 'qm-counts') return { cmd: v.cmd };
  if (v.cmd === 'qm-show') return typeof v.id === 'string' ? { cmd: v.cmd, id: v.id } : null;
  const filter = parseQmFilter(v.filter);
  if (filter === null) return null;
  if (v.cmd === 'qm-list') return { cmd: v.cmd, filter };
  if (v.cmd === 'qm-delete' || v.cmd === 'qm-hold' || v.cmd === 'qm-release') {
    const ids = v.ids ?? [];
    if (!Array.isArray(ids) || !ids.every((x): x is string => typeof x === 'string')) return null;
    return { cmd: v.cmd, ids, filter };
  }
  return null;
}

function parseRequest(line: string): ControlRequest | null {
  try {
    const v = JSON.parse(line) as { cmd?: unknown; table?: unknown; key?: unknown; limit?: unknown; id?: unknown; ids?: unknown; filter?: unknown };
    if (typeof v.cmd === 'string' && v.cmd.startsWith('qm-')) return parseQmRequest(v);
    if (v.cmd === 'reload' || v.cmd === 'directory-reload' || v.cmd === 'status') return { cmd: v.cmd };
    if ((v.cmd === 'throttle-show' || v.cmd === 'throttle-reset') && typeof v.table === 'string') {
      const key = typeof v.key === 'string' ? v.key : undefined;
      if (v.cmd === 'throttle-reset') return { cmd: v.cmd, table: v.table, key };
      const limit = typeof v.limit === 'number' && Number.isInteger(v.limit) && v.limit > 0 ? Math.min(v.limit, 100_000) : undefined;
      return { cmd: v.cmd, table: v.table, key, limit };
    }
  } catch {
    // fall through
  }
  return null;
}

/** Serves the control socket. A stale socket file from a crashed server is replaced. */
export async function serveControl(dataDir: string, handle: ControlHandler): Promise<net.Server> {
  const path = controlSocketPath(dataDir);
  if (existsSync(path)) {
    const alive = await new Promise<boolean>((resolve) => {
      const c = net.connect(path, () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (alive) throw new Error(`another server is already running on ${path}`);
    unlinkSync(path);
  }
  const server = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST) {
        sock.end(JSON.stringify({ ok: false, error: 'request too large' }) + '\n');
        return;
      }
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const req = parseRequest(line);
        if (req === null) {
          sock.write(JSON.stringify({ ok: false, error: 'unknown request' }) + '\n');
          continue;
        }
        handle(req).then(
          (rep) => sock.write(JSON.stringify(rep) + '\n'),
          (err: unknown) => sock.write(JSON.stringify({ ok: false, error: err instanceof Error ? err.message : String(err) }) + '\n'),
        );
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return server;
}

/** No server listens on the control socket (no socket file, or nobody behind it). */
export class NoServerError extends Error {}

/** Sends one request to a running server. Rejects when no server answers (NoServerError when none runs). */
export function controlRequest(dataDir: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(controlSocketPath(dataDir));
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('the server did not answer within ' + timeoutMs / 1000 + ' s'));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => {
      // Only the new chunk is searched: a qm listing of a large queue is one long line.
      const at = d.indexOf('\n');
      const nl = at === -1 ? -1 : buf.length + at;
      buf += d;
      if (nl === -1) return;
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as ControlReply);
      } catch {
        reject(new Error('the server sent a malformed reply'));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? new NoServerError(`no server is running (no control socket at ${controlSocketPath(dataDir)})`) : new Error(err.message));
    });
  });
}
