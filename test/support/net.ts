// A free TCP port on 127.0.0.1, for test servers that must be told their port
// up front (sshd, the HTTP gateway, the demo). Racy by nature: callers that
// can, retry on "address in use".

import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('could not pick a free port'));
      srv.close(() => resolve(addr.port));
    });
  });
}
