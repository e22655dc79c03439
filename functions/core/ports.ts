import type { LimitName } from './limits.ts';
import type { AttachmentContent, AttachmentRef, ChatMessage, Passage, UserProfile } from './messages.ts';
import type { BackgroundReport, TurnEvent, TurnReport } from './turn-events.ts';

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

/** `discarded`: the session was deleted or the user erased, so the message was not kept. */
type SaveOutcome = 'written' | 'duplicate' | 'discarded';

export interface SaveResult {
  outcome: SaveOutcome;
  /** This was the session's first answer: time to give it a title. */
  firstAnswer: boolean;
}

/** The consumer's write, also the stream handler's direct fallback when the outbox fails. */
export interface MessageWriter {
  save(message: ChatMessage): Promise<SaveResult>;
}

/** Where a turn sends its messages to be saved off the critical path (in AWS: the SQS FIFO queue). */
export interface MessageOutbox {
  send(message: ChatMessage): Promise<void>;
}

/** Where a message's attachments are kept, under its user and session (in AWS: an encrypted S3 bucket). */
export interface AttachmentStore {
  put(
    owner: { userId: string; sessionId: string; messageId: string },
    index: number,
    content: AttachmentContent,
  ): Promise<AttachmentRef>;
  get(ref: AttachmentRef, signal: AbortSignal): Promise<Uint8Array>;
  /** `true` when the key is one of this user's (a key from a request is never trusted as is). */
  owns(userId: string, key: string): boolean;
  deleteSession(userId: string, sessionId: string): Promise<void>;
  deleteUser(userId: string): Promise<void>;
}

/** Usage of a turn that stores no message (a stateless OpenAI call), counted like an answer's. */
export interface UsageRecorder {
  recordUsage(entry: {
    userId: string;
    messageId: string;
    createdAt: string;
    model: string | undefined;
    usage: { input_tokens: number; output_tokens: number };
  }): Promise<void>;
}

export interface Retriever {
  readonly knowledgeBaseId: string;
  retrieve(question: string, signal: AbortSignal): Promise<Passage[]>;
}

export type ModelEvent =
  | { type: 'text'; text: string }
  | { type: 'stop'; stopReason: string }
  | {
      type: 'usage';
      /** Input tokens neither read from nor written to the prompt cache (Bedrock's `inputTokens`). */
      inputTokens: number;
      outputTokens: number;
      /** Prompt tokens read from the model's prompt cache (billed at about a tenth of the input price). */
      cacheReadTokens?: number;
      /** Prompt tokens written to the model's prompt cache (billed at about 1.25 times the input price). */
      cacheWriteTokens?: number;
    };

/** The client's generation settings, already within the chosen model's and the deployment's caps. */
export interface InferenceSettings {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stopSequences?: string[];
}

export interface ModelRequest {
  /** The model to answer with (one of the deployment's allowed models); `undefined`: its default. */
  modelId?: string | undefined;
  /** What the client asked for; unset fields take the deployment's defaults. */
  inference?: InferenceSettings | undefined;
  system: string;
  /** `files`: a user turn's attachments (images and documents), after its text. */
  messages: Array<{ role: 'user' | 'assistant'; content: string; files?: AttachmentContent[] }>;
  signal: AbortSignal;
  /** Attribution for the provider's invocation logs: a non-reversible user key and the session id. */
  metadata?: Record<string, string>;
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

/**
 * A wire format at the edge: writes one turn event with its position in the turn (its SSE `id`);
 * `false` once the client can no longer be written to.
 */
export interface WireSink {
  send(event: TurnEvent, id: number): boolean;
  /** Ends the wire format (e.g. `data: [DONE]`) and the body; called once, after the turn's last event. */
  end(): void;
}

/** Where refusals and finished turns are counted (CloudWatch metrics in AWS). */
export interface TurnObserver {
  countLimitRejection(): void;
  publishTurn(report: TurnReport, background: BackgroundReport): void;
}

/** A turn's event as kept for replay: its position in the turn's stream is its SSE `id`. */
export interface JournaledEvent {
  id: number;
  event: TurnEvent;
}

export type TurnClaim =
  /** This request runs the turn; it holds the session until `finish`. */
  | { kind: 'claimed'; turnId: string }
  /** The same client message id was already taken: attach to (or replay) that turn. */
  | { kind: 'duplicate'; turnId: string }
  /** Another turn is running on this session. */
  | { kind: 'busy' }
  /** A per-user limit (turns per minute, tokens per day, open streams) refused it; nothing was consumed. */
  | { kind: 'limited'; limit: LimitName; retryAfterSeconds: number };

export type TurnFollow =
  /** A stream slot is held for this follower until its events end. */
  | { kind: 'follow'; replay: TurnReplay }
  /** Nothing running or replayable on that session. */
  | { kind: 'none' }
  /** The user already has as many streams (turns and followers) open as they may. */
  | { kind: 'limited'; retryAfterSeconds: number };

/**
 * The registry did not answer the claim in time. The claim, if it ran at all, was released by its
 * turn id, so the caller must neither run the turn nor assume a lock: it answers 503.
 */
export class AdmissionUncertain extends Error {
  override name = 'AdmissionUncertain';
}

/** The running turn's side of the registry: its events in batches, and whether a stop was asked for. */
export interface TurnJournal {
  append(entry: JournaledEvent): void;
  /** Fires (within one flush interval) when someone asks this turn to stop, in any execution environment. */
  readonly stopSignal: AbortSignal;
  /** Flushes what is left, marks the turn finished and frees the session. */
  finish(): Promise<void>;
}

export interface TurnReplay {
  turnId: string;
  /** Yields the turn's events after `afterId`, then follows it live until its last event. */
  events(afterId: number, signal: AbortSignal): AsyncIterable<JournaledEvent>;
}

/**
 * Admission in one round trip (per-user limits, stream cap, session lock, idempotency), then
 * one turn at a time per session, idempotent by client message id, with a replayable event log and a
 * stop that reaches the turn wherever it runs. Shared by every execution environment (Redis in AWS).
 */
export interface TurnRegistry {
  claim(
    userId: string,
    sessionId: string,
    clientMessageId: string | undefined,
    turnId: string,
  ): Promise<TurnClaim>;
  journal(userId: string, sessionId: string, turnId: string): TurnJournal;
  /** How many turns the user is running now, across sessions and environments. */
  runningTurns(userId: string): Promise<number>;
  /** `true` when a running turn was asked to stop. */
  requestStop(userId: string, sessionId: string): Promise<boolean>;
  /** The running or just-finished turn of the session (or the given one), if it can still be replayed. */
  replay(userId: string, sessionId: string, turnId?: string): Promise<TurnReplay | undefined>;
  /**
   * Like `replay`, but the follower takes one of the user's stream slots (the same cap as turns) for
   * at most `holdMs`, given back when its events end.
   */
  follow(
    userId: string,
    sessionId: string,
    followerId: string,
    options: { turnId?: string; holdMs: number },
  ): Promise<TurnFollow>;
}
