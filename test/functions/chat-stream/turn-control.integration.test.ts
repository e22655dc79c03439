import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisProcess } from '../../../local/emulators/redis-server.ts';
import { chat } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { testRedis } from '../../support/redis.ts';
import { openStream } from '../../support/sse-stream.ts';
import { tableReader } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Integration: real Redis, dynalite, fauxqs and the poller; every request in an execution environment
// of its own (worker threads), so a stop or a resume reaches a turn running somewhere else.
let stack: LocalStack;
let ownedRedis: RedisProcess | undefined;
let table: ReturnType<typeof tableReader>;

beforeAll(async () => {
  const redis = await testRedis(7);
  ownedRedis = redis.owned;
  stack = await startLocalStack({
    redisUrl: redis.url,
    environments: 'isolated',
    maxEnvironments: 4,
    perTokenDelayMs: 25,
    env: { TURN_FLUSH_MS: '50' },
  });
  table = tableReader(stack.dynamodb, stack.tableName);
});
afterAll(async () => {
  await stack.close();
  await ownedRedis?.stop();
});

const newUser = () => `user-${uuidv7()}`;
const data = (event: { data: string }) => JSON.parse(event.data) as Record<string, unknown>;
/** A stop (POST) or resume (GET) of a session's turn, as the given user. */
const sessionCall = (token: string, sessionId: string, action: 'stop' | 'stream') =>
  fetch(`${stack.url}/sessions/${sessionId}/${action}`, {
    method: action === 'stop' ? 'POST' : 'GET',
    headers: { authorization: `Bearer ${token}` },
  });
const storedMessages = (user: string, sessionId: string, count: number) =>
  waitFor(async () => {
    const items = await table.messages(user, sessionId);
    return items.length >= count ? items : undefined;
  });

describe('turn control across execution environments (native SSE)', () => {
  it('numbers every event with an SSE id, in order from 0', async () => {
    const stream = await openStream(stack.url, {
      token: await stack.issuer.mint(newUser()),
      body: { message: 'What is an index fund?', use_rag: false },
    });
    const events = await stream.ended;
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => String(i)));
    expect(data(events.at(-1) ?? { data: '{}' }).type).toBe('done');
  });

  it('answers a retried message id once: one user message and one answer are stored, the retry replays it', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const sessionId = `s-${uuidv7()}`;
    const body = { message: 'What is a Roth IRA?', session_id: sessionId, message_id: 'client-msg-1' };
    const first = await chat(stack.url, token, body);
    const retry = await chat(stack.url, token, body);
    const viaHeader = await chat(
      stack.url,
      token,
      { message: 'What is a Roth IRA?', session_id: sessionId },
      { headers: { 'idempotency-key': 'client-msg-1' } },
    );
    const doneOf = (r: typeof first) => r.events.find((e) => e.data.type === 'done')?.data.message_id;
    expect(retry.status).toBe(200);
    expect(doneOf(retry)).toBe(doneOf(first));
    expect(doneOf(viaHeader)).toBe(doneOf(first));
    const items = await storedMessages(user, sessionId, 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await table.messages(user, sessionId)).map((i) => i.role)).toEqual(['user', 'assistant']);
    expect(items[0]?.clientMessageId).toBe('client-msg-1');
  });

  it('refuses a second concurrent turn on one session with 409 turn_in_progress, before streaming', async () => {
    const token = await stack.issuer.mint(newUser());
    const sessionId = `s-${uuidv7()}`;
    // A slow model keeps the first turn running however long a cold environment takes to start.
    const perToken = stack.bedrock.options.perTokenDelayMs;
    stack.bedrock.options.perTokenDelayMs = 150;
    let running: Awaited<ReturnType<typeof openStream>>;
    let second: Awaited<ReturnType<typeof chat>>;
    try {
      running = await openStream(stack.url, {
        token,
        body: { message: 'Explain compound interest', session_id: sessionId },
      });
      await running.waitForEvents(1);
      second = await chat(stack.url, token, { message: 'And inflation?', session_id: sessionId });
      expect(running.events.at(-1)?.data).not.toContain('"type":"done"');
    } finally {
      stack.bedrock.options.perTokenDelayMs = perToken;
    }
    expect(second.status).toBe(409);
    expect(second.json).toMatchObject({ error: { code: 'turn_in_progress' } });
    await running.ended;
    const after = await chat(stack.url, token, { message: 'And inflation?', session_id: sessionId });
    expect(after.status).toBe(200);
  });

  it('stops a running turn from another connection: the stream ends with done (stopped) and the partial answer is stored', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const sessionId = `s-${uuidv7()}`;
    const running = await openStream(stack.url, {
      token,
      body: { message: 'What is dollar-cost averaging?', session_id: sessionId },
    });
    await running.waitForEvents(5);
    const stoppedAt = performance.now();
    const stop = await sessionCall(token, sessionId, 'stop');
    expect(stop.status).toBe(202);
    const events = await running.ended;
    const endedAfterMs = performance.now() - stoppedAt;
    const last = data(events.at(-1) ?? { data: '{}' });
    expect(last).toMatchObject({ type: 'done', stop_reason: 'stopped' });
    expect(endedAfterMs).toBeLessThan(500);
    const tokens = events.map(data).filter((e) => e.type === 'token');
    const partial = tokens.map((e) => e.text).join('');
    const items = await storedMessages(user, sessionId, 2);
    expect(items[1]).toMatchObject({ role: 'assistant', stopReason: 'stopped', content: partial });
    // The model stopped too: it was asked for far more than it wrote.
    expect(stack.bedrock.requests.length).toBeGreaterThan(0);
    const idle = await sessionCall(token, sessionId, 'stop');
    expect(idle.status).toBe(204);
  });

  it('resumes a running turn from another connection after Last-Event-ID, and follows it to its end', async () => {
    const token = await stack.issuer.mint(newUser());
    const sessionId = `s-${uuidv7()}`;
    const original = await openStream(stack.url, {
      token,
      body: { message: 'What is an emergency fund?', session_id: sessionId },
    });
    const seen = await original.waitForEvents(4);
    const lastId = seen[3]?.id ?? '';
    const resumed = await openStream(`${stack.url}/sessions/${sessionId}/stream`, {
      method: 'GET',
      token,
      headers: { 'last-event-id': lastId },
    });
    expect(resumed.status).toBe(200);
    const [all, rest] = await Promise.all([original.ended, resumed.ended]);
    expect(rest.map((e) => e.id)).toEqual(all.slice(4).map((e) => e.id));
    expect(rest.map((e) => e.data)).toEqual(all.slice(4).map((e) => e.data));
    const nothing = await sessionCall(token, `s-${uuidv7()}`, 'stream');
    expect(nothing.status).toBe(204);
  });

  it('keeps answering after the client disconnects (as Lambda does), and a reattach gets the rest', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const sessionId = `s-${uuidv7()}`;
    const dropped = await openStream(stack.url, {
      token,
      body: { message: 'What is an index fund?', session_id: sessionId },
    });
    const seen = await dropped.waitForEvents(3);
    const lastId = seen[2]?.id ?? '';
    dropped.disconnect();
    const reattached = await openStream(`${stack.url}/sessions/${sessionId}/stream`, {
      method: 'GET',
      token,
      headers: { 'last-event-id': lastId },
    });
    const rest = await reattached.ended;
    expect(rest[0]?.id).toBe(String(Number(lastId) + 1));
    const done = data(rest.at(-1) ?? { data: '{}' });
    expect(done).toMatchObject({ type: 'done', stop_reason: 'end_turn' });
    const text = [...seen.slice(0, 3), ...rest]
      .map(data)
      .filter((e) => e.type === 'token')
      .map((e) => e.text)
      .join('');
    const items = await storedMessages(user, sessionId, 2);
    expect(items[1]).toMatchObject({ role: 'assistant', stopReason: 'end_turn', content: text });
  });

  it("never lets one user stop or resume another user's session", async () => {
    const sessionId = `s-${uuidv7()}`;
    const owner = await stack.issuer.mint(newUser());
    const other = await stack.issuer.mint(newUser());
    const running = await openStream(stack.url, {
      token: owner,
      body: { message: 'Hi', session_id: sessionId },
    });
    await running.waitForEvents(1);
    const stop = await sessionCall(other, sessionId, 'stop');
    expect(stop.status).toBe(204);
    const resume = await sessionCall(other, sessionId, 'stream');
    expect(resume.status).toBe(204);
    const events = await running.ended;
    expect(data(events.at(-1) ?? { data: '{}' })).toMatchObject({ type: 'done', stop_reason: 'end_turn' });
  });

  it('answers unknown paths with 404 and wrong methods with 405, as JSON', async () => {
    const token = await stack.issuer.mint(newUser());
    const missing = await fetch(`${stack.url}/nope`, { headers: { authorization: `Bearer ${token}` } });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 'not_found' } });
    const wrong = await fetch(`${stack.url}/sessions/abc/stop`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
  });
});
