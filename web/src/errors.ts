import { ApiError, apiErrorFrom } from './api.ts';

export type Problem = {
  /** `refused`: the API will refuse the same request again (a 4xx that is not a limit or a conflict). */
  kind: 'limit' | 'busy' | 'network' | 'auth' | 'conflict' | 'refused' | 'other';
  /** One sentence a person understands. */
  message: string;
  /** Epoch ms before which a retry will be refused again (429). */
  retryAt?: number;
};

const LIMIT_SENTENCES: Record<string, string> = {
  turns_per_minute: 'You have sent as many messages as one minute allows.',
  concurrent_streams: 'Too many answers are being written for you at once.',
  tokens_per_day: "You have used today's token budget.",
};

/** A browser's fetch failure (Chromium, Firefox, WebKit wording), as the AI SDK classes it too. */
export function isNetworkFailure(error: unknown): boolean {
  if (error instanceof ApiError) return error.status === 0;
  if (!(error instanceof TypeError)) return false;
  const message = error.message.toLowerCase();
  return message.includes('fetch') || message.includes('network') || message === 'load failed';
}

/** The AI SDK's APICallError (a non-2xx answer to POST /api/chat) carries the status and the raw body. */
function asApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (typeof error !== 'object' || error === null) return undefined;
  const { statusCode, responseBody } = error as { statusCode?: unknown; responseBody?: unknown };
  if (typeof statusCode !== 'number') return undefined;
  return apiErrorFrom(statusCode, typeof responseBody === 'string' ? responseBody : '');
}

/** What went wrong, in words a person understands, and when trying again makes sense. */
export function describeProblem(error: unknown, now = Date.now()): Problem {
  if (isNetworkFailure(error)) {
    return { kind: 'network', message: 'The connection was lost. Retrying when it is back…' };
  }
  const api = asApiError(error);
  if (api) {
    if (api.status === 429) {
      const seconds = api.retryAfterSeconds ?? 60;
      return {
        kind: 'limit',
        message: LIMIT_SENTENCES[api.limit ?? ''] ?? 'You have reached a usage limit.',
        retryAt: now + seconds * 1000,
      };
    }
    if (api.status === 401) return { kind: 'auth', message: 'Your sign-in has expired. Sign in again.' };
    if (api.status === 409) {
      return {
        kind: 'conflict',
        message: 'An answer is still being written in this conversation (perhaps in another tab).',
      };
    }
    if (api.status >= 500 || api.status === 0) {
      return { kind: 'other', message: 'The server had a problem. Try again in a moment.' };
    }
    if (api.status === 408) return { kind: 'other', message: api.message };
    return { kind: 'refused', message: api.message };
  }
  // An `error` chunk in the stream: the server's own sentence (throttled, model_error, timeout, internal).
  const text = error instanceof Error ? error.message : String(error);
  if (/busy|throttl|too many requests/i.test(text)) {
    return { kind: 'busy', message: 'The model is busy right now. Try again in a moment.' };
  }
  return { kind: 'other', message: text || 'Something went wrong.' };
}

/** "37 s", "4 min 10 s", "3 h 5 min": how long until a retry is allowed. */
export function formatWait(ms: number): string {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min${seconds % 60 ? ` ${seconds % 60} s` : ''}`;
  return `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`;
}
