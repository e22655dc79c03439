import { AbstractChat, type ChatInit, type ChatState, DefaultChatTransport, type UIMessage } from 'ai';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../../functions/contracts/api.ts';
import type { RedisProcess } from '../../../local/emulators/redis-server.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { testRedis } from '../../support/redis.ts';
import { tableReader } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Versions and feedback through the real AI SDK client (its Chat state machine and transport) against the
// local stack: an edit (same message id, new text) and a regeneration each make a version, the model sees
// only the active branch (read from what the Bedrock emulator received), and ratings live on the answer.
let stack: LocalStack;
let ownedRedis: RedisProcess | undefined;
let table: ReturnType<typeof tableReader>;

beforeAll(async () => {
  const redis = await testRedis(12);
  ownedRedis = redis.owned;
  stack = await startLocalStack({ redisUrl: redis.url, perTokenDelayMs: 2 });
  table = tableReader(stack.dynamodb, stack.tableName);
});
afterAll(async () => {
  await stack?.close();
  await ownedRedis?.stop();
});

class ArrayState<M extends UIMessage> implements ChatState<M> {
  status: ChatState<M>['status'] = 'ready';
  error: Error | undefined;
  messages: M[];
  constructor(messages: M[] = []) {
    this.messages = messages;
  }
  pushMessage = (m: M) => {
    this.messages = [...this.messages, m];
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (i: number, m: M) => {
    this.messages = this.messages.map((x, j) => (j === i ? m : x));
  };
  snapshot = <T>(x: T): T => structuredClone(x);
}
class HeadlessChat extends AbstractChat<UIMessage> {
  constructor({ messages, ...init }: ChatInit<UIMessage>) {
    super({ ...init, state: new ArrayState<UIMessage>(messages) });
  }
}

const newUser = () => `user-${uuidv7()}`;
const chatId = () => uuidv7().replaceAll('-', '').slice(0, 16);
const textOf = (m: UIMessage | undefined) =>
  (m?.parts ?? []).flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');

async function newChat() {
  const user = newUser();
  const token = await stack.issuer.mint(user);
  const chat = new HeadlessChat({
    id: chatId(),
    transport: new DefaultChatTransport<UIMessage>({
      api: `${stack.url}/api/chat`,
      headers: () => ({ authorization: `Bearer ${token}` }),
    }),
  });
  return { user, token, chat };
}

async function api(token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

async function branch(token: string, sessionId: string, leaf?: string): Promise<StoredMessage[]> {
  const query = leaf ? `?leaf=${leaf}` : '';
  const { status, json } = await api(token, 'GET', `/sessions/${sessionId}/messages${query}`);
  expect(status).toBe(200);
  return (json?.messages ?? []) as StoredMessage[];
}

/** What the model was sent on the session's calls, newest last: each call's message texts. */
const modelCalls = (sessionId: string) =>
  stack.bedrock.requests
    .filter(
      (r) =>
        (r.body as { requestMetadata?: { session_id?: string } }).requestMetadata?.session_id === sessionId,
    )
    .map((r) =>
      ((r.body as { messages?: Array<{ content?: Array<{ text?: string }> }> }).messages ?? []).map((m) =>
        (m.content ?? []).map((c) => c.text ?? '').join(''),
      ),
    );

const storedCount = (user: string, sessionId: string, count: number) =>
  waitFor(async () => {
    const items = await table.messages(user, sessionId);
    return items.length === count ? items : undefined;
  });

describe('versions: edit and regenerate through the AI SDK', () => {
  it('answers an edit (same id, new text) as a new version, never a replay; both versions read back', async () => {
    const { user, token, chat } = await newChat();
    await chat.sendMessage({ text: 'What is a Roth IRA?' });
    const question = chat.messages[0];
    const firstAnswer = textOf(chat.messages[1]);
    expect(firstAnswer).toContain('after-tax');
    await storedCount(user, chat.id, 2);

    // useChat's documented edit: the same message id with new text.
    await chat.sendMessage({ text: 'What is an HSA?', messageId: question?.id });
    expect(chat.status).toBe('ready');
    const edited = textOf(chat.messages.at(-1));
    expect(edited).not.toBe(firstAnswer);
    expect(edited).toMatch(/HSA|health/i);
    const items = await storedCount(user, chat.id, 4);
    const users = items.filter((i) => i.role === 'user');
    expect(users.map((i) => i.clientMessageId)).toEqual([question?.id, question?.id]);
    expect(users.map((i) => i.parentId)).toEqual([null, null]);

    const active = await branch(token, chat.id);
    expect(active.map((m) => m.text)).toEqual(['What is an HSA?', edited]);
    expect(active[0]?.versions).toHaveLength(2);
    expect(active[1]?.versions).toBeUndefined();
    const older = await branch(token, chat.id, active[0]?.versions?.[0]);
    expect(older.map((m) => m.text)).toEqual(['What is a Roth IRA?', firstAnswer]);
    expect(older[0]?.versions).toEqual(active[0]?.versions);
  });

  it('replays an identical retry (same id, same text) instead of answering twice', async () => {
    const { user, token, chat } = await newChat();
    await chat.sendMessage({ text: 'What is a Roth IRA?' });
    await storedCount(user, chat.id, 2);
    const question = chat.messages[0];
    const response = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: chat.id, message: question, trigger: 'submit-message', parentId: null }),
    });
    expect(response.status).toBe(200);
    const replayed = await response.text();
    expect(replayed).toContain(`"messageId":"${chat.messages[1]?.id}"`);
    const calls = modelCalls(chat.id);
    expect(calls).toHaveLength(1);
    expect(await table.messages(user, chat.id)).toHaveLength(2);
  });

  it('sends the model only the active branch after an edit', async () => {
    const { user, chat } = await newChat();
    await chat.sendMessage({ text: 'What is a Roth IRA?' });
    await chat.sendMessage({ text: 'How big should an emergency fund be?' });
    await storedCount(user, chat.id, 4);
    const second = chat.messages[2];
    // Edit the second question: the new version follows the first answer, beside the old one.
    await chat.sendMessage({ text: 'What is an HSA?', messageId: second?.id });
    await chat.sendMessage({ text: 'Tell me more.' });
    await storedCount(user, chat.id, 8);
    const last = modelCalls(chat.id).at(-1) ?? [];
    expect(last.some((text) => text.includes('What is an HSA?'))).toBe(true);
    expect(last.some((text) => text.includes('What is a Roth IRA?'))).toBe(true);
    expect(last.some((text) => text.includes('emergency fund'))).toBe(false);
  });

  it('keeps the earlier answer as a version when regenerating', async () => {
    const { user, token, chat } = await newChat();
    await chat.sendMessage({ text: 'What is compound interest?' });
    const before = chat.messages.at(-1);
    await storedCount(user, chat.id, 2);
    await chat.regenerate();
    const after = chat.messages.at(-1);
    expect(after?.id).not.toBe(before?.id);
    await storedCount(user, chat.id, 3);
    const active = await branch(token, chat.id);
    expect(active.map((m) => m.id)).toEqual([active[0]?.id, after?.id]);
    expect(active[1]?.versions).toEqual([before?.id, after?.id]);
    const older = await branch(token, chat.id, before?.id);
    expect(older.map((m) => m.id)).toEqual([active[0]?.id, before?.id]);
    expect(older[1]?.text).toBe(textOf(before));
    // The model answered the same question again, without the earlier answer in its history.
    const calls = modelCalls(chat.id);
    expect(calls.at(-1)).toEqual(calls[0]);
  });
});

describe('versions on the native route', () => {
  it('answers the same message_id with new text as a new version, and parent_id places a question', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const turn = async (body: Record<string, unknown>) => {
      const response = await fetch(`${stack.url}/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(200);
      return response.text();
    };
    const sessionId = chatId();
    await turn({ session_id: sessionId, message: 'What is a Roth IRA?', message_id: 'n1' });
    await storedCount(user, sessionId, 2);
    await turn({ session_id: sessionId, message: 'What is an HSA?', message_id: 'n1' });
    const items = await storedCount(user, sessionId, 4);
    expect(items.map((i) => i.parentId)).toEqual([null, items[0]?.messageId, null, items[2]?.messageId]);
    // Going on from the first version: its answer is the parent, so that branch becomes the active one.
    await turn({ session_id: sessionId, message: 'Tell me more.', parent_id: items[1]?.messageId });
    await storedCount(user, sessionId, 6);
    const active = await branch(token, sessionId);
    expect(active.map((m) => m.text.slice(0, 19))).toEqual([
      'What is a Roth IRA?',
      String(items[1]?.content).slice(0, 19),
      'Tell me more.',
      expect.any(String),
    ]);
    expect(
      modelCalls(sessionId)
        .at(-1)
        ?.some((text) => text.includes('HSA')),
    ).toBe(false);
  });
});

describe('the OpenAI route keeps its retry semantics', () => {
  it('replays the answer to an Idempotency-Key sent again with other text (no version)', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const call = (text: string, sessionId?: string) =>
      fetch(`${stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'idempotency-key': 'same-key-1',
          ...(sessionId ? { 'x-session-id': sessionId } : {}),
        },
        body: JSON.stringify({
          model: 'local.grounded-echo-v1',
          messages: [{ role: 'user', content: text }],
          store: true,
        }),
      });
    const first = await call('What is a Roth IRA?');
    const sessionId = first.headers.get('x-session-id') ?? '';
    const answer = ((await first.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]
      ?.message.content;
    await storedCount(user, sessionId, 2);
    const again = await call('What is an HSA?', sessionId);
    expect(again.status).toBe(200);
    const replayed = ((await again.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]
      ?.message.content;
    expect(replayed).toBe(answer);
    expect(modelCalls(sessionId)).toHaveLength(1);
  });
});

describe('feedback on an answer', () => {
  it('stores a rating with its reason on the answer, returns it, takes it back; refuses bad input with 4xx', async () => {
    const { user, token, chat } = await newChat();
    await chat.sendMessage({ text: 'What is a Roth IRA?' });
    const [question, answer] = await storedCount(user, chat.id, 2);
    const path = `/sessions/${chat.id}/messages/${String(answer?.messageId)}/feedback`;

    const put = await api(token, 'PUT', path, { rating: 'down', reason: ' Too short ' });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({
      id: answer?.messageId,
      feedback: { rating: 'down', reason: 'Too short' },
    });
    const [, rated] = await branch(token, chat.id);
    expect(rated?.feedback).toMatchObject({ rating: 'down', reason: 'Too short' });
    const ui = await api(token, 'GET', `/sessions/${chat.id}/messages?format=ai-sdk`);
    const uiAnswer = ((ui.json?.messages ?? []) as UIMessage[])[1];
    expect(uiAnswer?.metadata).toMatchObject({ feedback: { rating: 'down' } });
    expect((await table.messages(user, chat.id))[1]?.feedback).toMatchObject({ rating: 'down' });

    expect((await api(token, 'PUT', path, { rating: 'up' })).status).toBe(200);
    expect((await branch(token, chat.id))[1]?.feedback).toMatchObject({ rating: 'up' });
    expect((await branch(token, chat.id))[1]?.feedback?.reason).toBeUndefined();

    const refusals: Array<[string, unknown, number, string]> = [
      [path, { rating: 'meh' }, 400, 'rating'],
      [path, { rating: 'up', reason: 'x'.repeat(501) }, 400, 'reason'],
      [path, { rating: 'up', extra: 1 }, 400, 'extra'],
      [path, '{not json', 400, ''],
      [`/sessions/${chat.id}/messages/${String(question?.messageId)}/feedback`, { rating: 'up' }, 404, ''],
      [`/sessions/${chat.id}/messages/${uuidv7()}/feedback`, { rating: 'up' }, 404, ''],
      [`/sessions/${chat.id}/messages/not-an-id/feedback`, { rating: 'up' }, 404, ''],
    ];
    for (const [at, body, status, field] of refusals) {
      const refused = await api(token, 'PUT', at, body);
      expect(refused.status, `${at} ${JSON.stringify(body)}`).toBe(status);
      expect(refused.json).toMatchObject({
        error: { code: expect.any(String), message: expect.any(String) },
      });
      if (field) expect((refused.json?.error as { field?: string } | undefined)?.field).toBe(field);
    }
    // Only the owner: another user's token finds no such answer.
    const other = await stack.issuer.mint(newUser());
    expect((await api(other, 'PUT', path, { rating: 'down' })).status).toBe(404);
    expect((await branch(token, chat.id))[1]?.feedback).toMatchObject({ rating: 'up' });

    expect((await api(token, 'DELETE', path)).status).toBe(204);
    expect((await branch(token, chat.id))[1]?.feedback).toBeUndefined();
  });
});
