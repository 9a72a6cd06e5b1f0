// Telling a running server that directory.json changed, over its control socket
// `<dataDir>/control.sock`. The protocol is JSON lines: the client sends
//
//   {"cmd":"directory-reload"}
//
// and the server answers with one line, {"ok":true} or {"ok":false,"error":"..."}, after it has
// re-read the file (or failed to). No socket, or one nobody listens on, means no server is
// running: the change takes effect when one starts, and that is not a failure.

import { connect } from 'node:net';
import { join } from 'node:path';

export const CONTROL_SOCKET = 'control.sock';

export type NotifyResult =
  | { readonly kind: 'not-running' }
  | { readonly kind: 'reloaded' }
  | { readonly kind: 'failed'; readonly error: string };

export interface NotifyOptions {
  /** How long to wait for the connection and the answer together (default 5 s). */
  readonly timeoutMs?: number;
}

/** A longer reply than this is not an answer to our question. */
const MAX_REPLY = 64 * 1024;

export function notifyServer(dataDir: string, options: NotifyOptions = {}): Promise<NotifyResult> {
  const path = join(dataDir, CONTROL_SOCKET);
  const timeoutMs = options.timeoutMs ?? 5_000;
  return new Promise((resolve) => {
    let reply = '';
    let connected = false;
    let settled = false;
    const socket = connect(path);
    const finish = (r: NotifyResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => {
      finish({ kind: 'failed', error: `${path}: no answer within ${timeoutMs / 1000} s` });
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(JSON.stringify({ cmd: 'directory-reload' }) + '\n');
    });
    socket.on('data', (chunk: string) => {
      reply += chunk;
      const nl = reply.indexOf('\n');
      if (nl >= 0) finish(parseReply(path, reply.slice(0, nl)));
      else if (reply.length > MAX_REPLY) finish({ kind: 'failed', error: `${path}: the answer is not a JSON line` });
    });
    socket.on('end', () => {
      finish({ kind: 'failed', error: `${path}: the server closed the connection without answering` });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A socket file left by a server that stopped refuses connections: nobody to tell.
      if (!connected && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) finish({ kind: 'not-running' });
      else finish({ kind: 'failed', error: `${path}: ${err.code ?? err.message}` });
    });
  });
}

function parseReply(path: string, line: string): NotifyResult {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { kind: 'failed', error: `${path}: the answer is not JSON: ${line.slice(0, 200)}` };
  }
  if (typeof v === 'object' && v !== null) {
    const r = v as { ok?: unknown; error?: unknown };
    if (r.ok === true) return { kind: 'reloaded' };
    if (r.ok === false) return { kind: 'failed', error: typeof r.error === 'string' ? r.error : 'the server gave no reason' };
  }
  return { kind: 'failed', error: `${path}: unexpected answer: ${line.slice(0, 200)}` };
}
