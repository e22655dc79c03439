import type { Chat } from '@ai-sdk/react';
import { type Api, ApiError, type ChatMessage } from './api.ts';
import type { FeedbackBody } from './types.ts';

/**
 * What "Continue" sends after a stopped answer: an ordinary question, so the model reads its partial
 * answer in the history and goes on from there (docs/api.md, "Continue after a stop").
 */
export const CONTINUE_PROMPT = 'Continue your answer from where it stopped.';

/**
 * What the newest message follows: the stored id of the message before it, skipping an answer that
 * failed (never stored); `null` when it starts the conversation.
 */
export function parentIdFor(messages: ChatMessage[]): string | null {
  for (let at = messages.length - 2; at >= 0; at--) {
    const message = messages[at];
    if (!message || message.metadata?.errorCode) continue;
    return message.metadata?.messageId ?? message.id;
  }
  return null;
}

/** Shows the branch through another version of a message (the stored conversation decides what follows it). */
export async function showVersion(chat: Chat<ChatMessage>, api: Api, versionId: string): Promise<void> {
  const branch = await api.messages(chat.id, versionId).catch(() => undefined);
  if (branch?.length) chat.messages = branch;
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Per answer, the newest rating asked for: an older one still being retried gives up, never overwrites it. */
const newestRating = new Map<string, number>();
let ratings = 0;

/**
 * Rates an answer and shows the rating on it. An answer just written may not be stored yet (the queue
 * writes it within moments, longer when the consumer is backed up): a 404 is tried again, backing off
 * up to 4 s, for about 20 s in all before it counts as a failure.
 */
export async function rateWithRetry(
  chat: Chat<ChatMessage>,
  api: Api,
  messageId: string,
  feedback: FeedbackBody | undefined,
): Promise<void> {
  const mine = ++ratings;
  newestRating.set(messageId, mine);
  const superseded = () => newestRating.get(messageId) !== mine;
  for (let attempt = 0; ; attempt++) {
    try {
      await api.feedback(chat.id, messageId, feedback);
      break;
    } catch (error) {
      if (superseded()) return;
      if (!(error instanceof ApiError && error.status === 404) || attempt >= 7) throw error;
      await wait(Math.min(250 * 2 ** attempt, 4000));
      if (superseded()) return;
    }
  }
  if (superseded()) return;
  chat.messages = chat.messages.map((m) => {
    if ((m.metadata?.messageId ?? m.id) !== messageId) return m;
    const { feedback: _old, ...metadata } = m.metadata ?? {};
    return { ...m, metadata: feedback ? { ...metadata, feedback } : metadata };
  });
}

/**
 * After an edit or a regeneration: the stored branch, which lists the versions, once it holds the answer
 * just written (the queue may store it a moment later); what this page knows of the live answers stays.
 */
export async function adoptVersions(chat: Chat<ChatMessage>, api: Api): Promise<void> {
  const newest = chat.messages.at(-1)?.id;
  for (let attempt = 0; attempt < 5; attempt++) {
    const stored = await api.messages(chat.id).catch(() => undefined);
    if (stored && stored.at(-1)?.id === newest && chat.messages.at(-1)?.id === newest) {
      const live = new Map(chat.messages.map((m) => [m.id, m]));
      chat.messages = stored.map((m) => {
        const mine = live.get(m.id);
        return mine ? { ...mine, metadata: { ...m.metadata, ...mine.metadata } } : m;
      });
      return;
    }
    await wait(250 * 2 ** attempt);
  }
}
