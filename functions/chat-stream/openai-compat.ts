import type { Writable } from 'node:stream';
import * as z from 'zod/mini';
import { RequestRejected } from '../core/errors.ts';
import { OPAQUE_ID, type Usage } from '../core/messages.ts';
import type { TurnEvent } from '../core/turn-events.ts';
import type { HttpError } from './http-edge.ts';
import { sseJson, type WireSink } from './wire-sink.ts';

const content = z.union([
  z.string(),
  z.array(z.looseObject({ type: z.string(), text: z.optional(z.string()) })),
  z.null(),
]);

/** OpenAI Chat Completions, the subset a chat backend honours; unknown fields are accepted and ignored. */
export const openAiRequestSchema = z.looseObject({
  // Echoed in every chunk: bounded, so a request cannot multiply itself into the response.
  model: z.optional(
    z
      .string('model must be a string')
      .check(z.regex(/^[\w.:/-]{1,256}$/, 'model must be at most 256 letters, digits and ._:/-')),
  ),
  messages: z
    .array(z.looseObject({ role: z.string(), content: z.optional(content) }))
    .check(z.minLength(1, 'messages must not be empty')),
  stream: z.optional(z.boolean('stream must be a boolean')),
  stream_options: z.optional(z.nullable(z.looseObject({ include_usage: z.optional(z.boolean()) }))),
  metadata: z.optional(z.nullable(z.record(z.string(), z.string()))),
  user: z.optional(z.string()),
});
type OpenAiRequest = z.infer<typeof openAiRequestSchema>;

export interface OpenAiTurnRequest {
  sessionId: string | undefined;
  message: string;
  clientMessageId: string | undefined;
  useRag: boolean | undefined;
  stream: boolean;
  includeUsage: boolean;
  model: string;
}

const opaque = (value: string | undefined, field: string) => {
  if (value === undefined) return undefined;
  if (!OPAQUE_ID.test(value)) {
    throw new RequestRejected('invalid', 'invalid_request', `${field} must match [A-Za-z0-9_-]{1,128}`, {
      field,
    });
  }
  return value;
};

/**
 * The session comes from the `x-session-id` header or `metadata.session_id`; the message id from the
 * `idempotency-key` header or `metadata.message_id`. Only the last user message is read: the server's
 * stored history is the conversation, so a client need not (and cannot) resend or rewrite it.
 */
export function toOpenAiTurn(
  body: OpenAiRequest,
  headers: Record<string, string | undefined>,
  maxMessageChars: number,
  defaultModel: string,
): OpenAiTurnRequest {
  const last = body.messages.at(-1);
  const text =
    typeof last?.content === 'string'
      ? last.content
      : (last?.content ?? [])
          .flatMap((part) => (part.type === 'text' && part.text ? [part.text] : []))
          .join('\n');
  if (last?.role !== 'user' || text.trim() === '' || text.length > maxMessageChars) {
    throw new RequestRejected(
      'invalid',
      'invalid_request',
      `The last message must be a user message of 1 to ${maxMessageChars} characters.`,
      { field: 'messages' },
    );
  }
  const useRag = body.metadata?.use_rag;
  return {
    sessionId: opaque(headers['x-session-id'] ?? body.metadata?.session_id, 'session_id'),
    message: text,
    clientMessageId: opaque(headers['idempotency-key'] ?? body.metadata?.message_id, 'message_id'),
    useRag: useRag === undefined ? undefined : useRag === 'true',
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    model: body.model ?? defaultModel,
  };
}

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
    // The SDK retries 409 and 429 on its own; a turn conflict needs the caller's decision instead.
    headers: { 'content-type': 'application/json', 'x-should-retry': 'false', ...error.headers },
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

  constructor(out: Writable, request: OpenAiTurnRequest, paddingBytes: number) {
    this.#out = out;
    this.#request = request;
    this.#padding = paddingBytes;
  }

  #chunk(choices: object[], usage?: object) {
    const identity = this.#identity ?? { id: 'chatcmpl', created: 0, model: this.#request.model };
    const chunk = {
      id: identity.id,
      object: 'chat.completion.chunk',
      created: identity.created,
      model: identity.model,
      choices,
      ...(this.#request.includeUsage ? { usage: usage ?? null } : {}),
    };
    const data = `data: ${sseJson(chunk)}\n\n`;
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
    } else if (event.type === 'token') {
      this.#chunk([{ index: 0, delta: { content: event.text }, finish_reason: null, logprobs: null }]);
      this.#beforeFirstToken = false;
    } else if (event.type === 'done') {
      this.#chunk([
        { index: 0, delta: {}, finish_reason: FINISH_REASONS[event.stop_reason] ?? 'stop', logprobs: null },
      ]);
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
          metadata: { session_id: this.#sessionId },
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
