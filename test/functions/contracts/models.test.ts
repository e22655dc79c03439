import { describe, expect, it } from 'vitest';
import { modelCapabilities } from '../../../functions/contracts/models.ts';

describe('modelCapabilities: what a request may carry for a model', () => {
  it.each([
    ['us.anthropic.claude-haiku-4-5-20251001-v1:0', 4096],
    ['global.anthropic.claude-haiku-4-5-20251001-v1:0', 4096],
    ['anthropic.claude-haiku-4-5-20251001-v1:0', 4096],
    ['eu.anthropic.claude-sonnet-4-5-20250929-v1:0', 1024],
    ['anthropic.claude-sonnet-4-20250514-v1:0', 1024],
    ['us.anthropic.claude-3-7-sonnet-20250219-v1:0', 1024],
    ['us.anthropic.claude-3-5-haiku-20241022-v1:0', 2048],
    ['us.anthropic.claude-opus-4-5-20251101-v1:0', 4096],
    ['amazon.nova-pro-v1:0', 1000],
    ['arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0', 4096],
    [
      'arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0',
      1024,
    ],
  ])('%s caches prefixes of at least %i tokens', (modelId, min) => {
    expect(modelCapabilities(modelId).promptCacheMinTokens).toBe(min);
  });

  it.each([
    'local.grounded-echo-v1',
    'meta.llama3-1-70b-instruct-v1:0',
    'anthropic.claude-3-5-sonnet-20241022-v2:0',
    // An application inference profile does not name its model: nothing that could fail is sent.
    'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123',
  ])('%s takes no cache points', (modelId) => {
    expect(modelCapabilities(modelId).promptCacheMinTokens).toBeUndefined();
  });

  it('offers latency-optimized inference only through the us. profile of the listed models, by Region', () => {
    expect(modelCapabilities('us.anthropic.claude-3-5-haiku-20241022-v1:0').latencyOptimizedRegions).toEqual([
      'us-east-2',
      'us-west-2',
    ]);
    expect(modelCapabilities('us.amazon.nova-pro-v1:0').latencyOptimizedRegions).toContain('us-east-1');
    expect(modelCapabilities('us.meta.llama3-1-405b-instruct-v1:0').latencyOptimizedRegions).toEqual([
      'us-east-2',
    ]);
    for (const id of [
      'anthropic.claude-3-5-haiku-20241022-v1:0',
      'eu.amazon.nova-pro-v1:0',
      'us.anthropic.claude-haiku-4-5-20251001-v1:0',
      'arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123',
    ]) {
      expect(modelCapabilities(id).latencyOptimizedRegions).toEqual([]);
    }
  });
});
