import type { Source, Usage } from './messages.ts';

export type CacheState = 'hit' | 'miss' | 'skipped';
export type StreamErrorCode = 'throttled' | 'model_error' | 'timeout' | 'internal';

export interface TurnTimings {
  first_byte_ms: number;
  context_ms: number;
  rag_ms: number;
  model_first_token_ms: number;
  total_ms: number;
}

export type StreamEvent =
  | { type: 'session_id'; session_id: string }
  | { type: 'sources'; sources: Source[] }
  | { type: 'token'; text: string }
  | {
      type: 'done';
      message_id: string;
      stop_reason: string;
      usage: Usage;
      timings: TurnTimings;
      cache: { profile: CacheState; history: CacheState; rag: CacheState };
    }
  | { type: 'error'; code: StreamErrorCode; message: string };

/**
 * One Server-Sent Event. `padding` adds an SSE comment line (ignored by every SSE parser) so that a
 * small event crosses the size below which a Function URL may hold a write back.
 */
export function encodeEvent(event: StreamEvent, padding = 0): string {
  const data = `data: ${JSON.stringify(event)}\n\n`;
  return padding > 0 ? `:${' '.repeat(padding)}\n${data}` : data;
}

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;
