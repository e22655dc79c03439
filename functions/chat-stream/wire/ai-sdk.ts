import type { Writable } from 'node:stream';
import type { FinishReason, UIMessageChunk } from 'ai';
import * as z from 'zod/mini';
import type { AnswerMetadata } from '../../contracts/api.ts';
import { DEFAULT_ATTACHMENT_CAPS } from '../../contracts/defaults.ts';
import {
  type AttachmentCaps,
  type AttachmentDraft,
  parseDataUrl,
  readAttachments,
} from '../../core/attachments.ts';
import { invalidField, RequestRejected } from '../../core/errors.ts';
import { type AttachmentContent, OPAQUE_ID, opaqueId, type Source } from '../../core/messages.ts';
import type { InferenceSettings, WireSink } from '../../core/ports.ts';
import { parseOpaqueId } from '../../core/request.ts';
import type { StopReason, TurnEvent } from '../../core/turn-events.ts';
import { chooseModel, inferenceSettings, type ModelPolicy } from './generation-options.ts';
import { SseWriter } from './sse-writer.ts';

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
 * Fields an app adds through the transport's `body` are either read here (the model and the AI SDK's
 * call settings) or refused by name: none is silently dropped.
 */
export const aiSdkRequestSchema = z.strictObject({
  id: opaqueId('id'),
  messages: z.optional(z.array(uiMessage)),
  message: z.optional(uiMessage),
  trigger: z._default(z.enum(['submit-message', 'regenerate-message']), 'submit-message'),
  messageId: z.optional(z.string()),
  /**
   * The message the sent one follows (`null`: it starts the conversation), for clients that send only the
   * newest message; with `messages`, the one before the last is taken. See docs/api.md, versions.
   */
  parentId: z.optional(z.nullable(opaqueId('parentId'))),
  use_rag: z.optional(z.boolean('use_rag must be a boolean')),
  model: z.optional(z.string('model must be a string')),
  maxOutputTokens: z.optional(z.unknown()),
  temperature: z.optional(z.unknown()),
  topP: z.optional(z.unknown()),
  stopSequences: z.optional(z.unknown()),
});

export interface AiSdkTurnRequest {
  sessionId: string;
  /** `undefined` when regenerating the last answer. */
  message: string | undefined;
  clientMessageId: string | undefined;
  /** Where the message goes among the versions (see `TurnInput.parentRef`). */
  parentRef: string | null | undefined;
  /** Regenerating: the answer (`messageId`) the new one is a version of. */
  regenerateOf: string | undefined;
  useRag: boolean | undefined;
  model: { id: string; inference: InferenceSettings };
  /** The message's `file` parts (data URLs), checked. */
  attachments?: AttachmentContent[];
}

type UiPart = z.infer<typeof uiMessage>['parts'][number];

/** A `file` part as `useChat` sends it: `mediaType`, a `data:` URL and the file's name. */
function fileDraft(part: UiPart, at: string): AttachmentDraft {
  const url = typeof part.url === 'string' ? parseDataUrl(part.url) : undefined;
  if (!url) throw invalidField(`${at}.url`, `${at}.url must be a data: URL with the file in base64.`);
  const declared = typeof part.mediaType === 'string' ? part.mediaType : url.mediaType;
  if (declared !== url.mediaType) {
    throw invalidField(`${at}.mediaType`, `${at}.mediaType does not match the data URL's type.`);
  }
  return {
    mediaType: declared,
    data: url.data,
    name: part.filename,
    fields: { mediaType: `${at}.mediaType`, data: `${at}.url`, name: `${at}.filename` },
  };
}

/** The model and the AI SDK's call settings (`maxOutputTokens`, `temperature`, `topP`, `stopSequences`). */
function modelOf(body: z.infer<typeof aiSdkRequestSchema>, policy: ModelPolicy): AiSdkTurnRequest['model'] {
  const id = chooseModel(policy, body.model, 'model');
  const inference = inferenceSettings(
    policy,
    id,
    {
      maxTokens: body.maxOutputTokens,
      temperature: body.temperature,
      topP: body.topP,
      stop: body.stopSequences,
    },
    { maxTokens: 'maxOutputTokens', temperature: 'temperature', topP: 'topP', stop: 'stopSequences' },
  );
  return { id, inference };
}

/** What the sent message follows: `parentId` when given, else the message before it in `messages`. */
function parentRefOf(body: z.infer<typeof aiSdkRequestSchema>): string | null | undefined {
  if (body.parentId !== undefined) return body.parentId;
  if (!body.messages) return undefined;
  const previous = body.messages.at(-2);
  if (!previous) return null;
  return previous.id !== undefined && OPAQUE_ID.test(previous.id) ? previous.id : undefined;
}

export function toTurnRequest(
  body: z.infer<typeof aiSdkRequestSchema>,
  maxMessageChars: number,
  policy: ModelPolicy,
  caps: AttachmentCaps = DEFAULT_ATTACHMENT_CAPS,
): AiSdkTurnRequest {
  const base = { sessionId: body.id, useRag: body.use_rag, model: modelOf(body, policy) };
  if (body.trigger === 'regenerate-message') {
    return {
      ...base,
      message: undefined,
      clientMessageId: undefined,
      parentRef: undefined,
      regenerateOf: parseOpaqueId(body.messageId, 'messageId'),
    };
  }
  const last = body.message ?? body.messages?.at(-1);
  if (last?.role !== 'user') throw invalidField('messages', 'The last message must be a user message.');
  const at = body.message ? 'message' : `messages[${(body.messages?.length ?? 1) - 1}]`;
  const unsupported = last.parts.findIndex((part) => part.type !== 'text' && part.type !== 'file');
  if (unsupported >= 0) {
    throw new RequestRejected(
      'invalid',
      'unsupported_parameter',
      'Only text and file parts are read from a user message.',
      { field: `${at}.parts[${unsupported}]` },
    );
  }
  const drafts = last.parts.flatMap((part, i) =>
    part.type === 'file' ? [fileDraft(part, `${at}.parts[${i}]`)] : [],
  );
  const attachments = readAttachments(drafts, caps, `${at}.parts`);
  const text = last.parts.flatMap((part) => (part.text ? [part.text] : [])).join('\n');
  if (text.trim() === '' || text.length > maxMessageChars) {
    throw invalidField('messages', `The message text must be 1 to ${maxMessageChars} characters.`);
  }
  return {
    ...base,
    message: text,
    clientMessageId: parseOpaqueId(last.id, 'message ids', 'messages'),
    ...(attachments.length > 0 ? { attachments } : {}),
    parentRef: parentRefOf(body),
    regenerateOf: undefined,
  };
}

const FINISH_REASONS: Record<StopReason, FinishReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  guardrail_intervened: 'content-filter',
  content_filtered: 'content-filter',
  model_context_window_exceeded: 'length',
  stopped: 'other',
  other: 'other',
};

const MEDIA_TYPES: Record<string, string> = {
  md: 'text/markdown',
  txt: 'text/plain',
  pdf: 'application/pdf',
  html: 'text/html',
  json: 'application/json',
};

type UiChunk = UIMessageChunk<AnswerMetadata>;
type SourceChunk = Extract<UiChunk, { type: 'source-url' | 'source-document' }>;

/**
 * A retrieved source as the AI SDK's source part (a chunk while streaming, a part when read back), with the
 * knowledge base's relevance score, which the page's relevance floor reads.
 */
export function sourcePart(source: Source): SourceChunk {
  // The excerpt shows on the page when a person hovers or focuses an inline [n] marker.
  const providerMetadata = { knowledgeBase: { score: source.score, excerpt: source.excerpt } };
  const url = source.url ?? (/^https?:\/\//i.test(source.uri) ? source.uri : undefined);
  if (url) {
    return {
      type: 'source-url',
      sourceId: source.id,
      url,
      title: source.title,
      providerMetadata,
    };
  }
  const filename = source.uri.split('/').pop() || source.id;
  const extension = filename.split('.').pop()?.toLowerCase() ?? '';
  return {
    type: 'source-document',
    sourceId: source.id,
    mediaType:
      (Object.hasOwn(MEDIA_TYPES, extension) && MEDIA_TYPES[extension]) || 'application/octet-stream',
    title: source.title,
    filename,
    providerMetadata,
  };
}

/** What the mapper remembers between events: the session (for the finish metadata) and an open text part. */
export interface UiStreamState {
  sessionId: string;
  textOpen: boolean;
}

export const UI_STREAM_START: UiStreamState = { sessionId: '', textOpen: false };

const closeText = (state: UiStreamState): UiChunk[] =>
  state.textOpen ? [{ type: 'text-end', id: 'text' }] : [];

/**
 * The AI SDK UI message stream v1: each turn event becomes the chunks `useChat` expects, in the order
 * its parser requires (`text-start` before any `text-delta`, parts closed before `finish`).
 */
export function toUiMessageChunks(
  event: TurnEvent,
  state: UiStreamState,
): { chunks: UiChunk[]; state: UiStreamState } {
  switch (event.type) {
    case 'session_id':
      return {
        chunks: [
          { type: 'start', messageId: event.message_id, messageMetadata: { sessionId: event.session_id } },
          { type: 'start-step' },
        ],
        state: { ...state, sessionId: event.session_id },
      };
    case 'sources':
      return { chunks: event.sources.map(sourcePart), state };
    case 'token':
      return {
        chunks: [
          ...(state.textOpen ? [] : [{ type: 'text-start', id: 'text' } as const]),
          { type: 'text-delta', id: 'text', delta: event.text },
        ],
        state: { ...state, textOpen: true },
      };
    case 'done': {
      const { sessionId } = state;
      const metadata = { sessionId, stopReason: event.stop_reason, usage: event.usage };
      const chunks: UiChunk[] = [
        ...closeText(state),
        { type: 'finish-step' },
        ...(event.stop_reason === 'stopped' ? [{ type: 'abort', reason: 'stopped' } as const] : []),
        {
          type: 'finish',
          finishReason: FINISH_REASONS[event.stop_reason],
          messageMetadata: { ...metadata, timings: event.timings, cache: event.cache },
        },
      ];
      return { chunks, state: { ...state, textOpen: false } };
    }
    case 'error':
      return {
        chunks: [
          ...closeText(state),
          { type: 'error', errorText: event.message },
          {
            type: 'finish',
            finishReason: 'error',
            messageMetadata: { sessionId: state.sessionId, errorCode: event.code },
          },
        ],
        state: { ...state, textOpen: false },
      };
  }
}

/** The UI message stream on SSE: no event ids (the AI SDK resumes by session), `[DONE]` at the end. */
export class AiSdkSink implements WireSink {
  readonly #sse: SseWriter;
  #state = UI_STREAM_START;

  constructor(out: Writable, paddingBytes: number) {
    this.#sse = new SseWriter(out, paddingBytes);
  }

  send(event: TurnEvent): boolean {
    const { chunks, state } = toUiMessageChunks(event, this.#state);
    this.#state = state;
    const open = this.#sse.write(chunks);
    if (event.type === 'token') this.#sse.stopPadding();
    return open;
  }

  end(): void {
    this.#sse.end('[DONE]');
  }
}
