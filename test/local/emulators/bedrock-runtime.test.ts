import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  type ConverseStreamOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localClientConfig } from '../../../local/client-config.ts';
import {
  type BedrockRuntimeEmulator,
  startBedrockRuntime,
} from '../../../local/emulators/bedrock-runtime.ts';

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
