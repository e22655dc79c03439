import type { Source, Usage } from './messages.ts';

export type CacheState = 'hit' | 'miss' | 'skipped';
export type TurnErrorCode = 'throttled' | 'model_error' | 'timeout' | 'internal' | 'nothing_to_regenerate';

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
      stop_reason: string;
      usage: Usage;
      timings: TurnTimings;
      cache: TurnCacheStates;
    }
  | { type: 'error'; code: TurnErrorCode; message: string };
