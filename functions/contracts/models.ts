/**
 * What a Bedrock model supports beyond plain ConverseStream, by model id (foundation model, geography or
 * global inference profile, or either's ARN). A request only carries a feature its model is listed for:
 * a cache point or a performance setting the model does not take fails the call. An application
 * inference profile ARN does not name its model, so it gets none of them.
 *
 * Sources (checked November 2026): Bedrock user guide, "Prompt caching for faster model inference"
 * (supported models, minimum tokens per cache checkpoint, at most 4 checkpoints) and "Optimize model
 * inference for latency" (models and the Regions their cross-Region profiles take `latency: optimized`
 * from).
 */
export interface ModelCapabilities {
  /**
   * The fewest tokens a prompt prefix must hold for a cache point to take effect (a shorter prefix is
   * not cached); `undefined`: the model takes no cache points.
   */
  promptCacheMinTokens?: number;
  /** Source Regions from which `performanceConfig.latency = optimized` may be sent; empty: never. */
  latencyOptimizedRegions: readonly string[];
}

/** Bedrock takes at most this many cache points in one request. */
export const MAX_CACHE_POINTS = 4;

interface ModelEntry {
  /** The base model id's start, after any geography or `global.` prefix. */
  model: string;
  promptCacheMinTokens?: number;
  /** Latency-optimized inference is offered through the `us.` cross-Region profile only. */
  latencyOptimizedRegions?: readonly string[];
}

const MODELS: readonly ModelEntry[] = [
  { model: 'anthropic.claude-haiku-4-5-', promptCacheMinTokens: 4096 },
  { model: 'anthropic.claude-opus-4-5-', promptCacheMinTokens: 4096 },
  { model: 'anthropic.claude-sonnet-4-5-', promptCacheMinTokens: 1024 },
  { model: 'anthropic.claude-sonnet-4-20250514-', promptCacheMinTokens: 1024 },
  { model: 'anthropic.claude-opus-4-1-', promptCacheMinTokens: 1024 },
  { model: 'anthropic.claude-opus-4-20250514-', promptCacheMinTokens: 1024 },
  { model: 'anthropic.claude-3-7-sonnet-', promptCacheMinTokens: 1024 },
  {
    model: 'anthropic.claude-3-5-haiku-',
    promptCacheMinTokens: 2048,
    latencyOptimizedRegions: ['us-east-2', 'us-west-2'],
  },
  { model: 'amazon.nova-micro-v1', promptCacheMinTokens: 1000 },
  { model: 'amazon.nova-lite-v1', promptCacheMinTokens: 1000 },
  {
    model: 'amazon.nova-pro-v1',
    promptCacheMinTokens: 1000,
    latencyOptimizedRegions: ['us-east-1', 'us-east-2'],
  },
  { model: 'amazon.nova-premier-v1', promptCacheMinTokens: 1000 },
  { model: 'meta.llama3-1-405b-instruct-', latencyOptimizedRegions: ['us-east-2'] },
  { model: 'meta.llama3-1-70b-instruct-', latencyOptimizedRegions: ['us-east-2', 'us-west-2'] },
];

const PROFILE_PREFIX = /^(us|us-gov|eu|apac|jp|au|ca|global)\./;

/** The capabilities of `modelId` (a foundation model or inference profile id, or its ARN). */
export function modelCapabilities(modelId: string): ModelCapabilities {
  const id = modelId.startsWith('arn:')
    ? /:(?:foundation-model|inference-profile)\/(.+)$/.exec(modelId)?.[1]
    : modelId;
  if (!id) return { latencyOptimizedRegions: [] };
  const profile = PROFILE_PREFIX.exec(id)?.[1];
  const base = id.replace(PROFILE_PREFIX, '');
  const entry = MODELS.find((m) => base.startsWith(m.model));
  if (!entry) return { latencyOptimizedRegions: [] };
  return {
    ...(entry.promptCacheMinTokens !== undefined ? { promptCacheMinTokens: entry.promptCacheMinTokens } : {}),
    latencyOptimizedRegions: profile === 'us' ? (entry.latencyOptimizedRegions ?? []) : [],
  };
}
