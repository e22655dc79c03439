import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { corsHeadersFor, httpRequestOf } from '../../../functions/chat-stream/http-request.ts';
import { CORS_SETTINGS } from '../../../functions/contracts/cors.ts';
import { restProxyEvent } from '../../support/api-gateway-event.ts';

const functionUrlEvent = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../../events/function-url/chat-valid.json'), 'utf8'),
) as LambdaFunctionURLEvent;

describe('one request from either front door', () => {
  it('reads header names as data: constructor and __proto__ are headers, not Object.prototype', () => {
    const request = httpRequestOf(
      restProxyEvent({
        method: 'GET',
        path: '/sessions',
        // JSON.parse, as the runtime parses an event: `__proto__` becomes an own key, not the prototype.
        headers: JSON.parse('{"constructor":["a"],"__proto__":["b"],"toString":["c"]}'),
        query: { constructor: ['d'] },
      }),
    );
    expect(request.headers.constructor).toBe('a');
    expect(Object.getOwnPropertyDescriptor(request.headers, '__proto__')?.value).toBe('b');
    expect(request.headers.tostring).toBe('c');
    expect(request.queryStringParameters?.constructor).toBe('d');
  });

  it('a REST proxy event: method, stage-less path, lower-case headers with repeats joined as the Function URL joins them', () => {
    const request = httpRequestOf(
      restProxyEvent({
        method: 'GET',
        path: '/sessions',
        headers: {
          Authorization: ['Bearer one', 'Bearer two'],
          'Content-Type': ['application/json'],
          accept: ['text/plain'],
          Accept: ['application/json'],
        },
        query: { limit: ['5'], cursor: ['a', 'b'] },
      }),
    );
    expect(request).toEqual({
      method: 'GET',
      path: '/sessions',
      headers: {
        host: 'api123.execute-api.us-east-1.amazonaws.com',
        'x-forwarded-proto': 'https',
        // Two Authorization headers stay two: one joined value no JWT parses (401), never the last one.
        authorization: 'Bearer one,Bearer two',
        'content-type': 'application/json',
        accept: 'text/plain,application/json',
      },
      queryStringParameters: { limit: '5', cursor: 'a,b' },
      isBase64Encoded: false,
    });
  });

  it('a REST body as is, base64 flag included; no query string means no parameters', () => {
    const event = {
      ...restProxyEvent({ method: 'POST', path: '/', body: 'eyJhIjoxfQ==' }),
      isBase64Encoded: true,
    };
    const request = httpRequestOf(event);
    expect(request).toMatchObject({ method: 'POST', path: '/', body: 'eyJhIjoxfQ==', isBase64Encoded: true });
    expect(request).not.toHaveProperty('queryStringParameters');
  });

  it('a REST event without the multi-value maps falls back to the single-value ones', () => {
    const event = {
      ...restProxyEvent({
        method: 'GET',
        path: '/usage',
        headers: { Origin: ['https://chat.example.com'] },
        query: { a: ['1'] },
      }),
      multiValueHeaders: undefined as never,
      multiValueQueryStringParameters: null,
    };
    expect(httpRequestOf(event)).toMatchObject({
      headers: { origin: 'https://chat.example.com' },
      queryStringParameters: { a: '1' },
    });
  });

  it('a Function URL event keeps its own fields', () => {
    expect(httpRequestOf(functionUrlEvent)).toEqual({
      method: 'POST',
      path: '/',
      headers: functionUrlEvent.headers,
      body: functionUrlEvent.body,
      isBase64Encoded: false,
    });
  });
});

describe('CORS headers behind API Gateway', () => {
  const allowed = ['https://chat.example.com', 'http://localhost:5173'];

  it('echo an allowed origin and expose the headers a browser client reads', () => {
    expect(corsHeadersFor('http://localhost:5173', allowed)).toEqual({
      vary: 'Origin',
      'access-control-allow-origin': 'http://localhost:5173',
      'access-control-expose-headers': CORS_SETTINGS.exposeHeaders.join(', '),
    });
  });

  it('allow no other origin (only Vary, since the answer depends on Origin), and none at all behind a Function URL', () => {
    expect(corsHeadersFor('https://evil.example', allowed)).toEqual({ vary: 'Origin' });
    expect(corsHeadersFor('https://chat.example.com.evil.example', allowed)).toEqual({ vary: 'Origin' });
    expect(corsHeadersFor(undefined, allowed)).toEqual({ vary: 'Origin' });
    expect(corsHeadersFor('https://chat.example.com', [])).toEqual({});
  });
});
