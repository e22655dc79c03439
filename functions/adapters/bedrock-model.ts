import {
  type BedrockRuntimeClient,
  type ContentBlock,
  ConverseStreamCommand,
  type ConverseStreamCommandInput,
  type SystemContentBlock,
} from '@aws-sdk/client-bedrock-runtime';
import { type ChatModel, ModelError, type ModelEvent, type ModelRequest } from '../core/ports.ts';

export interface BedrockModelOptions {
  modelId: string;
  maxTokens: number;
  temperature: number;
  guardrail?: { id: string; version: string; mode: 'sync' | 'async' } | undefined;
  promptCaching: boolean;
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

export class BedrockChatModel implements ChatModel {
  readonly #client: BedrockRuntimeClient;
  readonly #options: BedrockModelOptions;

  constructor(client: BedrockRuntimeClient, options: BedrockModelOptions) {
    this.#client = client;
    this.#options = options;
  }

  buildInput(request: Omit<ModelRequest, 'signal'>): ConverseStreamCommandInput {
    const { modelId, maxTokens, temperature, guardrail, promptCaching, latency } = this.#options;
    const system: SystemContentBlock[] = [{ text: request.system }];
    if (promptCaching) system.push({ cachePoint: { type: 'default' } });
    return {
      modelId,
      system,
      messages: request.messages.map((m) => ({
        role: m.role,
        content: [{ text: m.content } as ContentBlock],
      })),
      inferenceConfig: { maxTokens, temperature },
      ...(guardrail
        ? {
            guardrailConfig: {
              guardrailIdentifier: guardrail.id,
              guardrailVersion: guardrail.version,
              streamProcessingMode: guardrail.mode,
            },
          }
        : {}),
      ...(latency === 'optimized' ? { performanceConfig: { latency } } : {}),
    };
  }

  async *stream(request: ModelRequest): AsyncIterable<ModelEvent> {
    try {
      const response = await this.#client.send(new ConverseStreamCommand(this.buildInput(request)), {
        abortSignal: request.signal,
      });
      for await (const event of response.stream ?? []) {
        const text = event.contentBlockDelta?.delta?.text;
        if (text) yield { type: 'text', text };
        else if (event.messageStop)
          yield { type: 'stop', stopReason: event.messageStop.stopReason ?? 'end_turn' };
        else if (event.metadata?.usage) {
          yield {
            type: 'usage',
            inputTokens: event.metadata.usage.inputTokens ?? 0,
            outputTokens: event.metadata.usage.outputTokens ?? 0,
          };
        }
      }
    } catch (error) {
      throw toModelError(error);
    }
  }
}
