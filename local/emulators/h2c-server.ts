import { once } from 'node:events';
import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  createServer as createHttp2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import { type AddressInfo, createServer as createTcpServer, type Socket } from 'node:net';

export type AnyRequest = IncomingMessage | Http2ServerRequest;
/** What the emulators use of a response, common to HTTP/1.1 and HTTP/2 compatibility responses. */
export interface AnyResponse {
  writeHead(status: number, headers?: Record<string, string>): unknown;
  write(chunk: Uint8Array | string): boolean;
  end(chunk?: Uint8Array | string): unknown;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
}
export type RequestListener = (req: AnyRequest, res: AnyResponse) => void;

export interface ListeningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0');

/**
 * Serves HTTP/2 over cleartext with prior knowledge (what the AWS SDK's Bedrock clients speak to an
 * http:// endpoint) and HTTP/1.1 (curl, the aws cli) on the same port, told apart by the first bytes.
 */
export async function listenH2cAndHttp1(
  listener: RequestListener,
  port = 0,
  host = '127.0.0.1',
): Promise<ListeningServer> {
  const http1 = createHttp1Server(listener as (req: IncomingMessage, res: ServerResponse) => void);
  const http2 = createHttp2Server(listener as (req: Http2ServerRequest, res: Http2ServerResponse) => void);
  const sockets = new Set<Socket>();
  const tcp = createTcpServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.once('readable', () => {
      const head: Buffer | null = socket.read();
      if (head === null) return;
      socket.unshift(head);
      const isHttp2 = head.subarray(0, HTTP2_PREFACE.length).equals(HTTP2_PREFACE);
      (isHttp2 ? http2 : http1).emit('connection', socket);
    });
  });
  tcp.listen(port, host);
  await once(tcp, 'listening');
  const bound = (tcp.address() as AddressInfo).port;
  return {
    url: `http://${host}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        tcp.close(() => resolve());
      }),
  };
}

export async function readJson(req: AnyRequest): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

export function sendAwsError(res: AnyResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type });
  res.end(JSON.stringify({ message }));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
