import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { describe, expect, it } from 'vitest';
import {
  BedrockChatModel,
  type BedrockModelOptions,
  cachePoints,
  inferenceConfig,
} from '../../../functions/adapters/bedrock-model.ts';
import { modelCapabilities } from '../../../functions/contracts/models.ts';
import type { ModelRequest } from '../../../functions/core/ports.ts';

const HAIKU_45 = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
const client = new BedrockRuntimeClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
});
const model = (options: Partial<BedrockModelOptions> = {}) =>
  new BedrockChatModel(client, {
    modelId: HAIKU_45,
    maxTokens: 100,
    temperature: 0.3,
    promptCaching: true,
    latency: 'standard',
    ...options,
  });

/** A text of about `tokens` tokens (4 characters each). */
const text = (tokens: number) => 'abcd'.repeat(tokens);
const conversation = (historyTokens: number): ModelRequest['messages'] => [
  { role: 'user', content: text(historyTokens / 2) },
  { role: 'assistant', content: text(historyTokens / 2) },
  { role: 'user', content: 'the new question' },
];
const cacheBlocks = (input: ReturnType<BedrockChatModel['buildInput']>) => ({
  system: (input.system ?? []).filter((b) => 'cachePoint' in b).length,
  messages: (input.messages ?? []).map((m) => (m.content ?? []).filter((b) => 'cachePoint' in b).length),
});

describe('cache points: only where the prefix reaches the model minimum', () => {
  it('places none for a short prompt (the minimum for Claude Haiku 4.5 is 4,096 tokens)', () => {
    const input = model().buildInput({ system: 'Be brief.', messages: conversation(2000) });
    expect(cacheBlocks(input)).toEqual({ system: 0, messages: [0, 0, 0] });
  });

  it('places one after the previous turns once system and history reach the minimum, none on the new turn', () => {
    const input = model().buildInput({ system: 'Be brief.', messages: conversation(4200) });
    expect(cacheBlocks(input)).toEqual({ system: 0, messages: [0, 1, 0] });
    expect(input.messages?.[1]?.content).toEqual([{ text: text(2100) }, { cachePoint: { type: 'default' } }]);
  });

  it('places one after a system prompt that reaches the minimum on its own', () => {
    const input = model().buildInput({ system: text(5000), messages: [{ role: 'user', content: 'q' }] });
    expect(cacheBlocks(input)).toEqual({ system: 1, messages: [0] });
  });

  it('uses the minimum of the configured model (1,024 for Claude Sonnet 4.5)', () => {
    const sonnet = model({ modelId: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0' });
    expect(cacheBlocks(sonnet.buildInput({ system: 'Be brief.', messages: conversation(1100) }))).toEqual({
      system: 0,
      messages: [0, 1, 0],
    });
  });

  it('places none when caching is off or the model takes no cache points (the call would fail)', () => {
    for (const m of [
      model({ promptCaching: false }),
      model({ modelId: 'meta.llama3-1-70b-instruct-v1:0' }),
    ]) {
      const input = m.buildInput({ system: text(5000), messages: conversation(9000) });
      expect(cacheBlocks(input)).toEqual({ system: 0, messages: [0, 0, 0] });
    }
  });

  it('computes the positions alone', () => {
    expect(cachePoints('s', [{ role: 'user', content: text(5000) }], 4096)).toEqual({
      afterSystem: false,
      afterMessage: undefined,
    });
    expect(cachePoints('s', conversation(4200), undefined)).toEqual({
      afterSystem: false,
      afterMessage: undefined,
    });
  });
});

describe('latency-optimized inference: only where the model and Region offer it', () => {
  const request = { system: 's', messages: [{ role: 'user' as const, content: 'q' }] };
  it('is sent for Claude 3.5 Haiku through the us. profile from us-east-2', () => {
    const haiku35 = model({ modelId: 'us.anthropic.claude-3-5-haiku-20241022-v1:0', latency: 'optimized' });
    expect(haiku35.buildInput(request, 'us-east-2').performanceConfig).toEqual({ latency: 'optimized' });
  });

  it('is never sent where the call would fail: another Region, another model, or an unknown Region', () => {
    const haiku35 = model({ modelId: 'us.anthropic.claude-3-5-haiku-20241022-v1:0', latency: 'optimized' });
    expect(haiku35.buildInput(request, 'us-east-1').performanceConfig).toBeUndefined();
    expect(haiku35.buildInput(request).performanceConfig).toBeUndefined();
    expect(
      model({ latency: 'optimized' }).buildInput(request, 'us-east-2').performanceConfig,
    ).toBeUndefined();
  });

  it('is not sent when not asked for', () => {
    const haiku35 = model({ modelId: 'us.anthropic.claude-3-5-haiku-20241022-v1:0' });
    expect(haiku35.buildInput(request, 'us-east-2').performanceConfig).toBeUndefined();
  });
});

describe('inferenceConfig: the request settings over the deployment defaults', () => {
  const defaults = { maxTokens: 100, temperature: 0.3 };
  const haiku = modelCapabilities(HAIKU_45);
  const llama = modelCapabilities('meta.llama3-1-70b-instruct-v1:0');

  it('takes the defaults when a request asks for nothing', () => {
    expect(inferenceConfig(undefined, defaults, haiku)).toEqual({ maxTokens: 100, temperature: 0.3 });
  });

  it('sends what the request asked for: length, temperature, top p, stop sequences', () => {
    expect(
      inferenceConfig({ maxTokens: 5, temperature: 0.9, stopSequences: ['###'] }, defaults, haiku),
    ).toEqual({ maxTokens: 5, temperature: 0.9, stopSequences: ['###'] });
    expect(inferenceConfig({ topP: 0.5 }, defaults, llama)).toEqual({
      maxTokens: 100,
      temperature: 0.3,
      topP: 0.5,
    });
  });

  it('leaves the default temperature out when top p is asked of a model that refuses both', () => {
    expect(inferenceConfig({ topP: 0.5 }, defaults, haiku)).toEqual({ maxTokens: 100, topP: 0.5 });
  });

  it("keeps the default length within the model's own output cap", () => {
    expect(inferenceConfig(undefined, { maxTokens: 64_000, temperature: 0.3 }, llama).maxTokens).toBe(2048);
  });

  it('sends the chosen model with its own capabilities', () => {
    const input = model({ promptCaching: true }).buildInput({
      modelId: 'meta.llama3-1-70b-instruct-v1:0',
      system: text(5000),
      messages: conversation(9000),
    });
    expect(input.modelId).toBe('meta.llama3-1-70b-instruct-v1:0');
    // Llama takes no cache points: none is placed although caching is on and the default (Haiku) takes them.
    expect(cacheBlocks(input)).toEqual({ system: 0, messages: [0, 0, 0] });
  });
});
