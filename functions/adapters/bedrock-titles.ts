import { type BedrockRuntimeClient, ConverseCommand } from '@aws-sdk/client-bedrock-runtime';

const INSTRUCTIONS =
  'Write a title of at most six words for the conversation below. Answer with the title only, ' +
  'no quotes and no final punctuation.';

/** One small, non-streaming Converse call per new conversation, once its batch is written (persist/titles.ts). */
export class BedrockTitleWriter {
  readonly #client: BedrockRuntimeClient;
  readonly #modelId: string;
  readonly #maxTokens: number;

  constructor(client: BedrockRuntimeClient, modelId: string, maxTokens: number) {
    this.#client = client;
    this.#modelId = modelId;
    this.#maxTokens = maxTokens;
  }

  /** A clean title, or `undefined` when the model gave nothing usable. */
  async suggest(question: string, answer: string, signal: AbortSignal): Promise<string | undefined> {
    const { output } = await this.#client.send(
      new ConverseCommand({
        modelId: this.#modelId,
        system: [{ text: INSTRUCTIONS }],
        messages: [
          {
            role: 'user',
            content: [{ text: `Question: ${question.slice(0, 1000)}\n\nAnswer: ${answer.slice(0, 1000)}` }],
          },
        ],
        inferenceConfig: { maxTokens: this.#maxTokens, temperature: 0 },
      }),
      { abortSignal: signal },
    );
    const text = (output?.message?.content ?? []).map((block) => block.text ?? '').join('');
    const title = text
      .replace(/[\r\n]+/g, ' ')
      .replace(/^["'\s]+|["'.\s]+$/g, '')
      .slice(0, 80)
      .trim();
    return title || undefined;
  }
}
