import { PassThrough } from 'node:stream';
import * as z from 'zod/mini';
import type { ChatTurns, TurnRequest } from '../../core/chat-turn.ts';
import { invalidField } from '../../core/errors.ts';
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
}

/** Bodies of the AI SDK and OpenAI routes carry the client's copy of the conversation: allow 1 MiB. */
const CONVERSATION_BODY_BYTES = 1_048_576;

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
}

/** What is left of the invocation for following a turn, keeping two seconds to end the response. */
const replayBudget = (inv: Invocation) => Math.max(1000, inv.context.getRemainingTimeInMillis() - 2000);

/** A stateless turn has no `sessionId` to name: its session is only its lock, never a conversation. */
const streamed = (
  body: PassThrough,
  headers: Record<string, string>,
  sessionId: string | undefined,
): RouteResponse => ({
  statusCode: 200,
  headers: sessionId === undefined ? headers : { ...headers, 'x-session-id': sessionId },
  body,
});

/** Admits the turn, then answers with its stream; the turn finishes after the response (`afterResponse`). */
async function streamTurn(
  deps: TurnRouteDeps,
  inv: Invocation,
  request: TurnRequestBody,
  wireFor: (out: PassThrough) => WireSink,
  headers: Record<string, string>,
): Promise<RouteResponse> {
  const turn = await deps.turns.start({
    ...request,
    userId: inv.userId,
    useRag: request.useRag ?? deps.ragByDefault,
    startedAt: inv.startedAt,
    replayBudgetMs: replayBudget(inv),
  });
  const body = new PassThrough();
  inv.afterResponse(turn.deliver(wireFor(body)));
  return streamed(body, headers, request.transcript ? undefined : turn.sessionId);
}

async function nativeTurn(deps: TurnRouteDeps, inv: Invocation): Promise<RouteResponse> {
  const request = parseJsonBody(readJsonBody(inv.event, deps.maxBodyBytes), deps.requestSchema);
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
  return streamTurn(
    deps,
    inv,
    {
      sessionId: request.session_id,
      message: request.message,
      clientMessageId: parseOpaqueId(clientMessageId, 'Idempotency-Key', 'idempotency-key'),
      parentRef: request.parent_id,
      editable: true,
      useRag: request.use_rag,
      model: { id: modelId, inference },
    },
    (out) => new NativeSseSink(out, deps.paddingBytes),
    SSE_HEADERS,
  );
}

async function aiSdkTurn(deps: TurnRouteDeps, inv: Invocation): Promise<RouteResponse> {
  const body = parseJsonBody(readJsonBody(inv.event, CONVERSATION_BODY_BYTES), aiSdkRequestSchema);
  const request = { ...toTurnRequest(body, deps.maxMessageChars, deps.modelPolicy), editable: true };
  const wireFor = (out: PassThrough) => new AiSdkSink(out, deps.paddingBytes);
  return streamTurn(deps, inv, request, wireFor, UI_MESSAGE_STREAM_HEADERS);
}

async function openAiTurn(deps: TurnRouteDeps, inv: Invocation): Promise<RouteResponse> {
  const body = parseJsonBody(readJsonBody(inv.event, CONVERSATION_BODY_BYTES), z.unknown());
  const request = readOpenAiRequest(body, inv.event.headers ?? {}, {
    policy: deps.modelPolicy,
    maxMessageChars: deps.maxMessageChars,
  });
  const stateful = request.mode === 'stateful';
  const turn: TurnRequestBody = {
    sessionId: request.sessionId,
    message: request.message,
    clientMessageId: request.clientMessageId,
    useRag: request.useRag,
    model: { id: request.model, inference: request.inference },
    transcript: stateful ? undefined : { instructions: request.instructions, turns: request.transcript },
  };
  if (request.stream) {
    const wireFor = (out: PassThrough) => new OpenAiStreamSink(out, request, deps.paddingBytes);
    return streamTurn(deps, inv, turn, wireFor, SSE_HEADERS);
  }
  // Not streamed: the whole answer is collected, then sent as one JSON completion with its own status.
  const collector = new OpenAiCompletionCollector(request);
  await streamTurn(deps, inv, turn, () => collector, {});
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
  const body = new PassThrough();
  const native = format === 'native';
  inv.afterResponse(
    turn.deliver(
      native ? new NativeSseSink(body, deps.paddingBytes) : new AiSdkSink(body, deps.paddingBytes),
    ),
  );
  return streamed(body, native ? SSE_HEADERS : UI_MESSAGE_STREAM_HEADERS, sessionId);
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
