import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { notifyServer } from './notify.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-ctl-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A control socket at `<dir>/control.sock` that hands each received line to `answer`. */
async function controlServer(t: { after(fn: () => Promise<void>): void }, dir: string, answer: (line: string, socket: Socket) => void): Promise<{ lines: string[] }> {
  const lines: string[] = [];
  const server: Server = createServer((socket) => {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        lines.push(buf.slice(0, nl + 1));
        answer(buf.slice(0, nl), socket);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(join(dir, 'control.sock'), resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.unref();
      }),
  );
  return { lines };
}

test('no control socket: no server is running, nothing to do', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual(await notifyServer(dir), { kind: 'not-running' });
  assert.deepEqual(await notifyServer(join(dir, 'absent')), { kind: 'not-running' });
});

test('a socket left by a server that died refuses: not running', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'control.sock');
  // A server killed with SIGKILL leaves its socket file behind.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await new Promise((resolve) => child.on('close', resolve));
  assert.ok((await stat(path)).isSocket());
  assert.deepEqual(await notifyServer(dir), { kind: 'not-running' });
});

test('the server answers {"ok":true}: reloaded; the request is exactly one JSON line', async (t) => {
  const dir = await tempDir(t);
  const srv = await controlServer(t, dir, (_line, s) => s.end('{"ok":true}\n'));
  assert.deepEqual(await notifyServer(dir), { kind: 'reloaded' });
  assert.deepEqual(srv.lines, ['{"cmd":"directory-reload"}\n']);
});

test('the server answers {"ok":false,...}: its error is reported', async (t) => {
  const dir = await tempDir(t);
  await controlServer(t, dir, (_line, s) => s.end('{"ok":false,"error":"directory.json:3:5: not valid JSON"}\r\n'));
  assert.deepEqual(await notifyServer(dir), { kind: 'failed', error: 'directory.json:3:5: not valid JSON' });
});

test('an answer in pieces is put together', async (t) => {
  const dir = await tempDir(t);
  await controlServer(t, dir, (_line, s) => {
    s.write('{"ok"');
    setTimeout(() => s.end(':true}\n'), 20);
  });
  assert.deepEqual(await notifyServer(dir), { kind: 'reloaded' });
});

test('silence, a closed connection or nonsense are failures', async (t) => {
  const silent = await tempDir(t);
  await controlServer(t, silent, () => undefined);
  const r1 = await notifyServer(silent, { timeoutMs: 200 });
  assert.equal(r1.kind, 'failed');
  assert.match(r1.kind === 'failed' ? r1.error : '', /no answer within 0\.2 s/);

  const closing = await tempDir(t);
  await controlServer(t, closing, (_line, s) => s.end());
  const r2 = await notifyServer(closing);
  assert.match(r2.kind === 'failed' ? r2.error : '', /closed the connection without answering/);

  const garbled = await tempDir(t);
  await controlServer(t, garbled, (_line, s) => s.end('OK\n'));
  const r3 = await notifyServer(garbled);
  assert.match(r3.kind === 'failed' ? r3.error : '', /not JSON: OK/);

  const odd = await tempDir(t);
  await controlServer(t, odd, (_line, s) => s.end('{"status":"fine"}\n'));
  const r4 = await notifyServer(odd);
  assert.match(r4.kind === 'failed' ? r4.error : '', /unexpected answer/);
});
