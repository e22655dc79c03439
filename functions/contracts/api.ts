/**
 * The HTTP API's bodies and paths, shared by the stream function's routes and the chat page (web/).
 * Types only, plus the path table: a field renamed here fails to compile on both sides.
 */

/** Where each route lives on the one Function URL; `{id}` is an opaque session id. */
export const API_PATHS = {
  /** Native SSE turn (also `/api/v1/chat/message/stream`). */
  nativeTurn: '/',
  nativeTurnLong: '/api/v1/chat/message/stream',
  /** AI SDK UI message stream turn (`useChat`'s `DefaultChatTransport`). */
  aiSdkTurn: '/api/chat',
  aiSdkResume: '/api/chat/{id}/stream',
  aiSdkStop: '/api/chat/{id}/stop',
  /** OpenAI Chat Completions, streamed or not. */
  openAiTurn: '/v1/chat/completions',
  /** OpenAI's model list (`GET /v1/models/{model}` retrieves one). */
  models: '/v1/models',
  sessions: '/sessions',
  session: '/sessions/{id}',
  sessionMessages: '/sessions/{id}/messages',
  /** `PUT` rates an answer (`FeedbackBody`), `DELETE` takes the rating back. */
  messageFeedback: '/sessions/{id}/messages/{messageId}/feedback',
  sessionResume: '/sessions/{id}/stream',
  sessionStop: '/sessions/{id}/stop',
  usage: '/me/usage',
  me: '/me',
} as const;

type TitleSource = 'auto' | 'generated' | 'user';

/** `GET /sessions` (one of `sessions`), `GET` and `PATCH /sessions/{id}`. */
export interface SessionSummary {
  id: string;
  title: string;
  /** `auto` (the first words; a generated title may follow), `generated` or `user`: final once not `auto`. */
  title_source: TitleSource;
  created_at: string;
  updated_at: string;
  message_count: number;
}

export interface SessionPage {
  sessions: SessionSummary[];
  /** Pass back as `cursor` for the next page; `null` on the last page. */
  next_cursor: string | null;
}

/** Token use of one answer; cached prompt tokens apart (Bedrock's input tokens exclude them). */
interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens?: number;
  cache_write_input_tokens?: number;
}

interface SourceReference {
  id: string;
  title: string;
  uri: string;
  score: number;
  excerpt: string;
  /** Where a person can open the source (SOURCE_BASE_URL + the S3 key, or the source's own web address). */
  url?: string;
}

/** `GET /sessions/{id}/messages` (one of `messages`). */
export interface StoredMessage {
  id: string;
  role: 'user' | 'assistant';
  text: string;
  created_at: string;
  client_message_id?: string;
  sources?: SourceReference[];
  stop_reason?: string;
  usage?: TokenUsage;
  /** A user message's files (their bytes are not returned here). */
  attachments?: Array<{ name: string; media_type: string; size: number }>;
  /** The model that wrote an answer. */
  model?: string;
  /** The message this one follows (`null`: the first); absent on messages stored before versions. */
  parent_id?: string | null;
  /** When the message has other versions (edits of a question, regenerations of an answer): all their ids, oldest first. */
  versions?: string[];
  feedback?: MessageFeedback;
}

/** `PUT /sessions/{id}/messages/{messageId}/feedback`. */
export interface FeedbackBody {
  rating: 'up' | 'down';
  /** At most 500 characters. */
  reason?: string;
}

/** An answer's rating as stored with it. */
export interface MessageFeedback extends FeedbackBody {
  updated_at?: string;
}

type CacheState = 'hit' | 'miss' | 'skipped';

interface AnswerTimings {
  first_byte_ms: number;
  context_ms: number;
  rag_ms: number;
  model_first_token_ms: number;
  model_latency_ms: number;
  total_ms: number;
}

/**
 * An answer's metadata in the AI SDK format: the `start` chunk carries `sessionId`; `finish` adds stop
 * reason, usage, timings and cache states (or `errorCode`); a reopened answer has `createdAt` and usage.
 */
export interface AnswerMetadata {
  sessionId?: string;
  stopReason?: string;
  errorCode?: string;
  createdAt?: string;
  usage?: TokenUsage;
  timings?: AnswerTimings;
  cache?: { profile: CacheState; history: CacheState; rag: CacheState };
  /** A reopened message's stored id (a question's UI id is the client's id, shared by its edits). */
  messageId?: string;
  /** Its versions' stored ids, oldest first, when it has more than one. */
  versions?: string[];
  feedback?: MessageFeedback;
}

interface LimitUse {
  /** 0 means no limit. */
  limit: number;
  used: number;
}

/** `GET /me/usage`: today's stored use, and what the limiters count now. */
export interface UsageSummary {
  day: string;
  turns: number;
  input_tokens: number;
  output_tokens: number;
  /** Today's tokens per model that answered (stateless /v1 calls included). */
  models: Array<{ model: string; turns: number; input_tokens: number; output_tokens: number }>;
  limits: { turns_per_minute: LimitUse; concurrent_streams: LimitUse; tokens_per_day: LimitUse };
}

/** Every refused request's body (the OpenAI route answers in OpenAI's error shape instead). */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    /** The request field to fix, when one is to blame. */
    field?: string;
    [detail: string]: unknown;
  };
}
