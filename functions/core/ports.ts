import type { ChatMessage, Passage, UserProfile } from './messages.ts';

/** `undefined` means "not cached" (a miss), never "empty". */
export interface CachedConversation {
  profile: UserProfile | undefined;
  history: ChatMessage[] | undefined;
}

export interface ContextCache {
  /** Profile and history in one round trip. */
  loadConversation(userId: string, sessionId: string): Promise<CachedConversation>;
  storeProfile(profile: UserProfile): Promise<void>;
  /** Replaces the cached history with a complete list (from the store, or empty for a new session). */
  storeHistory(userId: string, sessionId: string, messages: ChatMessage[]): Promise<void>;
  /** Appends only when a cached history exists, so a partial list is never created. */
  appendHistory(userId: string, sessionId: string, messages: ChatMessage[]): Promise<void>;
  loadPassages(knowledgeBaseId: string, question: string): Promise<Passage[] | undefined>;
  storePassages(knowledgeBaseId: string, question: string, passages: Passage[]): Promise<void>;
}

export interface ConversationStore {
  getProfile(userId: string): Promise<UserProfile | undefined>;
  /** The newest `limit` messages of a session, oldest first. */
  getRecentMessages(userId: string, sessionId: string, limit: number): Promise<ChatMessage[]>;
}

export type PersistOutcome = 'written' | 'duplicate';

/** The consumer's write, also the stream handler's direct fallback when the queue fails. */
export interface MessageWriter {
  persist(message: ChatMessage): Promise<PersistOutcome>;
}

export interface MessageQueue {
  enqueue(message: ChatMessage): Promise<void>;
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
