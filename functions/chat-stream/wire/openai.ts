import type { Writable } from 'node:stream';
import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import type { Source, Usage } from '../../core/messages.ts';
import type { WireSink } from '../../core/ports.ts';
import type { StopReason, TurnErrorCode, TurnEvent } from '../../core/turn-events.ts';
import type { OpenAiTurnRequest } from './openai-request.ts';
import { SseWriter } from './sse-writer.ts';

type FinishReason = ChatCompletionChunk.Choice['finish_reason'] & string;

const FINISH_REASONS: Record<StopReason, FinishReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  stopped: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  guardrail_intervened: 'content_filter',
  content_filtered: 'content_filter',
  other: 'stop',
};

const usageOf = (usage: Usage): CompletionUsage => ({
  prompt_tokens: usage.input_tokens,
  completion_tokens: usage.output_tokens,
  total_tokens: usage.input_tokens + usage.output_tokens,
});

/** OpenAI's error body; the SDK reads `type`, `code` and `param` from it. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

export const openAiError = (code: string, message: string, type: string, param: string | null = null) => ({
  error: { message, type, param, code },
});

/** A turn's failure once streaming started: OpenAI's error type, and the status a non-streamed answer gets. */
const TURN_ERRORS: Record<TurnErrorCode, { type: string; status: number }> = {
  throttled: { type: 'rate_limit_error', status: 429 },
  timeout: { type: 'timeout', status: 504 },
  model_error: { type: 'api_error', status: 502 },
  nothing_to_regenerate: { type: 'invalid_request_error', status: 400 },
  internal: { type: 'api_error', status: 500 },
  not_saved: { type: 'api_error', status: 503 },
};

/** The completion a stream belongs to: its id comes with the turn's first event. */
export interface CompletionStream {
  id: string;
  created: number;
  /** The model that answers (the request's, checked against the deployment's allow-list). */
  model: string;
  includeUsage: boolean;
  /** The passages the answer is grounded in, sent as the `sources` extension with the finish reason. */
  sources?: Source[];
}

/** A chunk, with this service's extension field (`sources`) where it has one. */
type ExtendedChunk = ChatCompletionChunk & { sources?: Source[] };

const chunkOf = (
  stream: CompletionStream,
  choices: ChatCompletionChunk.Choice[],
  usage?: CompletionUsage,
): ExtendedChunk => ({
  id: stream.id,
  object: 'chat.completion.chunk',
  created: stream.created,
  model: stream.model,
  choices,
  ...(stream.includeUsage ? { usage: usage ?? null } : {}),
});

const choice = (
  delta: ChatCompletionChunk.Choice.Delta,
  finishReason: FinishReason | null = null,
): ChatCompletionChunk.Choice => ({ index: 0, delta, finish_reason: finishReason, logprobs: null });

/**
 * OpenAI Chat Completions streaming: each turn event becomes its `chat.completion.chunk`s (a usage
 * chunk after the last when asked for), or OpenAI's error body; `session_id` names the completion.
 */
export function toCompletionChunks(
  event: TurnEvent,
  stream: CompletionStream,
): { chunks: Array<ExtendedChunk | OpenAiErrorBody>; stream: CompletionStream } {
  switch (event.type) {
    case 'session_id': {
      const named = { ...stream, id: `chatcmpl-${event.message_id}` };
      return { chunks: [chunkOf(named, [choice({ role: 'assistant', content: '' })])], stream: named };
    }
    case 'token':
      return { chunks: [chunkOf(stream, [choice({ content: event.text })])], stream };
    case 'done': {
      const last = chunkOf(stream, [choice({}, FINISH_REASONS[event.stop_reason])]);
      if (stream.sources?.length) last.sources = stream.sources;
      const usage = stream.includeUsage ? [chunkOf(stream, [], usageOf(event.usage))] : [];
      return { chunks: [last, ...usage], stream };
    }
    case 'error':
      return { chunks: [openAiError(event.code, event.message, TURN_ERRORS[event.code].type)], stream };
    case 'sources':
      return { chunks: [], stream: { ...stream, sources: event.sources } };
  }
}

const newStream = (request: OpenAiTurnRequest, includeUsage: boolean): CompletionStream => ({
  id: 'chatcmpl',
  created: Math.floor(Date.now() / 1000),
  model: request.model,
  includeUsage,
});

/** `chat.completion.chunk` events, a usage chunk when asked for, then `data: [DONE]`. */
export class OpenAiStreamSink implements WireSink {
  readonly #sse: SseWriter;
  #stream: CompletionStream;

  constructor(out: Writable, request: OpenAiTurnRequest, paddingBytes: number) {
    this.#sse = new SseWriter(out, paddingBytes);
    this.#stream = newStream(request, request.includeUsage);
  }

  send(event: TurnEvent): boolean {
    const { chunks, stream } = toCompletionChunks(event, this.#stream);
    this.#stream = stream;
    const open = this.#sse.write(chunks);
    if (event.type === 'token') this.#sse.stopPadding();
    return open;
  }

  end(): void {
    this.#sse.end('[DONE]');
  }
}

/**
 * Collects a turn into one `chat.completion` (or an OpenAI error) for `stream: false`, by folding the
 * same chunks the stream would have sent.
 */
export class OpenAiCompletionCollector implements WireSink {
  readonly #stateful: boolean;
  #stream: CompletionStream;
  #sessionId = '';
  #text = '';
  #result: { statusCode: number; body: ChatCompletion | OpenAiErrorBody } | undefined;
  readonly #ended = Promise.withResolvers<void>();

  constructor(request: OpenAiTurnRequest) {
    this.#stateful = request.mode === 'stateful';
    this.#stream = newStream(request, true);
  }

  send(event: TurnEvent): boolean {
    if (event.type === 'session_id') this.#sessionId = event.session_id;
    const { chunks, stream } = toCompletionChunks(event, this.#stream);
    this.#stream = stream;
    for (const chunk of chunks) this.#fold(chunk);
    if (event.type === 'error')
      this.#result = { statusCode: TURN_ERRORS[event.code].status, body: chunks[0] as OpenAiErrorBody };
    return true;
  }

  #fold(chunk: ExtendedChunk | OpenAiErrorBody) {
    if ('error' in chunk) return;
    const [first] = chunk.choices;
    this.#text += first?.delta.content ?? '';
    if (first?.finish_reason) {
      const { id, created, model } = this.#stream;
      const message = { role: 'assistant', content: this.#text, refusal: null } as const;
      const body = {
        id,
        created,
        model,
        object: 'chat.completion',
        choices: [{ index: 0, message, finish_reason: first.finish_reason, logprobs: null }],
        ...(chunk.sources ? { sources: chunk.sources } : {}),
      } satisfies ChatCompletion & { sources?: Source[] };
      this.#result = { statusCode: 200, body };
    } else if (chunk.usage && this.#result?.statusCode === 200) {
      // Only a stored conversation has an id worth returning; a stateless call leaves nothing behind.
      const metadata = this.#stateful ? { metadata: { session_id: this.#sessionId } } : {};
      Object.assign(this.#result.body, { usage: chunk.usage, ...metadata });
    }
  }

  end(): void {
    this.#ended.resolve();
  }

  /** Resolves once the turn ended (or the retry attached to it did). */
  get ended(): Promise<void> {
    return this.#ended.promise;
  }

  get sessionId(): string {
    return this.#sessionId;
  }

  result(): { statusCode: number; body: string } {
    const result = this.#result ?? {
      statusCode: 500,
      body: openAiError('internal', 'No answer.', 'api_error'),
    };
    return { statusCode: result.statusCode, body: JSON.stringify(result.body) };
  }
}
