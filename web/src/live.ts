import type { Chat } from '@ai-sdk/react';
import { useEffect } from 'react';
import type { Api, ChatMessage } from './api.ts';

/**
 * How the page stays live across tabs and devices without a server push:
 * - tabs of one browser tell each other at once over a BroadcastChannel (no request at all);
 * - another device's changes arrive when this tab comes back into view (focus, visibility) and on a light
 *   poll of the list while it is visible. A poll is one `GET /sessions` (one DynamoDB query, no Redis);
 *   a push channel would hold a Lambda invocation and a Redis blocking read open per tab instead.
 * A running answer is then followed through the turn journal (`GET /api/chat/{id}/stream`), as after a reload.
 */
const LIST_POLL_MS = 30_000;

/** What one tab tells the others of the same user. */
export type LiveNews =
  /** The list changed: a conversation was started, renamed, titled or deleted. */
  | { type: 'sessions' }
  /** A turn started in `sessionId`, answering `question` (new, or asked again by a regenerate). */
  | { type: 'turn'; sessionId: string; question: { id: string; text: string } };

/**
 * One channel per signed-in user: another user's tabs (the dev user switch) hear nothing. Open while the
 * workspace is mounted (`open`/`close` from an effect, so React's double effects in development are fine);
 * news told while closed (a timer after a user switch) is dropped.
 */
export class LiveChannel {
  readonly #user: string;
  #channel: BroadcastChannel | undefined;
  readonly #listeners = new Set<(news: LiveNews) => void>();

  constructor(user: string) {
    this.#user = user;
  }

  open(): void {
    if (this.#channel || typeof BroadcastChannel !== 'function') return;
    this.#channel = new BroadcastChannel(`chat.live.${this.#user}`);
    this.#channel.onmessage = (event: MessageEvent<LiveNews>) => {
      for (const listener of this.#listeners) listener(event.data);
    };
  }

  tell(news: LiveNews): void {
    this.#channel?.postMessage(news);
  }

  listen(listener: (news: LiveNews) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#channel?.close();
    this.#channel = undefined;
  }
}

/** Reads the list again when another tab changed it, when this tab comes into view, and on a light poll. */
export function useFreshList(live: LiveChannel, refresh: () => unknown): void {
  useEffect(() => {
    const stopListening = live.listen((news) => {
      if (news.type === 'sessions') void refresh();
      // A turn in a conversation this tab may not list yet (just started elsewhere): its row is stored by then.
      if (news.type === 'turn') setTimeout(() => void refresh(), 1000);
    });
    const onView = () => {
      if (document.visibilityState === 'visible') void refresh();
    };
    const timer = setInterval(onView, LIST_POLL_MS);
    window.addEventListener('focus', onView);
    document.addEventListener('visibilitychange', onView);
    return () => {
      stopListening();
      clearInterval(timer);
      window.removeEventListener('focus', onView);
      document.removeEventListener('visibilitychange', onView);
    };
  }, [live, refresh]);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Puts the question a turn answers last in the log: appended, or with the answers after it dropped (regenerate). */
function placeQuestion(chat: Chat<ChatMessage>, question: { id: string; text: string }): void {
  const at = chat.messages.findIndex((m) => m.id === question.id);
  if (at !== -1) {
    if (at < chat.messages.length - 1) chat.messages = chat.messages.slice(0, at + 1);
    return;
  }
  chat.messages = [
    ...chat.messages,
    { id: question.id, role: 'user', parts: [{ type: 'text', text: question.text }] },
  ];
}

/** Adopts the stored conversation when `wanted` says it is further along than the log; true when it was. */
export async function adoptStored(
  chat: Chat<ChatMessage>,
  api: Api,
  wanted: (stored: ChatMessage[]) => boolean = (stored) => stored.length > chat.messages.length,
): Promise<boolean> {
  const stored = await api.messages(chat.id).catch(() => undefined);
  if (!stored || !wanted(stored)) return false;
  const live = new Map(chat.messages.map((m) => [m.id, m]));
  chat.messages = stored.map((m) => {
    const mine = live.get(m.id);
    return mine ? { ...m, metadata: { ...m.metadata, ...mine.metadata } } : m;
  });
  return true;
}

/** Stands for a question asked elsewhere until the stored conversation has it (it is stored with its answer). */
const PLACEHOLDER_TEXT = 'Asked in another tab or on another device…';

/**
 * Follows the running turn's journal under a placeholder question, then takes the stored conversation
 * (the real question) once the consumer has it. False when no turn was running, or the journal replayed
 * an answer the log already has (a turn that had ended).
 */
async function followUnknownQuestion(chat: Chat<ChatMessage>, api: Api): Promise<boolean> {
  const before = chat.messages;
  const known = new Set(before.map((m) => m.id));
  chat.messages = [
    ...before,
    { id: `elsewhere-${Date.now()}`, role: 'user', parts: [{ type: 'text', text: PLACEHOLDER_TEXT }] },
  ];
  await chat.resumeStream();
  const answer = chat.messages.at(-1);
  if (answer?.role !== 'assistant' || known.has(answer.id)) {
    chat.messages = before;
    return false;
  }
  for (let attempt = 0; attempt < 8; attempt++) {
    if (await adoptStored(chat, api, (stored) => stored.some((m) => m.id === answer.id))) break;
    await pause(Math.min(250 * 2 ** attempt, 2000));
  }
  return true;
}

/**
 * Shows an answer being written elsewhere (another tab or device) as it is written: the question in the
 * log (given by the tab that asked, else read back once stored), then the turn's journal from its start.
 * A turn just admitted may not be resumable yet: a few tries, backing off.
 */
export async function followRunningTurn(
  chat: Chat<ChatMessage>,
  api: Api,
  question?: { id: string; text: string },
  tries = 8,
  /** Ask first whether an answer runs (an idle tab's check); a 409 already said so. */
  probe = true,
): Promise<boolean> {
  // A 409 that sent this here is not the conversation's state: the answer being written is.
  chat.clearError();
  for (let attempt = 0; attempt < tries; attempt++) {
    if (question) {
      placeQuestion(chat, question);
      await chat.resumeStream();
      if (chat.messages.at(-1)?.role === 'assistant') return true;
    } else {
      // The stored conversation may already hold the answer; else its question is not stored yet.
      const adopted = await adoptStored(chat, api);
      if (adopted && chat.messages.at(-1)?.role === 'assistant') return true;
      if (chat.messages.at(-1)?.role === 'user') {
        await chat.resumeStream();
        if (chat.messages.at(-1)?.role === 'assistant') return true;
      } else if ((!probe || (await api.answerRunning(chat.id))) && (await followUnknownQuestion(chat, api))) {
        return true;
      }
    }
    if (attempt < tries - 1) await pause(Math.min(250 * 2 ** attempt, 2000));
  }
  return false;
}
