import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  type ConverseStreamOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockChatModel } from '../../../functions/adapters/bedrock-model.ts';
import type { ModelEvent } from '../../../functions/core/ports.ts';
import {
  type BedrockRuntimeEmulator,
  startBedrockRuntime,
} from '../../../local/emulators/bedrock-runtime.ts';
import { localClientConfig } from '../../../local/stack/client-config.ts';

let emulator: BedrockRuntimeEmulator;
let client: BedrockRuntimeClient;

beforeAll(async () => {
  emulator = await startBedrockRuntime();
  client = new BedrockRuntimeClient(localClientConfig(emulator.url, 1));
});
afterAll(async () => {
  client.destroy();
  await emulator.close();
});

const question = (
  text: string,
  system = 'An emergency fund covers three to six months of essential expenses.',
) =>
  new ConverseStreamCommand({
    modelId: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
    system: [{ text: system }],
    messages: [{ role: 'user', content: [{ text }] }],
    inferenceConfig: { maxTokens: 200 },
  });

describe('Bedrock Runtime emulator, through the stock SDK client (HTTP/2)', () => {
  it('streams ConverseStream deltas incrementally: the first arrives long before the last is produced', async () => {
    emulator.options.perTokenDelayMs = 40;
    const arrivals: Array<{ event: ConverseStreamOutput; at: number }> = [];
    try {
      const response = await client.send(question('How big should an emergency fund be?'));
      for await (const event of response.stream ?? []) arrivals.push({ event, at: performance.now() });
    } finally {
      emulator.options.perTokenDelayMs = 0;
    }
    const deltas = arrivals.filter((a) => a.event.contentBlockDelta);
    expect(deltas.length).toBeGreaterThan(10);
    const first = deltas[0]?.at ?? 0;
    const last = deltas.at(-1)?.at ?? 0;
    // Produced 40 ms apart: had the emulator buffered, they would all arrive together.
    expect(last - first).toBeGreaterThan((deltas.length - 1) * 40 * 0.5);
    const kinds = arrivals.map((a) => Object.keys(a.event).find((k) => k !== '$unknown'));
    expect(kinds[0]).toBe('messageStart');
    expect(kinds.slice(-3)).toEqual(['contentBlockStop', 'messageStop', 'metadata']);
    const text = deltas.map((d) => d.event.contentBlockDelta?.delta?.text).join('');
    expect(text).toContain('three to six months');
    expect(arrivals.at(-1)?.event.metadata?.usage?.outputTokens).toBe(deltas.length);
  });

  it('answers without sources when the prompt has none', async () => {
    const response = await client.send(question('Tell me about sailing boats', 'You are helpful.'));
    let text = '';
    for await (const event of response.stream ?? []) text += event.contentBlockDelta?.delta?.text ?? '';
    expect(text).toMatch(/no source/);
  });

  it('writes Markdown as a chat model does: a list with the asked term in bold, a table or code when asked', async () => {
    const answer = async (text: string) => {
      const response = await client.send(question(text));
      let out = '';
      for await (const event of response.stream ?? []) out += event.contentBlockDelta?.delta?.text ?? '';
      return out;
    };
    const plain = await answer('How big should an emergency fund be?');
    expect(plain).toMatch(/^- .*\*\*emergency fund\*\*.*three to six months/im);
    expect(plain).not.toMatch(/```|\|/);
    const table = await answer('Compare emergency fund sizes in a table');
    expect(table).toMatch(/^\| # \| Key point \|\n\| --- \| --- \|\n\| 1 \| .*three to six months.* \|$/m);
    const code = await answer('Show me Python code for an emergency fund');
    expect(code).toMatch(/```python\n[\s\S]+\n```$/);
    // A question full of Markdown is quoted without it, so the answer's own Markdown stays whole.
    const odd = await answer('Tell me about **boats** ```js');
    expect(odd).toContain('I have no source on "Tell me about boats js"');
  });

  it('honours maxTokens with stopReason max_tokens', async () => {
    const response = await client.send(
      new ConverseStreamCommand({
        modelId: 'm',
        system: [{ text: 'An emergency fund covers three to six months of essential expenses.' }],
        messages: [{ role: 'user', content: [{ text: 'emergency fund size?' }] }],
        inferenceConfig: { maxTokens: 3 },
      }),
    );
    const events: ConverseStreamOutput[] = [];
    for await (const event of response.stream ?? []) events.push(event);
    expect(events.filter((e) => e.contentBlockDelta)).toHaveLength(3);
    expect(events.find((e) => e.messageStop)?.messageStop?.stopReason).toBe('max_tokens');
  });

  it('fails with ThrottlingException before the first token when told to', async () => {
    emulator.failNext('throttle');
    await expect(client.send(question('anything'))).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it('throws ModelStreamErrorException mid-stream after earlier tokens when told to', async () => {
    emulator.failNext('midstream');
    const response = await client.send(question('How big should an emergency fund be?'));
    const texts: string[] = [];
    await expect(
      (async () => {
        for await (const event of response.stream ?? []) {
          if (event.contentBlockDelta?.delta?.text) texts.push(event.contentBlockDelta.delta.text);
        }
      })(),
    ).rejects.toMatchObject({ name: 'ModelStreamErrorException' });
    expect(texts.length).toBeGreaterThan(0);
  });

  it('rejects a conversation that does not start with a user turn', async () => {
    await expect(
      client.send(
        new ConverseStreamCommand({
          modelId: 'm',
          messages: [{ role: 'assistant', content: [{ text: 'hi' }] }],
        }),
      ),
    ).rejects.toMatchObject({ name: 'ValidationException' });
  });

  it('serves Converse (non-streaming) too', async () => {
    const response = await client.send(
      new ConverseCommand({ modelId: 'm', messages: [{ role: 'user', content: [{ text: 'hello' }] }] }),
    );
    expect(response.stopReason).toBe('end_turn');
    expect(response.output?.message?.content?.[0]?.text).toMatch(/hello/);
    expect(response.usage?.outputTokens).toBeGreaterThan(0);
  });

  it('answers plain HTTP/1.1 on the same port (curl, the aws cli)', async () => {
    const response = await fetch(`${emulator.url}/model/m/converse`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hello' }] }] }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { stopReason: string }).stopReason).toBe('end_turn');
    const stream = await fetch(`${emulator.url}/model/m/converse-stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hello' }] }] }),
    });
    expect(stream.headers.get('content-type')).toBe('application/vnd.amazon.eventstream');
    expect(Buffer.from(await stream.arrayBuffer()).includes(Buffer.from(':event-type'))).toBe(true);
  });

  it('records the requests it received: model id, system prompt, messages and inference settings', async () => {
    const response = await client.send(question('What is a Roth IRA?', 'Answer from the record.'));
    for await (const _ of response.stream ?? []);
    expect(emulator.requests.at(-1)).toEqual({
      modelId: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
      body: expect.objectContaining({
        system: [{ text: 'Answer from the record.' }],
        messages: [{ role: 'user', content: [{ text: 'What is a Roth IRA?' }] }],
        inferenceConfig: { maxTokens: 200 },
      }),
    });
  });
});

describe('Bedrock Runtime emulator: prompt cache, capabilities, pace', () => {
  const HAIKU_45 = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
  const long = (tokens: number, seed: string) =>
    `${seed} `.repeat(Math.ceil((tokens * 4) / (seed.length + 1)));
  const turns = (history: number, seed: string) => {
    const messages: Array<{ role: 'user' | 'assistant'; content: string }> = [];
    for (let i = 0; i < history; i++) {
      messages.push({ role: 'user', content: `question ${i} ${seed}` });
      messages.push({ role: 'assistant', content: long(300, `answer ${i} ${seed}`) });
    }
    return messages;
  };
  const usageOf = async (
    model: BedrockChatModel,
    messages: Array<{ role: 'user' | 'assistant'; content: string }>,
  ) => {
    const started = performance.now();
    let firstToken = 0;
    let usage: Extract<ModelEvent, { type: 'usage' }> | undefined;
    for await (const event of model.stream({
      system: 'Be brief.',
      messages,
      signal: AbortSignal.timeout(5000),
    })) {
      if (event.type === 'text' && !firstToken) firstToken = performance.now() - started;
      if (event.type === 'usage') usage = event;
    }
    return { usage, firstToken };
  };
  const adapter = (promptCaching = true, modelId = HAIKU_45) =>
    new BedrockChatModel(client, {
      modelId,
      maxTokens: 50,
      temperature: 0,
      promptCaching,
      latency: 'standard',
    });

  it("writes the history prefix once and reads it on the next turn, which reaches the model's first token sooner", async () => {
    emulator.options.prefillMsPer1kTokens = 20;
    try {
      const seed = `cache-${Date.now()}`;
      const history = turns(15, seed);
      const first = await usageOf(adapter(), [...history, { role: 'user', content: 'next question' }]);
      expect(first.usage?.cacheReadTokens).toBeUndefined();
      expect(first.usage?.cacheWriteTokens).toBeGreaterThan(4096);
      const next = [
        ...history,
        { role: 'user' as const, content: 'next question' },
        { role: 'assistant' as const, content: 'an answer' },
      ];
      const second = await usageOf(adapter(), [...next, { role: 'user', content: 'and then?' }]);
      expect(second.usage?.cacheReadTokens).toBe(first.usage?.cacheWriteTokens);
      // Only the turn added since is written; the new question is plain input.
      expect(second.usage?.cacheWriteTokens).toBeLessThan(20);
      expect(second.usage?.inputTokens).toBeLessThan(20);
      // The cached tokens are not read again: at 20 ms per 1,000 the first token is planned that much sooner
      // (the plan, not a wall-clock measurement, so a busy machine cannot make this flaky).
      const [firstDelay = 0, secondDelay = 0] = emulator.firstTokenDelaysMs.slice(-2);
      expect(firstDelay - secondDelay).toBeGreaterThan(50);
      expect(emulator.usage.at(-1)).toMatchObject({ cacheReadInputTokens: first.usage?.cacheWriteTokens });
    } finally {
      emulator.options.prefillMsPer1kTokens = 0;
    }
  });

  it('ignores a cache point before the model minimum, and caching off sends none (full price, no error)', async () => {
    const seed = `short-${Date.now()}`;
    const short = await usageOf(adapter(), [...turns(2, seed), { role: 'user', content: 'q' }]);
    expect(short.usage).toMatchObject({ type: 'usage', outputTokens: expect.any(Number) });
    expect(short.usage?.cacheWriteTokens).toBeUndefined();
    const off = await usageOf(adapter(false), [...turns(15, seed), { role: 'user', content: 'q' }]);
    expect(off.usage?.cacheWriteTokens).toBeUndefined();
    expect(off.usage?.inputTokens).toBeGreaterThan(4096);
  });

  it('refuses cache points and latency-optimized inference where the model does not offer them, as Bedrock does', async () => {
    const withCachePoint = (modelId: string) =>
      new ConverseStreamCommand({
        modelId,
        system: [{ text: 'x' }, { cachePoint: { type: 'default' } }],
        messages: [{ role: 'user', content: [{ text: 'q' }] }],
      });
    await expect(client.send(withCachePoint('meta.llama3-1-70b-instruct-v1:0'))).rejects.toMatchObject({
      name: 'ValidationException',
    });
    const optimized = (modelId: string) =>
      new ConverseStreamCommand({
        modelId,
        messages: [{ role: 'user', content: [{ text: 'q' }] }],
        performanceConfig: { latency: 'optimized' },
      });
    // The emulator answers as us-east-1, where only Nova Pro offers it.
    await expect(client.send(optimized(HAIKU_45))).rejects.toMatchObject({ name: 'ValidationException' });
    const response = await client.send(optimized('us.amazon.nova-pro-v1:0'));
    for await (const _ of response.stream ?? []);
  });

  it('answers from passages sent in the user turn, and records its own inter-token gaps', async () => {
    emulator.tokenGapsMs.splice(0);
    const response = await client.send(
      new ConverseStreamCommand({
        modelId: 'm',
        system: [{ text: 'Be brief.' }],
        messages: [
          {
            role: 'user',
            content: [
              {
                text: '<sources>\n<source id="1" title="Fund">\nAn emergency fund covers three to six months of essential expenses.\n</source>\n</sources>\n\nHow big should an emergency fund be?',
              },
            ],
          },
        ],
      }),
    );
    let text = '';
    for await (const event of response.stream ?? []) text += event.contentBlockDelta?.delta?.text ?? '';
    expect(text).toContain('three to six months');
    expect(emulator.tokenGapsMs.length).toBe(text.split(/(?<=\s)/).length - 1);
  });
});
