import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORS_SETTINGS } from '../../../functions/contracts/cors.ts';
import { invokeStreaming } from '../../../local/lambda-runtime/invoke-streaming.ts';
import { sseEventTypes } from '../../../local/stack/sse-client.ts';
import { DEMO_USER, type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { restProxyEvent } from '../../support/api-gateway-event.ts';

// The real chat-stream handler behind `chat:frontDoor=apigateway`: API Gateway REST proxy events in, the
// streamed prelude and body out, through the local Lambda runtime (emulators; no Redis needed here).
const PAGE = 'https://chat.example.com';
let stack: LocalStack;
let token: string;
beforeAll(async () => {
  stack = await startLocalStack({
    redisUrl: null,
    poller: false,
    env: { CORS_ALLOWED_ORIGINS: `${PAGE},http://localhost:5173` },
  });
  token = await stack.issuer.mint(DEMO_USER);
}, 60_000);
afterAll(() => stack?.close());

const invoke = (request: Parameters<typeof restProxyEvent>[0]) =>
  invokeStreaming(stack.streamHandler, restProxyEvent(request));

describe('API Gateway REST proxy events through the chat-stream handler', () => {
  it('streams a turn, with CORS headers for the page origin', async () => {
    const chunks: string[] = [];
    const result = await invokeStreaming(
      stack.streamHandler,
      restProxyEvent({
        method: 'POST',
        path: '/',
        headers: {
          Authorization: [`Bearer ${token}`],
          'Content-Type': ['application/json'],
          Origin: [PAGE],
        },
        body: JSON.stringify({ message: 'What is a Roth IRA?', use_rag: false }),
      }),
      (text) => chunks.push(text),
    );
    expect(result.statusCode).toBe(200);
    expect(result.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(result.headers['access-control-allow-origin']).toBe(PAGE);
    expect(result.headers['access-control-expose-headers']).toBe(CORS_SETTINGS.exposeHeaders.join(', '));
    expect(result.headers.vary).toBe('Origin');
    const types = sseEventTypes(result.body);
    expect(types[0]).toBe('session_id');
    expect(types).toContain('token');
    expect(types.at(-1)).toBe('done');
    expect(chunks.length).toBeGreaterThan(1);
  });

  it('gives another origin no CORS headers, only Vary', async () => {
    const result = await invoke({
      method: 'GET',
      path: '/sessions',
      headers: { Authorization: [`Bearer ${token}`], Origin: ['https://evil.example'] },
    });
    expect(result.statusCode).toBe(200);
    expect(result.headers['access-control-allow-origin']).toBeUndefined();
    expect(result.headers['access-control-expose-headers']).toBeUndefined();
    expect(result.headers.vary).toBe('Origin');
  });

  it('refuses two Authorization headers with 401, CORS headers included so the page can read it', async () => {
    const result = await invoke({
      method: 'GET',
      path: '/sessions',
      headers: { Authorization: [`Bearer ${token}`, `Bearer ${token}`], Origin: [PAGE] },
    });
    expect(result.statusCode).toBe(401);
    expect(JSON.parse(result.body)).toMatchObject({ error: { code: 'unauthorized' } });
    expect(result.headers['access-control-allow-origin']).toBe(PAGE);
  });

  it('reads the query string, a repeated parameter joined as the Function URL joins it', async () => {
    const one = await invoke({
      method: 'GET',
      path: '/sessions',
      headers: { Authorization: [`Bearer ${token}`] },
      query: { limit: ['1'] },
    });
    expect(one.statusCode).toBe(200);
    expect(JSON.parse(one.body)).toHaveProperty('sessions');
    const repeated = await invoke({
      method: 'GET',
      path: '/sessions',
      headers: { Authorization: [`Bearer ${token}`] },
      query: { limit: ['1', '2'] },
    });
    expect(repeated.statusCode).toBe(400);
    expect(repeated.body).toContain('limit');
  });

  it('routes by method and stage-less path', async () => {
    const wrongMethod = await invoke({ method: 'PUT', path: '/sessions', headers: {} });
    expect(wrongMethod.statusCode).toBe(405);
    const staged = await invoke({ method: 'GET', path: '/api/sessions', headers: {} });
    expect(staged.statusCode).toBe(404);
  });
});
