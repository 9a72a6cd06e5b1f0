// A TCP port nothing listens on right now, for a test or benchmark peer to bind. Another process
// may take it before the peer binds; callers that care retry with a new one (harness.ts does).
import net from 'node:net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
