import type { Context } from 'aws-lambda';
import { RequestRejected } from '../core/errors.ts';
import { rejectionResponse } from './http-errors.ts';
import { corsHeadersFor, type FrontDoorEvent, type HttpRequest, httpRequestOf } from './http-request.ts';
import type { RouteResponse } from './invocation.ts';
import { createRouter, errorsForPath } from './router.ts';
import { createStreamRuntime } from './stream-runtime.ts';

const runtime = createStreamRuntime();
const matchRoute = createRouter(runtime.routes);
const corsOrigins = runtime.config.CORS_ALLOWED_ORIGINS?.split(',').map((o) => o.trim()) ?? [];
await runtime.warm();

/** Work each invocation must finish after its response ended and before it returns (Lambda freezes after). */
const afterResponse = new WeakMap<Context, Promise<void>[]>();

async function route(request: HttpRequest, context: Context): Promise<RouteResponse> {
  const startedAt = performance.now();
  const matched = matchRoute(request.method, request.path);
  const userId = await runtime.auth.userIdFrom(request.headers.authorization);
  const pending: Promise<void>[] = [];
  afterResponse.set(context, pending);
  return matched.handle(
    { event: request, context, userId, startedAt, afterResponse: (work) => pending.push(work) },
    matched.id,
  );
}

async function answer(request: HttpRequest, context: Context): Promise<RouteResponse> {
  try {
    return await route(request, context);
  } catch (error) {
    if (!(error instanceof RequestRejected)) throw error;
    const response = rejectionResponse(error, errorsForPath(request.path));
    runtime.logger.info('request rejected', { status: response.statusCode, code: error.code });
    return response;
  }
}

async function chatStream(event: FrontDoorEvent, context: Context) {
  runtime.logger.addContext(context);
  const request = httpRequestOf(event);
  const response = await answer(request, context);
  return {
    ...response,
    headers: { ...response.headers, ...corsHeadersFor(request.headers.origin, corsOrigins) },
  };
}

/**
 * The runtime's own streaming wrapper, no framework between: a streamed body writes each event straight
 * to the response stream (a body stream piped into it cost a stream hop per token). The invocation
 * returns once the body ended and the work after the response finished (Lambda freezes after it).
 */
export const handler = awslambda.streamifyResponse(
  async (event: FrontDoorEvent, responseStream: awslambda.HttpResponseStream, context: Context) => {
    const { body, ...prelude } = await chatStream(event, context);
    const out = awslambda.HttpResponseStream.from(responseStream, prelude);
    // A failing response stream (the runtime's connection reset) fails this invocation, never the process.
    let failed: Error | undefined;
    out.on('error', (error) => {
      failed ??= error;
    });
    try {
      // The prelude (status, headers) leaves with the first write: a whole body's, or at once (empty)
      // before a streamed body, which may be slow to start.
      out.write(typeof body === 'string' ? body : '');
      if (typeof body !== 'string') await body(out);
    } finally {
      if (!out.writableEnded) out.end();
      await Promise.all(afterResponse.get(context) ?? []);
    }
    if (failed) throw failed;
  },
);
