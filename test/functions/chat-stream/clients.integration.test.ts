import {
  AbstractChat,
  type ChatInit,
  type ChatState,
  DefaultChatTransport,
  readUIMessageStream,
  type UIMessage,
} from 'ai';
import OpenAI from 'openai';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisProcess } from '../../../local/emulators/redis-server.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { testRedis } from '../../support/redis.ts';
import { slowTokens } from '../../support/slow-tokens.ts';
import { tableReader } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Integration with the real clients (the `ai` package's transport and Chat state machine, the official
// `openai` SDK) against the local stack: Function URL emulator, Redis, dynalite, fauxqs, Bedrock emulators.
let stack: LocalStack;
let ownedRedis: RedisProcess | undefined;
let table: ReturnType<typeof tableReader>;

beforeAll(async () => {
  const redis = await testRedis(8);
  ownedRedis = redis.owned;
  stack = await startLocalStack({ redisUrl: redis.url });
  table = tableReader(stack.dynamodb, stack.tableName);
});
afterAll(async () => {
  await stack.close();
  await ownedRedis?.stop();
});

/** useChat's state machine without React: the `ai` package's AbstractChat over a plain array. */
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
const transportFor = (token: string) =>
  new DefaultChatTransport<UIMessage>({
    api: `${stack.url}/api/chat`,
    headers: () => ({ authorization: `Bearer ${token}` }),
  });
const textOf = (m: UIMessage | undefined) =>
  (m?.parts ?? []).flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');
/** A chat id as the AI SDK makes them (16 characters). */
const chatId = () => uuidv7().replaceAll('-', '').slice(0, 16);

describe('AI SDK (ai v7): useChat transport and Chat against POST /api/chat', () => {
  it('holds a two-turn conversation: text, sources, metadata, and the stored history is the truth', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const finishes: Array<{ finishReason: string | undefined; metadata: unknown }> = [];
    const chat = new HeadlessChat({
      id: chatId(),
      transport: transportFor(token),
      onFinish: ({ message, finishReason }) => finishes.push({ finishReason, metadata: message.metadata }),
    });
    await chat.sendMessage({ text: 'What is a Roth IRA?' });
    expect(chat.status).toBe('ready');
    const first = chat.messages.at(-1);
    expect(first?.role).toBe('assistant');
    expect(textOf(first)).toContain('after-tax');
    // Local sources link to the documents the knowledge base emulator serves (SOURCE_BASE_URL).
    const sources = first?.parts.filter((p) => p.type === 'source-url') ?? [];
    expect(sources.length).toBeGreaterThan(0);
    expect(sources[0]).toMatchObject({ url: expect.stringMatching(/\/documents\/roth-ira\.md$/) });
    expect(finishes[0]?.finishReason).toBe('stop');
    expect(finishes[0]?.metadata).toMatchObject({
      sessionId: chat.id,
      stopReason: 'end_turn',
      usage: { output_tokens: expect.any(Number) },
      timings: { first_byte_ms: expect.any(Number), model_first_token_ms: expect.any(Number) },
      // The RAG cache outlives a run on a long-lived Redis: only "looked it up" is certain.
      cache: { rag: expect.stringMatching(/^(hit|miss)$/) },
    });

    await chat.sendMessage({ text: 'And what about a traditional IRA?' });
    expect(textOf(chat.messages.at(-1))).toMatch(/^Building on what we discussed/);
    const items = await waitFor(async () => {
      const found = await table.messages(user, chat.id);
      return found.length === 4 ? found : undefined;
    });
    expect(items.map((i) => i.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(items[0]?.clientMessageId).toBe(chat.messages[0]?.id);
    expect(items[1]?.messageId).toBe(first?.id);
    // Bedrock invocation logs can attribute the call: a key for the user (not the id) and the session.
    const calls = stack.bedrock.requests.filter(
      (r) => (r.body as { requestMetadata?: Record<string, string> }).requestMetadata?.session_id === chat.id,
    );
    expect(calls).toHaveLength(2);
    const body = (calls[0]?.body ?? {}) as { requestMetadata?: Record<string, string> };
    const metadata = body.requestMetadata ?? {};
    expect(metadata.user_key).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.stringify(metadata)).not.toContain(user);
  });

  it('reads a raw stream with readUIMessageStream and sees the protocol headers', async () => {
    const token = await stack.issuer.mint(newUser());
    const response = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        id: chatId(),
        message: { id: 'm1', role: 'user', parts: [{ type: 'text', text: 'What is an index fund?' }] },
      }),
    });
    expect(response.headers.get('x-vercel-ai-ui-message-stream')).toBe('v1');
    const transport = transportFor(token);
    const chunks = await transport.sendMessages({
      trigger: 'submit-message',
      chatId: chatId(),
      messageId: undefined,
      messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'What is inflation?' }] }],
      abortSignal: undefined,
    });
    let last: UIMessage | undefined;
    for await (const message of readUIMessageStream({ stream: chunks, terminateOnError: true }))
      last = message;
    expect(textOf(last).length).toBeGreaterThan(20);
    expect((await response.text()).trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('reports a model error in-band: the chat goes to error with a message a person understands', async () => {
    const token = await stack.issuer.mint(newUser());
    stack.bedrock.failNext('throttle', 2);
    const chat = new HeadlessChat({ id: chatId(), transport: transportFor(token) });
    await chat.sendMessage({ text: 'Hello?' });
    expect(chat.status).toBe('error');
    expect(chat.error?.message).toMatch(/busy/);
  });

  it('stops a running answer with the stop endpoint: the stored answer is the partial one, marked stopped', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const id = chatId();
    slowTokens(stack, 10);
    let tokensSeen = 0;
    const chat = new HeadlessChat({
      id,
      transport: transportFor(token),
      onData: () => undefined,
    });
    const sending = chat.sendMessage({ text: 'What is dollar-cost averaging?' });
    await waitFor(async () => {
      tokensSeen = textOf(chat.messages.at(-1)).length;
      return chat.messages.at(-1)?.role === 'assistant' && tokensSeen > 20;
    }, 5000);
    const stop = await fetch(`${stack.url}/api/chat/${id}/stop`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(stop.status).toBe(202);
    await sending;
    const shown = textOf(chat.messages.at(-1));
    const items = await waitFor(async () => {
      const found = await table.messages(user, id);
      return found.length === 2 ? found : undefined;
    });
    expect(items[1]).toMatchObject({ stopReason: 'stopped', content: shown });
    expect(chat.messages.at(-1)?.metadata).toMatchObject({ stopReason: 'stopped' });
  });

  it('resumes a running answer after a reload (resume: GET /api/chat/{id}/stream), and 204 when nothing runs', async () => {
    const token = await stack.issuer.mint(newUser());
    const id = chatId();
    slowTokens(stack, 10);
    const first = new HeadlessChat({ id, transport: transportFor(token) });
    const sending = first.sendMessage({ text: 'What is an emergency fund?' });
    await waitFor(async () => textOf(first.messages.at(-1)).length > 10 || undefined, 5000);
    // A second tab (or the page after a reload) attaches to the same turn.
    const reloaded = new HeadlessChat({
      id,
      transport: transportFor(token),
      messages: [first.messages[0] as UIMessage],
    });
    await reloaded.resumeStream();
    await sending;
    expect(textOf(reloaded.messages.at(-1))).toBe(textOf(first.messages.at(-1)));
    expect(reloaded.messages.at(-1)?.id).toBe(first.messages.at(-1)?.id);
    const idle = await transportFor(token).reconnectToStream({ chatId: chatId() });
    expect(idle).toBeNull();
  });

  it('regenerates the last answer: one new answer replaces the old one in the stored conversation', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const chat = new HeadlessChat({ id: chatId(), transport: transportFor(token) });
    await chat.sendMessage({ text: 'What is compound interest?' });
    const before = chat.messages.at(-1)?.id;
    await chat.regenerate();
    expect(chat.messages).toHaveLength(2);
    const after = chat.messages.at(-1);
    expect(after?.id).not.toBe(before);
    expect(textOf(after)).toContain('interest');
    const items = await waitFor(async () => {
      const found = await table.messages(user, chat.id);
      return found.length === 3 ? found : undefined;
    });
    expect(items.map((i) => i.role)).toEqual(['user', 'assistant', 'assistant']);
    expect(items[2]?.replaces).toBe(before);
  });

  it('rejects a body that is not the AI SDK shape with a 400 the transport surfaces', async () => {
    const token = await stack.issuer.mint(newUser());
    const response = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'bad id!', messages: [] }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'invalid_request', field: 'id' } });
  });
});

describe('OpenAI SDK against POST /v1/chat/completions', () => {
  /** The local stack's model (MODEL_ID), the one model its allow-list holds. */
  const LOCAL_MODEL = 'local.grounded-echo-v1';
  const clientFor = (token: string) =>
    new OpenAI({ apiKey: token, baseURL: `${stack.url}/v1`, maxRetries: 0 });

  it('streams chunks with a finish reason and a usage chunk, and continues the session it was given', async () => {
    const client = clientFor(await stack.issuer.mint(newUser()));
    const { data: stream, response } = await client.chat.completions
      .create({
        model: LOCAL_MODEL,
        messages: [{ role: 'user', content: 'What is a budget?' }],
        stream: true,
        stream_options: { include_usage: true },
        store: true,
      })
      .withResponse();
    const sessionId = response.headers.get('x-session-id') ?? '';
    let text = '';
    const finishReasons: Array<string | null> = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.choices[0]) finishReasons.push(chunk.choices[0].finish_reason);
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text.length).toBeGreaterThan(20);
    expect(finishReasons.at(-1)).toBe('stop');
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));

    const next = await client.chat.completions.create(
      { model: LOCAL_MODEL, messages: [{ role: 'user', content: 'Tell me more.' }] },
      { headers: { 'x-session-id': sessionId } },
    );
    expect(next.object).toBe('chat.completion');
    expect(next.choices[0]?.message.content).toMatch(/^Building on what we discussed/);
    expect(next.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it("surfaces errors in OpenAI's shape: a bad token is an AuthenticationError, a bad body a BadRequestError", async () => {
    const bad = clientFor('not-a-token');
    await expect(
      bad.chat.completions.create({ model: LOCAL_MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const client = clientFor(await stack.issuer.mint(newUser()));
    const error = await client.chat.completions
      .create({ model: LOCAL_MODEL, messages: [{ role: 'assistant', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 400, type: 'invalid_request_error', param: 'messages[0]' });
  });

  it('turns a model failure into an OpenAI error: 429 for a throttled model when not streaming', async () => {
    const client = clientFor(await stack.issuer.mint(newUser()));
    stack.bedrock.failNext('throttle', 2);
    const error = await client.chat.completions
      .create({ model: LOCAL_MODEL, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
  });
});
