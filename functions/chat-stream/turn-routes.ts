import { PassThrough } from 'node:stream';
import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import { errorName } from '../core/background-writes.ts';
import { RequestRejected } from '../core/errors.ts';
import { limitReached } from '../core/limits.ts';
import { OPAQUE_ID } from '../core/messages.ts';
import type { TurnReplay } from '../core/ports.ts';
import { parseJsonBody } from '../core/request.ts';
import { runTurn } from '../core/turn.ts';
import { admitTurn } from '../core/turn-admission.ts';
import { AiSdkSink, aiSdkRequestSchema, toTurnRequest, UI_MESSAGE_STREAM_HEADERS } from './ai-sdk-stream.ts';
import { HttpError, readJsonBody } from './http-edge.ts';
import { NativeSseSink, SSE_HEADERS } from './native-sse.ts';
import {
  OpenAiCompletionCollector,
  OpenAiStreamSink,
  openAiRequestSchema,
  toOpenAiTurn,
} from './openai-compat.ts';
import type { StreamRuntime } from './stream-runtime.ts';
import { finishTurn } from './turn-lifecycle.ts';
import { NumberedSink, SavedBeforeDoneSink, type WireSink } from './wire-sink.ts';

/** One invocation after routing and auth: who asks, and where to leave the work that must finish before returning. */
export interface Invocation {
  runtime: StreamRuntime;
  event: LambdaFunctionURLEvent;
  context: Context;
  userId: string;
  startedAt: number;
  /** Work the invocation awaits after its response body ended (Lambda freezes after the return). */
  afterResponse(work: Promise<void>): void;
}

export type RouteResponse =
  | { statusCode: number; headers: Record<string, string>; body: string }
  | { statusCode: number; headers: Record<string, string>; body: PassThrough };

/** Bodies of the AI SDK and OpenAI routes carry the client's copy of the conversation: allow 1 MiB. */
const CONVERSATION_BODY_BYTES = 1_048_576;

interface TurnRequest {
  sessionId: string | undefined;
  message: string | undefined;
  clientMessageId: string | undefined;
  useRag: boolean | undefined;
}

async function streamTurn(
  inv: Invocation,
  request: TurnRequest,
  wireFor: (out: PassThrough) => WireSink,
  headers: Record<string, string>,
): Promise<RouteResponse> {
  const { runtime } = inv;
  const allowance = await runtime.limits.check(inv.userId);
  if (!allowance.allowed) {
    runtime.metrics.countLimitRejection();
    throw limitReached(allowance.limit, allowance.retryAfterSeconds);
  }
  const admission = await admitTurn(
    runtime.registry,
    runtime.turnDeps.log,
    { userId: inv.userId, sessionId: request.sessionId, clientMessageId: request.clientMessageId },
    runtime.turnDeps.newId,
  );
  const body = new PassThrough();
  const wire = wireFor(body);
  const responseHeaders = { ...headers, 'x-session-id': admission.sessionId };
  if (admission.kind === 'attach') {
    inv.afterResponse(replayInto(inv, admission.replay, -1, wire, body));
    return { statusCode: 200, headers: responseHeaders, body };
  }
  const sink = new SavedBeforeDoneSink(new NumberedSink(wire, admission.journal));
  const turn = runTurn(
    runtime.turnDeps,
    {
      userId: inv.userId,
      sessionId: admission.sessionId,
      isNewSession: admission.isNewSession,
      message: request.message,
      clientMessageId: request.clientMessageId,
      useRag: request.useRag ?? runtime.retriever !== undefined,
      startedAt: inv.startedAt,
      stop: admission.journal?.stopSignal,
    },
    sink,
  );
  inv.afterResponse(
    finishTurn(runtime, turn, sink, admission.journal, () => {
      wire.end?.();
      body.end();
    }),
  );
  return { statusCode: 200, headers: responseHeaders, body };
}

/** Writes a turn's journaled events after `afterId` and follows it to its end, within the invocation's time. */
async function replayInto(
  inv: Invocation,
  replay: TurnReplay,
  afterId: number,
  wire: WireSink,
  body: PassThrough,
): Promise<void> {
  const budget = Math.max(1000, inv.context.getRemainingTimeInMillis() - 2000);
  try {
    for await (const { id, event } of replay.events(afterId, AbortSignal.timeout(budget))) {
      wire.send(event, id);
    }
  } catch (error) {
    inv.runtime.logger.warn('resume ended early', {
      error: errorName(error),
    });
  }
  wire.end?.();
  body.end();
}

export async function nativeTurn(inv: Invocation): Promise<RouteResponse> {
  const { runtime } = inv;
  const request = parseJsonBody(readJsonBody(inv.event, runtime.maxBodyBytes), runtime.requestSchema);
  const clientMessageId = request.message_id ?? inv.event.headers?.['idempotency-key'];
  return streamTurn(
    inv,
    {
      sessionId: request.session_id,
      message: request.message,
      clientMessageId: checkedId(clientMessageId),
      useRag: request.use_rag,
    },
    (out) => new NativeSseSink(out, runtime.config.FLUSH_PADDING_BYTES),
    SSE_HEADERS,
  );
}

export async function aiSdkTurn(inv: Invocation): Promise<RouteResponse> {
  const { runtime } = inv;
  const body = parseJsonBody(readJsonBody(inv.event, CONVERSATION_BODY_BYTES), aiSdkRequestSchema);
  const request = toTurnRequest(body, runtime.config.MAX_MESSAGE_CHARS);
  return streamTurn(
    inv,
    request,
    (out) => new AiSdkSink(out, runtime.config.FLUSH_PADDING_BYTES),
    UI_MESSAGE_STREAM_HEADERS,
  );
}

export async function openAiTurn(inv: Invocation): Promise<RouteResponse> {
  const { runtime } = inv;
  const body = parseJsonBody(readJsonBody(inv.event, CONVERSATION_BODY_BYTES), openAiRequestSchema);
  const request = toOpenAiTurn(
    body,
    inv.event.headers ?? {},
    runtime.config.MAX_MESSAGE_CHARS,
    runtime.config.MODEL_ID,
  );
  if (request.stream) {
    return streamTurn(
      inv,
      request,
      (out) => new OpenAiStreamSink(out, request, runtime.config.FLUSH_PADDING_BYTES),
      SSE_HEADERS,
    );
  }
  // Not streamed: the whole answer is collected, then sent as one JSON completion with its own status.
  const collector = new OpenAiCompletionCollector(request);
  const response = await streamTurn(inv, request, () => collector, {});
  const stream = response.body;
  if (typeof stream !== 'string') await new Promise((resolve) => stream.on('end', resolve).resume());
  const { statusCode, body: json } = collector.result();
  // A failed answer is journaled under its idempotency key: the SDK's own retry would only replay it.
  const retryHints =
    statusCode >= 400
      ? {
          'x-should-retry': 'false',
          ...(statusCode === 429 || statusCode >= 500 ? { 'retry-after': '5' } : {}),
        }
      : {};
  return {
    statusCode,
    headers: { 'content-type': 'application/json', 'x-session-id': collector.sessionId, ...retryHints },
    body: json,
  };
}

export async function resumeTurn(inv: Invocation, sessionId: string, format: 'native' | 'ai-sdk') {
  const { runtime } = inv;
  let afterId = -1;
  const lastEventId = inv.event.headers?.['last-event-id'];
  if (format === 'native' && lastEventId !== undefined) {
    if (!/^\d{1,9}$/.test(lastEventId)) {
      throw new HttpError(400, 'invalid_request', 'Last-Event-ID must be an event id from this stream.');
    }
    afterId = Number(lastEventId);
  }
  const replay = await runtime.registry?.replay(inv.userId, sessionId).catch((error: unknown) => {
    runtime.logger.warn('turn registry unavailable for resume', {
      error: errorName(error),
    });
    return undefined;
  });
  if (!replay) return { statusCode: 204, headers: {}, body: '' };
  const body = new PassThrough();
  const wire =
    format === 'native'
      ? new NativeSseSink(body, runtime.config.FLUSH_PADDING_BYTES)
      : new AiSdkSink(body, runtime.config.FLUSH_PADDING_BYTES);
  inv.afterResponse(replayInto(inv, replay, afterId, wire, body));
  return {
    statusCode: 200,
    headers: {
      ...(format === 'native' ? SSE_HEADERS : UI_MESSAGE_STREAM_HEADERS),
      'x-session-id': sessionId,
    },
    body,
  };
}

export async function stopTurn(inv: Invocation, sessionId: string): Promise<RouteResponse> {
  const registry = inv.runtime.registry;
  if (!registry) {
    throw new HttpError(
      503,
      'stop_unavailable',
      'Stopping needs the cache, which this deployment does not have.',
    );
  }
  const stopping = await registry.requestStop(inv.userId, sessionId).catch((error: unknown) => {
    inv.runtime.logger.warn('turn registry unavailable for stop', { error: errorName(error) });
    throw new HttpError(503, 'stop_unavailable', 'The turn registry is unreachable. Try again shortly.', {
      headers: { 'retry-after': '5' },
    });
  });
  if (!stopping) return { statusCode: 204, headers: {}, body: '' };
  return {
    statusCode: 202,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ session_id: sessionId, status: 'stopping' }),
  };
}

function checkedId(id: string | undefined): string | undefined {
  if (id === undefined || OPAQUE_ID.test(id)) return id;
  throw new RequestRejected('invalid', 'invalid_request', 'Idempotency-Key must match [A-Za-z0-9_-]{1,128}', {
    field: 'idempotency-key',
  });
}
