import { once } from 'node:events';
import { createServer, type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FaultProxy {
  url: string;
  /** Added before each request is forwarded (latency injection); a function picks it per request. */
  delayMs: number | ((req: IncomingMessage) => number);
  /** While true, every request is answered with a 503 the AWS SDK reads as ServiceUnavailable. */
  failing: boolean;
  requests: number;
  close(): Promise<void>;
}

/** An HTTP/1.1 proxy in front of an emulator, to inject latency or outages without touching production code. */
export async function startFaultProxy(
  target: string,
  delayMs: FaultProxy['delayMs'] = 0,
): Promise<FaultProxy> {
  const upstream = new URL(target);
  const state: Pick<FaultProxy, 'delayMs' | 'failing' | 'requests'> = {
    delayMs,
    failing: false,
    requests: 0,
  };
  const server = createServer((req, res) => {
    state.requests++;
    const forward = () => {
      if (state.failing) {
        req.resume();
        res.writeHead(503, {
          'content-type': 'application/x-amz-json-1.0',
          'x-amzn-query-error': 'ServiceUnavailable;Receiver',
        });
        res.end(JSON.stringify({ __type: 'com.amazonaws#ServiceUnavailable', message: 'injected outage' }));
        return;
      }
      const proxied = request(
        {
          hostname: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      proxied.on('error', () => res.destroy());
      req.pipe(proxied);
    };
    const delay = typeof state.delayMs === 'function' ? state.delayMs(req) : state.delayMs;
    if (delay > 0) setTimeout(forward, delay);
    else forward();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
