import type { Writable } from 'node:stream';
import * as z from 'zod/mini';
import { DEFAULTS } from '../../contracts/defaults.ts';
import { type AttachmentCaps, readAttachments } from '../../core/attachments.ts';
import type { ChatTurns, TurnRequest } from '../../core/chat-turn.ts';
import { invalidField, RequestRejected } from '../../core/errors.ts';
import type { WireSink } from '../../core/ports.ts';
import { type chatRequestSchema, parseJsonBody, parseOpaqueId } from '../../core/request.ts';
import { failedAnswerHeaders } from '../http-errors.ts';
import {
  type Invocation,
  json,
  noContent,
  type RouteHandler,
  type RouteResponse,
  readJsonBody,
  type StreamedBody,
} from '../invocation.ts';
import { AiSdkSink, aiSdkRequestSchema, toTurnRequest, UI_MESSAGE_STREAM_HEADERS } from '../wire/ai-sdk.ts';
import { chooseModel, inferenceSettings, type ModelPolicy } from '../wire/generation-options.ts';
import { NativeSseSink, SSE_HEADERS } from '../wire/native-sse.ts';
import { OpenAiCompletionCollector, OpenAiStreamSink } from '../wire/openai.ts';
import { readOpenAiRequest } from '../wire/openai-request.ts';

/** What the turn routes need: the use case, and how big and in which format requests may be. */
export interface TurnRouteDeps {
  turns: ChatTurns;
  requestSchema: ReturnType<typeof chatRequestSchema>;
  maxBodyBytes: number;
  maxMessageChars: number;
  paddingBytes: number;
  /** The models a request may choose (the default first) and the deployment's answer-length cap. */
  modelPolicy: ModelPolicy;
  /** Whether a request that does not say retrieves passages (a knowledge base is configured). */
  ragByDefault: boolean;
  /** Attachment caps, and whether they can be stored (a stateful turn's files must be). */
  attachments?: { caps: AttachmentCaps; stored: boolean };
}

/** Bodies that carry attachments: just under a Function URL's 6 MB. */
const ATTACHMENT_BODY_BYTES = DEFAULTS.maxAttachmentBodyBytes;
/** Bodies of the AI SDK and OpenAI routes without files carry the client's copy of the conversation: 1 MiB. */
const CONVERSATION_BODY_BYTES = 1_048_576;

/** What marks a body as carrying files, per route (a cheap test before the body is parsed). */
const FILE_MARKERS = {
  native: /"attachments"\s*:/,
  aiSdk: /"type"\s*:\s*"file"/,
  openAi: /"type"\s*:\s*"(?:image_url|file)"/,
};

/**
 * A body may grow to ATTACHMENT_BODY_BYTES only when it carries files: one over the text budget that does
 * not is refused as too large (413), as before attachments existed.
 */
function readTurnBody(inv: Invocation, textBytes: number, files: RegExp | undefined): string {
  const body = readJsonBody(inv.event, files ? ATTACHMENT_BODY_BYTES : textBytes);
  if (Buffer.byteLength(body) > textBytes && !files?.test(body)) {
    throw new RequestRejected(
      'too_large',
      'payload_too_large',
      `The body must be at most ${textBytes} bytes without attachments.`,
    );
  }
  return body;
}

const NO_ATTACHMENTS = { caps: { maxCount: 0, maxImageBytes: 0, maxDocumentBytes: 0 }, stored: false };

/** A stored conversation's files must be kept with it: a deployment without a bucket refuses them by name. */
function storable(deps: TurnRouteDeps, request: TurnRequestBody, field: string): TurnRequestBody {
  if (!request.attachments?.length || request.transcript || deps.attachments?.stored) return request;
  throw invalidField(
    field,
    'This deployment does not store attachments; send them in a stateless call (/v1 without a conversation).',
  );
}

interface TurnRequestBody {
  sessionId: string | undefined;
  message: string | undefined;
  clientMessageId: string | undefined;
  parentRef?: string | null | undefined;
  regenerateOf?: string | undefined;
  editable?: boolean | undefined;
  useRag: boolean | undefined;
  model?: TurnRequest['model'];
  transcript?: TurnRequest['transcript'];
  attachments?: TurnRequest['attachments'];
}

/** What is left of the invocation for following a turn, keeping two seconds to end the response. */
const replayBudget = (inv: Invocation) => Math.max(1000, inv.context.getRemainingTimeInMillis() - 2000);

/** A stateless turn has no `sessionId` to name: its session is only its lock, never a conversation. */
const streamed = (
  body: StreamedBody,
  headers: Record<string, string>,
  sessionId: string | undefined,
): RouteResponse => ({
  statusCode: 200,
  headers: sessionId === undefined ? headers : { ...headers, 'x-session-id': sessionId },
  body,
});

/** Admits the turn (a refusal is thrown before any byte, with its own status). */
const admitTurn = (deps: TurnRouteDeps, inv: Invocation, request: TurnRequestBody) =>
  deps.turns.start({
    ...request,
    userId: inv.userId,
    useRag: request.useRag ?? deps.ragByDefault,
    startedAt: inv.startedAt,
    replayBudgetMs: replayBudget(inv),
  });

/** Admits the turn, then answers with its stream in the client's wire format. */
async function streamTurn(
  deps: TurnRouteDeps,
  inv: Invocation,
  request: TurnRequestBody,
  wireFor: (out: Writable) => WireSink,
  headers: Record<string, string>,
): Promise<RouteResponse> {
  const turn = await admitTurn(deps, inv, request);
  return streamed(
    (out) => turn.deliver(wireFor(out)),
    headers,
    request.transcript ? undefined : turn.sessionId,
  );
}

async function nativeTurn(deps: TurnRouteDeps, inv: Invocation): Promise<RouteResponse> {
  const request = parseJsonBody(
    readTurnBody(inv, deps.maxBodyBytes, deps.attachments?.stored ? FILE_MARKERS.native : undefined),
    deps.requestSchema,
  );
  const attachments = readAttachments(
    (request.attachments ?? []).map((a, i) => {
      const unknown = Object.keys(a).find((k) => k !== 'media_type' && k !== 'data' && k !== 'name');
      if (unknown)
        throw invalidField(`attachments[${i}].${unknown}`, `unknown field: attachments[${i}].${unknown}`);
      return {
        mediaType: a.media_type,
        data: a.data,
        name: a.name,
        fields: {
          mediaType: `attachments[${i}].media_type`,
          data: `attachments[${i}].data`,
          name: `attachments[${i}].name`,
        },
      };
    }),
    (deps.attachments ?? NO_ATTACHMENTS).caps,
    'attachments',
  );
  const clientMessageId = request.message_id ?? inv.event.headers?.['idempotency-key'];
  const modelId = chooseModel(deps.modelPolicy, request.model, 'model');
  const inference = inferenceSettings(
    deps.modelPolicy,
    modelId,
    {
      maxTokens: request.max_tokens,
      temperature: request.temperature,
      topP: request.top_p,
      stop: request.stop,
    },
    { maxTokens: 'max_tokens', temperature: 'temperature', topP: 'top_p', stop: 'stop' },
  );
  const turn = storable(
    deps,
    {
      sessionId: request.session_id,
      message: request.message,
      clientMessageId: parseOpaqueId(clientMessageId, 'Idempotency-Key', 'idempotency-key'),
      parentRef: request.parent_id,
      editable: true,
      useRag: request.use_rag,
      model: { id: modelId, inference },
      ...(attachments.length > 0 ? { attachments } : {}),
    },
    'attachments',
  );
  return streamTurn(deps, inv, turn, (out) => new NativeSseSink(out, deps.paddingBytes), SSE_HEADERS);
}

async function aiSdkTurn(deps: TurnRouteDeps, inv: Invocation): Promise<RouteResponse> {
  const body = parseJsonBody(
    readTurnBody(inv, CONVERSATION_BODY_BYTES, FILE_MARKERS.aiSdk),
    aiSdkRequestSchema,
  );
  const request = {
    ...storable(
      deps,
      toTurnRequest(body, deps.maxMessageChars, deps.modelPolicy, (deps.attachments ?? NO_ATTACHMENTS).caps),
      body.message ? 'message.parts' : 'messages',
    ),
    editable: true,
  };
  const wireFor = (out: Writable) => new AiSdkSink(out, deps.paddingBytes);
  return streamTurn(deps, inv, request, wireFor, UI_MESSAGE_STREAM_HEADERS);
}

async function openAiTurn(deps: TurnRouteDeps, inv: Invocation): Promise<RouteResponse> {
  const body = parseJsonBody(readTurnBody(inv, CONVERSATION_BODY_BYTES, FILE_MARKERS.openAi), z.unknown());
  const request = readOpenAiRequest(body, inv.event.headers ?? {}, {
    policy: deps.modelPolicy,
    maxMessageChars: deps.maxMessageChars,
    attachments: (deps.attachments ?? NO_ATTACHMENTS).caps,
  });
  const stateful = request.mode === 'stateful';
  const turn: TurnRequestBody = {
    sessionId: request.sessionId,
    message: request.message,
    clientMessageId: request.clientMessageId,
    useRag: request.useRag,
    model: { id: request.model, inference: request.inference },
    transcript: stateful ? undefined : { instructions: request.instructions, turns: request.transcript },
    ...(request.attachments.length > 0 ? { attachments: request.attachments } : {}),
  };
  storable(deps, turn, 'messages');
  if (request.stream) {
    const wireFor = (out: Writable) => new OpenAiStreamSink(out, request, deps.paddingBytes);
    return streamTurn(deps, inv, turn, wireFor, SSE_HEADERS);
  }
  // Not streamed: the whole answer is collected, then sent as one JSON completion with its own status.
  const collector = new OpenAiCompletionCollector(request);
  inv.afterResponse((await admitTurn(deps, inv, turn)).deliver(collector));
  await collector.ended;
  const { statusCode, body: completion } = collector.result();
  return {
    statusCode,
    headers: {
      'content-type': 'application/json',
      ...(stateful ? { 'x-session-id': collector.sessionId } : {}),
      ...failedAnswerHeaders(statusCode),
    },
    body: completion,
  };
}

/** Follows the session's running (or just-finished) turn; native clients resume after `Last-Event-ID`. */
async function resumeTurn(
  deps: TurnRouteDeps,
  inv: Invocation,
  sessionId: string,
  format: 'native' | 'ai-sdk',
): Promise<RouteResponse> {
  const lastEventId = format === 'native' ? inv.event.headers?.['last-event-id'] : undefined;
  if (lastEventId !== undefined && !/^\d{1,9}$/.test(lastEventId)) {
    throw invalidField('last-event-id', 'Last-Event-ID must be an event id from this stream.');
  }
  const afterId = lastEventId === undefined ? -1 : Number(lastEventId);
  const turn = await deps.turns.resume(inv.userId, sessionId, afterId, replayBudget(inv));
  if (!turn) return noContent();
  const native = format === 'native';
  return streamed(
    (out) =>
      turn.deliver(
        native ? new NativeSseSink(out, deps.paddingBytes) : new AiSdkSink(out, deps.paddingBytes),
      ),
    native ? SSE_HEADERS : UI_MESSAGE_STREAM_HEADERS,
    sessionId,
  );
}

async function stopTurn(deps: TurnRouteDeps, inv: Invocation, sessionId: string): Promise<RouteResponse> {
  const stopping = await deps.turns.stop(inv.userId, sessionId);
  if (!stopping) return noContent();
  return json(202, { session_id: sessionId, status: 'stopping' });
}

/** The turn routes, bound to their dependencies once. */
export function turnRoutes(deps: TurnRouteDeps) {
  return {
    nativeTurn: (inv: Invocation) => nativeTurn(deps, inv),
    aiSdkTurn: (inv: Invocation) => aiSdkTurn(deps, inv),
    openAiTurn: (inv: Invocation) => openAiTurn(deps, inv),
    resumeNative: (inv: Invocation, id: string) => resumeTurn(deps, inv, id, 'native'),
    resumeAiSdk: (inv: Invocation, id: string) => resumeTurn(deps, inv, id, 'ai-sdk'),
    stop: (inv: Invocation, id: string) => stopTurn(deps, inv, id),
  } satisfies Record<string, RouteHandler>;
}
