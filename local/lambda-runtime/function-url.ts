import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { CORS_SETTINGS } from '../../functions/contracts/cors.ts';
import { lambdaContext } from './context.ts';
import type { EnvironmentMessage, InvokeMessage } from './environment-worker.ts';
import { type Prelude, PreludeSplitter, runStreamingHandler } from './invocation.ts';
import { STREAMING_HANDLER, type StreamingHandler } from './response-stream.ts';

/** The invoke payload limit of a Function URL (6 MB), as Lambda enforces it. */
const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

// Defined beside the response stream so the worker and the invocation code need not import this module
// (that made a cycle); re-exported here, where the stack and the tests look for it.
export type { StreamingHandler };

/** Where each invocation runs: in this process, or in execution environments of their own (workers). */
type FunctionSource =
  | { handler: StreamingHandler }
  | {
      /** A module exporting the streaming handler; each environment imports it once (its cold start). */
      module: { path: string; exportName: string };
      /** Most environments alive at once; further requests wait for a free one. */
      maxEnvironments?: number;
    };

export type FunctionUrlOptions = FunctionSource & {
  port?: number;
  host?: string;
  functionName?: string;
  /** Models the production hold: a write smaller than this many bytes waits for the next write or the end. 0 = off. */
  holdBelowBytes?: number;
  timeoutMs?: number;
  /**
   * The Function URL's CORS configuration (`'*'` or exact origins), answered as Lambda does: preflights
   * without invoking the function, and the allow and expose headers on every response to an allowed
   * origin. Methods, headers and max age come from the same contract the CDK stack configures.
   */
  allowOrigins?: string[];
};

export interface FunctionUrlServer {
  url: string;
  server: Server;
  /** Milliseconds from each request's arrival to its first body byte handed to the socket (newest last). */
  firstBodyByteMs: number[];
  close(): Promise<void>;
}

const TEXT_CONTENT = /^(text\/|application\/(json|.*\+json|xml|.*\+xml|javascript|x-www-form-urlencoded))/i;

function toFunctionUrlEvent(
  req: IncomingMessage,
  body: Buffer,
  requestId: string,
  now = new Date(),
): LambdaFunctionURLEvent {
  const url = new URL(req.url ?? '/', 'http://localhost');
  // Payload format 2.0 combines duplicate headers with commas. Node's `headers` keeps only the first of
  // some (Authorization among them): a second Authorization must reach the function as Lambda gives it.
  const headers: Record<string, string> = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (name === 'cookie' || values === undefined) continue;
    headers[name.toLowerCase()] = values.join(',');
  }
  const cookies = req.headersDistinct.cookie?.flatMap((line) => line.split(/;\s*/)).filter(Boolean);
  const queryStringParameters: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    queryStringParameters[key] =
      key in queryStringParameters ? `${queryStringParameters[key]},${value}` : value;
  }
  const host = headers.host ?? 'localhost';
  const isText = TEXT_CONTENT.test(headers['content-type'] ?? '');
  const event: LambdaFunctionURLEvent = {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'local',
      domainName: host,
      domainPrefix: host.split('.')[0] ?? host,
      http: {
        method: req.method ?? 'GET',
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: formatRequestTime(now),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: body.length > 0 && !isText,
  };
  if (cookies?.length) event.cookies = cookies;
  if (url.searchParams.size > 0) event.queryStringParameters = queryStringParameters;
  if (body.length > 0) event.body = isText ? body.toString('utf8') : body.toString('base64');
  return event;
}

function formatRequestTime(d: Date): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getUTCDate())}/${months[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/**
 * Turns the bytes a streaming handler writes into an HTTP response: the HTTP-integration prelude
 * (status, headers, cookies) becomes the status line and headers, the rest is sent as it arrives.
 */
/** CORS response headers for a request's Origin, or none when the origin is not allowed. */
function corsHeaders(origin: string | undefined, allowOrigins: string[]): Record<string, string> {
  if (!origin || allowOrigins.length === 0) return {};
  if (!allowOrigins.includes('*') && !allowOrigins.includes(origin)) return {};
  return {
    'access-control-allow-origin': allowOrigins.includes('*') ? '*' : origin,
    'access-control-expose-headers': CORS_SETTINGS.exposeHeaders.join(', '),
    ...(allowOrigins.includes('*') ? {} : { vary: 'Origin' }),
  };
}

function answerPreflight(
  req: IncomingMessage,
  res: ServerResponse,
  allowOrigins: string[],
  requestId: string,
) {
  const allowed = corsHeaders(req.headers.origin, allowOrigins);
  res.writeHead(200, {
    ...(allowed['access-control-allow-origin']
      ? {
          'access-control-allow-origin': allowed['access-control-allow-origin'],
          'access-control-allow-methods': CORS_SETTINGS.allowMethods.join(', '),
          'access-control-allow-headers': CORS_SETTINGS.allowHeaders.join(', '),
          'access-control-max-age': String(CORS_SETTINGS.maxAgeSeconds),
        }
      : {}),
    'x-amzn-requestid': requestId,
  });
  res.end();
}

class ResponseRelay {
  #res: ServerResponse;
  #contentType = 'application/octet-stream';
  #held: Buffer | undefined;
  readonly #splitter: PreludeSplitter;
  readonly #holdBelowBytes: number;
  readonly #requestId: string;
  readonly #onFirstBodyByte: () => void;
  #bodyStarted = false;

  readonly #cors: Record<string, string>;

  constructor(
    res: ServerResponse,
    holdBelowBytes: number,
    requestId: string,
    onFirstBodyByte: () => void,
    cors: Record<string, string>,
  ) {
    this.#res = res;
    this.#cors = cors;
    this.#holdBelowBytes = holdBelowBytes;
    this.#requestId = requestId;
    this.#onFirstBodyByte = onFirstBodyByte;
    this.#splitter = new PreludeSplitter(
      (prelude) => this.#writeHead(prelude),
      (bytes) => this.#writeBody(bytes),
    );
  }

  get bytesStarted(): boolean {
    return this.#splitter.started || this.#held !== undefined;
  }

  /** One handler write; `contentType` is the stream's, fixed by its first write. */
  write(unit: Buffer, contentType: string): void {
    this.#contentType = contentType;
    if (this.#holdBelowBytes <= 0) {
      this.#send(unit);
      return;
    }
    if (this.#held) {
      this.#send(this.#held);
      this.#held = undefined;
    }
    if (unit.length < this.#holdBelowBytes) this.#held = unit;
    else this.#send(unit);
  }

  end(): void {
    if (this.#held) this.#send(this.#held);
    this.#held = undefined;
    this.#splitter.end();
    this.#res.end();
  }

  #send(bytes: Buffer): void {
    this.#splitter.push(bytes, this.#contentType);
  }

  #writeBody(bytes: Buffer): void {
    this.#res.write(bytes);
    if (!this.#bodyStarted) {
      this.#bodyStarted = true;
      this.#onFirstBodyByte();
    }
  }

  #writeHead({ statusCode = 200, headers = {}, cookies = [] }: Prelude): void {
    // As in Lambda, the URL's CORS configuration overrides CORS headers the function set itself.
    const out: Record<string, string | string[]> = {
      ...headers,
      ...this.#cors,
      'x-amzn-requestid': this.#requestId,
    };
    if (cookies.length) out['set-cookie'] = cookies;
    this.#res.writeHead(statusCode, out);
    this.#res.flushHeaders();
  }
}

/** What an invocation reports: each write as it happens, and the end of the response stream. */
interface InvocationSink {
  unit(bytes: Buffer, contentType: string): void;
  finished(): void;
}

/** Runs one invocation; resolves when the handler returned, rejects when it threw. */
type Invoker = ((event: LambdaFunctionURLEvent, requestId: string, sink: InvocationSink) => Promise<void>) & {
  close?: () => Promise<void>;
};

function inProcessInvoker(handler: StreamingHandler, functionName: string, timeoutMs: number): Invoker {
  if ((handler as unknown as Record<symbol, unknown>)[STREAMING_HANDLER] !== 'response') {
    throw new Error('The handler is not wrapped with awslambda.streamifyResponse');
  }
  return async (event, requestId, sink) => {
    const run = runStreamingHandler(
      handler,
      event,
      lambdaContext({ functionName, requestId, timeoutMs }),
      sink.unit,
    );
    run.streamEnded.then(() => sink.finished());
    await run.returned;
  };
}

/**
 * Lambda's concurrency model: each environment serves one request at a time; a request that finds
 * none free gets a new one (a cold start), up to `max`, then waits.
 */
function environmentInvoker(
  module: { path: string; exportName: string },
  max: number,
  functionName: string,
  timeoutMs: number,
): Invoker {
  const idle: Worker[] = [];
  const all = new Set<Worker>();
  const waiting: Array<(worker: Worker) => void> = [];
  let nextId = 0;
  const spawn = async () => {
    const worker = new Worker(new URL('./environment-worker.ts', import.meta.url), {
      workerData: { modulePath: module.path, exportName: module.exportName },
    });
    all.add(worker);
    worker.once('exit', () => all.delete(worker));
    const [ready] = (await once(worker, 'message')) as [EnvironmentMessage];
    if (ready.type !== 'ready') throw new Error('environment failed to start');
    return worker;
  };
  const acquire = async (): Promise<Worker> => {
    const free = idle.pop();
    if (free) return free;
    if (all.size < max) return spawn();
    return new Promise((resolve) => waiting.push(resolve));
  };
  const release = (worker: Worker) => {
    const next = waiting.shift();
    if (next) next(worker);
    else idle.push(worker);
  };
  const invoke: Invoker = async (event, requestId, sink) => {
    const worker = await acquire();
    const id = ++nextId;
    try {
      await new Promise<void>((resolve, reject) => {
        const onMessage = (message: EnvironmentMessage) => {
          if (message.type === 'ready' || message.id !== id) return;
          if (message.type === 'unit') sink.unit(Buffer.from(message.bytes), message.contentType);
          else if (message.type === 'finished') sink.finished();
          else {
            worker.off('message', onMessage);
            worker.off('error', reject);
            if (message.type === 'done') resolve();
            else reject(new Error(message.message));
          }
        };
        worker.on('message', onMessage);
        worker.once('error', reject);
        worker.postMessage({
          type: 'invoke',
          id,
          event,
          requestId,
          functionName,
          timeoutMs,
        } satisfies InvokeMessage);
      });
      release(worker);
    } catch (error) {
      if (worker.threadId >= 0 && all.has(worker)) release(worker);
      throw error;
    }
  };
  invoke.close = async () => {
    await Promise.all([...all].map((worker) => worker.terminate()));
  };
  return invoke;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  requestId: string,
  cors: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...cors, 'x-amzn-requestid': requestId });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** An HTTP server that behaves like a Lambda Function URL in RESPONSE_STREAM mode in front of `handler`. */
export async function startFunctionUrl(options: FunctionUrlOptions): Promise<FunctionUrlServer> {
  const { functionName = 'chat-stream', holdBelowBytes = 0, timeoutMs = 60_000, allowOrigins = [] } = options;
  const invoke =
    'handler' in options
      ? inProcessInvoker(options.handler, functionName, timeoutMs)
      : environmentInvoker(options.module, options.maxEnvironments ?? 10, functionName, timeoutMs);
  const firstBodyByteMs: number[] = [];
  const server = createServer(async (req, res) => {
    const arrivedAt = performance.now();
    const requestId = randomUUID();
    if (req.method === 'OPTIONS' && allowOrigins.length > 0 && req.headers['access-control-request-method']) {
      req.resume();
      answerPreflight(req, res, allowOrigins, requestId);
      return;
    }
    const cors = corsHeaders(req.headers.origin, allowOrigins);
    const body = await readBody(req);
    if (body === undefined) {
      sendJson(res, 413, { message: 'Request Entity Too Large' }, requestId, cors);
      req.resume();
      return;
    }
    const relay = new ResponseRelay(
      res,
      holdBelowBytes,
      requestId,
      () => {
        firstBodyByteMs.push(performance.now() - arrivedAt);
        if (firstBodyByteMs.length > 100_000) firstBodyByteMs.shift();
      },
      cors,
    );
    let streamEnded: () => void = () => undefined;
    const ended = new Promise<void>((resolve) => {
      streamEnded = resolve;
    });
    const sink: InvocationSink = {
      unit: (bytes, contentType) => relay.write(bytes, contentType),
      finished: () => {
        relay.end();
        streamEnded();
      },
    };
    try {
      // The HTTP response ends with the stream; the handler may still be settling its writes.
      await invoke(toFunctionUrlEvent(req, body, requestId), requestId, sink);
      await ended;
    } catch (error) {
      console.error(
        JSON.stringify({ level: 'ERROR', message: 'function error', requestId, error: String(error) }),
      );
      if (!relay.bytesStarted && !res.headersSent)
        sendJson(res, 502, { message: 'Internal Server Error' }, requestId, cors);
      else res.destroy();
    }
  });
  server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    server,
    firstBodyByteMs,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await invoke.close?.();
    },
  };
}
