/** Closed-loop JSON POSTs to the plain REST server over keep-alive connections. */
import { Agent, request } from 'node:http';
import { closedLoop, type LoadResult, type Window } from 'infermesh-cli/load';

export async function loadRest(url: string, bodies: string[], concurrency: number, window: Window): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  let next = 0;
  const send = () =>
    new Promise<void>((resolve, reject) => {
      const body = bodies[next++ % bodies.length];
      const req = request({ agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString()}`));
          JSON.parse(Buffer.concat(chunks).toString('utf8'));
          resolve();
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  try {
    return await closedLoop(send, concurrency, window);
  } finally {
    agent.destroy();
  }
}
