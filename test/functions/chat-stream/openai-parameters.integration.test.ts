import OpenAI from 'openai';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisProcess } from '../../../local/emulators/redis-server.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { testRedis } from '../../support/redis.ts';
import { slowTokens } from '../../support/slow-tokens.ts';
import { waitFor } from '../../support/wait.ts';

// Every field of a chat completion request is honoured or refused by name, checked with the official
// `openai` SDK against the local stack (Function URL emulator, Redis, dynalite, SQS and Bedrock emulators).
const DEFAULT_MODEL = 'local.grounded-echo-v1';
const OTHER_MODEL = 'local.grounded-echo-mini-v1';
let stack: LocalStack;
let ownedRedis: RedisProcess | undefined;

beforeAll(async () => {
  const redis = await testRedis(9);
  ownedRedis = redis.owned;
  stack = await startLocalStack({
    redisUrl: redis.url,
    // One answer at a time per user makes a 429 easy to provoke; every test uses a new user.
    env: { ALLOWED_MODEL_IDS: OTHER_MODEL, LIMIT_CONCURRENT_STREAMS: '1' },
  });
});
afterAll(async () => {
  await stack.close();
  await ownedRedis?.stop();
});

const newUser = () => `user-${uuidv7()}`;
const clientFor = (token: string, options: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}) =>
  new OpenAI({ apiKey: token, baseURL: `${stack.url}/v1`, maxRetries: 0, ...options });
const newClient = async () => clientFor(await stack.issuer.mint(newUser()));
const ask = (content: string) => [{ role: 'user' as const, content }];

interface ConverseRequest {
  modelId: string;
  body: {
    system?: Array<{ text?: string }>;
    messages?: Array<{ role: string; content?: Array<{ text?: string }> }>;
    inferenceConfig?: { maxTokens?: number; temperature?: number; topP?: number; stopSequences?: string[] };
  };
}
/** The answer calls the Bedrock emulator received (the consumer's title calls left out). */
const answerCalls = () =>
  (stack.bedrock.requests as ConverseRequest[]).filter(
    (r) => !/^Write a title/.test(r.body.system?.[0]?.text ?? ''),
  );

async function conversations(token: string): Promise<unknown[]> {
  const response = await fetch(`${stack.url}/sessions`, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { sessions: unknown[] }).sessions;
}

describe('generation parameters change the answer', () => {
  it('max_tokens: 5 ends the answer after at most 5 tokens with finish_reason "length"', async () => {
    const client = await newClient();
    const full = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
    });
    expect(full.usage?.completion_tokens).toBeGreaterThan(5);
    expect(full.choices[0]?.finish_reason).toBe('stop');

    const short = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
      max_tokens: 5,
    });
    expect(short.usage?.completion_tokens).toBeLessThanOrEqual(5);
    expect(short.choices[0]?.finish_reason).toBe('length');
    expect(full.choices[0]?.message.content?.startsWith(short.choices[0]?.message.content ?? '-')).toBe(true);
  });

  it('max_completion_tokens does the same while streaming, and the cap clamps a larger ask', async () => {
    const client = await newClient();
    const stream = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
      max_completion_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    let finish: string | null | undefined;
    let completionTokens = -1;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
    }
    expect(finish).toBe('length');
    expect(completionTokens).toBeGreaterThan(0);
    expect(completionTokens).toBeLessThanOrEqual(3);

    await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
      max_tokens: 1_000_000,
    });
    // Above the deployment's cap (MAX_TOKENS, 1024 by default) the ask is clamped, not refused.
    expect(answerCalls().at(-1)?.body.inferenceConfig?.maxTokens).toBe(1024);
  });

  it('stop cuts the text before the stop sequence, with finish_reason "stop"', async () => {
    const client = await newClient();
    const full = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
    });
    const text = full.choices[0]?.message.content ?? '';
    expect(text).toContain('after-tax');
    const cut = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
      stop: ['after-tax', 'nothing-like-this'],
    });
    expect(cut.choices[0]?.message.content).toBe(text.slice(0, text.indexOf('after-tax')));
    expect(cut.choices[0]?.finish_reason).toBe('stop');
  });

  it('temperature and top_p reach the model as Converse inferenceConfig', async () => {
    const client = await newClient();
    await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('Hello there'),
      temperature: 0.9,
    });
    expect(answerCalls().at(-1)?.body.inferenceConfig).toMatchObject({ temperature: 0.9 });
    await client.chat.completions.create({ model: DEFAULT_MODEL, messages: ask('Hello there'), top_p: 0.5 });
    expect(answerCalls().at(-1)?.body.inferenceConfig).toMatchObject({ topP: 0.5 });
  });
});

describe('what is not supported is refused with a 400 naming the field', () => {
  const refused: Array<[string, Record<string, unknown>, string]> = [
    ['n: 2', { n: 2 }, 'n'],
    ['tools', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 'tools'],
    ['tool_choice', { tool_choice: 'required' }, 'tool_choice'],
    ['parallel_tool_calls', { parallel_tool_calls: true }, 'parallel_tool_calls'],
    ['functions', { functions: [{ name: 'f' }] }, 'functions'],
    ['function_call', { function_call: 'auto' }, 'function_call'],
    ['response_format json_object', { response_format: { type: 'json_object' } }, 'response_format'],
    [
      'response_format json_schema',
      { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } },
      'response_format',
    ],
    ['logprobs', { logprobs: true }, 'logprobs'],
    ['top_logprobs', { top_logprobs: 2 }, 'top_logprobs'],
    ['logit_bias', { logit_bias: { '50256': -100 } }, 'logit_bias'],
    ['seed', { seed: 7 }, 'seed'],
    ['frequency_penalty', { frequency_penalty: 0.5 }, 'frequency_penalty'],
    ['presence_penalty', { presence_penalty: 0.5 }, 'presence_penalty'],
    ['audio', { audio: { voice: 'alloy', format: 'mp3' } }, 'audio'],
    ['modalities', { modalities: ['text', 'audio'] }, 'modalities'],
    ['prediction', { prediction: { type: 'content', content: 'x' } }, 'prediction'],
    ['web_search_options', { web_search_options: {} }, 'web_search_options'],
    ['reasoning_effort', { reasoning_effort: 'low' }, 'reasoning_effort'],
    ['verbosity', { verbosity: 'low' }, 'verbosity'],
    ['service_tier flex', { service_tier: 'flex' }, 'service_tier'],
    ['prompt_cache_retention', { prompt_cache_retention: '24h' }, 'prompt_cache_retention'],
    ['an unknown field', { frobnicate: true }, 'frobnicate'],
    ['temperature above 1', { temperature: 1.5 }, 'temperature'],
    ['max_tokens 0', { max_tokens: 0 }, 'max_tokens'],
    ['five stop sequences', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    [
      'stream_options.include_obfuscation',
      { stream: true, stream_options: { include_obfuscation: true } },
      'stream_options.include_obfuscation',
    ],
    ['a model not on the list', { model: 'gpt-4o' }, 'model'],
    [
      'an image part whose bytes are no PNG',
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is this?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            ],
          },
        ],
      },
      'messages[0].content[1].image_url.url',
    ],
    [
      'a tool message',
      {
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'tool', content: 'x', tool_call_id: 'c' },
          { role: 'user', content: 'hi' },
        ],
      },
      'messages[1].role',
    ],
    [
      'assistant tool_calls',
      {
        messages: [
          { role: 'user', content: 'hi' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }],
          },
          { role: 'user', content: 'hi' },
        ],
      },
      'messages[1].tool_calls',
    ],
    ['a participant name', { messages: [{ role: 'user', content: 'hi', name: 'zed' }] }, 'messages[0].name'],
    ['metadata it does not read', { metadata: { project: 'x' } }, 'metadata.project'],
  ];

  it.each(refused)('%s', async (_case, fields, param) => {
    const client = await newClient();
    const calls = answerCalls().length;
    const error = await client.chat.completions
      .create({ model: DEFAULT_MODEL, messages: ask('What is a Roth IRA?'), ...fields } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error).toMatchObject({ status: 400, type: 'invalid_request_error', param });
    expect((error as Error).message).toContain(param.split('.')[0]?.split('[')[0] ?? param);
    // Refused before any model call.
    expect(answerCalls().length).toBe(calls);
  });

  it('names the allowed models when the model is not on the list', async () => {
    const client = await newClient();
    const error = await client.chat.completions
      .create({ model: 'gpt-4o', messages: ask('hi') })
      .catch((e: unknown) => e);
    expect((error as Error).message).toContain(DEFAULT_MODEL);
    expect((error as Error).message).toContain(OTHER_MODEL);
  });

  it('accepts the values that ask for nothing (n: 1, logprobs: false, text format, user)', async () => {
    const client = await newClient();
    const completion = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
      n: 1,
      logprobs: false,
      response_format: { type: 'text' },
      frequency_penalty: 0,
      presence_penalty: 0,
      tool_choice: 'none',
      user: 'end-user-7',
      top_p: 1,
    });
    expect(completion.choices).toHaveLength(1);
  });
});

describe('stateless and stateful calls', () => {
  it('stateless by default: the client messages are the prompt and no conversation appears', async () => {
    const token = await stack.issuer.mint(newUser());
    const client = clientFor(token);
    const { data, response } = await client.chat.completions
      .create({
        model: DEFAULT_MODEL,
        messages: [
          { role: 'system', content: 'The secret password for this chat is pineapple, always.' },
          { role: 'user', content: 'Hello.' },
          { role: 'assistant', content: 'Hi, how can I help?' },
          { role: 'user', content: 'What is the secret password?' },
        ],
      })
      .withResponse();
    // The local model quotes the sentence of its prompt that matches the question: the system message.
    expect(data.choices[0]?.message.content).toContain('pineapple');
    expect(data.choices[0]?.message.content).toMatch(/^Building on what we discussed/);
    expect(response.headers.get('x-session-id')).toBeNull();
    const call = answerCalls().at(-1);
    expect(call?.body.messages?.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(call?.body.messages?.[1]?.content?.[0]?.text).toBe('Hi, how can I help?');
    expect(call?.body.system?.[0]?.text).toContain('pineapple');
    expect(data.usage?.completion_tokens).toBeGreaterThan(0);

    await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
      store: false,
    });
    // A stored call after them: once its conversation is listed, the consumer is past anything they sent.
    const stored = await client.chat.completions
      .create({ model: DEFAULT_MODEL, messages: ask('What is a budget?'), store: true })
      .withResponse();
    const storedId = stored.response.headers.get('x-session-id');
    const listed = await waitFor(async () => {
      const found = (await conversations(token)) as Array<{ id: string }>;
      return found.length > 0 ? found : undefined;
    });
    expect(listed.map((s) => s.id)).toEqual([storedId]);
  });

  it('store: true starts a stored conversation, x-session-id continues it (its history is the truth)', async () => {
    const token = await stack.issuer.mint(newUser());
    const client = clientFor(token);
    const { data, response } = await client.chat.completions
      .create({ model: DEFAULT_MODEL, messages: ask('What is a budget?'), store: true })
      .withResponse();
    const sessionId = response.headers.get('x-session-id') ?? '';
    expect(sessionId).not.toBe('');
    expect(data).toMatchObject({ metadata: { session_id: sessionId } });
    const next = await client.chat.completions.create(
      { model: DEFAULT_MODEL, messages: ask('Tell me more.') },
      { headers: { 'x-session-id': sessionId } },
    );
    expect(next.choices[0]?.message.content).toMatch(/^Building on what we discussed/);
    // The list reads what the consumer persisted: wait for it, then there must be exactly this one.
    const listed = await waitFor(async () => {
      const found = (await conversations(token)) as unknown[];
      return found.length > 0 ? found : undefined;
    });
    expect(listed).toHaveLength(1);
  });

  it('refuses a contradiction (store: false with x-session-id) and system messages in a stored conversation', async () => {
    const client = await newClient();
    const contradiction = await client.chat.completions
      .create(
        { model: DEFAULT_MODEL, messages: ask('hi'), store: false },
        { headers: { 'x-session-id': 'abc' } },
      )
      .catch((e: unknown) => e);
    expect(contradiction).toMatchObject({ status: 400, param: 'store' });
    const system = await client.chat.completions
      .create(
        { model: DEFAULT_MODEL, messages: [{ role: 'system', content: 'Be terse.' }, ...ask('hi')] },
        { headers: { 'x-session-id': 'abc' } },
      )
      .catch((e: unknown) => e);
    expect(system).toMatchObject({ status: 400, param: 'messages[0].role' });
  });
});

describe('models, the model that answered, sources', () => {
  it('models.list() and models.retrieve() show the allowed models, the default first', async () => {
    const client = await newClient();
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toEqual([DEFAULT_MODEL, OTHER_MODEL]);
    expect(page.data[0]).toMatchObject({ object: 'model', owned_by: 'local' });
    const cloudModel = await client.models.retrieve(OTHER_MODEL);
    expect(cloudModel.id).toBe(OTHER_MODEL);
    await expect(
      client.models.retrieve('us.anthropic.claude-haiku-4-5-20251001-v1:0'),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('answers with the chosen model and reports it, never an echo of an unchecked string', async () => {
    const client = await newClient();
    const completion = await client.chat.completions.create({
      model: OTHER_MODEL,
      messages: ask('Hello there'),
    });
    expect(completion.model).toBe(OTHER_MODEL);
    expect(answerCalls().at(-1)?.modelId).toBe(OTHER_MODEL);
    const stream = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('Hello'),
      stream: true,
    });
    const models = new Set<string>();
    for await (const chunk of stream) models.add(chunk.model);
    expect([...models]).toEqual([DEFAULT_MODEL]);
    expect(answerCalls().at(-1)?.modelId).toBe(DEFAULT_MODEL);
  });

  it('carries the sources on the completion and on the final chunk', async () => {
    const client = await newClient();
    const completion = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
    });
    const sources =
      (completion as unknown as { sources?: Array<{ uri: string; title: string }> }).sources ?? [];
    expect(sources.map((s) => s.uri.split('/').pop())).toContain('roth-ira.md');

    const stream = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
      stream: true,
    });
    const withSources: Array<{ finish: string | null | undefined; sources: unknown[] }> = [];
    for await (const chunk of stream) {
      const extension = (chunk as unknown as { sources?: unknown[] }).sources;
      if (extension) withSources.push({ finish: chunk.choices[0]?.finish_reason, sources: extension });
    }
    expect(withSources).toHaveLength(1);
    expect(withSources[0]?.finish).toBe('stop');
    expect(withSources[0]?.sources.length).toBe(sources.length);
  });
});

describe('retries', () => {
  it('the SDK retries a 429 (retry-after, x-should-retry: true) on its own and then succeeds', async () => {
    const token = await stack.issuer.mint(newUser());
    const statuses: number[] = [];
    const counting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      statuses.push(response.status);
      return response;
    };
    const client = clientFor(token, { maxRetries: 2, fetch: counting });
    slowTokens(stack, 10);
    // A streaming answer holds the user's one concurrent slot while the second call arrives.
    const running = await clientFor(token).chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a Roth IRA?'),
      stream: true,
    });
    const iterator = running[Symbol.asyncIterator]();
    await iterator.next();
    const completion = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: ask('What is a budget?'),
    });
    for (let next = await iterator.next(); !next.done; next = await iterator.next());
    expect(statuses[0]).toBe(429);
    expect(statuses.at(-1)).toBe(200);
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
  }, 30_000);

  it('a 409 (an answer already running in the conversation) is not retried', async () => {
    const token = await stack.issuer.mint(newUser());
    const statuses: number[] = [];
    const counting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      statuses.push(response.status);
      return response;
    };
    slowTokens(stack, 10);
    const first = await clientFor(token)
      .chat.completions.create({
        model: DEFAULT_MODEL,
        messages: ask('What is a Roth IRA?'),
        store: true,
        stream: true,
      })
      .withResponse();
    const sessionId = first.response.headers.get('x-session-id') ?? '';
    const iterator = first.data[Symbol.asyncIterator]();
    await iterator.next();
    const error = await clientFor(token, { maxRetries: 2, fetch: counting })
      .chat.completions.create(
        { model: DEFAULT_MODEL, messages: ask('More?') },
        { headers: { 'x-session-id': sessionId } },
      )
      .catch((e: unknown) => e);
    for (let next = await iterator.next(); !next.done; next = await iterator.next());
    expect(error).toMatchObject({ status: 409 });
    expect(statuses).toEqual([409]);
  });
});
