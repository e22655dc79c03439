import { PassThrough } from 'node:stream';
import middy from '@middy/core';
import { executionModeStreamifyResponse } from '@middy/core/StreamifyResponse';
import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import { RequestRejected } from '../core/errors.ts';
import { parseJsonBody } from '../core/request.ts';
import { runTurn } from '../core/turn.ts';
import { fromRejection, HttpError, jsonResponse, readJsonBody } from './http-edge.ts';
import { NativeSseSink, SSE_HEADERS } from './native-sse.ts';
import { createStreamRuntime } from './stream-runtime.ts';
import { finishTurn } from './turn-lifecycle.ts';

const runtime = createStreamRuntime();
await runtime.warm();

/** Work each invocation must finish after its stream ended and before it returns (Lambda freezes after). */
const afterStream = new WeakMap<Context, Promise<void>>();

async function chatStream(event: LambdaFunctionURLEvent, context: Context) {
  const startedAt = performance.now();
  runtime.logger.addContext(context);
  let accepted: { userId: string; request: ReturnType<typeof parseJsonBody<typeof runtime.requestSchema>> };
  try {
    const body = readJsonBody(event, runtime.maxBodyBytes);
    const userId = await runtime.auth.userIdFrom(event.headers?.authorization);
    accepted = { userId, request: parseJsonBody(body, runtime.requestSchema) };
  } catch (error) {
    const rejection = error instanceof RequestRejected ? fromRejection(error) : error;
    if (!(rejection instanceof HttpError)) throw error;
    runtime.logger.info('request rejected', { status: rejection.status, code: rejection.code });
    return jsonResponse(rejection);
  }

  const body = new PassThrough();
  const sink = new NativeSseSink(body, runtime.config.FLUSH_PADDING_BYTES);
  const { request, userId } = accepted;
  const turn = runTurn(
    runtime.turnDeps,
    {
      userId,
      sessionId: request.session_id,
      message: request.message,
      useRag: request.use_rag ?? runtime.retriever !== undefined,
      startedAt,
    },
    sink,
  );
  afterStream.set(
    context,
    finishTurn(runtime, turn, sink, () => body.end()),
  );
  return { statusCode: 200, headers: { ...SSE_HEADERS }, body };
}

export const handler = middy<LambdaFunctionURLEvent>({
  executionMode: executionModeStreamifyResponse,
  requestEnd: async (request) => {
    await afterStream.get(request.context as Context);
  },
}).handler(chatStream);
