import { createHash } from 'node:crypto';
import { DynamoDBDocumentClient, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoConversationStore } from '../../../functions/adapters/dynamo-store.ts';
import { tableKeys } from '../../../functions/contracts/table.ts';
import { type RedisProcess, spawnRedisServer } from '../../../local/emulators/redis-server.ts';
import { chat } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { slowTokens } from '../../support/slow-tokens.ts';
import { openStream } from '../../support/sse-stream.ts';
import { chatMessage } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Integration: the conversations API and per-user limits on the local stack, with a Redis of this file's
// own (so a scan can prove deletion, and the test can stop it), dynalite, fauxqs and the consumer.
let stack: LocalStack;
let redis: RedisProcess;
let inspect: Redis;
let scanner: DynamoDBDocumentClient;

beforeAll(async () => {
  redis = await spawnRedisServer();
  inspect = new Redis(redis.url);
  // The last test stops this Redis: its reconnect attempts are expected.
  inspect.on('error', () => undefined);
  stack = await startLocalStack({
    redisUrl: redis.url,
    poller: false,
    // A poller stopped mid-receive leaves messages in flight: let them come back quickly.
    visibilityTimeoutSeconds: 2,
    env: { LIMIT_TURNS_PER_MINUTE: '5', LIMIT_CONCURRENT_STREAMS: '2', LIMIT_TOKENS_PER_DAY: '1000' },
  });
  scanner = DynamoDBDocumentClient.from(stack.dynamodb);
});
afterAll(async () => {
  inspect.disconnect();
  await stack.close();
  await redis.stop();
});

const newUser = () => `user-${uuidv7()}`;
const api = async (token: string, path: string, init: { method?: string; body?: unknown } = {}) => {
  const response = await fetch(`${stack.url}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : undefined };
};
/** Every item of the table that belongs to the user: a scan, so nothing hides behind a key design. */
const itemsOf = async (user: string) => {
  const { Items = [] } = await scanner.send(new ScanCommand({ TableName: stack.tableName }));
  return Items.filter((item) => String(item.pk).startsWith(`USER#${user}`));
};
/** The user's keys apart from a delete's own marker (which must expire) and the limiter's, which a delete never touches. */
const redisKeysOf = async (user: string) => {
  const left: string[] = [];
  const tag = `{u:${createHash('sha256').update(user).digest('base64url').slice(0, 22)}}`;
  for (const key of await inspect.keys(`*${tag}*`)) {
    if (key.startsWith('adm:')) continue;
    if (key.startsWith('forgotten:') && (await inspect.pttl(key)) > 0) continue;
    left.push(key);
  }
  return left;
};
const drainQueue = async () => {
  const poller = stack.startPoller();
  try {
    await waitFor(async () => {
      const queue = stack.fauxqs.inspectQueue('chat-messages.fifo')?.messages;
      return (queue?.ready.length ?? 0) + (queue?.inflight.length ?? 0) === 0 || undefined;
    });
  } finally {
    await poller.stop();
  }
};
const turn = async (token: string, message: string, sessionId?: string) => {
  const response = await chat(stack.url, token, { message, ...(sessionId ? { session_id: sessionId } : {}) });
  const done = response.events.find((e) => e.data.type === 'done')?.data as
    | { usage: { input_tokens: number; output_tokens: number } }
    | undefined;
  return { response, sessionId: response.events[0]?.data.session_id as string, done };
};

describe('conversations API', () => {
  it('lists, reads, renames and deletes conversations of one user only; another user gets 404s', async () => {
    const alice = newUser();
    const bob = newUser();
    const [aliceToken, bobToken] = await Promise.all([stack.issuer.mint(alice), stack.issuer.mint(bob)]);
    const first = await turn(aliceToken, 'What is a Roth IRA?');
    await turn(aliceToken, 'And a traditional one?', first.sessionId);
    const second = await turn(aliceToken, 'How does inflation work?');
    await drainQueue();

    const list = await api(aliceToken, '/sessions');
    expect(list.status).toBe(200);
    expect(list.json.sessions.map((s: { id: string }) => s.id)).toEqual([second.sessionId, first.sessionId]);
    expect(list.json.sessions[1]).toMatchObject({
      message_count: 4,
      title: 'What is a Roth IRA',
      title_source: 'generated',
    });
    expect((await api(bobToken, '/sessions')).json.sessions).toEqual([]);

    const messages = await api(aliceToken, `/sessions/${first.sessionId}/messages`);
    expect(messages.json.messages.map((m: { role: string }) => m.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
    ]);
    expect(messages.json.messages[1]).toMatchObject({ stop_reason: 'end_turn', sources: expect.any(Array) });
    const ui = await api(aliceToken, `/sessions/${first.sessionId}/messages?format=ai-sdk`);
    expect(ui.json.messages[1].parts.at(-1)).toEqual({ type: 'text', text: messages.json.messages[1].text });
    expect(ui.json.messages[1].parts.some((p: { type: string }) => p.type === 'source-url')).toBe(true);
    // Reopened sources keep the knowledge base's score, stored with the answer, for the page's relevance floor.
    const storedScores = (messages.json.messages[1].sources as Array<{ score: number }>).map((s) => s.score);
    expect(
      ui.json.messages[1].parts
        .filter((p: { type: string }) => p.type.startsWith('source-'))
        .map(
          (p: { providerMetadata: { knowledgeBase: { score: number } } }) =>
            p.providerMetadata.knowledgeBase.score,
        ),
    ).toEqual(storedScores);
    expect(storedScores.length).toBeGreaterThan(0);

    for (const [method, path, body] of [
      ['GET', `/sessions/${first.sessionId}`],
      ['GET', `/sessions/${first.sessionId}/messages`],
      ['PATCH', `/sessions/${first.sessionId}`, { title: 'mine now' }],
    ] as const) {
      expect((await api(bobToken, path, { method, body })).status).toBe(404);
    }
    const renamed = await api(aliceToken, `/sessions/${first.sessionId}`, {
      method: 'PATCH',
      body: { title: '  Retirement accounts ' },
    });
    expect(renamed.json).toMatchObject({
      id: first.sessionId,
      title: 'Retirement accounts',
      title_source: 'user',
    });
    // A user-given title is never replaced by a generated one, even after another answer.
    await turn(aliceToken, 'One more question about IRAs', first.sessionId);
    await drainQueue();
    expect((await api(aliceToken, `/sessions/${first.sessionId}`)).json.title).toBe('Retirement accounts');

    expect((await api(aliceToken, `/sessions/${second.sessionId}`, { method: 'DELETE' })).status).toBe(204);
    expect((await api(aliceToken, `/sessions/${second.sessionId}`, { method: 'DELETE' })).status).toBe(204);
    expect((await api(aliceToken, `/sessions/${second.sessionId}`)).status).toBe(404);
    expect((await api(aliceToken, '/sessions')).json.sessions.map((s: { id: string }) => s.id)).toEqual([
      first.sessionId,
    ]);
  });

  it('pages through 120 messages in order while new ones arrive, each exactly once', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const sessionId = `s-${uuidv7()}`;
    const store = new DynamoConversationStore(DynamoDBDocumentClient.from(stack.dynamodb), stack.tableName);
    const original = Array.from({ length: 120 }, (_, i) => chatMessage(user, sessionId, i));
    for (const m of original) await store.save(m);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : '';
      const page = await api(token, `/sessions/${sessionId}/messages?limit=50${query}`);
      // A writer keeps appending to the conversation while the reader pages back through it.
      await store.save(chatMessage(user, sessionId, 200 + pages));
      seen.unshift(...page.json.messages.map((m: { id: string }) => m.id));
      cursor = page.json.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(original.map((m) => m.messageId));
  });

  it('rejects bad ids, cursors, limits, titles and methods with 4xx JSON', async () => {
    const token = await stack.issuer.mint(newUser());
    const cases: Array<[string, string, unknown, number]> = [
      ['GET', '/sessions?limit=0', undefined, 400],
      ['GET', '/sessions?limit=abc', undefined, 400],
      ['GET', '/sessions?cursor=not-a-cursor', undefined, 400],
      [
        'GET',
        `/sessions?cursor=${Buffer.from('{"pk":"USER#x","sk":"a","activityPk":"USER#x","activitySk":"b"}').toString('base64url')}`,
        undefined,
        400,
      ],
      ['GET', '/sessions/abc/messages?format=xml', undefined, 400],
      ['PATCH', '/sessions/abc', { title: 'x'.repeat(121) }, 400],
      ['PATCH', '/sessions/abc', { title: '   ' }, 400],
      ['PATCH', '/sessions/abc', { name: 'x' }, 400],
      ['PUT', '/sessions/abc', undefined, 405],
      ['GET', '/sessions/not*valid', undefined, 404],
      ['POST', '/me', undefined, 405],
    ];
    for (const [method, path, body, status] of cases) {
      const response = await api(token, path, { method, body });
      expect([method, path, response.status]).toEqual([method, path, status]);
      expect(response.json?.error?.code).toEqual(expect.any(String));
    }
    expect((await api('forged', '/sessions')).status).toBe(401);
  });
});

describe('deletion leaves nothing behind, even with messages still queued', () => {
  it('DELETE /sessions/{id}: the queued messages never bring the session back', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const kept = await turn(token, 'What is a budget?');
    await drainQueue();
    const doomed = await turn(token, 'What is a credit score?');
    await turn(token, 'How do I raise it?', doomed.sessionId);
    // Four messages of the doomed session are still in the queue.
    expect((await api(token, `/sessions/${doomed.sessionId}`, { method: 'DELETE' })).status).toBe(204);
    await drainQueue();
    const left = await itemsOf(user);
    const ofDoomed = left.filter(
      (i) => String(i.pk).includes(doomed.sessionId) || String(i.sk).includes(doomed.sessionId),
    );
    expect(ofDoomed).toEqual([
      expect.objectContaining({
        sk: `SESSION#${doomed.sessionId}`,
        deletedAt: expect.any(String),
        expiresAt: expect.any(Number),
      }),
    ]);
    expect(Object.keys(ofDoomed[0] ?? {}).sort()).toEqual([
      'deletedAt',
      'expiresAt',
      'pk',
      'sessionId',
      'sk',
    ]);
    expect((await redisKeysOf(user)).filter((k) => k.includes(doomed.sessionId))).toEqual([]);
    expect((await api(token, `/sessions/${kept.sessionId}/messages`)).json.messages).toHaveLength(2);
  });

  it('a message the consumer writes under a fresh tombstone is not served while it waits to be taken back', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const { sessionId } = await turn(token, 'What is a budget?');
    await drainQueue();
    const startedBefore = chatMessage(user, sessionId, 0);
    expect((await api(token, `/sessions/${sessionId}`, { method: 'DELETE' })).status).toBe(204);
    // The consumer's put of a message that was in the queue, before its session update meets the tombstone.
    const put = (message: typeof startedBefore) =>
      scanner.send(
        new PutCommand({ TableName: stack.tableName, Item: { ...tableKeys.message(message), ...message } }),
      );
    await put(startedBefore);
    expect((await api(token, `/sessions/${sessionId}/messages`)).status).toBe(404);
    // Control: a turn started after the delete uses the id again, and its message is served.
    const startedAfter = chatMessage(user, sessionId, 0);
    await put(startedAfter);
    const page = await api(token, `/sessions/${sessionId}/messages`);
    expect(page.status).toBe(200);
    expect(page.json.messages.map((m: { id: string }) => m.id)).toEqual([startedAfter.messageId]);
  });

  it('DELETE /me: every item and key of the user goes, and queued messages are discarded', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    await turn(token, 'What is an HSA?');
    await drainQueue();
    const pending = await turn(token, 'And an FSA?');
    expect(pending.response.status).toBe(200);
    expect((await api(token, '/me', { method: 'DELETE' })).status).toBe(204);
    await drainQueue();
    const left = await itemsOf(user);
    expect(left.map((i) => i.sk)).toEqual(['ERASED']);
    expect(await redisKeysOf(user)).toEqual([]);
    expect((await api(token, '/sessions')).json.sessions).toEqual([]);
    expect((await api(token, '/me', { method: 'DELETE' })).status).toBe(204);
  });
});

describe('per-user limits and usage', () => {
  it('counts usage equal to the sum of the turns reported usage, persisted by the consumer', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const a = await turn(token, 'What is an index fund?');
    const b = await turn(token, 'What is a bond?');
    await drainQueue();
    const usage = await api(token, '/me/usage');
    expect(usage.json).toMatchObject({
      turns: 2,
      input_tokens: (a.done?.usage.input_tokens ?? 0) + (b.done?.usage.input_tokens ?? 0),
      output_tokens: (a.done?.usage.output_tokens ?? 0) + (b.done?.usage.output_tokens ?? 0),
      limits: {
        turns_per_minute: { limit: 5, used: 2 },
        concurrent_streams: { limit: 2, used: 0 },
        tokens_per_day: { limit: 1000 },
      },
    });
  });

  it('refuses the sixth turn in a minute with 429, retry-after and the limit named, before any model call', async () => {
    const user = newUser();
    const burst = await stack.issuer.mint(user);
    const before = stack.bedrock.requests.length;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await fetch(stack.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${burst}`, 'content-type': 'application/json' },
        body: JSON.stringify({ message: 'hi', use_rag: false, session_id: `s${i}` }),
      });
      statuses.push(response.status);
      if (response.status === 429) {
        expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(await response.json()).toMatchObject({
          error: { code: 'limit_exceeded', limit: 'turns_per_minute' },
        });
      } else {
        await response.text();
      }
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect(stack.bedrock.requests.length - before).toBe(5);
  });

  it('refuses a third concurrent stream of one user, while many users at once see no 429', async () => {
    const token = await stack.issuer.mint(newUser());
    slowTokens(stack, 5);
    const streams = await Promise.all(
      [1, 2].map((i) =>
        openStream(stack.url, { token, body: { message: `Explain compound interest ${i}` } }),
      ),
    );
    await Promise.all(streams.map((s) => s.waitForEvents(1)));
    const third = await chat(stack.url, token, { message: 'A third one' });
    expect(third.status).toBe(429);
    expect(third.json).toMatchObject({ error: { limit: 'concurrent_streams' } });
    await Promise.all(streams.map((s) => s.ended));
    expect(streams.map((s) => s.status)).toEqual([200, 200]);

    const many = await Promise.all(
      Array.from({ length: 8 }, async () =>
        chat(stack.url, await stack.issuer.mint(newUser()), { message: 'hi' }),
      ),
    );
    expect(many.map((r) => r.status)).toEqual(Array(8).fill(200));
  });

  it("refuses turns once the day's tokens are used, with retry-after until midnight UTC", async () => {
    const token = await stack.issuer.mint(newUser());
    let used = 0;
    let refused: Awaited<ReturnType<typeof chat>> | undefined;
    for (let i = 0; i < 5 && !refused; i++) {
      const response = await chat(stack.url, token, {
        // Long enough that five turns use the day's tokens, whatever the knowledge base adds (passages
        // under the relevance floor are not sent).
        message: `Explain budgeting ${i}: ${'how do the 50/30/20 budget buckets work '.repeat(20)}`,
      });
      if (response.status === 429) refused = response;
      else {
        const done = response.events.find((e) => e.data.type === 'done')?.data as unknown as {
          usage: { input_tokens: number; output_tokens: number };
        };
        used += done.usage.input_tokens + done.usage.output_tokens;
      }
    }
    expect(refused?.json).toMatchObject({ error: { limit: 'tokens_per_day' } });
    expect(used).toBeGreaterThanOrEqual(1000);
    const retryAfter = Number(refused?.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
  });

  it('keeps limiting from memory when Redis is down, and the chat keeps answering from DynamoDB', async () => {
    await redis.stop();
    const token = await stack.issuer.mint(newUser());
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await chat(stack.url, token, {
        message: 'hi',
        use_rag: false,
        session_id: `down-${i}`,
      });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });
});
