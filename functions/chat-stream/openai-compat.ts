import type { Writable } from 'node:stream';
import type { Source, Usage } from '../core/messages.ts';
import type { TurnEvent } from '../core/turn-events.ts';
import type { HttpError } from './http-edge.ts';
import type { OpenAiTurnRequest } from './openai-request.ts';
import type { WireSink } from './wire-sink.ts';

const FINISH_REASONS: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  stopped: 'stop',
  max_tokens: 'length',
  guardrail_intervened: 'content_filter',
  content_filtered: 'content_filter',
};

const usageOf = (usage: Usage) => ({
  prompt_tokens: usage.input_tokens,
  completion_tokens: usage.output_tokens,
  total_tokens: usage.input_tokens + usage.output_tokens,
});

const ERROR_TYPES: Record<string, { type: string; status: number }> = {
  throttled: { type: 'rate_limit_error', status: 429 },
  timeout: { type: 'timeout', status: 504 },
  model_error: { type: 'api_error', status: 502 },
  nothing_to_regenerate: { type: 'invalid_request_error', status: 400 },
  internal: { type: 'api_error', status: 500 },
};

/** OpenAI's error body; the SDK reads `type`, `code` and `param` from it. */
function openAiErrorBody(code: string, message: string, type: string, param: string | null = null) {
  return JSON.stringify({ error: { message, type, param, code } });
}

export function openAiErrorResponse(error: HttpError) {
  const type =
    error.status === 401
      ? 'authentication_error'
      : error.status === 429
        ? 'rate_limit_error'
        : error.status === 404
          ? 'not_found_error'
          : 'invalid_request_error';
  const param = typeof error.details?.field === 'string' ? error.details.field : null;
  return {
    statusCode: error.status,
    // The SDKs obey `x-should-retry`: a limit clears after `retry-after`, so they may back off and retry
    // on their own; a turn conflict (409) needs the caller's decision, and so does any other 4xx.
    headers: {
      'content-type': 'application/json',
      'x-should-retry': error.status === 429 ? 'true' : 'false',
      ...error.headers,
    },
    body: openAiErrorBody(error.code, error.message, type, param),
  };
}

interface CompletionIdentity {
  id: string;
  created: number;
  model: string;
}

/** `chat.completion.chunk` events, a usage chunk when asked for, then `data: [DONE]`. */
export class OpenAiStreamSink implements WireSink {
  readonly #out: Writable;
  readonly #request: OpenAiTurnRequest;
  readonly #padding: number;
  #identity: CompletionIdentity | undefined;
  #beforeFirstToken = true;
  #sources: Source[] = [];

  constructor(out: Writable, request: OpenAiTurnRequest, paddingBytes: number) {
    this.#out = out;
    this.#request = request;
    this.#padding = paddingBytes;
  }

  #chunk(choices: object[], usage?: object, extension: object = {}) {
    const identity = this.#identity ?? { id: 'chatcmpl', created: 0, model: this.#request.model };
    const chunk = {
      id: identity.id,
      object: 'chat.completion.chunk',
      created: identity.created,
      model: identity.model,
      choices,
      ...(this.#request.includeUsage ? { usage: usage ?? null } : {}),
      ...extension,
    };
    const data = `data: ${JSON.stringify(chunk)}\n\n`;
    this.#out.write(
      this.#beforeFirstToken && this.#padding > 0 ? `:${' '.repeat(this.#padding)}\n${data}` : data,
    );
  }

  send(event: TurnEvent): boolean {
    if (this.#out.destroyed || this.#out.writableEnded) return false;
    if (event.type === 'session_id') {
      this.#identity = {
        id: `chatcmpl-${event.message_id}`,
        created: Math.floor(Date.now() / 1000),
        model: this.#request.model,
      };
      this.#chunk([
        { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null },
      ]);
    } else if (event.type === 'sources') {
      this.#sources = event.sources;
    } else if (event.type === 'token') {
      this.#chunk([{ index: 0, delta: { content: event.text }, finish_reason: null, logprobs: null }]);
      this.#beforeFirstToken = false;
    } else if (event.type === 'done') {
      // The passages the answer was grounded in ride on the chunk that carries the finish reason.
      this.#chunk(
        [{ index: 0, delta: {}, finish_reason: FINISH_REASONS[event.stop_reason] ?? 'stop', logprobs: null }],
        undefined,
        this.#sources.length > 0 ? { sources: this.#sources } : {},
      );
      if (this.#request.includeUsage) this.#chunk([], usageOf(event.usage));
    } else if (event.type === 'error') {
      const { type } = ERROR_TYPES[event.code] ?? { type: 'api_error' };
      this.#out.write(`data: ${openAiErrorBody(event.code, event.message, type)}\n\n`);
    }
    return true;
  }

  end(): void {
    if (!this.#out.destroyed && !this.#out.writableEnded) this.#out.write('data: [DONE]\n\n');
  }
}

/** Collects a turn into one `chat.completion` (or an OpenAI error) for `stream: false`. */
export class OpenAiCompletionCollector implements WireSink {
  readonly #request: OpenAiTurnRequest;
  #identity: CompletionIdentity | undefined;
  #sessionId = '';
  #text = '';
  #sources: Source[] = [];
  #result: { statusCode: number; body: string } | undefined;

  constructor(request: OpenAiTurnRequest) {
    this.#request = request;
  }

  send(event: TurnEvent): boolean {
    if (event.type === 'session_id') {
      this.#sessionId = event.session_id;
      this.#identity = {
        id: `chatcmpl-${event.message_id}`,
        created: Math.floor(Date.now() / 1000),
        model: this.#request.model,
      };
    } else if (event.type === 'sources') {
      this.#sources = event.sources;
    } else if (event.type === 'token') {
      this.#text += event.text;
    } else if (event.type === 'done') {
      this.#result = {
        statusCode: 200,
        body: JSON.stringify({
          ...this.#identity,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: this.#text, refusal: null },
              finish_reason: FINISH_REASONS[event.stop_reason] ?? 'stop',
              logprobs: null,
            },
          ],
          usage: usageOf(event.usage),
          ...(this.#sources.length > 0 ? { sources: this.#sources } : {}),
          ...(this.#request.mode === 'stateful' ? { metadata: { session_id: this.#sessionId } } : {}),
        }),
      };
    } else if (event.type === 'error') {
      const { type, status } = ERROR_TYPES[event.code] ?? { type: 'api_error', status: 500 };
      this.#result = { statusCode: status, body: openAiErrorBody(event.code, event.message, type) };
    }
    return true;
  }

  get sessionId(): string {
    return this.#sessionId;
  }

  result(): { statusCode: number; body: string } {
    return this.#result ?? { statusCode: 500, body: openAiErrorBody('internal', 'No answer.', 'api_error') };
  }
}
