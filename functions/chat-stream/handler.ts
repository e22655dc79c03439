import middy from '@middy/core';
import { executionModeStreamifyResponse } from '@middy/core/StreamifyResponse';
import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import { RequestRejected } from '../core/errors.ts';
import { usage } from './account-routes.ts';
import {
  deleteSession,
  eraseUser,
  getSession,
  listMessages,
  listSessions,
  renameSession,
} from './conversation-routes.ts';
import { fromRejection, HttpError, jsonResponse } from './http-edge.ts';
import { openAiErrorResponse } from './openai-compat.ts';
import { matchRoute } from './routes.ts';
import { createStreamRuntime } from './stream-runtime.ts';
import {
  aiSdkTurn,
  type Invocation,
  nativeTurn,
  openAiTurn,
  type RouteResponse,
  resumeTurn,
  stopTurn,
} from './turn-routes.ts';

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
  const inv: Invocation = {
    runtime,
    event,
    context,
    userId,
    startedAt,
    afterResponse: (work) => pending.push(work),
  };
  switch (matched.name) {
    case 'native-turn':
      return nativeTurn(inv);
    case 'ai-sdk-turn':
      return aiSdkTurn(inv);
    case 'openai-turn':
      return openAiTurn(inv);
    case 'native-resume':
      return resumeTurn(inv, matched.id ?? '', 'native');
    case 'ai-sdk-resume':
      return resumeTurn(inv, matched.id ?? '', 'ai-sdk');
    case 'stop':
      return stopTurn(inv, matched.id ?? '');
    case 'list-sessions':
      return listSessions(inv);
    case 'get-session':
      return getSession(inv, matched.id ?? '');
    case 'rename-session':
      return renameSession(inv, matched.id ?? '');
    case 'delete-session':
      return deleteSession(inv, matched.id ?? '');
    case 'list-messages':
      return listMessages(inv, matched.id ?? '');
    case 'usage':
      return usage(inv);
    case 'erase-me':
      return eraseUser(inv);
  }
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
