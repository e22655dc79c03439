import type { UIMessage } from 'ai';
import type {
  AnswerMetadata,
  FeedbackBody,
  MessageFeedback,
  SessionPage,
  SessionSummary,
  UsageSummary,
} from './types.ts';

export type { SessionSummary };
export type Usage = UsageSummary;

/** A refused or failed API call, with what the API said: `{"error":{"code","message",…}}`. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfterSeconds: number | undefined;
  readonly limit: string | undefined;
  constructor(
    status: number,
    code: string,
    message: string,
    extra: { retryAfterSeconds?: number | undefined; limit?: string | undefined } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = extra.retryAfterSeconds;
    this.limit = extra.limit;
  }
}

/** Reads the API's JSON error body (and `retry-after`, when the browser may read it) into an ApiError. */
export function apiErrorFrom(status: number, body: string, retryAfterHeader?: string | null): ApiError {
  let error: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(body) as { error?: Record<string, unknown> };
    if (parsed && typeof parsed.error === 'object' && parsed.error) error = parsed.error;
  } catch {
    // Not JSON (a proxy's page, an empty body): the status alone says what happened.
  }
  const fromBody = Number(error.retry_after_seconds);
  const fromHeader = Number(retryAfterHeader);
  const retryAfterSeconds = Number.isFinite(fromBody) && fromBody > 0 ? fromBody : fromHeader || undefined;
  return new ApiError(
    status,
    typeof error.code === 'string' ? error.code : `http_${status}`,
    typeof error.message === 'string' ? error.message : `The server answered ${status}.`,
    { retryAfterSeconds, limit: typeof error.limit === 'string' ? error.limit : undefined },
  );
}

export type ChatMessage = UIMessage<AnswerMetadata>;

/** A stored message as GET /sessions/{id}/messages lists it (the native form, for exports). */
export interface StoredMessage {
  id: string;
  role: 'user' | 'assistant';
  text: string;
  created_at: string;
  stop_reason?: string;
  sources?: Array<{ id: string; title: string; uri: string; score: number; excerpt: string }>;
  usage?: { input_tokens: number; output_tokens: number };
  /** Its versions' ids, oldest first, when it has more than one (the export holds the versions shown). */
  versions?: string[];
  feedback?: MessageFeedback;
}

/** The JSON routes of the API (conversations, stop, usage); the turns themselves go through useChat. */
export class Api {
  readonly baseUrl: string;
  readonly #token: () => Promise<string>;

  constructor(baseUrl: string, token: () => Promise<string>) {
    this.baseUrl = baseUrl;
    this.#token = token;
  }

  async #request<T>(method: string, path: string, body?: unknown): Promise<T | undefined> {
    const headers: Record<string, string> = { authorization: `Bearer ${await this.#token()}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached.');
    }
    if (!response.ok) {
      throw apiErrorFrom(response.status, await response.text(), response.headers.get('retry-after'));
    }
    if (response.status === 204) return undefined;
    return (await response.json()) as T;
  }

  /** The models this deployment answers with (`GET /v1/models`), its default first. */
  async models(): Promise<string[]> {
    const list = await this.#request<{ data: Array<{ id: string }> }>('GET', '/v1/models');
    return (list?.data ?? []).map((model) => model.id);
  }

  /** One page of the list (GET /sessions, newest activity first), or of a search with `q`; `cursor` from the page before. */
  async sessionPage(options: { limit: number; cursor?: string | null; q?: string }): Promise<SessionPage> {
    const query = new URLSearchParams({ limit: String(options.limit) });
    if (options.q !== undefined) query.set('q', options.q);
    if (options.cursor) query.set('cursor', options.cursor);
    const page = await this.#request<SessionPage>('GET', `/sessions?${query}`);
    return page ?? { sessions: [], next_cursor: null };
  }

  /**
   * A conversation as `useChat`'s initial messages: its active branch, or with `leaf` the branch through
   * that version of a message; `undefined` when there is no such conversation.
   */
  async messages(sessionId: string, leaf?: string): Promise<ChatMessage[] | undefined> {
    try {
      const through = leaf ? `&leaf=${encodeURIComponent(leaf)}` : '';
      const page = await this.#request<{ messages: ChatMessage[] }>(
        'GET',
        `/sessions/${encodeURIComponent(sessionId)}/messages?format=ai-sdk&limit=200${through}`,
      );
      // One entry per id: useChat keys by id, and the API has listed a first question twice.
      const seen = new Set<string>();
      return (page?.messages ?? []).filter((m) => !seen.has(m.id) && seen.add(m.id));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** The whole conversation, oldest first, page after page (for an export). */
  async allMessages(sessionId: string): Promise<StoredMessage[]> {
    const pages: StoredMessage[][] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const page: { messages: StoredMessage[]; next_cursor: string | null } | undefined = await this.#request(
        'GET',
        `/sessions/${encodeURIComponent(sessionId)}/messages?limit=200${query}`,
      );
      pages.unshift(page?.messages ?? []);
      cursor = page?.next_cursor ?? null;
    } while (cursor && pages.length < 100);
    return pages.flat();
  }

  /** Rates an answer (`undefined` takes the rating back); an answer not stored yet is a 404. */
  async feedback(sessionId: string, messageId: string, feedback: FeedbackBody | undefined): Promise<void> {
    const path = `/sessions/${encodeURIComponent(sessionId)}/messages/${encodeURIComponent(messageId)}/feedback`;
    await this.#request(feedback ? 'PUT' : 'DELETE', path, feedback);
  }

  /** Erases everything the service keeps about the signed-in person (DELETE /me). */
  async eraseMe(): Promise<void> {
    await this.#request('DELETE', '/me');
  }

  async rename(sessionId: string, title: string): Promise<void> {
    await this.#request('PATCH', `/sessions/${encodeURIComponent(sessionId)}`, { title });
  }

  async remove(sessionId: string): Promise<void> {
    await this.#request('DELETE', `/sessions/${encodeURIComponent(sessionId)}`);
  }

  /**
   * Whether the conversation has an answer to follow (`GET /api/chat/{id}/stream` answers 204 when it has
   * none); the stream itself is not read.
   */
  async answerRunning(sessionId: string): Promise<boolean> {
    const controller = new AbortController();
    try {
      const response = await fetch(`${this.baseUrl}/api/chat/${encodeURIComponent(sessionId)}/stream`, {
        headers: { authorization: `Bearer ${await this.#token()}` },
        signal: controller.signal,
      });
      return response.status === 200;
    } catch {
      return false;
    } finally {
      controller.abort();
    }
  }

  /** Asks the running turn to stop wherever it runs; `false` when none was running. */
  async stop(sessionId: string): Promise<boolean> {
    const result = await this.#request<unknown>('POST', `/api/chat/${encodeURIComponent(sessionId)}/stop`);
    return result !== undefined;
  }

  async usage(): Promise<Usage | undefined> {
    return this.#request<Usage>('GET', '/me/usage');
  }
}
