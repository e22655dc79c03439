import { DefaultChatTransport, type UIMessageChunk } from 'ai';
import type { ChatMessage } from './api.ts';

type ReconnectOptions = Parameters<DefaultChatTransport<ChatMessage>['reconnectToStream']>[0];

/**
 * The AI SDK's transport, except that a resume which would replay an answer this page already holds in
 * full is skipped. A turn that ended moments ago is still replayable (its answer may not be stored yet),
 * and a replay replaces the message it names: a finished answer would empty and type itself out again.
 */
export class ConversationTransport extends DefaultChatTransport<ChatMessage> {
  readonly #holdsFinished: (messageId: string) => boolean;

  constructor(
    options: ConstructorParameters<typeof DefaultChatTransport<ChatMessage>>[0],
    holdsFinished: (messageId: string) => boolean,
  ) {
    super(options);
    this.#holdsFinished = holdsFinished;
  }

  override async reconnectToStream(
    options: ReconnectOptions,
  ): Promise<ReadableStream<UIMessageChunk> | null> {
    const stream = await super.reconnectToStream(options);
    if (!stream) return null;
    const reader = stream.getReader();
    const first = await reader.read();
    if (first.done) return null;
    if (first.value.type === 'start' && first.value.messageId && this.#holdsFinished(first.value.messageId)) {
      await reader.cancel();
      return null;
    }
    return new ReadableStream<UIMessageChunk>({
      start: (controller) => controller.enqueue(first.value),
      pull: async (controller) => {
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel: (reason) => reader.cancel(reason),
    });
  }
}

/**
 * Whether the conversation holds this answer finished: one that streamed to its end here (its `finish`
 * gave a stop reason) or one reopened from storage (stored answers are complete; they carry `createdAt`).
 */
export function holdsFinishedAnswer(messages: ChatMessage[], messageId: string): boolean {
  return messages.some(
    (m) =>
      m.role === 'assistant' &&
      (m.id === messageId || m.metadata?.messageId === messageId) &&
      (m.metadata?.stopReason !== undefined || m.metadata?.createdAt !== undefined),
  );
}
