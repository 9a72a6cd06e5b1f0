// Runs every tests/dialogs/*.dialog script against an in-process server over real sockets.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { parseDialog, ReplyReader } from './dialogs/dialog.js';
import { startTestServer } from './dialogs/server.js';
import type { TestServer } from './dialogs/server.js';

const DIR = join(import.meta.dirname, 'dialogs');
let server: TestServer;

before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server.close();
});

async function runDialog(name: string, text: string): Promise<void> {
  const steps = parseDialog(text);
  const before = server.spool.list().length;
  const conn: { sock: net.Socket | null; reader: ReplyReader | null } = { sock: null, reader: null };
  const connect = async (): Promise<void> => {
    conn.sock?.destroy();
    const sock = net.connect({ port: server.port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => sock.once('connect', () => resolve()).once('error', reject));
    conn.sock = sock;
    conn.reader = new ReplyReader(sock);
    const greeting = await conn.reader.next();
    assert.ok(greeting?.[0]?.startsWith('220 '), `${name}: greeting ${JSON.stringify(greeting)}`);
  };
  const reader = (): ReplyReader => conn.reader as ReplyReader;
  try {
    await connect();
    for (const st of steps) {
      const where = `${name}:${st.line}`;
      switch (st.kind) {
        case 'reconnect':
          await connect();
          break;
        case 'send':
          conn.sock?.write(st.data, 'latin1');
          break;
        case 'closed': {
          const r = await reader().next();
          assert.equal(r, null, `${where}: expected the server to close, got ${JSON.stringify(r)}`);
          break;
        }
        case 'expect': {
          const r: string[] | null = await reader().next();
          assert.ok(r !== null, `${where}: connection closed, expected ${st.code}`);
          const last = r[r.length - 1] as string;
          assert.equal(last.slice(0, 3), st.code, `${where}: expected ${st.code} ${st.text}, got ${JSON.stringify(r)}`);
          if (st.text !== '') {
            const ok = st.anyLine ? r.some((l) => l.slice(4).startsWith(st.text)) : last.slice(4).startsWith(st.text);
            assert.ok(ok, `${where}: expected "${st.text}" in ${JSON.stringify(r)}`);
          }
          break;
        }
        case 'queue':
          assert.equal(server.spool.list().length - before, st.count, `${where}: messages spooled`);
          break;
      }
    }
  } finally {
    conn.sock?.destroy();
  }
}

for (const file of readdirSync(DIR).filter((f) => f.endsWith('.dialog')).sort()) {
  test(`dialog ${file}`, async () => {
    await runDialog(file, readFileSync(join(DIR, file), 'utf8'));
  });
}
