import type { ChatMessage, Passage, UserProfile } from './messages.ts';
import type { TurnEvent } from './turn-events.ts';

/** `undefined` means "not cached" (a miss), never "empty". */
export interface CachedConversation {
  profile: UserProfile | undefined;
  history: ChatMessage[] | undefined;
}

export interface ContextCache {
  /** Profile and history in one round trip. */
  loadConversation(userId: string, sessionId: string, signal: AbortSignal): Promise<CachedConversation>;
  storeProfile(profile: UserProfile): Promise<void>;
  /** Replaces the cached history with a complete list (from the store, or empty for a new session). */
  storeHistory(userId: string, sessionId: string, messages: ChatMessage[]): Promise<void>;
  /** Appends only when a cached history exists, so a partial list is never created. */
  appendHistory(userId: string, sessionId: string, messages: ChatMessage[]): Promise<void>;
  loadPassages(
    knowledgeBaseId: string,
    question: string,
    signal: AbortSignal,
  ): Promise<Passage[] | undefined>;
  storePassages(knowledgeBaseId: string, question: string, passages: Passage[]): Promise<void>;
}

export interface ConversationStore {
  getProfile(userId: string, signal: AbortSignal): Promise<UserProfile | undefined>;
  /** The newest `limit` messages of a session, oldest first. */
  getRecentMessages(
    userId: string,
    sessionId: string,
    limit: number,
    signal: AbortSignal,
  ): Promise<ChatMessage[]>;
}

export type SaveOutcome = 'written' | 'duplicate';

/** The consumer's write, also the stream handler's direct fallback when the outbox fails. */
export interface MessageWriter {
  save(message: ChatMessage): Promise<SaveOutcome>;
}

/** Where a turn sends its messages to be saved off the critical path (in AWS: the SQS FIFO queue). */
export interface MessageOutbox {
  send(message: ChatMessage): Promise<void>;
}

export interface Retriever {
  readonly knowledgeBaseId: string;
  retrieve(question: string, signal: AbortSignal): Promise<Passage[]>;
}

export type ModelEvent =
  | { type: 'text'; text: string }
  | { type: 'stop'; stopReason: string }
  | { type: 'usage'; inputTokens: number; outputTokens: number };

export interface ModelRequest {
  system: string;
  messages: Array<{ role: 'user' | 'assistant'; content: string }>;
  signal: AbortSignal;
}

export type ModelErrorCode = 'throttled' | 'model_error' | 'timeout';

/** What a model adapter throws, already mapped from the provider's error types. */
export class ModelError extends Error {
  readonly code: ModelErrorCode;
  constructor(code: ModelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelError';
    this.code = code;
  }
}

export interface ChatModel {
  stream(request: ModelRequest): AsyncIterable<ModelEvent>;
}

export interface TurnLog {
  warn(message: string, attributes?: Record<string, unknown>): void;
  error(message: string, attributes?: Record<string, unknown>): void;
}

/** Where a turn's events go (a wire format at the edge); `false` means the client can no longer be written to. */
export interface EventSink {
  send(event: TurnEvent): boolean;
}
