import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { CORS_SETTINGS } from '../../../functions/contracts/cors.ts';
import {
  type FunctionUrlServer,
  type StreamingHandler,
  startFunctionUrl,
} from '../../../local/lambda-runtime/function-url.ts';
import { HttpResponseStream, streamifyResponse } from '../../../local/lambda-runtime/response-stream.ts';
import { deferred } from '../../support/deferred.ts';
import { readRest } from '../../support/streams.ts';

let server: FunctionUrlServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const start = async (handler: StreamingHandler, holdBelowBytes = 0) => {
  server = await startFunctionUrl({ handler: streamifyResponse(handler), holdBelowBytes });
  return server.url;
};

/** Reads a response chunk by chunk, recording when each arrived. */
async function readChunks(url: string, init?: RequestInit) {
  const response = await fetch(url, init);
  const chunks: Array<{ text: string; at: number }> = [];
  const decoder = new TextDecoder();
  for await (const chunk of response.body ?? [])
    chunks.push({ text: decoder.decode(chunk), at: performance.now() });
  return { response, chunks, text: chunks.map((c) => c.text).join('') };
}

describe('Function URL emulator (RESPONSE_STREAM)', () => {
  it('builds a payload format 2.0 event with the fields AWS sends', async () => {
    let seen: unknown;
    const url = await start(async (event, stream) => {
      seen = event;
      stream.end('ok');
    });
    await readChunks(`${url}/chat/path?a=1&b=2&a=3`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-Custom': 'Yes', cookie: 'c1=v1; c2=v2' },
      body: '{"hello":"world"}',
    });
    expect(seen).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/chat/path',
      rawQueryString: 'a=1&b=2&a=3',
      cookies: ['c1=v1', 'c2=v2'],
      headers: { 'content-type': 'application/json', 'x-custom': 'Yes' },
      queryStringParameters: { a: '1,3', b: '2' },
      requestContext: {
        http: { method: 'POST', path: '/chat/path', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1' },
        routeKey: '$default',
        stage: '$default',
      },
      body: '{"hello":"world"}',
      isBase64Encoded: false,
    });
    const ctx = (seen as { requestContext: { requestId: string; time: string; timeEpoch: number } })
      .requestContext;
    expect(ctx.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ctx.time).toMatch(/^\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    expect(Math.abs(ctx.timeEpoch - Date.now())).toBeLessThan(60_000);
  });

  it('base64-encodes a binary body', async () => {
    let seen: { body?: string | null; isBase64Encoded: boolean } | undefined;
    const url = await start(async (event, stream) => {
      seen = event;
      stream.end();
    });
    await readChunks(url, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([0, 1, 2, 255]),
    });
    expect(seen?.isBase64Encoded).toBe(true);
    expect(Buffer.from(seen?.body ?? '', 'base64')).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  it('delivers the first chunk before the handler finishes', async () => {
    const { promise: gate, resolve: release } = deferred();
    let handlerFinished = false;
    const url = await start(async (_event, stream) => {
      stream.write('first\n');
      await gate;
      stream.end('last\n');
      handlerFinished = true;
    });
    const response = await fetch(url, { method: 'POST' });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('first\n');
    expect(handlerFinished).toBe(false);
    release();
    expect(await readRest(reader)).toBe('last\n');
    expect(handlerFinished).toBe(true);
  });

  it('maps the HttpResponseStream prelude to status, headers and cookies', async () => {
    const url = await start(async (_event, stream) => {
      const out = HttpResponseStream.from(stream, {
        statusCode: 201,
        headers: { 'content-type': 'text/event-stream', 'x-trace': 'abc' },
        cookies: ['session=1; Path=/'],
      });
      out.write('data: 1\n\n');
      out.end();
    });
    const { response, text } = await readChunks(url, { method: 'POST' });
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('x-trace')).toBe('abc');
    expect(response.headers.get('set-cookie')).toBe('session=1; Path=/');
    expect(response.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(text).toBe('data: 1\n\n');
    // One first-body-byte time per streamed request, for the benchmark.
    expect(server?.firstBodyByteMs).toHaveLength(1);
  });

  it('ends the HTTP response when the stream ends, even if the handler keeps working', async () => {
    const { promise: gate, resolve: release } = deferred();
    let handlerReturned = false;
    const url = await start(async (_event, stream) => {
      stream.end('done');
      await gate;
      handlerReturned = true;
    });
    const { text } = await readChunks(url, { method: 'POST' });
    expect(text).toBe('done');
    expect(handlerReturned).toBe(false);
    release();
  });

  it('answers 413 for a body over 6 MB, without invoking the handler', async () => {
    let invoked = false;
    const url = await start(async (_event, stream) => {
      invoked = true;
      stream.end();
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(Buffer.alloc(6 * 1024 * 1024 + 1, 'a'));
    });
    expect(status).toBe(413);
    expect(invoked).toBe(false);
  });

  it('answers 502 when the handler throws before writing', async () => {
    const url = await start(async () => {
      throw new Error('boom');
    });
    const { response, text } = await readChunks(url, { method: 'POST' });
    expect(response.status).toBe(502);
    expect(JSON.parse(text)).toEqual({ message: 'Internal Server Error' });
  });

  it('in hold mode holds a small write until the next write, and lets a large one through', async () => {
    const { promise: gate, resolve: release } = deferred();
    const url = await start(async (_event, stream) => {
      stream.write('small');
      stream.write('x'.repeat(2048));
      await gate;
      stream.write('tiny');
      await new Promise((r) => setTimeout(r, 50));
      stream.end();
    }, 1024);
    const response = await fetch(url, { method: 'POST' });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let received = '';
    while (received.length < 5 + 2048) received += new TextDecoder().decode((await reader.read()).value);
    expect(received).toBe(`small${'x'.repeat(2048)}`);
    release();
    expect(await readRest(reader)).toBe('tiny');
  });

  it('in hold mode a small write alone does not reach the client until the next write', async () => {
    const { promise: gate, resolve: release } = deferred();
    let secondWritten = false;
    const url = await start(async (_event, stream) => {
      stream.write('small');
      await gate;
      secondWritten = true;
      stream.end('second');
    }, 1024);
    // Nothing, not even the status line, leaves before the held write is released by the next one.
    setTimeout(release, 100);
    const response = await fetch(url, { method: 'POST' });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(secondWritten).toBe(true);
    expect(new TextDecoder().decode(first.value)).toContain('small');
  });
});

describe('Function URL emulator: CORS and disconnects, as Lambda behaves', () => {
  it('answers a preflight from the CORS contract without invoking the function, and marks responses for allowed origins only', async () => {
    let invocations = 0;
    server = await startFunctionUrl({
      handler: streamifyResponse(async (_event, stream) => {
        invocations++;
        const out = HttpResponseStream.from(stream, {
          statusCode: 200,
          headers: { 'content-type': 'text/plain' },
        });
        out.end('ok');
      }),
      allowOrigins: ['http://page.local:5173'],
    });
    const preflight = await fetch(`${server.url}/api/chat`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://page.local:5173',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    expect(preflight.status).toBe(200);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://page.local:5173');
    expect(preflight.headers.get('access-control-allow-methods')).toBe(CORS_SETTINGS.allowMethods.join(', '));
    expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(preflight.headers.get('access-control-max-age')).toBe(String(CORS_SETTINGS.maxAgeSeconds));
    expect(invocations).toBe(0);

    const allowed = await fetch(server.url, {
      method: 'POST',
      headers: { origin: 'http://page.local:5173' },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('http://page.local:5173');
    expect(allowed.headers.get('access-control-expose-headers')).toContain('x-session-id');
    await allowed.text();
    const other = await fetch(server.url, { method: 'POST', headers: { origin: 'http://evil.local' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    await other.text();
    expect(invocations).toBe(2);
  });

  it('never tells the handler that the client went away: it writes to its end and returns normally', async () => {
    const finished = deferred();
    let result = { writes: 0, errored: true };
    server = await startFunctionUrl({
      handler: streamifyResponse(async (_event, stream) => {
        const out = HttpResponseStream.from(stream, {
          statusCode: 200,
          headers: { 'content-type': 'text/plain' },
        });
        let errored = false;
        out.on('error', () => {
          errored = true;
        });
        let writes = 0;
        for (; writes < 20; writes++) {
          out.write(`chunk ${writes}\n`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        out.end();
        result = { writes, errored };
        finished.resolve();
      }),
    });
    const abort = new AbortController();
    const response = await fetch(server.url, { method: 'POST', signal: abort.signal });
    const reader = response.body?.getReader();
    await reader?.read();
    abort.abort();
    await finished.promise;
    expect(result).toEqual({ writes: 20, errored: false });
  });
});
