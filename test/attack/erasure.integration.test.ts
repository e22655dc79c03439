import { createHash } from 'node:crypto';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoConversationStore } from '../../functions/adapters/dynamo-store.ts';
import { API_PATHS } from '../../functions/contracts/api.ts';
import { tableKeys } from '../../functions/contracts/table.ts';
import type { ChatMessage } from '../../functions/core/messages.ts';
import { type RedisProcess, spawnShapedCache } from '../../local/emulators/redis-server.ts';
import { type FaultProxy, startFaultProxy } from '../../local/stack/fault-proxy.ts';
import { chat } from '../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../local/stack/stack.ts';
import { type LiveStream, openStream } from '../support/sse-stream.ts';
import { waitFor } from '../support/wait.ts';

// Attacks on deletion and erasure (security review H1, H2, M3, M4, M5, L9, L10) against the local stack on
// a cache of this file's own shaped like production's (ElastiCache Serverless: cluster mode, IAM auth): the
// tests may scan DynamoDB and list Redis keys to prove what is left; the routes may not (the last case
// proves that through Redis's command statistics).
let stack: LocalStack;
let redis: RedisProcess;
let inspect: Redis;
let scanner: DynamoDBDocumentClient;
const proxies: Partial<Record<'dynamodb' | 'sqs', FaultProxy>> = {};

beforeAll(async () => {
  redis = await spawnShapedCache();
  inspect = new Redis(redis.url);
  stack = await startLocalStack({
    redisUrl: redis.url,
    poller: false,
    visibilityTimeoutSeconds: 2,
    perTokenDelayMs: 5,
    env: { LIMIT_TURNS_PER_MINUTE: '30', LIMIT_CONCURRENT_STREAMS: '3', LIMIT_TOKENS_PER_DAY: '1500' },
    wrapEndpoint: async (service, url) => {
      const proxy = await startFaultProxy(url);
      proxies[service] = proxy;
      return proxy.url;
    },
  });
  scanner = DynamoDBDocumentClient.from(stack.dynamodb);
});
afterAll(async () => {
  inspect.disconnect();
  await stack.close();
  await Promise.all(Object.values(proxies).map((p) => p.close()));
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
  const json = response.headers.get('content-type')?.includes('json') && text ? JSON.parse(text) : undefined;
  return { status: response.status, headers: response.headers, json, text };
};
/** Every item of the table under the user's partitions: a scan, so nothing hides behind a key design. */
const itemsOf = async (user: string) => {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await scanner.send(
      new ScanCommand({ TableName: stack.tableName, ExclusiveStartKey: start }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items.filter((item) => String(item.pk).startsWith(`USER#${user}`));
};
/** The admission's slot tag of a user: every key of the user carries it, and never the raw sub. */
const tagOf = (user: string) => `{u:${createHash('sha256').update(user).digest('base64url').slice(0, 22)}}`;
/** Every Redis key of the user (KEYS is fine in a test, never in a route). */
const redisKeysOf = (user: string) => inspect.keys(`*${tagOf(user)}*`);
/** The limiter's families, which a user's delete must never touch (agreed by prefix with the admission design). */
const LIMITER = /^adm:/;
/** The longest a delete's stop flag for a running turn may live (it names only the session and the turn). */
const STOP_FLAG_MAX_MS = 10_000;
/**
 * What a delete may leave: its marker, with an expiry, and the stop flag it set on a running turn, expiring
 * within seconds. Everything else of the user or session is a finding.
 */
async function leftovers(user: string, sessionId?: string) {
  const keys = (await redisKeysOf(user)).filter((k) => !LIMITER.test(k));
  const scoped = sessionId ? keys.filter((k) => k.includes(`:${sessionId}`)) : keys;
  const left: string[] = [];
  for (const key of scoped) {
    const ttl = await inspect.pttl(key);
    const isMarker = key.startsWith('forgotten:') && ttl > 0;
    const isStopFlag = key.startsWith('stop:') && ttl > 0 && ttl <= STOP_FLAG_MAX_MS;
    if (!isMarker && !isStopFlag) left.push(key);
  }
  return left;
}
/** After a conversation's delete: its tombstone is all the table holds of it, and Redis holds nothing of it. */
async function expectOnlyTombstone(user: string, sessionId: string) {
  // Usage items name no session and are billing: they outlive a conversation (an erasure takes them).
  const ofSession = (await itemsOf(user)).filter((i) => `${i.pk}${i.sk}`.includes(sessionId));
  expect(ofSession).toEqual([
    expect.objectContaining({ sk: `SESSION#${sessionId}`, deletedAt: expect.any(String) }),
  ]);
  await waitFor(
    async () => (await leftovers(user, sessionId)).length === 0 || undefined,
    20_000,
    'no keys left',
  );
}
const queueDepth = () => {
  const queue = stack.fauxqs.inspectQueue('chat-messages.fifo')?.messages;
  return (queue?.ready.length ?? 0) + (queue?.inflight.length ?? 0);
};
const drainQueue = async () => {
  const poller = stack.startPoller();
  try {
    await waitFor(async () => queueDepth() === 0 || undefined, 30_000, 'queue drained');
  } finally {
    await poller.stop();
  }
};
const slowModel = (perTokenDelayMs: number) => {
  stack.bedrock.options.perTokenDelayMs = perTokenDelayMs;
  return () => {
    stack.bedrock.options.perTokenDelayMs = 5;
  };
};
const data = (stream: LiveStream) => stream.events.map((e) => JSON.parse(e.data) as Record<string, unknown>);
/** Opens a turn and waits until it streams answer tokens: a turn caught mid-answer. */
async function midAnswer(token: string, body: Record<string, unknown>) {
  const stream = await openStream(stack.url, { token, body });
  await waitFor(async () => data(stream).some((e) => e.type === 'token') || undefined, 20_000, 'first token');
  return { stream, sessionId: String(data(stream)[0]?.session_id) };
}

describe('erasure and deletion race a running turn and queued messages', () => {
  it('DELETE /me while two answers stream and four messages are queued: nothing of the user stays or reads back', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const earlier = await chat(stack.url, token, { message: 'ERASE-ME-1 what is an index fund' });
    const earlierSession = String(earlier.events[0]?.data.session_id);
    await chat(stack.url, token, { message: 'ERASE-ME-2 and a bond?', session_id: earlierSession });
    expect(queueDepth()).toBeGreaterThanOrEqual(4);
    const restore = slowModel(60);
    try {
      const onExisting = await midAnswer(token, {
        message: 'ERASE-ME-3 compound interest',
        session_id: earlierSession,
      });
      const onNew = await midAnswer(token, { message: 'ERASE-ME-4 what is inflation' });
      // Control: the probes see the user's data before the erasure, so an empty result after it means something.
      expect(await leftovers(user)).not.toEqual([]);
      expect((await api(token, `/sessions/${earlierSession}/messages`)).json.messages.length).toBeGreaterThan(
        0,
      );

      expect((await api(token, '/me', { method: 'DELETE' })).status).toBe(204);
      const [existingEvents, newEvents] = await Promise.all([onExisting.stream.ended, onNew.stream.ended]);
      // The running answers were stopped, not completed.
      for (const events of [existingEvents, newEvents]) {
        const last = JSON.parse(events.at(-1)?.data ?? '{}');
        expect(last).toMatchObject({ type: 'done', stop_reason: 'stopped' });
      }
      await drainQueue();
      expect((await itemsOf(user)).map((i) => i.sk)).toEqual(['ERASED']);
      await waitFor(async () => (await leftovers(user)).length === 0 || undefined, 20_000, 'no keys left');
      expect(await inspect.pttl(`forgotten:${tagOf(user)}`)).toBeGreaterThan(0);
      expect((await api(token, '/sessions')).json.sessions).toEqual([]);
      // Search keeps its own items (SEARCH#<session>): none matches, the queued messages' included.
      for (const word of ['erase', 'index', 'inflation']) {
        expect((await api(token, `/sessions?q=${word}`)).json.sessions).toEqual([]);
      }
      for (const sessionId of [earlierSession, onNew.sessionId]) {
        expect((await api(token, `/sessions/${sessionId}/messages`)).status).toBe(404);
        expect((await api(token, `/sessions/${sessionId}`)).status).toBe(404);
        expect((await api(token, `/sessions/${sessionId}/stream`)).status).toBe(204);
      }
      expect((await api(token, '/me/usage')).json).toMatchObject({ turns: 0, input_tokens: 0 });
    } finally {
      restore();
    }
    // The erasure is of the past only: the same user can start again, and that is kept.
    const after = await chat(stack.url, token, { message: 'a new start' });
    await drainQueue();
    expect(
      (await api(token, `/sessions/${after.events[0]?.data.session_id}/messages`)).json.messages,
    ).toHaveLength(2);
    // Control: search works for what came after, so the empty results above mean something.
    expect((await api(token, '/sessions?q=start')).json.sessions).toHaveLength(1);
    expect((await api(token, '/sessions?q=erase')).json.sessions).toEqual([]);
  }, 120_000);

  it('DELETE /sessions/{id} during its first answer: not readable, not in the next prompt, nothing left', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const restore = slowModel(60);
    let sessionId: string;
    try {
      const running = await midAnswer(token, { message: 'DELETE-ME private question about my debts' });
      sessionId = running.sessionId;
      expect(await leftovers(user, sessionId)).not.toEqual([]);
      expect((await api(token, `/sessions/${sessionId}`, { method: 'DELETE' })).status).toBe(204);
      const events = await running.stream.ended;
      expect(JSON.parse(events.at(-1)?.data ?? '{}')).toMatchObject({ stop_reason: 'stopped' });
    } finally {
      restore();
    }
    await drainQueue();
    expect((await api(token, `/sessions/${sessionId}/messages`)).status).toBe(404);
    await waitFor(
      async () => (await leftovers(user, sessionId)).length === 0 || undefined,
      20_000,
      'keys gone',
    );
    const ofSession = (await itemsOf(user)).filter((i) => `${i.pk}${i.sk}`.includes(sessionId));
    expect(ofSession).toEqual([
      expect.objectContaining({ sk: `SESSION#${sessionId}`, deletedAt: expect.any(String) }),
    ]);

    // The id is free again (tombstones are per user and about the past): the next turn neither sees the
    // deleted question nor is silently dropped.
    const next = await chat(stack.url, token, {
      message: 'a fresh question',
      session_id: sessionId,
      use_rag: false,
    });
    expect(next.events.at(-1)?.data).toMatchObject({ type: 'done', cache: { history: 'miss' } });
    const prompt = JSON.stringify(stack.bedrock.requests.at(-1)?.body);
    expect(prompt).toContain('a fresh question');
    expect(prompt).not.toContain('DELETE-ME');
    await drainQueue();
    const kept = await api(token, `/sessions/${sessionId}/messages`);
    expect(kept.json.messages.map((m: { text: string }) => m.text)[0]).toBe('a fresh question');
    expect(kept.json.messages).toHaveLength(2);
    // The deleted question's words are gone from search; the new turn's are there.
    expect((await api(token, '/sessions?q=debts')).json.sessions).toEqual([]);
    expect((await api(token, '/sessions?q=fresh')).json.sessions.map((s: { id: string }) => s.id)).toEqual([
      sessionId,
    ]);
  }, 120_000);

  it('deleting an id never used does not block it for the user who uses it later', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const id = `later-${uuidv7()}`;
    expect((await api(token, `/sessions/${id}`, { method: 'DELETE' })).status).toBe(204);
    await chat(stack.url, token, { message: 'my first question here', session_id: id });
    await drainQueue();
    expect((await api(token, `/sessions/${id}`)).json).toMatchObject({ id, message_count: 2 });
    // Control: a message of a turn that started before the delete is still refused.
    const store = new DynamoConversationStore(scanner, stack.tableName);
    const before = message(user, id, uuidv7(), 'user', 'from before the delete');
    await new Promise((r) => setTimeout(r, 5));
    expect((await api(token, `/sessions/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await store.save(before)).outcome).toBe('discarded');
  }, 120_000);
});

/**
 * The moments of a turn a delete can meet, besides mid-answer (above): each opens a turn and returns once
 * the turn is at that moment, with the session id the client learnt.
 */
const MOMENTS: Record<string, (token: string) => Promise<{ sessionId: string; ended: Promise<unknown> }>> = {
  // The question is queued only once the model request is on its way: a delete here precedes every write.
  'during retrieval, before the model is asked': async (token) => {
    stack.knowledgeBase.options.retrieveDelayMs = 1_500;
    try {
      const stream = await openStream(stack.url, { token, body: { message: 'MOMENT-A my salary' } });
      await stream.waitForEvents(1);
      return { sessionId: String(data(stream)[0]?.session_id), ended: stream.ended };
    } finally {
      stack.knowledgeBase.options.retrieveDelayMs = 0;
    }
  },
  'before the first token': async (token) => {
    stack.bedrock.options.firstTokenDelayMs = 1_500;
    try {
      const stream = await openStream(stack.url, {
        token,
        body: { message: 'MOMENT-B my debts', use_rag: false },
      });
      const asked = stack.bedrock.requests.length;
      await stream.waitForEvents(1);
      await waitFor(
        async () => stack.bedrock.requests.length > asked || undefined,
        10_000,
        'the model asked',
      );
      return { sessionId: String(data(stream)[0]?.session_id), ended: stream.ended };
    } finally {
      stack.bedrock.options.firstTokenDelayMs = 0;
    }
  },
  'after done, its messages still queued': async (token) => {
    const turn = await chat(stack.url, token, { message: 'MOMENT-C my rent', use_rag: false });
    expect(turn.events.at(-1)?.data.type).toBe('done');
    return { sessionId: String(turn.events[0]?.data.session_id), ended: Promise.resolve() };
  },
};

describe('a delete at any moment of a turn leaves only its marker (DynamoDB scan, Redis listing)', () => {
  for (const [moment, reach] of Object.entries(MOMENTS)) {
    it(`DELETE /me ${moment}`, async () => {
      const user = newUser();
      const token = await stack.issuer.mint(user);
      const { sessionId, ended } = await reach(token);
      // Control: the turn has left keys behind by now, so the empty listing below means something.
      expect(await leftovers(user)).not.toEqual([]);
      expect((await api(token, '/me', { method: 'DELETE' })).status).toBe(204);
      await ended;
      await drainQueue();
      expect((await itemsOf(user)).map((i) => i.sk)).toEqual(['ERASED']);
      await waitFor(async () => (await leftovers(user)).length === 0 || undefined, 20_000, 'no keys left');
      expect((await api(token, `/sessions/${sessionId}/messages`)).status).toBe(404);
      expect((await api(token, '/sessions')).json.sessions).toEqual([]);
    }, 60_000);

    it(`DELETE /sessions/{id} ${moment}`, async () => {
      const user = newUser();
      const token = await stack.issuer.mint(user);
      const { sessionId, ended } = await reach(token);
      expect(await leftovers(user, sessionId)).not.toEqual([]);
      expect((await api(token, `/sessions/${sessionId}`, { method: 'DELETE' })).status).toBe(204);
      await ended;
      await drainQueue();
      await expectOnlyTombstone(user, sessionId);
      expect((await api(token, `/sessions/${sessionId}/messages`)).status).toBe(404);
      expect((await api(token, `/sessions/${sessionId}`)).status).toBe(404);
      expect((await api(token, '/sessions')).json.sessions).toEqual([]);
    }, 60_000);
  }

  it('DELETE /me while a stateless OpenAI answer streams: no usage item or journal outlives the erasure', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const model = JSON.parse((await api(token, '/v1/models')).text).data[0].id;
    const restore = slowModel(60);
    try {
      const stream = await openStream(`${stack.url}/v1/chat/completions`, {
        token,
        body: { model, stream: true, messages: [{ role: 'user', content: 'STATELESS-ME what is a bond' }] },
      });
      await waitFor(async () => stream.events.length > 2 || undefined, 20_000, 'answer chunks');
      expect(await leftovers(user)).not.toEqual([]);
      expect((await api(token, '/me', { method: 'DELETE' })).status).toBe(204);
      await stream.ended;
    } finally {
      restore();
    }
    // The stateless usage item is written when the answer ends, after the erasure, by a turn begun before it.
    await new Promise((r) => setTimeout(r, 500));
    expect((await itemsOf(user)).map((i) => i.sk)).toEqual(['ERASED']);
    await waitFor(async () => (await leftovers(user)).length === 0 || undefined, 20_000, 'no keys left');
    // Control: a stateless answer begun after the erasure is billed.
    const after = await api(token, '/v1/chat/completions', {
      method: 'POST',
      body: { model, messages: [{ role: 'user', content: 'and a stock?' }] },
    });
    expect(after.status).toBe(200);
    await waitFor(
      async () => (await itemsOf(user)).some((i) => String(i.sk).startsWith('USAGE#')) || undefined,
      10_000,
      'the later answer billed',
    );
  }, 60_000);
});

/** A client retrying a refused delete each second (its retry-after is longer), until it is done or refused for good. */
async function deleteUntilDone(token: string, path: string, tries = 10) {
  for (let attempt = 1; ; attempt++) {
    const response = await api(token, path, { method: 'DELETE' });
    if (response.status !== 503 || attempt === tries) return response.status;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

describe('a delete that cannot mark the cache deletes nothing (Redis unreachable for it)', () => {
  it('DELETE /sessions/{id} and DELETE /me answer 503 and leave DynamoDB untouched; the retry does the whole job', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const first = await chat(stack.url, token, { message: 'UNMARKED my pension', use_rag: false });
    const sessionId = String(first.events[0]?.data.session_id);
    await chat(stack.url, token, {
      message: 'UNMARKED and my savings',
      session_id: sessionId,
      use_rag: false,
    });
    await drainQueue();
    const historyKey = `history:${tagOf(user)}:${sessionId}`;
    // Control: the conversation is stored and cached, so what survives the refused deletes is all of it.
    expect(await inspect.llen(historyKey)).toBeGreaterThan(0);
    const stored = await itemsOf(user);
    expect(stored.filter((i) => String(i.sk).startsWith('MSG#'))).toHaveLength(4);

    // Writes (every marker, cache delete and limiter script) wait in Redis: the stack's commands time out.
    await inspect.client('PAUSE', 5_000, 'WRITE');
    try {
      for (const path of [`/sessions/${sessionId}`, '/me']) {
        const refused = await api(token, path, { method: 'DELETE' });
        expect([path, refused.status]).toEqual([path, 503]);
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(refused.json).toMatchObject({ error: { code: 'cache_unavailable' } });
      }
      // Nothing half-deleted: the table is as it was (a table-only delete left the cached history serving).
      expect(await itemsOf(user)).toEqual(stored);
    } finally {
      await inspect.client('UNPAUSE');
    }
    // Still the user's, whole, through the routes (the 503 promised nothing).
    expect((await api(token, `/sessions/${sessionId}/messages`)).json.messages).toHaveLength(4);

    // Once Redis answers, the retried delete removes everything: table scan and key listing.
    expect(await deleteUntilDone(token, `/sessions/${sessionId}`)).toBe(204);
    await expectOnlyTombstone(user, sessionId);
    expect((await api(token, `/sessions/${sessionId}/messages`)).status).toBe(404);
    // The erase budget is 3 a minute: the refused erasure used one, this retry the second.
    expect(await deleteUntilDone(token, '/me', 1)).toBe(204);
    expect((await itemsOf(user)).map((i) => i.sk)).toEqual(['ERASED']);
    await waitFor(async () => (await leftovers(user)).length === 0 || undefined, 20_000, 'no keys left');
  }, 60_000);
});

function message(
  userId: string,
  sessionId: string,
  messageId: string,
  role: 'user' | 'assistant',
  content: string,
  createdAt = new Date().toISOString(),
): ChatMessage {
  return {
    messageId,
    sessionId,
    userId,
    role,
    content,
    createdAt,
    ...(role === 'assistant'
      ? { stopReason: 'end_turn', usage: { input_tokens: 10, output_tokens: 5 } }
      : {}),
  } as ChatMessage;
}

describe('the consumer: deletes win by the turn start, usage is never lost to ordering', () => {
  it('an answer that ends after the erasure, of a turn that began before it, is discarded with its usage', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const store = new DynamoConversationStore(scanner, stack.tableName);
    const session = `s-${uuidv7()}`;
    const startedBefore = uuidv7();
    await new Promise((r) => setTimeout(r, 5));
    expect((await api(token, '/me', { method: 'DELETE' })).status).toBe(204);
    await new Promise((r) => setTimeout(r, 5));
    // createdAt after the erasure (the answer's is taken when the model ends): the old check kept it.
    const late = message(user, session, startedBefore, 'assistant', 'late answer', new Date().toISOString());
    expect((await store.save(late)).outcome).toBe('discarded');
    expect((await itemsOf(user)).map((i) => i.sk)).toEqual(['ERASED']);
    // Control: a turn begun after the erasure is kept, usage included, so the check can tell them apart.
    const fresh = message(user, session, uuidv7(), 'assistant', 'new answer');
    expect((await store.save(fresh)).outcome).toBe('written');
    expect((await itemsOf(user)).some((i) => String(i.sk).startsWith('USAGE#'))).toBe(true);
  });

  it("a stateless turn's usage written after the erasure, by a turn that began before it, is taken back", async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const store = new DynamoConversationStore(scanner, stack.tableName);
    const usage = (messageId: string) => ({
      userId: user,
      messageId,
      createdAt: new Date().toISOString(),
      model: 'local-model',
      usage: { input_tokens: 12, output_tokens: 34 },
    });
    const startedBefore = uuidv7();
    await new Promise((r) => setTimeout(r, 5));
    expect((await api(token, '/me', { method: 'DELETE' })).status).toBe(204);
    await store.recordUsage(usage(startedBefore));
    expect((await itemsOf(user)).map((i) => i.sk)).toEqual(['ERASED']);
    // Control: a stateless turn begun after the erasure is billed.
    await store.recordUsage(usage(uuidv7()));
    expect((await itemsOf(user)).filter((i) => String(i.sk).startsWith('USAGE#'))).toHaveLength(1);
  });

  it('usage is recorded for every answer even when a session write arrives out of order', async () => {
    const user = newUser();
    const store = new DynamoConversationStore(scanner, stack.tableName);
    const session = `s-${uuidv7()}`;
    const first = message(user, session, uuidv7(), 'assistant', 'first');
    const second = message(user, session, uuidv7(), 'assistant', 'second');
    // The later answer lands first (a direct write bypasses the FIFO order).
    await store.save(second);
    await store.save(first);
    const usage = (await itemsOf(user)).filter((i) => String(i.sk).startsWith('USAGE#'));
    expect(usage.map((i) => i.sk).sort()).toEqual(
      [first, second].map((m) => tableKeys.usage(user, m.createdAt.slice(0, 10), m.messageId).sk).sort(),
    );
    // Control: the ordering condition did refuse the older write on the session.
    const sessionItem = (await itemsOf(user)).find((i) => i.sk === `SESSION#${session}`);
    expect(sessionItem).toMatchObject({ lastMessageId: second.messageId, messageCount: 1 });
  });
});

describe('limits survive every delete a user can send', () => {
  it("DELETE /sessions/<today's date>, of every session, and DELETE /me do not reset the day's tokens or turns", async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const day = new Date().toISOString().slice(0, 10);
    const sessions: string[] = [];
    let refused: Awaited<ReturnType<typeof chat>> | undefined;
    for (let i = 0; i < 20 && !refused; i++) {
      const response = await chat(stack.url, token, { message: `Explain budgeting in detail ${i}` });
      if (response.status === 429) refused = response;
      else sessions.push(String(response.events[0]?.data.session_id));
    }
    expect(refused?.json).toMatchObject({ error: { limit: 'tokens_per_day' } });
    const limiterKeys = (await redisKeysOf(user)).filter((k) => LIMITER.test(k) && !k.endsWith(':streams'));
    expect(limiterKeys.length).toBeGreaterThanOrEqual(2);
    const before = await api(token, '/me/usage');

    for (const path of [`/sessions/${day}`, ...sessions.map((s) => `/sessions/${s}`), '/me']) {
      expect((await api(token, path, { method: 'DELETE' })).status).toBe(204);
    }
    const again = await chat(stack.url, token, { message: 'and now?' });
    expect(again.status).toBe(429);
    expect(again.json).toMatchObject({ error: { limit: 'tokens_per_day' } });
    const after = await api(token, '/me/usage');
    expect(after.json.limits.tokens_per_day.used).toBe(before.json.limits.tokens_per_day.used);
    expect(after.json.limits.turns_per_minute.used).toBeGreaterThanOrEqual(
      before.json.limits.turns_per_minute.used,
    );
    for (const key of limiterKeys) expect(await inspect.exists(key)).toBe(1);

    // Control: removing the day's counter (what the pattern delete did) does let the user through.
    await inspect.del(...limiterKeys);
    expect((await chat(stack.url, token, { message: 'after a real reset' })).status).toBe(200);
  }, 120_000);
});

describe('silent loss', () => {
  it('a turn that neither the queue nor the direct write saved ends with an error event, never done', async () => {
    const token = await stack.issuer.mint(newUser());
    const sqs = proxies.sqs as FaultProxy;
    const dynamodb = proxies.dynamodb as FaultProxy;
    // Control: with only the queue down, the direct write saves the turn and the client gets done.
    sqs.failing = true;
    try {
      const saved = await chat(stack.url, token, { message: 'saved directly', use_rag: false });
      expect(saved.events.at(-1)?.data.type).toBe('done');
      const stream = await openStream(stack.url, { token, body: { message: 'lost turn', use_rag: false } });
      await waitFor(async () => stream.events.length > 0 || undefined, 20_000, 'first event');
      dynamodb.failing = true;
      const events = (await stream.ended).map((e) => JSON.parse(e.data));
      expect(events.map((e) => e.type)).not.toContain('done');
      expect(events.at(-1)).toMatchObject({
        type: 'error',
        code: 'not_saved',
        message: expect.stringMatching(/not be saved/),
      });
    } finally {
      sqs.failing = false;
      dynamodb.failing = false;
    }
  }, 120_000);
});

describe('no user-facing operation scans the keyspace', () => {
  it('every route of the API table, deletes and erasure included, issues no SCAN or KEYS (Redis command statistics)', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const stats = async () => {
      const info = await inspect.info('commandstats');
      const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
      return { scan: calls('scan'), keys: calls('keys'), eval: calls('eval') + calls('evalsha') };
    };
    await inspect.config('RESETSTAT');
    // Control: the probe sees a SCAN when one is sent.
    await inspect.scan('0', 'MATCH', 'nothing-*', 'COUNT', 10);
    expect((await stats()).scan).toBe(1);
    await inspect.config('RESETSTAT');

    const first = await chat(stack.url, token, { message: 'What is an ETF?' });
    const sessionId = String(first.events[0]?.data.session_id);
    await chat(stack.url, token, { message: 'And fees?', session_id: sessionId });
    const restore = slowModel(40);
    try {
      const running = await midAnswer(token, { message: 'Explain bonds', session_id: sessionId });
      const follower = await openStream(`${stack.url}/sessions/${sessionId}/stream`, {
        method: 'GET',
        token,
      });
      expect(follower.status).toBe(200);
      expect((await api(token, `/sessions/${sessionId}/stop`, { method: 'POST' })).status).toBe(202);
      await Promise.all([running.stream.ended, follower.ended]);
    } finally {
      restore();
    }
    await drainQueue();
    const answerId = String(first.events.at(-1)?.data.message_id);
    const model = String(JSON.parse((await api(token, '/v1/models')).text).data[0].id);
    const aiSdkId = `s-${uuidv7()}`;
    const openAi = { model, messages: [{ role: 'user', content: 'What is a dividend?' }] };
    // Every route of the API table, by its path template; the deletes and the erasure last.
    const calls: Array<[keyof typeof API_PATHS, string, string, unknown?]> = [
      [
        'nativeTurnLong',
        'POST',
        '/api/v1/chat/message/stream',
        { message: 'And taxes?', session_id: sessionId },
      ],
      [
        'aiSdkTurn',
        'POST',
        '/api/chat',
        {
          id: aiSdkId,
          messages: [{ id: 'm1', role: 'user', parts: [{ type: 'text', text: 'What is a REIT?' }] }],
        },
      ],
      ['aiSdkResume', 'GET', `/api/chat/${aiSdkId}/stream`],
      ['aiSdkStop', 'POST', `/api/chat/${aiSdkId}/stop`],
      ['openAiTurn', 'POST', '/v1/chat/completions', openAi],
      ['openAiTurn', 'POST', '/v1/chat/completions', { ...openAi, stream: true }],
      ['models', 'GET', '/v1/models'],
      ['models', 'GET', `/v1/models/${encodeURIComponent(model)}`],
      ['sessions', 'GET', '/sessions'],
      ['sessions', 'GET', '/sessions?q=etf'],
      ['session', 'GET', `/sessions/${sessionId}`],
      ['sessionMessages', 'GET', `/sessions/${sessionId}/messages`],
      ['messageFeedback', 'PUT', `/sessions/${sessionId}/messages/${answerId}/feedback`, { rating: 'up' }],
      ['messageFeedback', 'DELETE', `/sessions/${sessionId}/messages/${answerId}/feedback`],
      ['session', 'PATCH', `/sessions/${sessionId}`, { title: 'renamed' }],
      ['sessionResume', 'GET', `/sessions/${sessionId}/stream`],
      ['sessionStop', 'POST', `/sessions/${sessionId}/stop`],
      ['usage', 'GET', '/me/usage'],
      ['session', 'DELETE', `/sessions/${sessionId}`],
      ['session', 'DELETE', '/sessions/never-used'],
      ['me', 'DELETE', '/me'],
    ];
    for (const [, method, path, body] of calls) {
      expect([method, path, (await api(token, path, { method, body })).status]).toEqual([
        method,
        path,
        expect.toSatisfy((status: number) => status < 300),
      ]);
    }
    // The turn routes above (nativeTurn, sessionResume, sessionStop) ran mid-answer too; a route added to
    // the table without a call here fails this.
    const covered = new Set(['nativeTurn', ...calls.map(([route]) => route)]);
    expect(Object.keys(API_PATHS).filter((route) => !covered.has(route))).toEqual([]);
    const after = await stats();
    expect(after.eval).toBeGreaterThan(0);
    expect({ scan: after.scan, keys: after.keys }).toEqual({ scan: 0, keys: 0 });
  }, 120_000);
});
