import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelDeliverer } from './channel-deliverer.js';
import type { DeliveryOptions } from '../config/types.js';
import type { Transport } from '../delivery/index.js';
import type { Target } from './state.js';

const unused: Transport = {
  deliver: () => Promise.reject(new Error('no transport in this test')),
  close: () => Promise.resolve(),
};

function deliverer(smarthost: DeliveryOptions['smarthost'] = null): ChannelDeliverer {
  return new ChannelDeliverer({
    options: () => ({ smarthost }) as DeliveryOptions,
    smtp: unused,
    lmtp: () => null,
    mailboxRoot: '/nonexistent',
    mailboxExists: () => false,
    protocolOf: (c) => (c === 'tcp_lmtpcs' ? 'lmtp' : c === 'relay_out' ? 'smtp' : null),
  });
}

function target(channel: string, address = 'bob@Remote.Example'): Target {
  return { rcpt: 0, address, channel, status: 'pending', attempts: 0, nextAttemptAt: 0, diagnostic: null, remote: null, dsnStatus: null };
}

test('destinations by channel kind: the store (ims-ms, l, an lmtp channel), SMTP by MX (tcp_*, an smtp channel), bitbucket, nothing', () => {
  const d = deliverer();
  assert.equal(d.destinationOf(target('ims-ms')), 'store');
  assert.equal(d.destinationOf(target('l')), 'store');
  assert.equal(d.destinationOf(target('tcp_lmtpcs')), 'store', 'Messaging Server tcp_lmtpcs: its lmtp keyword, not its tcp_ name');
  assert.equal(d.destinationOf(target('tcp_local')), 'mx:remote.example');
  assert.equal(d.destinationOf(target('relay_out')), 'mx:remote.example');
  assert.equal(d.destinationOf(target('tcp_local', '@hop.example,@b.example:u@c.example')), 'mx:hop.example', 'a source route goes to its first hop');
  assert.equal(d.destinationOf(target('bitbucket')), 'bitbucket');
  assert.equal(d.destinationOf(target('uucp')), 'channel:uucp');
  assert.equal(deliverer({ host: 'relay.example.net', port: 587 }).destinationOf(target('tcp_local')), 'smarthost:relay.example.net:587');
});

test('a channel with no delivery method fails its recipients for good (5.3.5), not queued for ever', async () => {
  const none = { streamed: false, buffer: () => Promise.reject(new Error('not read')), streams: () => Promise.reject(new Error('not read')) };
  const out = await deliverer().deliver({ channel: 'uucp', destination: 'channel:uucp', targets: [target('uucp')] }, {} as never, none);
  assert.deepEqual(out.map((o) => [o.kind, o.dsnStatus]), [['permanent', '5.3.5']]);
});
