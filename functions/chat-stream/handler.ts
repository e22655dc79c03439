import middy from '@middy/core';
import { executionModeStreamifyResponse } from '@middy/core/StreamifyResponse';
import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import { RequestRejected } from '../core/errors.ts';
import { rejectionResponse } from './http-errors.ts';
import type { RouteResponse } from './invocation.ts';
import { createRouter, errorsForPath } from './router.ts';
import { createStreamRuntime } from './stream-runtime.ts';

const runtime = createStreamRuntime();
const matchRoute = createRouter(runtime.routes);
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
    { event, context, userId, startedAt, afterResponse: (work) => pending.push(work) },
    matched.id,
  );
}

async function chatStream(event: LambdaFunctionURLEvent, context: Context) {
  runtime.logger.addContext(context);
  try {
    return await route(event, context);
  } catch (error) {
    if (!(error instanceof RequestRejected)) throw error;
    const response = rejectionResponse(error, errorsForPath(event.requestContext.http.path));
    runtime.logger.info('request rejected', { status: response.statusCode, code: error.code });
    return response;
  }
}

export const handler = middy<LambdaFunctionURLEvent>({
  executionMode: executionModeStreamifyResponse,
  requestEnd: async (request) => {
    await Promise.all(afterResponse.get(request.context as Context) ?? []);
  },
}).handler(chatStream);
