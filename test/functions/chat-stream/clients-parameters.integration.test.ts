import { AIMessage, HumanMessage, SystemMessage } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { DefaultChatTransport, readUIMessageStream, type UIMessage, type UIMessageChunk } from 'ai';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import type { RedisProcess } from '../../../local/emulators/redis-server.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { testRedis } from '../../support/redis.ts';

// LangChain's ChatOpenAI against /v1 and the AI SDK's transport against /api/chat: the same policy
// (honour or refuse by name) seen through each client's own API.
const DEFAULT_MODEL = 'local.grounded-echo-v1';
const OTHER_MODEL = 'local.grounded-echo-mini-v1';
let stack: LocalStack;
let ownedRedis: RedisProcess | undefined;

beforeAll(async () => {
  const redis = await testRedis(10);
  ownedRedis = redis.owned;
  stack = await startLocalStack({ redisUrl: redis.url, env: { ALLOWED_MODEL_IDS: OTHER_MODEL } });
});
afterAll(async () => {
  await stack.close();
  await ownedRedis?.stop();
});

const newUser = () => `user-${uuidv7()}`;
interface ConverseRequest {
  modelId: string;
  body: {
    system?: Array<{ text?: string }>;
    messages?: Array<{ role: string; content?: Array<{ text?: string }> }>;
    inferenceConfig?: { maxTokens?: number; temperature?: number; topP?: number; stopSequences?: string[] };
  };
}
const answerCalls = () =>
  (stack.bedrock.requests as ConverseRequest[]).filter(
    (r) => !/^Write a title/.test(r.body.system?.[0]?.text ?? ''),
  );

describe('LangChain ChatOpenAI against /v1', () => {
  const chatModel = async (fields: ConstructorParameters<typeof ChatOpenAI>[0] = {}) =>
    new ChatOpenAI({
      model: DEFAULT_MODEL,
      apiKey: await stack.issuer.mint(newUser()),
      configuration: { baseURL: `${stack.url}/v1` },
      maxRetries: 0,
      ...fields,
    });

  it('maxTokens: 5 yields at most 5 tokens and finish_reason "length"', async () => {
    const reply = await (await chatModel({ maxTokens: 5 })).invoke('What is a Roth IRA?');
    expect(reply.usage_metadata?.output_tokens).toBeLessThanOrEqual(5);
    expect(reply.response_metadata.finish_reason).toBe('length');
  });

  it('a [System, Human, AI, Human] history is the prompt (stateless)', async () => {
    const reply = await (await chatModel()).invoke([
      new SystemMessage('My name is Zed and I live in Lisbon, Portugal.'),
      new HumanMessage('Hello.'),
      new AIMessage('Hello! How can I help?'),
      new HumanMessage('What is my name and where do I live?'),
    ]);
    expect(String(reply.content)).toContain('Zed');
    expect(String(reply.content)).toMatch(/^Building on what we discussed/);
    expect(
      answerCalls()
        .at(-1)
        ?.body.messages?.map((m) => m.role),
    ).toEqual(['user', 'assistant', 'user']);
  });

  it('stop sequences and temperature reach the model; the chosen model answers', async () => {
    const model = await chatModel({ model: OTHER_MODEL, temperature: 0.2, stop: ['after-tax'] });
    const reply = await model.invoke('What is a Roth IRA?');
    expect(String(reply.content)).not.toContain('after-tax');
    expect(reply.response_metadata.finish_reason).toBe('stop');
    expect(reply.response_metadata.model_name).toBe(OTHER_MODEL);
    expect(answerCalls().at(-1)).toMatchObject({
      modelId: OTHER_MODEL,
      body: { inferenceConfig: { temperature: 0.2, stopSequences: ['after-tax'] } },
    });
  });

  it('bindTools and withStructuredOutput are refused with a 400 naming the field', async () => {
    const model = await chatModel();
    const withTools = model.bindTools([
      {
        type: 'function',
        function: { name: 'lookup', description: 'x', parameters: { type: 'object', properties: {} } },
      },
    ]);
    await expect(withTools.invoke('hi')).rejects.toMatchObject({ status: 400, param: 'tools' });
    const structured = model.withStructuredOutput(z.object({ answer: z.string() }), { method: 'jsonSchema' });
    await expect(structured.invoke('hi')).rejects.toMatchObject({ status: 400, param: 'response_format' });
  });

  it('streams', async () => {
    let text = '';
    for await (const chunk of await (await chatModel()).stream('What is a Roth IRA?'))
      text += String(chunk.content);
    expect(text).toContain('after-tax');
  });
});

describe('AI SDK transport against /api/chat: model and call settings in the body', () => {
  const chatId = () => uuidv7().replaceAll('-', '').slice(0, 16);
  async function send(body: Record<string, unknown>, text = 'What is a Roth IRA?') {
    const token = await stack.issuer.mint(newUser());
    const transport = new DefaultChatTransport<UIMessage>({
      api: `${stack.url}/api/chat`,
      headers: () => ({ authorization: `Bearer ${token}` }),
      body,
    });
    const stream = await transport.sendMessages({
      chatId: chatId(),
      messages: [{ id: uuidv7(), role: 'user', parts: [{ type: 'text', text }] }],
      trigger: 'submit-message',
      messageId: undefined,
      abortSignal: undefined,
    });
    const chunks: UIMessageChunk[] = [];
    let message: UIMessage | undefined;
    const [forParts, forChunks] = stream.tee();
    const reading = (async () => {
      for await (const chunk of forChunks) chunks.push(chunk);
    })();
    for await (const m of readUIMessageStream({ stream: forParts })) message = m;
    await reading;
    const finish = chunks.find((c) => c.type === 'finish');
    const textOut = (message?.parts ?? []).flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');
    return { text: textOut, finish };
  }

  it('maxOutputTokens: 5 ends the answer with finishReason "length"; model picks the allowed model', async () => {
    const { finish } = await send({ maxOutputTokens: 5, model: OTHER_MODEL });
    expect(finish).toMatchObject({ finishReason: 'length' });
    expect(answerCalls().at(-1)).toMatchObject({
      modelId: OTHER_MODEL,
      body: { inferenceConfig: { maxTokens: 5 } },
    });
  });

  it('stopSequences cut the text', async () => {
    const full = await send({});
    expect(full.text).toContain('after-tax');
    const cut = await send({ stopSequences: ['after-tax'] });
    expect(cut.text).toBe(full.text.slice(0, full.text.indexOf('after-tax')));
  });

  it('refuses an unknown body field, a model not on the list and a file part, naming each', async () => {
    const token = await stack.issuer.mint(newUser());
    const post = (body: unknown) =>
      fetch(`${stack.url}/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const message = { id: 'm1', role: 'user', parts: [{ type: 'text', text: 'hi' }] };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ id: chatId(), messages: [message], frequencyPenalty: 0.5 }, 'frequencyPenalty'],
      [{ id: chatId(), messages: [message], model: 'gpt-4o' }, 'model'],
      [{ id: chatId(), messages: [message], temperature: 3 }, 'temperature'],
      [
        {
          id: chatId(),
          messages: [
            {
              ...message,
              parts: [
                ...message.parts,
                { type: 'file', mediaType: 'image/png', url: 'data:image/png;base64,AAAA' },
              ],
            },
          ],
        },
        // Files are read; bytes that are no PNG are refused by name.
        'messages[0].parts[1].url',
      ],
    ];
    for (const [body, field] of cases) {
      const response = await post(body);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { field } });
    }
  });
});

describe('native SSE route: model and generation settings in the body', () => {
  const post = async (body: Record<string, unknown>) =>
    fetch(stack.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await stack.issuer.mint(newUser())}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ message: 'What is a Roth IRA?', ...body }),
    });

  it('answers with the chosen model and stops at max_tokens', async () => {
    const response = await post({ model: OTHER_MODEL, max_tokens: 4, temperature: 0.1 });
    expect(response.status).toBe(200);
    const events = (await response.text())
      .split('\n')
      .flatMap((line) => (line.startsWith('data: ') ? [JSON.parse(line.slice(6)) as { type: string }] : []));
    expect(events.at(-1)).toMatchObject({
      type: 'done',
      stop_reason: 'max_tokens',
      usage: { output_tokens: 4 },
    });
    expect(answerCalls().at(-1)).toMatchObject({
      modelId: OTHER_MODEL,
      body: { inferenceConfig: { maxTokens: 4, temperature: 0.1 } },
    });
  });

  it('refuses a model not on the list and an unknown field by name', async () => {
    for (const [body, field] of [
      [{ model: 'gpt-4o' }, 'model'],
      [{ frequency_penalty: 1 }, 'frequency_penalty'],
    ] as const) {
      const response = await post(body);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { field } });
    }
  });
});
