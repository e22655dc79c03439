import type { Writable } from 'node:stream';
import * as z from 'zod/mini';
import { RequestRejected } from '../core/errors.ts';
import { opaqueId, type Source } from '../core/messages.ts';
import type { TurnEvent } from '../core/turn-events.ts';
import { sseJson, type WireSink } from './wire-sink.ts';

/** What the AI SDK's `DefaultChatTransport` reads (it ignores headers, but proxies and browsers do not). */
export const UI_MESSAGE_STREAM_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-vercel-ai-ui-message-stream': 'v1',
  'x-accel-buffering': 'no',
} as const;

const uiMessage = z.looseObject({
  id: z.optional(z.string()),
  role: z.enum(['user', 'assistant', 'system']),
  parts: z.array(z.looseObject({ type: z.string(), text: z.optional(z.string()) })),
});

/**
 * `useChat`'s request: the whole conversation (`messages`) or only the last message (`message`, via
 * `prepareSendMessagesRequest`). Only the last user message is read: the stored history is the truth.
 */
export const aiSdkRequestSchema = z.looseObject({
  id: opaqueId('id'),
  messages: z.optional(z.array(uiMessage)),
  message: z.optional(uiMessage),
  trigger: z._default(z.enum(['submit-message', 'regenerate-message']), 'submit-message'),
  messageId: z.optional(z.string()),
  use_rag: z.optional(z.boolean('use_rag must be a boolean')),
});

export interface AiSdkTurnRequest {
  sessionId: string;
  /** `undefined` when regenerating the last answer. */
  message: string | undefined;
  clientMessageId: string | undefined;
  useRag: boolean | undefined;
}

export function toTurnRequest(
  body: z.infer<typeof aiSdkRequestSchema>,
  maxMessageChars: number,
): AiSdkTurnRequest {
  const base = { sessionId: body.id, useRag: body.use_rag };
  if (body.trigger === 'regenerate-message')
    return { ...base, message: undefined, clientMessageId: undefined };
  const last = body.message ?? body.messages?.at(-1);
  if (last?.role !== 'user') {
    throw new RequestRejected('invalid', 'invalid_request', 'The last message must be a user message.', {
      field: 'messages',
    });
  }
  const text = last.parts
    .flatMap((part) => (part.type === 'text' && part.text ? [part.text] : []))
    .join('\n');
  if (text.trim() === '' || text.length > maxMessageChars) {
    throw new RequestRejected(
      'invalid',
      'invalid_request',
      `The message text must be 1 to ${maxMessageChars} characters.`,
      { field: 'messages' },
    );
  }
  if (last.id !== undefined && !z.safeParse(opaqueId('message id'), last.id).success) {
    throw new RequestRejected('invalid', 'invalid_request', 'message ids must match [A-Za-z0-9_-]{1,128}', {
      field: 'messages',
    });
  }
  return { ...base, message: text, clientMessageId: last.id };
}

const FINISH_REASONS: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  guardrail_intervened: 'content-filter',
  content_filtered: 'content-filter',
};

const MEDIA_TYPES: Record<string, string> = {
  md: 'text/markdown',
  txt: 'text/plain',
  pdf: 'application/pdf',
  html: 'text/html',
  json: 'application/json',
};

/** A retrieved source as the AI SDK's source part (a chunk while streaming, a part when read back). */
export function sourcePart(source: Source) {
  if (/^https?:\/\//i.test(source.uri)) {
    return { type: 'source-url', sourceId: source.id, url: source.uri, title: source.title };
  }
  const filename = source.uri.split('/').pop() || source.id;
  const extension = filename.split('.').pop()?.toLowerCase() ?? '';
  return {
    type: 'source-document',
    sourceId: source.id,
    mediaType: MEDIA_TYPES[extension] ?? 'application/octet-stream',
    title: source.title,
    filename,
  };
}

/**
 * The AI SDK UI message stream v1: each turn event becomes the chunks `useChat` expects, in the
 * order its parser requires (`text-start` before any `text-delta`, parts closed before `finish`).
 */
export class AiSdkSink implements WireSink {
  readonly #out: Writable;
  readonly #padding: number;
  #sessionId = '';
  #textOpen = false;
  #beforeFirstToken = true;

  constructor(out: Writable, paddingBytes: number) {
    this.#out = out;
    this.#padding = paddingBytes;
  }

  #write(...chunks: object[]) {
    const data = chunks.map((chunk) => `data: ${sseJson(chunk)}\n\n`).join('');
    this.#out.write(
      this.#beforeFirstToken && this.#padding > 0 ? `:${' '.repeat(this.#padding)}\n${data}` : data,
    );
  }

  #closeText(): object[] {
    if (!this.#textOpen) return [];
    this.#textOpen = false;
    return [{ type: 'text-end', id: 'text' }];
  }

  send(event: TurnEvent): boolean {
    if (this.#out.destroyed || this.#out.writableEnded) return false;
    switch (event.type) {
      case 'session_id':
        this.#sessionId = event.session_id;
        this.#write(
          { type: 'start', messageId: event.message_id, messageMetadata: { sessionId: event.session_id } },
          { type: 'start-step' },
        );
        break;
      case 'sources':
        this.#write(...event.sources.map(sourcePart));
        break;
      case 'token': {
        const opening = this.#textOpen ? [] : [{ type: 'text-start', id: 'text' }];
        this.#textOpen = true;
        this.#write(...opening, { type: 'text-delta', id: 'text', delta: event.text });
        this.#beforeFirstToken = false;
        break;
      }
      case 'done': {
        const stopped = event.stop_reason === 'stopped';
        this.#write(
          ...this.#closeText(),
          { type: 'finish-step' },
          ...(stopped ? [{ type: 'abort', reason: 'stopped' }] : []),
          {
            type: 'finish',
            finishReason: FINISH_REASONS[event.stop_reason] ?? 'other',
            messageMetadata: {
              sessionId: this.#sessionId,
              stopReason: event.stop_reason,
              usage: event.usage,
              timings: event.timings,
              cache: event.cache,
            },
          },
        );
        break;
      }
      case 'error':
        this.#write(
          ...this.#closeText(),
          { type: 'error', errorText: event.message },
          {
            type: 'finish',
            finishReason: 'error',
            messageMetadata: { sessionId: this.#sessionId, errorCode: event.code },
          },
        );
        break;
    }
    return true;
  }

  end(): void {
    if (!this.#out.destroyed && !this.#out.writableEnded) this.#out.write('data: [DONE]\n\n');
  }
}
