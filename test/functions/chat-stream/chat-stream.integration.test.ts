import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ragKey } from '../../../functions/adapters/redis-cache.ts';
import type { RedisProcess } from '../../../local/emulators/redis-server.ts';
import { type FaultProxy, startFaultProxy } from '../../../local/stack/fault-proxy.ts';
import { answerText, chat, eventTypes, sseEventTypes } from '../../../local/stack/sse-client.ts';
import { type LocalStack, seedDemoProfile, startLocalStack } from '../../../local/stack/stack.ts';
import { testRedis } from '../../support/redis.ts';
import { tableReader } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Integration on the whole local stack: Function URL emulator, real Redis, dynalite, fauxqs, Bedrock emulators.
let stack: LocalStack;
let sqsProxy: FaultProxy;
let ownedRedis: RedisProcess | undefined;
let table: ReturnType<typeof tableReader>;

beforeAll(async () => {
  const redis = await testRedis(6);
  ownedRedis = redis.owned;
  stack = await startLocalStack({
    redisUrl: redis.url,
    poller: false,
    wrapEndpoint: async (service, url) => {
      if (service !== 'sqs') return url;
      sqsProxy = await startFaultProxy(url);
      return sqsProxy.url;
    },
  });
  table = tableReader(stack.dynamodb, stack.tableName);
});
afterAll(async () => {
  await stack.close();
  await sqsProxy.close();
  await ownedRedis?.stop();
});

const newUser = () => `user-${uuidv7()}`;
/** Resolves once a turn's background writes are done: both of its messages are in the queue. */
const turnSettled = (sessionId: string) =>
  waitFor(
    async () => {
      const queued = stack.fauxqs.inspectQueue('chat-messages.fifo')?.messages;
      // A stopped poller's last long poll may still take messages in flight: count those too.
      const bodies = [...(queued?.ready ?? []), ...(queued?.inflight ?? []).map((i) => i.message)].map(
        (m) => m.body,
      );
      return bodies.filter((body) => body.includes(sessionId)).length === 2 || undefined;
    },
    15_000,
    'the turn to be queued',
  );
/** The last chat turn's request (the consumer's title calls share the emulator). */
const lastPrompt = () =>
  stack.bedrock.requests.findLast((r) => !JSON.stringify(r.body.system ?? '').includes('Write a title'))
    ?.body;
const done = (r: Awaited<ReturnType<typeof chat>>) =>
  r.events.find((e) => e.data.type === 'done')?.data as
    | { cache: Record<string, string>; message_id: string; timings: Record<string, number> }
    | undefined;

describe('chat stream on the local stack, over HTTP through the Function URL emulator', () => {
  it('streams session_id, sources, tokens and done as SSE with the right headers', async () => {
    const token = await stack.issuer.mint(newUser());
    const response = await chat(stack.url, token, { message: 'What is a Roth IRA?' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('cache-control')).toBe('no-cache');
    const types = eventTypes(response);
    expect(types[0]).toBe('session_id');
    expect(types[1]).toBe('sources');
    expect(types.at(-1)).toBe('done');
    expect(types.filter((t) => t === 'token').length).toBeGreaterThan(5);
    const sources = response.events[1]?.data.sources as Array<{
      uri: string;
      title: string;
      excerpt: string;
      score: number;
      id: string;
    }>;
    expect(sources[0]).toMatchObject({
      uri: 's3://local-knowledge-base/roth-ira.md',
      title: 'What is a Roth IRA?',
    });
    expect(answerText(response)).toContain('after-tax');
  });

  it('misses and fills the cache on the first turn, hits on the second, whose prompt has the first turn before any consumer ran', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    // The RAG cache is shared by all users and outlives a test run: ask a question no run asked before.
    const question = `How big should my emergency fund be? Run ${uuidv7()}`;
    const first = await chat(stack.url, token, { message: question });
    const sessionId = first.events[0]?.data.session_id as string;
    expect(done(first)?.cache).toEqual({ profile: 'miss', history: 'skipped', rag: 'miss' });
    // Writes finish after the stream ends, before the handler returns; the RAG cache is filled off the critical path.
    await turnSettled(sessionId);
    const redis = new Redis(stack.redisUrl ?? '');
    try {
      await waitFor(
        async () =>
          (await redis.exists(ragKey(stack.knowledgeBase.knowledgeBaseId, question))) === 1 || undefined,
      );
    } finally {
      redis.disconnect();
    }

    // The same question again: its passages are now in the RAG cache this run filled above; as a
    // follow-up it is also retrieved with the previous question, a query the cache has not seen yet.
    const second = await chat(stack.url, token, { message: question, session_id: sessionId });
    expect(second.events[0]?.data).toEqual({ type: 'session_id', session_id: sessionId });
    expect(done(second)?.cache).toEqual({ profile: 'hit', history: 'hit', rag: 'miss' });
    expect(lastPrompt()?.messages?.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(lastPrompt()?.messages?.[1]?.content?.[0]?.text).toBe(answerText(first));
    expect(await table.messages(user, sessionId)).toHaveLength(0);

    const poller = stack.startPoller();
    try {
      const items = await waitFor(async () => {
        const found = await table.messages(user, sessionId);
        return found.length === 4 ? found : undefined;
      });
      expect(items.map((i) => i.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
      expect(items[1]?.messageId).toBe(done(first)?.message_id);
      // The message item is written before its session update: wait for the counter itself.
      await waitFor(async () => (await table.session(user, sessionId))?.messageCount === 4 || undefined);
    } finally {
      await poller.stop();
    }
  });

  it('shows nothing of a session to another user who presents the same session_id', async () => {
    const owner = await stack.issuer.mint(newUser());
    const first = await chat(stack.url, owner, { message: 'Tell me about index funds' });
    const sessionId = first.events[0]?.data.session_id as string;
    await turnSettled(sessionId);
    const intruder = await stack.issuer.mint(newUser());
    const response = await chat(stack.url, intruder, {
      message: 'What did I ask before?',
      session_id: sessionId,
      use_rag: false,
    });
    expect(done(response)?.cache.history).toBe('miss');
    expect(lastPrompt()?.messages).toEqual([{ role: 'user', content: [{ text: 'What did I ask before?' }] }]);
  });

  it('uses the seeded profile in the prompt', async () => {
    await seedDemoProfile(stack, 'profiled-user');
    await chat(stack.url, await stack.issuer.mint('profiled-user'), { message: 'hello', use_rag: false });
    expect(lastPrompt()?.system?.[0]?.text).toContain('Alex');
  });

  it('skips retrieval when use_rag is false', async () => {
    const response = await chat(stack.url, await stack.issuer.mint(newUser()), {
      message: 'What is a Roth IRA?',
      use_rag: false,
    });
    expect(eventTypes(response)).not.toContain('sources');
    expect(done(response)?.cache.rag).toBe('skipped');
  });

  it('answers without sources when Retrieve fails', async () => {
    stack.knowledgeBase.failNext(3);
    const response = await chat(stack.url, await stack.issuer.mint(newUser()), {
      message: 'How do tax brackets work?',
    });
    expect(eventTypes(response)).not.toContain('sources');
    expect(eventTypes(response).at(-1)).toBe('done');
  });

  it('sends an error event with code throttled when Bedrock throttles', async () => {
    stack.bedrock.failNext('throttle', 2);
    const response = await chat(stack.url, await stack.issuer.mint(newUser()), {
      message: 'hi',
      use_rag: false,
    });
    expect(response.status).toBe(200);
    expect(eventTypes(response)).toEqual(['session_id', 'error']);
    expect(response.events[1]?.data).toMatchObject({ type: 'error', code: 'throttled' });
  });

  it('sends an error event with code model_error when the model fails mid-stream', async () => {
    stack.bedrock.failNext('midstream');
    const response = await chat(stack.url, await stack.issuer.mint(newUser()), {
      message: 'What is a Roth IRA?',
      use_rag: false,
    });
    const types = eventTypes(response);
    expect(types).toContain('token');
    expect(types.at(-1)).toBe('error');
    expect(response.events.at(-1)?.data.code).toBe('model_error');
  });

  it('still lands the messages in DynamoDB when SQS fails', async () => {
    const user = newUser();
    sqsProxy.failing = true;
    try {
      const response = await chat(stack.url, await stack.issuer.mint(user), {
        message: 'Explain compound interest',
        use_rag: false,
      });
      expect(eventTypes(response).at(-1)).toBe('done');
      const sessionId = response.events[0]?.data.session_id as string;
      const items = await waitFor(async () => {
        const found = await table.messages(user, sessionId);
        return found.length === 2 ? found : undefined;
      });
      expect(items.map((i) => i.role)).toEqual(['user', 'assistant']);
      await waitFor(async () => (await table.session(user, sessionId))?.messageCount === 2 || undefined);
    } finally {
      sqsProxy.failing = false;
    }
  });

  it.each([
    ['no token', undefined, { message: 'hi' }, {}, 401, 'unauthorized'],
    ['a tampered token', 'x.y.z', { message: 'hi' }, {}, 401, 'unauthorized'],
    ['GET', 'valid', undefined, { method: 'GET' }, 405, 'method_not_allowed'],
    [
      'text/plain',
      'valid',
      'hi',
      { headers: { 'content-type': 'text/plain' } },
      415,
      'unsupported_media_type',
    ],
    ['invalid JSON', 'valid', '{nope', {}, 400, 'invalid_json'],
    ['a message over 8000 characters', 'valid', { message: 'a'.repeat(8001) }, {}, 400, 'invalid_request'],
    ['a bad session_id', 'valid', { message: 'hi', session_id: 'not/opaque' }, {}, 400, 'invalid_request'],
    ['a body over the size limit', 'valid', { message: 'a'.repeat(40_000) }, {}, 413, 'payload_too_large'],
  ])('rejects %s with a JSON error before streaming', async (_name, token, body, init, status, code) => {
    const bearer = token === 'valid' ? await stack.issuer.mint(newUser()) : token;
    const response = await chat(
      stack.url,
      bearer,
      body,
      init as { method?: string; headers?: Record<string, string> },
    );
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.json).toMatchObject({ error: { code } });
  });

  it('names the wrong field in a 400', async () => {
    const response = await chat(stack.url, await stack.issuer.mint(newUser()), {
      message: 'hi',
      session_id: 'no pe',
    });
    expect(response.json).toMatchObject({ error: { code: 'invalid_request', field: 'session_id' } });
  });

  it('streams to curl -N', async () => {
    const token = await stack.issuer.mint(newUser());
    const { stdout } = await promisify(execFile)('curl', [
      '-sN',
      stack.url,
      '-H',
      'content-type: application/json',
      '-H',
      `authorization: Bearer ${token}`,
      '-d',
      '{"message":"What is dollar-cost averaging?"}',
    ]);
    const types = sseEventTypes(stdout);
    expect(types[0]).toBe('session_id');
    expect(types).toContain('sources');
    expect(types.at(-1)).toBe('done');
  });
});
