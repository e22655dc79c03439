import type { Source, Usage } from './messages.ts';

export type CacheState = 'hit' | 'miss' | 'skipped';
export type TurnErrorCode =
  | 'throttled'
  | 'model_error'
  | 'timeout'
  | 'internal'
  | 'nothing_to_regenerate'
  /** The answer streamed, but neither the queue nor the direct write saved its messages: send again. */
  | 'not_saved';

/**
 * Why an answer ended: the model's own reasons, `stopped` when the user stopped it (what was said so far
 * is kept, never shown as complete), `other` for a provider reason this service does not know.
 */
export type StopReason =
  | 'end_turn'
  | 'stop_sequence'
  | 'max_tokens'
  | 'guardrail_intervened'
  | 'content_filtered'
  | 'model_context_window_exceeded'
  | 'stopped'
  | 'other';

const STOP_REASONS: ReadonlySet<string> = new Set<StopReason>([
  'end_turn',
  'stop_sequence',
  'max_tokens',
  'guardrail_intervened',
  'content_filtered',
  'model_context_window_exceeded',
  'stopped',
  'other',
]);

/** A provider's stop reason as one of ours. */
export const toStopReason = (reason: string): StopReason =>
  STOP_REASONS.has(reason) ? (reason as StopReason) : 'other';

export interface TurnTimings {
  first_byte_ms: number;
  context_ms: number;
  rag_ms: number;
  /** From the request to the first token: what the user waits for. */
  model_first_token_ms: number;
  /** From the model call to its first token: the model's own latency, without context or retrieval. */
  model_latency_ms: number;
  total_ms: number;
}

export interface TurnCacheStates {
  profile: CacheState;
  history: CacheState;
  rag: CacheState;
}

/**
 * What a turn tells its client, in order: `session_id` first, then `sources`, `token`s, and one of
 * `done` or `error`. Field names are those of the native SSE protocol, which writes these as they are;
 * other wire formats translate them at the edge.
 */
export type TurnEvent =
  /** `message_id` is the id the answer will have; the native protocol does not send it. */
  | { type: 'session_id'; session_id: string; message_id: string }
  | { type: 'sources'; sources: Source[] }
  | { type: 'token'; text: string }
  | {
      type: 'done';
      message_id: string;
      stop_reason: StopReason;
      usage: Usage;
      timings: TurnTimings;
      cache: TurnCacheStates;
    }
  | { type: 'error'; code: TurnErrorCode; message: string };

export interface BackgroundReport {
  saves: number;
  failedSaves: number;
}

/** How a turn went, for the log line and the metrics published once it ended. */
export interface TurnReport {
  userId: string;
  sessionId: string;
  outcome: 'done' | 'error' | 'client_gone';
  errorCode?: TurnErrorCode;
  timings: TurnTimings;
  cache: TurnCacheStates;
  usage: Usage;
  retrievalFailed: boolean;
  /** Every write the turn started; awaited after the stream ended. */
  background: Promise<BackgroundReport>;
}
