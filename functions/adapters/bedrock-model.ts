import {
  type BedrockRuntimeClient,
  type ContentBlock,
  ConverseStreamCommand,
  type ConverseStreamCommandInput,
  type ConverseStreamOutput,
  type InferenceConfiguration,
  type Message,
  type SystemContentBlock,
} from '@aws-sdk/client-bedrock-runtime';
import { type ModelCapabilities, modelCapabilities } from '../contracts/models.ts';
import { ModelError } from '../core/errors.ts';
import type { AttachmentContent } from '../core/messages.ts';
import type { ChatModel, InferenceSettings, ModelEvent, ModelRequest } from '../core/ports.ts';

/** One ConverseStream event as the port's event; events the turn does not use become `undefined`. */
function toModelEvent(event: ConverseStreamOutput): ModelEvent | undefined {
  const text = event.contentBlockDelta?.delta?.text;
  if (text) return { type: 'text', text };
  if (event.messageStop) return { type: 'stop', stopReason: event.messageStop.stopReason ?? 'end_turn' };
  const usage = event.metadata?.usage;
  if (!usage) return undefined;
  return {
    type: 'usage',
    inputTokens: usage.inputTokens ?? 0,
    outputTokens: usage.outputTokens ?? 0,
    ...(usage.cacheReadInputTokens ? { cacheReadTokens: usage.cacheReadInputTokens } : {}),
    ...(usage.cacheWriteInputTokens ? { cacheWriteTokens: usage.cacheWriteInputTokens } : {}),
  };
}

export interface BedrockModelOptions {
  /** The deployment's default model; a request may name another of its allowed models. */
  modelId: string;
  /** The answer length when a request does not ask for one (requests are already capped at the edge). */
  maxTokens: number;
  temperature: number;
  guardrail?: { id: string; version: string; mode: 'sync' | 'async' } | undefined;
  /** Cache points where the prefix is long enough for the model (and the model takes them at all). */
  promptCaching: boolean;
  /** `optimized` is sent only for a model and Region that offer it; elsewhere the call would fail. */
  latency: 'standard' | 'optimized';
}

const THROTTLING = new Set([
  'ThrottlingException',
  'ServiceQuotaExceededException',
  'ServiceUnavailableException',
]);

function toModelError(error: unknown): ModelError {
  const name = (error as { name?: string }).name ?? 'Error';
  if (THROTTLING.has(name)) return new ModelError('throttled', name, { cause: error });
  if (name === 'AbortError' || name === 'TimeoutError')
    return new ModelError('timeout', name, { cause: error });
  return new ModelError('model_error', name, { cause: error });
}

/**
 * Tokens of a text as a model counts them, estimated (about 4 characters a token for English). It only
 * decides where a cache point is worth placing: a cache point before the model's minimum is ignored by
 * Bedrock (no error, no charge), so an estimate a little high costs nothing.
 */
const estimateTokens = (text: string): number => Math.ceil(text.length / 4);

const CACHE_POINT = { cachePoint: { type: 'default' } } as const;

/**
 * A document's name as Converse allows it (letters, digits, single spaces, hyphens, parentheses, square
 * brackets; 1 to 200 characters), unique within the request (Converse refuses two documents of one name).
 */
function documentName(name: string, taken: Set<string>): string {
  const base =
    name
      .replace(/[^\p{L}\p{N}\s()[\]-]/gu, ' ')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 190) || 'document';
  let unique = base;
  for (let n = 2; taken.has(unique); n++) unique = `${base} (${n})`;
  taken.add(unique);
  return unique;
}

/** Attachments as Converse blocks: images (png, jpeg, gif, webp) and PDF documents, their bytes inline. */
function fileBlocks(files: AttachmentContent[], names: Set<string>): ContentBlock[] {
  return files.map((file): ContentBlock => {
    if (file.mediaType === 'application/pdf') {
      return {
        document: { format: 'pdf', name: documentName(file.name, names), source: { bytes: file.bytes } },
      };
    }
    const format = file.mediaType.slice('image/'.length) as 'png' | 'jpeg' | 'gif' | 'webp';
    return { image: { format, source: { bytes: file.bytes } } };
  });
}

/**
 * Where the cache points go: after the system prompt when it alone reaches the model's minimum, and
 * after the previous turns (the message before the new user turn) when everything up to there does. The
 * next turn repeats that prefix and adds one turn, so it reads it from the cache and writes the new turn.
 */
export function cachePoints(
  system: string,
  messages: ModelRequest['messages'],
  minTokens: number | undefined,
): { afterSystem: boolean; afterMessage: number | undefined } {
  if (minTokens === undefined) return { afterSystem: false, afterMessage: undefined };
  const systemTokens = estimateTokens(system);
  let prefix = systemTokens;
  for (let i = 0; i < messages.length - 1; i++) prefix += estimateTokens(messages[i]?.content ?? '');
  return {
    afterSystem: systemTokens >= minTokens,
    afterMessage: messages.length >= 2 && prefix >= minTokens ? messages.length - 2 : undefined,
  };
}

/**
 * Converse's `inferenceConfig`: the request's settings over the deployment's defaults. The default
 * temperature is left out when the request sets `topP` on a model that refuses both at once.
 */
export function inferenceConfig(
  settings: InferenceSettings | undefined,
  defaults: { maxTokens: number; temperature: number },
  capabilities: ModelCapabilities,
): InferenceConfiguration {
  const topP = settings?.topP;
  const temperature =
    settings?.temperature ??
    (topP !== undefined && capabilities.samplingExclusive ? undefined : defaults.temperature);
  return {
    maxTokens: settings?.maxTokens ?? Math.min(defaults.maxTokens, capabilities.maxOutputTokens ?? Infinity),
    ...(temperature !== undefined ? { temperature } : {}),
    ...(topP !== undefined ? { topP } : {}),
    ...(settings?.stopSequences?.length ? { stopSequences: settings.stopSequences } : {}),
  };
}

export class BedrockChatModel implements ChatModel {
  readonly #client: BedrockRuntimeClient;
  readonly #options: BedrockModelOptions;
  #region: Promise<string | undefined> | undefined;

  constructor(client: BedrockRuntimeClient, options: BedrockModelOptions) {
    this.#client = client;
    this.#options = options;
  }

  /** The ConverseStream input for a request; `region` is where the client sends it (for latency-optimized). */
  buildInput(request: Omit<ModelRequest, 'signal'>, region?: string): ConverseStreamCommandInput {
    const { maxTokens, temperature, guardrail, promptCaching, latency } = this.#options;
    // Caching, latency and limits follow the row of the model that answers, not the default's.
    const modelId = request.modelId ?? this.#options.modelId;
    const capabilities = modelCapabilities(modelId);
    const points = cachePoints(
      request.system,
      request.messages,
      promptCaching ? capabilities.promptCacheMinTokens : undefined,
    );
    const system: SystemContentBlock[] = [{ text: request.system }];
    if (points.afterSystem) system.push(CACHE_POINT);
    const documentNames = new Set<string>();
    const messages: Message[] = request.messages.map((m, i) => {
      // Files after the text: Converse wants a text block with every document.
      const content: ContentBlock[] = [{ text: m.content }, ...fileBlocks(m.files ?? [], documentNames)];
      if (i === points.afterMessage) content.push(CACHE_POINT);
      return { role: m.role, content };
    });
    const optimized =
      latency === 'optimized' &&
      region !== undefined &&
      capabilities.latencyOptimizedRegions.includes(region);
    return {
      modelId,
      system,
      messages,
      inferenceConfig: inferenceConfig(request.inference, { maxTokens, temperature }, capabilities),
      ...(guardrail
        ? {
            guardrailConfig: {
              guardrailIdentifier: guardrail.id,
              guardrailVersion: guardrail.version,
              streamProcessingMode: guardrail.mode,
            },
          }
        : {}),
      ...(optimized ? { performanceConfig: { latency: 'optimized' } } : {}),
      // Lands in model invocation logs, so a call can be attributed without the user's id.
      ...(request.metadata ? { requestMetadata: request.metadata } : {}),
    };
  }

  /** The client's Region, resolved once (only needed when latency-optimized inference was asked for). */
  #resolveRegion(): Promise<string | undefined> {
    if (this.#options.latency !== 'optimized') return Promise.resolve(undefined);
    this.#region ??= Promise.resolve(this.#client.config.region()).catch(() => undefined);
    return this.#region;
  }

  async *stream(request: ModelRequest): AsyncIterable<ModelEvent> {
    try {
      const region = await this.#resolveRegion();
      const response = await this.#client.send(new ConverseStreamCommand(this.buildInput(request, region)), {
        abortSignal: request.signal,
      });
      for await (const event of response.stream ?? []) {
        const modelEvent = toModelEvent(event);
        if (modelEvent) yield modelEvent;
      }
    } catch (error) {
      throw toModelError(error);
    }
  }
}
