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
  /** The most output tokens one call may ask for; `undefined`: not known, the deployment's cap applies. */
  maxOutputTokens?: number;
  /** `temperature` and `topP` cannot both be sent (Anthropic's models from Claude Opus 4.1 on). */
  samplingExclusive: boolean;
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
  /** The most output tokens one call may ask for (`inferenceConfig.maxTokens`). */
  maxOutputTokens: number;
  /** The model refuses a call that sets both `temperature` and `topP`. */
  samplingExclusive?: boolean;
  promptCacheMinTokens?: number;
  /** Latency-optimized inference is offered through the `us.` cross-Region profile only. */
  latencyOptimizedRegions?: readonly string[];
}

const MODELS: readonly ModelEntry[] = [
  {
    model: 'anthropic.claude-haiku-4-5-',
    maxOutputTokens: 64_000,
    samplingExclusive: true,
    promptCacheMinTokens: 4096,
  },
  {
    model: 'anthropic.claude-opus-4-5-',
    maxOutputTokens: 64_000,
    samplingExclusive: true,
    promptCacheMinTokens: 4096,
  },
  {
    model: 'anthropic.claude-sonnet-4-5-',
    maxOutputTokens: 64_000,
    samplingExclusive: true,
    promptCacheMinTokens: 1024,
  },
  { model: 'anthropic.claude-sonnet-4-20250514-', maxOutputTokens: 64_000, promptCacheMinTokens: 1024 },
  {
    model: 'anthropic.claude-opus-4-1-',
    maxOutputTokens: 32_000,
    samplingExclusive: true,
    promptCacheMinTokens: 1024,
  },
  { model: 'anthropic.claude-opus-4-20250514-', maxOutputTokens: 32_000, promptCacheMinTokens: 1024 },
  { model: 'anthropic.claude-3-7-sonnet-', maxOutputTokens: 8192, promptCacheMinTokens: 1024 },
  {
    model: 'anthropic.claude-3-5-haiku-',
    maxOutputTokens: 8192,
    promptCacheMinTokens: 2048,
    latencyOptimizedRegions: ['us-east-2', 'us-west-2'],
  },
  { model: 'amazon.nova-micro-v1', maxOutputTokens: 10_000, promptCacheMinTokens: 1000 },
  { model: 'amazon.nova-lite-v1', maxOutputTokens: 10_000, promptCacheMinTokens: 1000 },
  {
    model: 'amazon.nova-pro-v1',
    maxOutputTokens: 10_000,
    promptCacheMinTokens: 1000,
    latencyOptimizedRegions: ['us-east-1', 'us-east-2'],
  },
  { model: 'amazon.nova-premier-v1', maxOutputTokens: 32_000, promptCacheMinTokens: 1000 },
  {
    model: 'meta.llama3-1-405b-instruct-',
    maxOutputTokens: 2048,
    latencyOptimizedRegions: ['us-east-2'],
  },
  {
    model: 'meta.llama3-1-70b-instruct-',
    maxOutputTokens: 2048,
    latencyOptimizedRegions: ['us-east-2', 'us-west-2'],
  },
];

const PROFILE_PREFIX = /^(us|us-gov|eu|apac|jp|au|ca|global)\./;

/** The model id inside an ARN, or the id itself. */
const bareId = (modelId: string) =>
  modelId.startsWith('arn:') ? /:(?:foundation-model|inference-profile)\/(.+)$/.exec(modelId)?.[1] : modelId;

const entryOf = (modelId: string) => {
  const id = bareId(modelId);
  if (!id) return undefined;
  const base = id.replace(PROFILE_PREFIX, '');
  const entry = MODELS.find((m) => base.startsWith(m.model));
  return entry ? { entry, profile: PROFILE_PREFIX.exec(id)?.[1], base } : undefined;
};

/** The capabilities of `modelId` (a foundation model or inference profile id, or its ARN). */
export function modelCapabilities(modelId: string): ModelCapabilities {
  const found = entryOf(modelId);
  if (!found) return { samplingExclusive: false, latencyOptimizedRegions: [] };
  const { entry, profile } = found;
  return {
    maxOutputTokens: entry.maxOutputTokens,
    samplingExclusive: entry.samplingExclusive === true,
    ...(entry.promptCacheMinTokens !== undefined ? { promptCacheMinTokens: entry.promptCacheMinTokens } : {}),
    latencyOptimizedRegions: profile === 'us' ? (entry.latencyOptimizedRegions ?? []) : [],
  };
}

/** Who makes the model (`anthropic`, `amazon`, `meta`, …), from its id; `bedrock` when the id does not say. */
export function modelProvider(modelId: string): string {
  const id = bareId(modelId)?.replace(PROFILE_PREFIX, '');
  return id && /^[a-z0-9-]+\./.test(id) ? (id.split('.')[0] ?? 'bedrock') : 'bedrock';
}

/**
 * The models one deployment answers with: its default first, then the allow-list's other entries
 * (comma-separated, as in the `ALLOWED_MODEL_IDS` setting and the `chat:allowedModelIds` context key).
 */
export function allowedModels(defaultModelId: string, allowList: string | undefined): readonly string[] {
  const listed = (allowList ?? '')
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  return [...new Set([defaultModelId, ...listed])];
}
