// PROXY protocol (HAProxy proxy-protocol.txt, v1 §2.1 and v2 §2.2) and XCLIENT (Postfix
// XCLIENT_README) against the real executable, honoured only from configured hosts (spec seed 002:
// behind a firewall the MTA must still see the real client address). Loopback addresses play the
// hosts: 127.0.0.9 is the trusted proxy, 127.0.0.8 the trusted XCLIENT host, 127.0.0.7 a stranger.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectGreeted, DOMAIN, Server, SmtpClient, status, swaks } from './harness.js';

const PROXY_HOST = '127.0.0.9';
const XCLIENT_HOST = '127.0.0.8';
const STRANGER = '127.0.0.7';
let server: Server;

before(async () => {
  server = await Server.start({
    conf: { 'smtp.proxyhosts': PROXY_HOST, 'smtp.xclienthosts': XCLIENT_HOST, 'smtp.maxconnectionsperip': '2' },
    users: [{ address: `alice@${DOMAIN}`, password: 'alice-secret' }],
  });
});

after(async () => {
  await server?.stop();
});

function ipv6Bytes(ip: string): Buffer {
  const [head = '', tail = ''] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  groups.forEach((g, k) => b.writeUInt16BE(parseInt(g, 16), 2 * k));
  return b;
}

/** A PROXY v2 header (proxy-protocol.txt §2.2), optionally with TLVs after the addresses. */
function proxyV2(command: 'PROXY' | 'LOCAL', src: { ip: string; port: number }, dst: { ip: string; port: number }, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const sig = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
  const v6 = src.ip.includes(':');
  const addr = v6
    ? Buffer.concat([ipv6Bytes(src.ip), ipv6Bytes(dst.ip), Buffer.alloc(4)])
    : Buffer.concat([Buffer.from(src.ip.split('.').map(Number)), Buffer.from(dst.ip.split('.').map(Number)), Buffer.alloc(4)]);
  addr.writeUInt16BE(src.port, addr.length - 4);
  addr.writeUInt16BE(dst.port, addr.length - 2);
  const head = Buffer.alloc(4);
  head[0] = 0x20 | (command === 'PROXY' ? 1 : 0);
  head[1] = v6 ? 0x21 : 0x11; // AF_INET6 / AF_INET, STREAM
  head.writeUInt16BE(addr.length + tlvs.length, 2);
  return Buffer.concat([sig, head, addr, tlvs]);
}

/** EHLO, a message to alice, QUIT; returns the envelope and stored body. */
async function deliver(c: SmtpClient, helo: string, auth = false): Promise<{ ehlo: string; id: string }> {
  const e = await c.ehlo(helo);
  assert.equal(e.code, 250);
  if (auth) assert.equal((await c.cmd(`AUTH PLAIN ${Buffer.from(`\0alice@${DOMAIN}\0alice-secret`).toString('base64')}`)).code, 235);
  const r = await c.sendMail('sender@remote.test', [`alice@${DOMAIN}`], 'Subject: via proxy\r\n\r\nx\r\n');
  assert.equal(r.code, 250, r.raw);
  await c.quit();
  return { ehlo: e.lines[0] ?? '', id: Server.idOf(r.text) };
}

describe('PROXY protocol', () => {
  test('v1 TCP4 from the trusted proxy sets the client address (envelope client.ip, client.via, Received)', async () => {
    const { c, greeting } = await connectGreeted(server.ports.smtp, { localAddress: PROXY_HOST, prefix: 'PROXY TCP4 192.0.2.10 192.0.2.1 40000 25\r\n' });
    try {
      assert.equal(greeting.code, 220);
      const { ehlo, id } = await deliver(c, 'behind-proxy.example');
      assert.match(ehlo, /\[192\.0\.2\.10\]/);
      const env = server.envelope(id);
      assert.deepEqual(env.client, { ip: '192.0.2.10', port: 40000, helo: 'behind-proxy.example', via: PROXY_HOST });
      assert.match(server.body(id), /^Received: from behind-proxy\.example \(\[192\.0\.2\.10\] via 127\.0\.0\.9\)\r\n/);
    } finally {
      c.destroy();
    }
  });

  test('v1 TCP6 from the trusted proxy, with the first command in the same packet', async () => {
    const { c, greeting } = await connectGreeted(server.ports.smtp, {
      localAddress: PROXY_HOST,
      prefix: 'PROXY TCP6 2001:db8::7 2001:db8::1 40001 25\r\nEHLO v6.example\r\n',
    });
    try {
      assert.equal(greeting.code, 220);
      const ehlo = await c.read();
      assert.match(ehlo.lines[0] ?? '', /Hello v6\.example \[2001:db8::7\]/);
      const { id } = await deliver(c, 'v6.example');
      assert.equal(server.envelope(id).client.ip, '2001:db8::7');
      assert.match(server.body(id), /\(\[IPv6:2001:db8::7\] via 127\.0\.0\.9\)/);
    } finally {
      c.destroy();
    }
  });

  test('v2 (binary, with a TLV) from the trusted proxy sets the client address', async () => {
    const authority = Buffer.concat([Buffer.from([0x02, 0x00, 15]), Buffer.from('mx.example.test')]);
    const header = proxyV2('PROXY', { ip: '198.51.100.20', port: 50000 }, { ip: '192.0.2.1', port: 25 }, authority);
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: PROXY_HOST, prefix: header });
    try {
      const { id } = await deliver(c, 'v2.example');
      assert.deepEqual(server.envelope(id).client, { ip: '198.51.100.20', port: 50000, helo: 'v2.example', via: PROXY_HOST });
    } finally {
      c.destroy();
    }
  });

  test('v2 in front of implicit TLS on the smtps port, header and ClientHello in one packet (then AUTH and submission)', async () => {
    const header = proxyV2('PROXY', { ip: '203.0.113.5', port: 50001 }, { ip: '192.0.2.1', port: 465 });
    const { c } = await connectGreeted(server.ports.smtps, { localAddress: PROXY_HOST, prefix: header, tls: true });
    try {
      const { id } = await deliver(c, 'tls-behind-proxy.example', true);
      const env = server.envelope(id);
      assert.equal(env.client.ip, '203.0.113.5');
      assert.equal(env.client.via, PROXY_HOST);
      assert.ok(env.tls !== null);
    } finally {
      c.destroy();
    }
  });

  test('v2 LOCAL (a health check) keeps the connection\'s own address', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: PROXY_HOST, prefix: proxyV2('LOCAL', { ip: '0.0.0.0', port: 0 }, { ip: '0.0.0.0', port: 0 }) });
    try {
      const { id } = await deliver(c, 'health.example');
      assert.equal(server.envelope(id).client.ip, PROXY_HOST);
      assert.equal(server.envelope(id).client.via, null);
    } finally {
      c.destroy();
    }
  });

  test('swaks --proxy-version 2 from the trusted proxy', async () => {
    const r = await swaks([
      '--server', `127.0.0.1:${server.ports.smtp}`, '--local-interface', PROXY_HOST,
      '--proxy-version', '2', '--proxy-family', 'AF_INET', '--proxy-source', '192.0.2.77', '--proxy-source-port', '41000',
      '--proxy-dest', '192.0.2.1', '--proxy-dest-port', '25',
      '--from', 'a@remote.test', '--to', `alice@${DOMAIN}`,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const env = server.envelope(Server.idOf(r.stdout));
    assert.equal(env.client.ip, '192.0.2.77');
    assert.equal(env.client.via, PROXY_HOST);
  });

  test('smtp.maxconnectionsperip counts the clients behind the proxy, not the proxy itself', async () => {
    const open: SmtpClient[] = [];
    const via = async (client: string): Promise<string> => {
      const { c, greeting } = await connectGreeted(server.ports.smtp, { localAddress: PROXY_HOST, prefix: `PROXY TCP4 ${client} 192.0.2.1 40000 25\r\n` });
      open.push(c);
      return status(greeting);
    };
    try {
      // Three different clients through one proxy: more than the per-address limit of 2.
      assert.deepEqual([await via('192.0.2.201'), await via('192.0.2.202'), await via('192.0.2.203')], ['220', '220', '220']);
      // A third connection of one client is over its limit.
      assert.equal(await via('192.0.2.201'), '220');
      assert.equal(await via('192.0.2.201'), '421 4.7.0');
      await server.waitForLog('smtp-connection-refused', (r) => r.client === '192.0.2.201');
    } finally {
      for (const c of open) c.destroy();
    }
  });

  test('the trusted proxy must send a header: anything else ends the connection without a greeting', async () => {
    const c = await SmtpClient.connect(server.ports.smtp, { localAddress: PROXY_HOST, prefix: 'EHLO no-header.example\r\n' });
    try {
      assert.ok(await c.waitClosed(), 'closed');
      assert.equal(c.received, '', 'no greeting, no reply');
      await server.waitForLog('smtp-proxy-bad-header');
    } finally {
      c.destroy();
    }
  });

  test('PROXY v1 from an untrusted host is just a bad command (500 5.5.2); the real address is kept', async () => {
    const { c, greeting } = await connectGreeted(server.ports.smtp, { localAddress: STRANGER });
    try {
      assert.equal(greeting.code, 220);
      assert.equal(status(await c.cmd('PROXY TCP4 192.0.2.10 192.0.2.1 40000 25')), '500 5.5.2');
      const { ehlo, id } = await deliver(c, 'liar.example');
      assert.match(ehlo, /\[127\.0\.0\.7\]/);
      assert.deepEqual(server.envelope(id).client, { ip: STRANGER, port: server.envelope(id).client.port, helo: 'liar.example', via: null });
    } finally {
      c.destroy();
    }
  });

  test('PROXY v2 from an untrusted host is not honoured (its signature reads as junk then QUIT: 221, closed)', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: STRANGER });
    try {
      await c.write(proxyV2('PROXY', { ip: '192.0.2.10', port: 40000 }, { ip: '192.0.2.1', port: 25 }));
      assert.ok(await c.waitClosed());
      assert.match(c.received, /^221 /m);
      assert.doesNotMatch(c.received, /192\.0\.2\.10/);
    } finally {
      c.destroy();
    }
  });
});

describe('XCLIENT', () => {
  test('from the trusted host: advertised; ADDR/NAME/HELO replace the client facts (envelope client.ip, client.via)', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: XCLIENT_HOST });
    try {
      const e = await c.ehlo('frontend.example');
      assert.ok(e.lines.some((l) => l.startsWith('XCLIENT ') && l.includes('ADDR')), e.raw);
      const x = await c.cmd('XCLIENT ADDR=192.0.2.55 PORT=41234 NAME=spike.example');
      assert.equal(x.code, 220, 'a fresh greeting (Postfix semantics)');
      const { ehlo, id } = await deliver(c, 'real-client.example');
      assert.match(ehlo, /\[192\.0\.2\.55\]/);
      assert.deepEqual(server.envelope(id).client, { ip: '192.0.2.55', port: 41234, helo: 'real-client.example', via: XCLIENT_HOST });
      await server.waitForLog('smtp-xclient', (r) => r.client === '192.0.2.55');
    } finally {
      c.destroy();
    }
  });

  test('XCLIENT values are xtext (RFC 3461 §4); malformed ones and control characters (header injection) get 501 5.5.4', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: XCLIENT_HOST });
    try {
      await c.ehlo('frontend.example');
      assert.equal(status(await c.cmd('XCLIENT HELO=evil+0D+0AX-Injected:+20yes')), '501 5.5.4');
      assert.equal(status(await c.cmd('XCLIENT NAME=bad+ZZescape')), '501 5.5.4');
      assert.equal((await c.cmd('XCLIENT ADDR=192.0.2.56 HELO=caf+E9.example')).code, 220, 'a non-ASCII octet is fine');
      const { id } = await deliver(c, 'after-xclient.example');
      const eml = server.body(id);
      assert.doesNotMatch(eml, /X-Injected/);
      assert.equal(server.envelope(id).client.ip, '192.0.2.56');
    } finally {
      c.destroy();
    }
    assert.deepEqual(server.faults(), [], 'no session fault from XCLIENT values');
  });

  test('swaks --xclient-addr from the trusted host', async () => {
    const r = await swaks([
      '--server', `127.0.0.1:${server.ports.smtp}`, '--local-interface', XCLIENT_HOST,
      '--xclient-addr', '192.0.2.66', '--xclient-helo', 'xhelo.example',
      '--from', 'a@remote.test', '--to', `alice@${DOMAIN}`,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const env = server.envelope(Server.idOf(r.stdout));
    assert.equal(env.client.ip, '192.0.2.66');
    assert.equal(env.client.via, XCLIENT_HOST);
  });

  test('from an untrusted host: not advertised, refused with 550 5.7.0, the address is unchanged', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: STRANGER });
    try {
      const e = await c.ehlo('stranger.example');
      assert.ok(!e.lines.some((l) => l.startsWith('XCLIENT')));
      assert.equal(status(await c.cmd('XCLIENT ADDR=192.0.2.55')), '550 5.7.0');
      const { id } = await deliver(c, 'stranger.example');
      assert.equal(server.envelope(id).client.ip, STRANGER);
      assert.equal(server.envelope(id).client.via, null);
    } finally {
      c.destroy();
    }
  });

  test('a PROXY header naming the XCLIENT host does not grant XCLIENT: the decision uses the real peer', async () => {
    const { c } = await connectGreeted(server.ports.smtp, { localAddress: PROXY_HOST, prefix: `PROXY TCP4 ${XCLIENT_HOST} 192.0.2.1 40000 25\r\n` });
    try {
      const e = await c.ehlo('sneaky.example');
      assert.ok(!e.lines.some((l) => l.startsWith('XCLIENT')));
      assert.equal(status(await c.cmd('XCLIENT ADDR=192.0.2.99')), '550 5.7.0');
      await c.quit();
    } finally {
      c.destroy();
    }
  });

  test('swaks: XCLIENT from an untrusted host fails', async () => {
    const r = await swaks(['--server', `127.0.0.1:${server.ports.smtp}`, '--local-interface', STRANGER, '--xclient-addr', '192.0.2.66', '--from', 'a@remote.test', '--to', `alice@${DOMAIN}`]);
    assert.notEqual(r.code, 0, 'swaks requires a successful XCLIENT');
    assert.match(r.stdout + r.stderr, /XCLIENT/);
  });
});

test('the server reported no internal faults and left no debris in the spool', async () => {
  assert.ok(server.running, 'server still running');
  assert.deepEqual(server.faults(), []);
  assert.deepEqual(await server.settledDebris(), [], 'no partial files left in the queue');
});
