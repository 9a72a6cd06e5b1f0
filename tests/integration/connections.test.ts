// Idle and slow clients and connection floods against the real executable, with short limits in
// msg.conf: smtp.commandtimeout = 2 s and smtp.datatimeout = 2 s (RFC 5321 §4.5.3.2 asks for
// minutes; short here only to keep the suite fast), 3 connections per address, 6 in total.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectGreeted, DOMAIN, portcullis, Server, sleep, status, waitFor } from './harness.js';
import type { Reply, SmtpClient } from './harness.js';

const TIMEOUT_MS = 2000;
/** Scheduling slack allowed on top of a timeout on this small machine. */
const SLACK_MS = 1000;
let server: Server;

before(async () => {
  server = await Server.start({
    conf: {
      'smtp.commandtimeout': String(TIMEOUT_MS / 1000),
      'smtp.datatimeout': String(TIMEOUT_MS / 1000),
      'smtp.maxconnectionsperip': '3',
      'smtp.maxconnections': '6',
    },
    users: [{ address: `alice@${DOMAIN}`, password: 'alice-secret' }],
  });
});

after(async () => {
  await server?.stop();
});

async function connections(): Promise<number> {
  const r = await portcullis(['status', '--config', server.configDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { connections: number }).connections;
}

async function waitConnections(n: number): Promise<void> {
  await waitFor(`${n} open connections`, async () => ((await connections()) === n ? true : undefined), 5000, 50);
}

/** Reads the next reply and how long it took to come. */
async function timed(c: SmtpClient, timeoutMs: number): Promise<{ reply: Reply; ms: number }> {
  const t0 = Date.now();
  const reply = await c.read(timeoutMs);
  return { reply, ms: Date.now() - t0 };
}

describe('timeouts (RFC 5321 §4.5.3.2)', { concurrency: true }, () => {
  test('an idle client gets 421 4.4.2 after smtp.commandtimeout and is disconnected', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.51' });
    try {
      await c.ehlo('idle.example');
      const { reply, ms } = await timed(c, TIMEOUT_MS + SLACK_MS + 2000);
      assert.equal(status(reply), '421 4.4.2');
      assert.ok(ms >= TIMEOUT_MS - 200 && ms <= TIMEOUT_MS + SLACK_MS, `after ${ms} ms`);
      assert.ok(await c.waitClosed(SLACK_MS));
    } finally {
      c.destroy();
    }
  });

  test('slowloris: one byte every 500 ms, never a whole line, is cut off with 421 4.4.2 within the command timeout', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.52' });
    const t0 = Date.now();
    let stop = false;
    const dribble = (async () => {
      const text = 'EHLO slowloris.example.and.so.on.and.on';
      for (let k = 0; !stop && !c.closed; k++) {
        await c.write(text[k % text.length] as string);
        await sleep(500);
      }
    })();
    try {
      const reply = await c.read(TIMEOUT_MS + SLACK_MS + 2000);
      const ms = Date.now() - t0;
      assert.equal(status(reply), '421 4.4.2');
      assert.ok(ms <= TIMEOUT_MS + SLACK_MS, `cut off after ${ms} ms, though bytes kept coming`);
      assert.ok(await c.waitClosed(SLACK_MS), 'and disconnected');
    } finally {
      stop = true;
      await dribble;
      c.destroy();
    }
  });

  test('a client that stops sending message content gets 421 4.4.2 after smtp.datatimeout; nothing is spooled', async () => {
    const before = server.spoolIds();
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.53' });
    try {
      await c.ehlo('stalled.example');
      assert.equal((await c.cmd('MAIL FROM:<a@remote.test>')).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<alice@${DOMAIN}>`)).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      await c.write('Subject: half a message\r\n\r\nand then nothing');
      const { reply, ms } = await timed(c, TIMEOUT_MS + SLACK_MS + 2000);
      assert.equal(status(reply), '421 4.4.2');
      assert.ok(ms <= TIMEOUT_MS + SLACK_MS, `after ${ms} ms`);
      assert.ok(await c.waitClosed(SLACK_MS));
    } finally {
      c.destroy();
    }
    assert.deepEqual(server.spoolIds(), before);
  });
});

describe('connection limits', () => {
  test('connection flood: past smtp.maxconnectionsperip the extra connection gets 421 4.7.0; another address is unaffected', async () => {
    await waitConnections(0);
    const open: SmtpClient[] = [];
    try {
      for (let k = 0; k < 3; k++) {
        const { c, greeting } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.60' });
        open.push(c);
        assert.equal(greeting.code, 220);
      }
      const { c: extra, greeting: refused } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.60' });
      open.push(extra);
      assert.equal(status(refused), '421 4.7.0');
      assert.match(refused.text, /from your address/);
      assert.ok(await extra.waitClosed(), 'the refused connection is closed');
      await server.waitForLog('smtp-connection-refused', (r) => r.client === '127.0.0.60');

      const { c: other, greeting } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.61' });
      open.push(other);
      assert.equal(greeting.code, 220, 'another address still gets in');
      assert.equal((await other.ehlo('other.example')).code, 250);

      // The flooding address gets a slot back once one of its connections ends.
      await (open[0] as SmtpClient).quit();
      await waitConnections(3); // two from .60 and one from .61; refused ones never count
      const { c: again, greeting: g2 } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.60' });
      open.push(again);
      assert.equal(g2.code, 220);
    } finally {
      for (const c of open) c.destroy();
    }
  });

  test('past smtp.maxconnections (all clients together) a new connection gets 421 4.7.0; `portcullis status` counts them', async () => {
    await waitConnections(0);
    const open: SmtpClient[] = [];
    try {
      for (const ip of ['127.0.0.62', '127.0.0.62', '127.0.0.62', '127.0.0.63', '127.0.0.63', '127.0.0.63']) {
        const { c, greeting } = await connectGreeted(server.ports.smtp, { localAddress: ip });
        open.push(c);
        assert.equal(greeting.code, 220);
      }
      assert.equal(await connections(), 6);
      for (const port of [server.ports.smtp, server.ports.submit]) {
        const { c, greeting } = await connectGreeted(port, { localAddress: '127.0.0.64' });
        open.push(c);
        assert.equal(status(greeting), '421 4.7.0');
        assert.match(greeting.text, /Too many connections/);
        assert.ok(await c.waitClosed());
      }
    } finally {
      for (const c of open) c.destroy();
    }
    await waitConnections(0);
    const { c, greeting } = await connectGreeted(server.ports.smtp, { localAddress: '127.0.0.64' });
    assert.equal(greeting.code, 220, 'room again once the others left');
    await c.quit();
  });
});

test('the server reported no internal faults and left no debris in the spool', async () => {
  assert.ok(server.running, 'server still running');
  assert.deepEqual(server.faults(), []);
  assert.deepEqual(await server.settledDebris(), [], 'no partial files left in the queue');
});
