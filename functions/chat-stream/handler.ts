import middy from '@middy/core';
import { executionModeStreamifyResponse } from '@middy/core/StreamifyResponse';
import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import { RequestRejected } from '../core/errors.ts';
import { fromRejection, HttpError, jsonResponse } from './http-edge.ts';
import { openAiErrorResponse } from './openai-compat.ts';
import { matchRoute } from './routes.ts';
import { createStreamRuntime } from './stream-runtime.ts';
import type { RouteResponse } from './turn-routes.ts';

const runtime = createStreamRuntime();
await runtime.warm();

/** Work each invocation must finish after its response ended and before it returns (Lambda freezes after). */
const afterResponse = new WeakMap<Context, Promise<void>[]>();

async function route(event: LambdaFunctionURLEvent, context: Context): Promise<RouteResponse> {
  const startedAt = performance.now();
  const { method, path } = event.requestContext.http;
  const matched = matchRoute(method, path);
  const userId = await runtime.auth.userIdFrom(event.headers?.authorization);
  const pending: Promise<void>[] = [];
  afterResponse.set(context, pending);
  return matched.handle(
    { runtime, event, context, userId, startedAt, afterResponse: (work) => pending.push(work) },
    matched.id,
  );
}

async function chatStream(event: LambdaFunctionURLEvent, context: Context) {
  runtime.logger.addContext(context);
  try {
    return await route(event, context);
  } catch (error) {
    const rejection = error instanceof RequestRejected ? fromRejection(error) : error;
    if (!(rejection instanceof HttpError)) throw error;
    runtime.logger.info('request rejected', { status: rejection.status, code: rejection.code });
    return event.requestContext.http.path.startsWith('/v1/')
      ? openAiErrorResponse(rejection)
      : jsonResponse(rejection);
  }
}

export const handler = middy<LambdaFunctionURLEvent>({
  executionMode: executionModeStreamifyResponse,
  requestEnd: async (request) => {
    await Promise.all(afterResponse.get(request.context as Context) ?? []);
  },
}).handler(chatStream);
