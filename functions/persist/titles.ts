import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { BedrockTitleWriter } from '../adapters/bedrock-titles.ts';
import { errorName } from '../core/background-writes.ts';
import type { ChatMessage } from '../core/messages.ts';
import type { PersistConfig } from '../environment.ts';

/** What a title needs of the store: the conversation's first question, and where the title goes. */
export interface TitleStore {
  getRecentMessages(userId: string, sessionId: string, limit: number): Promise<ChatMessage[]>;
  setGeneratedTitle(userId: string, sessionId: string, title: string): Promise<boolean>;
}

export type WriteTitles = (firstAnswers: readonly ChatMessage[]) => Promise<void>;

/**
 * Titles for the conversations a batch answered for the first time. The consumer calls it once the
 * batch's messages are written, so no message waits for a model call, and the calls run concurrently,
 * so a batch of new conversations costs one call's time. Without `TITLES` it does nothing.
 */
export function titleWriter(
  config: Pick<
    PersistConfig,
    'TITLES' | 'TITLE_MODEL_ID' | 'TITLE_MAX_TOKENS' | 'TITLE_TIMEOUT_MS' | 'AWS_CONNECT_TIMEOUT_MS'
  >,
  store: TitleStore,
  log: { warn(message: string, attributes: Record<string, unknown>): void },
): WriteTitles {
  if (!config.TITLES) return async () => undefined;
  const writer = new BedrockTitleWriter(
    new BedrockRuntimeClient({ requestHandler: { connectionTimeout: config.AWS_CONNECT_TIMEOUT_MS } }),
    config.TITLE_MODEL_ID,
    config.TITLE_MAX_TOKENS,
  );
  /** The first words of the first question stay the title when the call fails: a title is never worth a retry. */
  const giveTitle = async (answer: ChatMessage) => {
    try {
      const [question] = await store.getRecentMessages(answer.userId, answer.sessionId, 2);
      const title = await writer.suggest(
        question?.role === 'user' ? question.content : '',
        answer.content,
        AbortSignal.timeout(config.TITLE_TIMEOUT_MS),
      );
      if (title) await store.setGeneratedTitle(answer.userId, answer.sessionId, title);
    } catch (error) {
      log.warn('title not generated, keeping the first words', { error: errorName(error) });
    }
  };
  return async (firstAnswers) => {
    await Promise.all(firstAnswers.map(giveTitle));
  };
}
